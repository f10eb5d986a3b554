/**
 * The state directory and the primitives every store file goes through.
 *
 * Rules (SPEC "Files"): directory mode 0700, every file 0600, every write
 * atomic. Files are only ever created through a fresh temp file opened with
 * O_CREAT|O_EXCL and mode 0600, so no state file is world-readable even for
 * an instant, and a crash leaves either the old or the new content — never a
 * truncated file.
 *
 * POSIX modes are not meaningful on Windows (%APPDATA% is protected by
 * per-user ACLs); mode handling is skipped there. Nor on FAT and exFAT (a
 * USB stick in portable mode): chmod there fails or silently changes
 * nothing, so ensureStateDir finds out by trying, and says so.
 */

import { randomBytes } from "node:crypto";
import { constants, statSync } from "node:fs";
import {
	chmod,
	type FileHandle,
	mkdir,
	open,
	readdir,
	readFile,
	rename,
	stat,
	unlink,
} from "node:fs/promises";
import path from "node:path";
import { type ErrorCode, PairlinkError } from "../errors";
import { placeNoReplace } from "../fs/place.ts";

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;
/** State files are tiny; anything this large is not ours and must not be slurped. */
export const MAX_STATE_FILE_BYTES = 16 * 1024 * 1024;

const isWindows = process.platform === "win32";
// Not in Node's fs.constants typings.
const STICKY_BIT = 0o1000;

/**
 * Where this device keeps its state. Pure: a function of its inputs only, so
 * every platform's rule can be tested anywhere. Empty variables count as
 * unset; a relative $XDG_CONFIG_HOME is ignored, as the XDG spec requires.
 * $PAIRLINK_HOME is returned as given (a relative one is relative to the
 * working directory, which is what a user typing it expects). Next comes
 * `portableDir`, the portable state directory if there is one (see
 * portableStateDir), then the OS's config directory.
 */
export function resolveStateDir(
	env: Record<string, string | undefined>,
	platform: NodeJS.Platform | string,
	homedir: string,
	portableDir?: string,
): string {
	const set = (name: string): string | undefined => {
		const v = env[name];
		return v === undefined || v === "" ? undefined : v;
	};
	const home = set("PAIRLINK_HOME");
	if (home !== undefined) return home;
	if (portableDir !== undefined) return portableDir;

	if (platform === "win32") {
		const appData = set("APPDATA");
		if (appData !== undefined) return path.win32.join(appData, "pairlink");
		if (homedir !== "") return path.win32.join(homedir, "AppData", "Roaming", "pairlink");
	} else {
		const xdg = set("XDG_CONFIG_HOME");
		if (xdg !== undefined && path.posix.isAbsolute(xdg)) return path.posix.join(xdg, "pairlink");
		if (homedir !== "") return path.posix.join(homedir, ".config", "pairlink");
	}
	throw new PairlinkError(
		"usage",
		"Cannot find a home directory for pairlink's state; set PAIRLINK_HOME to a directory of your own.",
	);
}

/** The folder that makes a copy of pairlink portable: `pairlink-state`, next to the executable. */
export const PORTABLE_DIR_NAME = "pairlink-state";

/**
 * `pairlink-state` next to `executable` when it is a directory (SPEC
 * "Files": portable mode, so a USB stick stays one device wherever it is
 * plugged in); undefined otherwise. Only an existing folder counts: pairlink
 * never creates one, as that would turn every installed copy portable.
 */
export function portableStateDir(executable: string): string | undefined {
	const dir = path.join(path.dirname(executable), PORTABLE_DIR_NAME);
	return statSync(dir, { throwIfNoEntry: false })?.isDirectory() ? dir : undefined;
}

/** What ensureStateDir found out about the directory. */
export interface StateDirStatus {
	/**
	 * The file system enforces Unix permissions. False on FAT/exFAT: the
	 * private key there is readable by anyone who has the disk.
	 */
	private: boolean;
}

/**
 * Creates the state directory (and missing parents) with mode 0700. An
 * existing directory that we own is tightened to 0700 if group or others have
 * any access: it holds a private key. A directory owned by another user, or a
 * shared sticky directory such as /tmp, is refused rather than chmod-ed —
 * $PAIRLINK_HOME=/tmp must not lock everybody out of /tmp, and writing
 * root-owned files into a user's directory (sudo with $HOME kept) would break
 * that user's pairlink. Says whether the modes actually hold there.
 */
export async function ensureStateDir(dir: string): Promise<StateDirStatus> {
	try {
		await mkdir(dir, { recursive: true, mode: DIR_MODE });
	} catch (e) {
		if (errnoCode(e) !== "EEXIST") {
			throw (
				stateError(e, dir) ??
				new PairlinkError(
					"state-corrupt",
					`Cannot create the state directory ${dir}: ${describe(e)}.`,
					{ cause: e, advice: "state-dir" },
				)
			);
		}
	}
	const st = await stat(dir).catch((e: unknown) => {
		throw (
			stateError(e, dir) ??
			new PairlinkError(
				"state-corrupt",
				`Cannot read the state directory ${dir}: ${describe(e)}.`,
				{ cause: e, advice: "state-dir" },
			)
		);
	});
	if (!st.isDirectory()) {
		// A setting to correct (PAIRLINK_HOME names a file), not a bug: exit 2.
		throw new PairlinkError("usage", `The state directory ${dir} exists but is not a directory.`, {
			advice: "state-dir",
		});
	}
	if (isWindows) return { private: true };

	const uid = process.getuid?.();
	if (uid !== undefined && st.uid !== uid) {
		throw new PairlinkError(
			"usage",
			`The state directory ${dir} belongs to another user; set PAIRLINK_HOME to a directory of your own.`,
		);
	}
	if (st.mode & STICKY_BIT) {
		throw new PairlinkError(
			"usage",
			`The state directory ${dir} is a shared directory; set PAIRLINK_HOME to a directory of your own.`,
		);
	}
	// FAT refuses modes it cannot store (EPERM); modesHold() then says so.
	if ((st.mode & 0o777) !== DIR_MODE) await chmod(dir, DIR_MODE).catch(ignoreUnsupportedChmod);
	await sweepOrphans(dir);
	return { private: await modesHold(dir) };
}

/** How FAT/exFAT, some network and FUSE file systems refuse what they cannot store (modes, hard links). */
function unsupported(e: unknown): boolean {
	const code = errnoCode(e);
	return code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "ENOSYS";
}

function ignoreUnsupportedChmod(e: unknown): void {
	if (!unsupported(e)) throw e;
}

const modesChecked = new Map<string, boolean>();
/**
 * Whether a file made 0600 in `dir` really is 0600 and the directory 0700:
 * chmod on FAT/exFAT either fails or succeeds without changing anything, and
 * trying is the only reliable test. Once per directory and process.
 */
async function modesHold(dir: string): Promise<boolean> {
	const known = modesChecked.get(dir);
	if (known !== undefined) return known;
	const dirHolds = ((await stat(dir)).mode & 0o777) === DIR_MODE;
	const probe = tempNameFor(path.join(dir, "permissions"));
	let fh: FileHandle;
	try {
		fh = await open(probe, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, FILE_MODE);
	} catch (e) {
		// A read-only state directory (a locked stick) still serves reads: judge by its mode.
		if (errnoCode(e) === "EROFS" || errnoCode(e) === "EACCES") return dirHolds;
		throw e;
	}
	let holds: boolean;
	try {
		await fh.chmod(FILE_MODE).catch(ignoreUnsupportedChmod);
		holds = dirHolds && ((await fh.stat()).mode & 0o777) === FILE_MODE;
	} finally {
		await fh.close();
		await removeQuietly(probe);
	}
	modesChecked.set(dir, holds);
	return holds;
}

/** Temp files a killed process left behind (older than any write could take); once per process. */
const swept = new Set<string>();
async function sweepOrphans(dir: string): Promise<void> {
	if (swept.has(dir)) return;
	swept.add(dir);
	const names = await readdir(dir).catch(() => [] as string[]);
	const cutoff = Date.now() - 60_000;
	for (const name of names) {
		if (!/^\..+\.[0-9a-f]{12}\.tmp$/.test(name)) continue;
		const info = await stat(path.join(dir, name)).catch(() => undefined);
		if (info && info.mtimeMs < cutoff) await unlink(path.join(dir, name)).catch(() => undefined);
	}
}

/** Test seam: runs after the temp file is written and synced, before it is put in place. */
export interface AtomicWriteHooks {
	beforeCommit?: (tempPath: string) => void | Promise<void>;
}

/**
 * Replaces `file` with `data` atomically: temp file in the same directory
 * (O_CREAT|O_EXCL, 0600), write, fsync, rename over the target, fsync the
 * directory. On any failure the temp file is removed and the target is left
 * exactly as it was.
 */
export async function writeFileAtomic(
	file: string,
	data: string | Uint8Array,
	hooks: AtomicWriteHooks = {},
): Promise<void> {
	const temp = await writeTemp(file, data).catch((e: unknown) => {
		throw stateError(e, file) ?? e;
	});
	try {
		await hooks.beforeCommit?.(temp);
		await rename(temp, file);
	} catch (e) {
		await removeQuietly(temp);
		throw e;
	}
	await syncDir(path.dirname(file));
}

/**
 * Creates `file` with `data` only if it does not exist yet, atomically: the
 * complete temp file is hard-linked to the final name, which fails if another
 * process got there first. Returns false (and writes nothing) in that case,
 * so concurrent creators agree on the first writer's content instead of the
 * last one's. File systems without hard links fall back to an exclusive
 * claim of the name (fs/place.ts, the primitive received files use too).
 */
export async function createFileExclusive(
	file: string,
	data: string | Uint8Array,
	hooks: AtomicWriteHooks = {},
): Promise<boolean> {
	const temp = await writeTemp(file, data).catch((e: unknown) => {
		throw stateError(e, file) ?? e;
	});
	try {
		await hooks.beforeCommit?.(temp);
		if (!(await placeNoReplace(temp, file))) return false;
	} finally {
		await removeQuietly(temp);
	}
	await syncDir(path.dirname(file));
	return true;
}

/**
 * Reads and validates a JSON state file. Undefined when the file does not
 * exist; PairlinkError "state-corrupt" naming the file when it cannot be
 * read, is not JSON, or `validate` throws (its message is included).
 */
export async function readJsonFile<T>(
	file: string,
	validate: (value: unknown) => T,
): Promise<T | undefined> {
	let text: string;
	try {
		const fh = await open(file, "r");
		try {
			const { size } = await fh.stat();
			if (size > MAX_STATE_FILE_BYTES) {
				throw new PairlinkError(
					"state-corrupt",
					`${file} is too large (${size} bytes) to be a pairlink state file.`,
				);
			}
			text = await fh.readFile({ encoding: "utf8" });
		} finally {
			await fh.close();
		}
	} catch (e) {
		if (errnoCode(e) === "ENOENT") return undefined;
		if (e instanceof PairlinkError) throw e;
		throw (
			stateError(e, file) ??
			new PairlinkError("state-corrupt", `Cannot read ${file}: ${describe(e)}.`, { cause: e })
		);
	}
	let value: unknown;
	try {
		value = JSON.parse(text);
	} catch (e) {
		throw new PairlinkError("state-corrupt", `${file} is not valid JSON.`, { cause: e });
	}
	try {
		return validate(value);
	} catch (e) {
		throw new PairlinkError("state-corrupt", `${file} is invalid: ${describe(e)}.`, { cause: e });
	}
}

/** Deletes a state file; a file that is already gone is fine. */
export async function removeFile(file: string): Promise<void> {
	try {
		await unlink(file);
	} catch (e) {
		if (errnoCode(e) !== "ENOENT") throw e;
	}
	await syncDir(path.dirname(file));
}

/**
 * The system errors a state directory can meet that are not pairlink's
 * fault, as errors that say what to do (SPEC exit codes, not "a bug"):
 * permission denied, a path too long, a failing disk, no descriptors left.
 * Undefined for anything else.
 */
export function stateError(e: unknown, file: string): PairlinkError | undefined {
	const why = (code: ErrorCode, what: string) =>
		new PairlinkError(code, `pairlink cannot use ${file}: ${what}`, { cause: e });
	switch (errnoCode(e)) {
		case "EACCES":
		case "EPERM":
		case "EROFS":
			return why("state-permission", "permission denied");
		case "ENAMETOOLONG":
			return why("path-too-long", "the path is too long for the file system");
		case "EIO":
			return why("io-error", "the disk reported an input/output error");
		case "EMFILE":
		case "ENFILE":
			return why("out-of-descriptors", "too many files are open");
		case "ENOSPC":
		case "EDQUOT":
			return why("disk-full", "the disk is full");
		default:
			return undefined;
	}
}

/** `error.code` of a Node system error, if any. */
export function errnoCode(e: unknown): string | undefined {
	if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string")
		return e.code;
	return undefined;
}

/** `.NAME.<12 hex>.tmp` next to `file`: the pattern sweepOrphans removes when a process dies. */
function tempNameFor(file: string): string {
	return path.join(
		path.dirname(file),
		`.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`,
	);
}

async function writeTemp(file: string, data: string | Uint8Array): Promise<string> {
	const temp = tempNameFor(file);
	let fh: FileHandle | undefined;
	try {
		// O_EXCL: never reuse (or follow a symlink planted at) an existing name.
		fh = await open(temp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, FILE_MODE);
		// The umask can only remove bits; this makes the mode exactly 0600.
		if (!isWindows) await fh.chmod(FILE_MODE).catch(ignoreUnsupportedChmod);
		await fh.writeFile(data);
		await fh.sync();
		await fh.close();
		fh = undefined;
		return temp;
	} catch (e) {
		if (fh !== undefined) await fh.close().catch(() => {});
		if (errnoCode(e) !== "EEXIST") await removeQuietly(temp);
		throw e;
	}
}

// Without this a crash right after rename can lose the rename on ext4/xfs.
async function syncDir(dir: string): Promise<void> {
	if (isWindows) return;
	let fh: FileHandle | undefined;
	try {
		fh = await open(dir, "r");
		await fh.sync();
	} catch {
		// Best effort: some filesystems refuse fsync on directories.
	} finally {
		await fh?.close().catch(() => {});
	}
}

async function removeQuietly(file: string): Promise<void> {
	await unlink(file).catch(() => {});
}

function describe(e: unknown): string {
	if (e instanceof Error) return e.message.replace(/\.$/, "");
	return String(e);
}

/**
 * Run `change` while holding `<file>.lock` (created exclusively, holding the
 * owner's PID), so that read-modify-write cycles of one state file by
 * several pairlink processes — serve updating "last seen" while `devices
 * remove` revokes, say — never undo each other. A lock whose owner is gone
 * (killed mid-update) is taken over at once; one whose owner cannot be
 * checked goes stale after `staleMs`, and a waiter waits longer than that.
 */
export async function withFileLock<T>(
	file: string,
	change: () => Promise<T>,
	options: {
		timeoutMs?: number;
		staleMs?: number;
		/** false: a directory that is gone stays gone (ENOENT), rather than being made again. */
		createDir?: boolean;
	} = {},
): Promise<T> {
	const lock = `${file}.lock`;
	const staleMs = options.staleMs ?? 10_000;
	const deadline = Date.now() + (options.timeoutMs ?? staleMs + 5000);
	let delay = 1;
	for (;;) {
		try {
			const fh = await open(lock, "wx", FILE_MODE);
			await fh.writeFile(String(process.pid));
			await fh.close();
			break;
		} catch (e) {
			if (errnoCode(e) === "ENOENT" && options.createDir !== false) {
				await mkdir(path.dirname(lock), { recursive: true, mode: DIR_MODE });
				continue;
			}
			if (errnoCode(e) !== "EEXIST") throw stateError(e, lock) ?? e;
			if (await lockAbandoned(lock, staleMs)) {
				await unlink(lock).catch(() => undefined);
				continue;
			}
			if (Date.now() > deadline) {
				throw new PairlinkError(
					"state-locked",
					`${lock} is held by another pairlink process (PID ${(await readLockPid(lock)) ?? "unknown"})`,
				);
			}
			// Waiting for another process to finish its (millisecond) update.
			await new Promise((r) => setTimeout(r, delay));
			delay = Math.min(delay * 2, 50);
		}
	}
	try {
		return await change();
	} finally {
		await unlink(lock).catch(() => undefined);
	}
}

async function readLockPid(lock: string): Promise<number | undefined> {
	const text = await readFile(lock, "utf8").catch(() => "");
	const pid = Number(text.trim());
	return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The owner process no longer exists, or the lock is older than any update could take. */
async function lockAbandoned(lock: string, staleMs: number): Promise<boolean> {
	const info = await stat(lock).catch(() => undefined);
	if (!info) return false; // just released: try again
	const pid = await readLockPid(lock);
	if (pid !== undefined && pid !== process.pid) {
		try {
			process.kill(pid, 0);
		} catch (e) {
			if (errnoCode(e) === "ESRCH") return true;
		}
	}
	return Date.now() - info.mtimeMs > staleMs;
}
