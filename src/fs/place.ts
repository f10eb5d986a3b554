/**
 * Putting a finished file at its final name, shared by received files
 * (part-file.ts) and state files (store/state-dir.ts).
 *
 * "Never replace" is a hard link, which fails if the name exists. Where
 * hard links do not exist (FAT/exFAT, some network and FUSE file systems)
 * the name is first claimed with an exclusive create, then the file is
 * renamed onto that claim: still never over anything that was there
 * before. The cost is that a crash between the two steps leaves an empty
 * file at the final name.
 *
 * On Windows a virus scanner or indexer briefly holding a file makes
 * rename and link fail with EPERM/EBUSY/EACCES: those are retried with a
 * short, bounded backoff.
 */
import { constants } from "node:fs";
import { link, open, rename, unlink } from "node:fs/promises";

/** Errors from link() that mean "no hard links here", not "no". */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV", "EMLINK"]);
/** What a scanner holding the file looks like on Windows. */
const TRANSIENT_ON_WINDOWS = new Set(["EPERM", "EBUSY", "EACCES"]);
/** Waits between attempts: about 1.5 s in all, then the error stands. */
const BACKOFF_MS = [10, 20, 40, 80, 160, 320, 640];

/** Test seams: the file operations and the platform, so failures can be injected. */
export const placeIo = {
	link: (from: string, to: string) => link(from, to),
	rename: (from: string, to: string) => rename(from, to),
	platform: process.platform as string,
	sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
};

const code = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code ?? "";

/** Run `op`, retrying on Windows while the error looks like a file briefly held by someone else. */
export async function retryHeld<T>(op: () => Promise<T>): Promise<T> {
	for (let attempt = 0; ; attempt++) {
		try {
			return await op();
		} catch (e) {
			const wait = BACKOFF_MS[attempt];
			if (placeIo.platform !== "win32" || wait === undefined || !TRANSIENT_ON_WINDOWS.has(code(e)))
				throw e;
			await placeIo.sleep(wait);
		}
	}
}

/** Move `from` to `to`, replacing whatever is there (the caller decided that is allowed). */
export function placeReplacing(from: string, to: string): Promise<void> {
	return retryHeld(() => placeIo.rename(from, to));
}

/**
 * Move `from` to `to` only if nothing is at `to`. Returns false (and leaves
 * `from` in place) when the name is taken; `from` is gone after true.
 */
export async function placeNoReplace(from: string, to: string): Promise<boolean> {
	try {
		await retryHeld(() => placeIo.link(from, to));
	} catch (e) {
		if (code(e) === "EEXIST") return false;
		if (!NO_HARD_LINKS.has(code(e))) throw e;
		return claimThenRename(from, to);
	}
	await unlink(from);
	return true;
}

async function claimThenRename(from: string, to: string): Promise<boolean> {
	try {
		const claim = await open(
			to,
			constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0),
			0o600,
		);
		await claim.close();
	} catch (e) {
		if (code(e) === "EEXIST") return false;
		throw e;
	}
	try {
		await retryHeld(() => placeIo.rename(from, to));
	} catch (e) {
		await unlink(to).catch(() => undefined);
		throw e;
	}
	return true;
}
