/**
 * SPEC "Metadata", "Up to date is success" and "Changing sources", said once
 * for both directions: which metadata travels (mtime, executable bits),
 * what the receiver makes of it, when an existing file is the same file,
 * and when a source changed while it was read.
 */
import type { Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";

/** What travels with a file: modification time (ms since the epoch) and permission bits. */
export interface FileMeta {
	mtime: number;
	/** Only the executable bits are kept by the receiver. */
	mode: number;
}

const EXECUTABLE = 0o111;

/** The receiver's default for a new file (its umask) plus the sender's executable bits: never setuid/setgid/sticky. */
export function receivedMode(sourceMode: number, umask: number): number {
	return (0o666 | (sourceMode & EXECUTABLE)) & ~umask & 0o777;
}

/** The umask, read once (reading it sets it back, which is not free). */
let processUmask: number | undefined;
function currentUmask(): number {
	processUmask ??= process.umask();
	return processUmask;
}

/**
 * Give a verified file the sender's mtime and mode, through its descriptor
 * (before it is moved into place, so nothing sees it half-done). Windows
 * has no executable bits: only the time is applied there.
 */
export async function applyMeta(fh: FileHandle, meta: FileMeta, platform: string): Promise<void> {
	if (platform !== "win32") await fh.chmod(receivedMode(meta.mode, currentUmask()));
	const when = new Date(meta.mtime);
	await fh.utimes(new Date(), when);
}

/**
 * Equal to the millisecond, or within the receiver's coarser granularity:
 * a time kept in whole seconds (truncated), or FAT's 2 s (rounded either way).
 */
export function sameTime(source: number, stored: number): boolean {
	if (source === stored) return true;
	if (stored % 2000 === 0 && Math.abs(source - stored) < 2000) return true;
	return stored % 1000 === 0 && source - stored >= 0 && source - stored < 1000;
}

/** SPEC's quick check: same size and the same modification time. */
export function upToDate(
	source: { size: number; mtime: number },
	dest: { size: number; mtime: number },
): boolean {
	return source.size === dest.size && sameTime(source.mtime, dest.mtime);
}

/** What identifies a source's content before it is read, compared again after. */
export interface Snapshot {
	size: number;
	mtimeMs: number;
	ino: number;
	dev: number;
	/** Sent along (its executable bits), not compared. */
	mode: number;
}

export function snapshot(s: Stats): Snapshot {
	return { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino, dev: s.dev, mode: s.mode };
}

/** Size, modification time or identity (another file now at the name) differ. */
export function changed(before: Snapshot, after: Snapshot): boolean {
	return (
		before.size !== after.size ||
		before.mtimeMs !== after.mtimeMs ||
		before.ino !== after.ino ||
		before.dev !== after.dev
	);
}

/**
 * After reading a source through `fh`: did it change since `before`? Its
 * size or mtime through the descriptor, or another file now where it was
 * found (`now` looks it up again; a failure counts as changed).
 */
export async function changedWhileRead(
	fh: FileHandle,
	before: Snapshot,
	now: () => Promise<Stats>,
): Promise<boolean> {
	if (changed(before, snapshot(await fh.stat()))) return true;
	const found = await now().catch(() => undefined);
	return found === undefined || changed(before, snapshot(found));
}

/** SHA-256 (hex) of a local file, streamed (--checksum on the side that has the file). */
export async function sha256Of(path: string): Promise<string> {
	const h = new Bun.CryptoHasher("sha256");
	for await (const chunk of Bun.file(path).stream()) h.update(chunk);
	return h.digest("hex");
}
