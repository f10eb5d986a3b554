/**
 * Receiving a file: bytes go to `.<name>.pairlink-part` beside the target,
 * are hashed as they arrive, and reach the final name only after size and
 * SHA-256 match the sender's — by an atomic rename (overwrite) or a hard
 * link that fails if the name exists (no overwrite). A part file that
 * survives an interruption is the resume point for the next attempt.
 */
import { constants } from "node:fs";
import { type FileHandle, link, lstat, open, rename, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PairlinkError } from "../errors.ts";
import { MAX_DATA_PAYLOAD } from "../protocol/limits.ts";
import { display, errno, fsError, partName, type SandboxRoot } from "./root.ts";
import { ON_THREAD_BELOW, readSmallSync } from "./small-io.ts";

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/**
 * Part files being written by this process. Two receivers of one name would
 * share the part file (one truncating what the other verified), so the
 * second is refused until the first is done.
 */
const claimed = new Set<string>();

export class PartFile {
	private offset: number;
	private closed = false;

	private constructor(
		private readonly fh: FileHandle,
		readonly partPath: string,
		readonly finalPath: string,
		private readonly label: string,
		/** Bytes already in the part file from an earlier attempt. */
		readonly resumable: number,
		/** SHA-256 (hex) of those bytes; undefined when there are none. */
		readonly prefixSha256: string | undefined,
		private hasher: Bun.CryptoHasher,
	) {
		this.offset = resumable;
	}

	/**
	 * Prepare to receive `wirePath` inside `root`. Refuses when the final name
	 * exists and `overwrite` is false, is a directory, or is a symlink.
	 */
	static async open(root: SandboxRoot, wirePath: string, overwrite: boolean): Promise<PartFile> {
		const { abs, parts } = await root.locate(wirePath);
		const label = display(parts);
		if (parts.length === 0)
			throw new PairlinkError("refused", "cannot write over the shared directory itself");
		await checkTarget(abs, label, overwrite);
		const partPath = join(dirname(abs), partName(parts.at(-1) as string));
		if (claimed.has(partPath)) {
			throw new PairlinkError("busy", `${label} is being received by another transfer right now`);
		}
		claimed.add(partPath);
		try {
			return await PartFile.openClaimed(abs, partPath, label, overwrite);
		} catch (e) {
			claimed.delete(partPath);
			throw e;
		}
	}

	private static async openClaimed(
		abs: string,
		partPath: string,
		label: string,
		overwrite: boolean,
	): Promise<PartFile> {
		await checkTarget(abs, label, overwrite);
		let fh: FileHandle;
		try {
			// O_NONBLOCK: a FIFO planted under the part file's name must not hang us; it is refused below.
			fh = await open(
				partPath,
				constants.O_RDWR | constants.O_CREAT | constants.O_NONBLOCK | O_NOFOLLOW,
				0o644,
			);
		} catch (e) {
			if (errno(e) === "EISDIR") throw notRegular(label);
			throw fsError(e, label);
		}
		const info = await fh.stat();
		if (!info.isFile()) {
			await fh.close();
			throw notRegular(label);
		}
		const size = info.size;
		// Hash what an earlier attempt left, so the sender can check it against its own prefix.
		const hasher = new Bun.CryptoHasher("sha256");
		if (size > 0) await hashRange(fh, 0, size, (chunk) => hasher.update(chunk));
		const prefix = size > 0 ? hasher.copy().digest("hex") : undefined;
		return new PartFile(fh, partPath, abs, label, size, prefix, hasher);
	}

	/** Continue after the kept prefix (`resumable`), or start over from 0. */
	async startAt(offset: number): Promise<void> {
		if (offset === this.resumable) return;
		if (offset !== 0) throw new PairlinkError("protocol", `cannot resume at ${offset}`);
		await this.fh.truncate(0);
		this.hasher = new Bun.CryptoHasher("sha256");
		this.offset = 0;
	}

	get received(): number {
		return this.offset;
	}

	/** Append the pieces of one chunk (as they arrived from the socket): hashed, then one writev. */
	async write(data: Uint8Array | readonly Uint8Array[]): Promise<void> {
		const parts = data instanceof Uint8Array ? [data] : data;
		let length = 0;
		for (const p of parts) {
			this.hasher.update(p);
			length += p.length;
		}
		let pieces = parts;
		let done = 0;
		try {
			while (done < length) {
				const { bytesWritten } = await this.fh.writev(pieces as Uint8Array[], this.offset + done);
				done += bytesWritten;
				if (done < length) pieces = remaining(parts, done);
			}
		} catch (e) {
			throw fsError(e, this.label);
		} finally {
			this.offset += done;
		}
	}

	/**
	 * Verify and move into place. On a mismatch the part file is deleted (its
	 * content is known bad) and nothing appears at the final name.
	 */
	async commit(expected: { size: number; sha256: string }, overwrite: boolean): Promise<string> {
		const actual = this.hasher.digest("hex");
		if (this.offset !== expected.size || actual !== expected.sha256) {
			await this.discard();
			throw new PairlinkError(
				"integrity",
				this.offset !== expected.size
					? `${this.label}: received ${this.offset} bytes, the sender announced ${expected.size}`
					: `${this.label}: SHA-256 mismatch, the data was corrupted in transit`,
			);
		}
		try {
			await this.fh.sync();
			await this.close();
			if (overwrite) {
				await checkTarget(this.finalPath, this.label, true);
				await rename(this.partPath, this.finalPath);
			} else {
				// link() fails if the name exists: no window in which a file that
				// appeared meanwhile could be replaced.
				await link(this.partPath, this.finalPath);
				await unlink(this.partPath);
			}
		} catch (e) {
			throw fsError(e, this.label);
		} finally {
			// Only now: until the part file is renamed away, nobody else may open it.
			claimed.delete(this.partPath);
		}
		return actual;
	}

	/** Close and keep the part file: the next attempt resumes from it. */
	async keep(): Promise<void> {
		await this.close();
		claimed.delete(this.partPath);
	}

	async discard(): Promise<void> {
		await this.close();
		await unlink(this.partPath).catch(() => undefined);
		claimed.delete(this.partPath);
	}

	private async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		await this.fh.close().catch(() => undefined);
	}
}

/** What is left of `parts` after the first `skip` bytes (after a short writev). */
function remaining(parts: readonly Uint8Array[], skip: number): Uint8Array[] {
	const out: Uint8Array[] = [];
	let left = skip;
	for (const p of parts) {
		if (left >= p.length) {
			left -= p.length;
			continue;
		}
		out.push(left > 0 ? p.subarray(left) : p);
		left = 0;
	}
	return out;
}

const notRegular = (label: string) =>
	new PairlinkError(
		"invalid-path",
		`${label} has an unfinished transfer that is not a regular file`,
	);

async function checkTarget(abs: string, label: string, overwrite: boolean): Promise<void> {
	const s = await lstat(abs).catch((e) =>
		errno(e) === "ENOENT" ? undefined : Promise.reject(fsError(e, label)),
	);
	if (!s) return;
	if (s.isSymbolicLink())
		throw new PairlinkError(
			"invalid-path",
			`${label} is a symbolic link; pairlink never writes through one`,
		);
	if (s.isDirectory()) throw new PairlinkError("is-directory", `${label} is a directory`);
	if (!overwrite) throw new PairlinkError("exists", `${label} already exists`);
}

/** Feed bytes [start, end) of a file to `use`, one chunk of at most 1 MiB at a time. */
export async function hashRange(
	fh: FileHandle,
	start: number,
	end: number,
	use: (chunk: Uint8Array) => void,
): Promise<void> {
	for await (const chunk of readChunks(fh, start, end, true)) use(chunk);
}

/**
 * Read [start, end) in chunks of at most MAX_DATA_PAYLOAD. The next read is
 * already in flight while the caller hashes and sends the current chunk, and
 * buffers are not zero-filled first (every byte is overwritten by the read).
 *
 * By default each chunk is a fresh buffer the caller may keep. With `reuse`,
 * two buffers take turns: a chunk is valid only until the caller asks for
 * the next one. A streaming sender is done with a chunk by then (hashed, and
 * taken by the socket), and a fresh 1 MiB buffer per chunk costs the kernel
 * a page fault and a zeroed page per 4 KiB — a quarter of a million per GiB.
 */
export async function* readChunks(
	fh: FileHandle,
	start: number,
	end: number,
	reuse = false,
): AsyncGenerator<Uint8Array> {
	const ring = reuse
		? [Buffer.allocUnsafe(MAX_DATA_PAYLOAD), Buffer.allocUnsafe(MAX_DATA_PAYLOAD)]
		: [];
	let turn = 0;
	const readAt = async (pos: number): Promise<Uint8Array | undefined> => {
		if (pos >= end) return undefined;
		const want = Math.min(MAX_DATA_PAYLOAD, end - pos);
		const buf = reuse ? (ring[turn++ % 2] as Buffer).subarray(0, want) : Buffer.allocUnsafe(want);
		let got = 0;
		while (got < want) {
			const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
			if (bytesRead === 0)
				throw new PairlinkError("interrupted", "the file shrank while it was being read");
			got += bytesRead;
		}
		return buf;
	};
	let pos = start;
	let next = readAt(pos);
	for (;;) {
		const chunk = await next;
		if (!chunk) return;
		pos += chunk.length;
		next = readAt(pos);
		// A read that fails while the caller is busy must not become an unhandled rejection.
		next.catch(() => undefined);
		yield chunk;
	}
}

/** All `size` bytes of an open file (at most one data frame), in one buffer the caller may keep. */
export async function readWhole(fh: FileHandle, size: number): Promise<Uint8Array> {
	if (size < ON_THREAD_BELOW) return readSmallSync(fh, size);
	let whole: Uint8Array = new Uint8Array(0);
	for await (const chunk of readChunks(fh, 0, size)) whole = chunk;
	return whole;
}
