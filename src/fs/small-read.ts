/**
 * Whole small files, read on the calling thread. An async read is a round
 * trip through the thread pool — a futex wake there, an eventfd write and an
 * epoll wake back, two context switches on one core — which for a 4 KiB file
 * in the page cache costs several times the read itself, and a 10,000-file
 * tree pays it per file. Below READ_ON_THREAD_BELOW a synchronous read
 * blocks the event loop for microseconds; larger files stay on the pool.
 */
import { readFileSync, readSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { PairlinkError } from "../errors.ts";
import { readChunks } from "./part-file.ts";

export const READ_ON_THREAD_BELOW = 64 * 1024;

/** All `size` bytes of an open file (at most one data frame), in one buffer the caller may keep. */
export async function readWhole(fh: FileHandle, size: number): Promise<Uint8Array> {
	if (size >= READ_ON_THREAD_BELOW) {
		let whole: Uint8Array = new Uint8Array(0);
		for await (const chunk of readChunks(fh, 0, size)) whole = chunk;
		return whole;
	}
	const buf = Buffer.allocUnsafe(size);
	let got = 0;
	while (got < size) {
		const n = readSync(fh.fd, buf, got, size - got, got);
		if (n === 0) throw new PairlinkError("interrupted", "the file shrank while it was being read");
		got += n;
	}
	return buf;
}

/** A small file by path: on this thread below READ_ON_THREAD_BELOW, else on the pool. */
export function readPath(path: string, size: number): Uint8Array | Promise<Uint8Array> {
	return size < READ_ON_THREAD_BELOW ? readFileSync(path) : Bun.file(path).bytes();
}
