/**
 * Small files read on the calling thread. An async read is a round trip
 * through the thread pool — a futex wake there, an eventfd write and an
 * epoll wake back, two context switches on one core — which for a 4 KiB
 * file in the page cache costs several times the read itself, and a
 * 10,000-file tree pays it per file. Below ON_THREAD_BELOW a synchronous
 * read blocks the event loop for microseconds; larger reads stay on the pool.
 * (Writes were measured too: the receiver's per-file cost is in opening,
 * checking and committing, not in its one write, so they stay on the pool.)
 */
import { readFileSync, readSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { PairlinkError } from "../errors.ts";

export const ON_THREAD_BELOW = 64 * 1024;

/** All `size` bytes of a small file (below ON_THREAD_BELOW) from offset 0, read on this thread. */
export function readSmallSync(fh: FileHandle, size: number): Uint8Array {
	const buf = Buffer.allocUnsafe(size);
	let got = 0;
	while (got < size) {
		const n = readSync(fh.fd, buf, got, size - got, got);
		if (n === 0) throw new PairlinkError("interrupted", "the file shrank while it was being read");
		got += n;
	}
	return buf;
}

/** A small file by path: on this thread below ON_THREAD_BELOW, else on the pool. */
export function readPath(path: string, size: number): Uint8Array | Promise<Uint8Array> {
	return size < ON_THREAD_BELOW ? readFileSync(path) : Bun.file(path).bytes();
}
