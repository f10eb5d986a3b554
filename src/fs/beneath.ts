/**
 * Opening names beneath a directory descriptor, one component at a time,
 * so containment is decided on the objects actually opened (DESIGN §1):
 * every step opens `NAME` relative to the descriptor of the step before,
 * with O_NOFOLLOW, so a directory swapped for a symlink between two steps
 * is met as a symlink and never passed through unchecked.
 *
 * On Linux a step opens `/proc/self/fd/N/NAME`: the kernel resolves the
 * directory from the descriptor, not from a name. Without /proc (macOS,
 * Windows, a container without it) a step opens the joined path and then
 * checks that the parent's path still names the descriptor's device and
 * inode — weaker (a swap and swap-back between the open and the check is
 * not seen), as docs/threat-model.md says.
 *
 * Symlinks are followed only where the caller asks, and then resolved the
 * same way (from the root, one component at a time, `..` against the
 * physical path), with at most MAX_LINKS links per lookup.
 */
import {
	closeSync,
	constants,
	existsSync,
	fstatSync,
	lstatSync,
	openSync,
	readlinkSync,
	type Stats,
} from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join, sep } from "node:path";

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;
const O_NONBLOCK = constants.O_NONBLOCK ?? 0;
/** Flags of every step: never follow the last component, never block on a FIFO or device. */
export const STEP_FLAGS = O_NOFOLLOW | O_NONBLOCK;
const MAX_LINKS = 40;

/** Test seam: switch to the portable (weaker) mode on Linux to test it too. */
export const walkMode = { procfs: process.platform === "linux" && existsSync("/proc/self/fd") };

/** A system-style error, so callers map it like any other (fsError). */
export function sysError(code: string, message: string): NodeJS.ErrnoException {
	return Object.assign(new Error(message), { code });
}

/** Thrown when a lookup would leave the root (a symlink leading out). */
export class Outside extends Error {}

export interface Identity {
	dev: number;
	ino: number;
}

export const sameFile = (a: Identity, b: Identity) => a.dev === b.dev && a.ino === b.ino;

export class Dir {
	private closed = false;
	constructor(
		readonly fd: number,
		private readonly release: () => unknown,
		/** Components below the root, each a real directory (no symlink). */
		readonly stack: readonly string[],
		/** The path it had when opened: for the portable mode and for messages. */
		readonly path: string,
		readonly id: Identity,
		/** The root is shared by every lookup and closed only by its owner. */
		readonly owned: boolean,
	) {}

	/** The path through which `name` inside this directory is reached. */
	at(name: string): string {
		return walkMode.procfs ? `/proc/self/fd/${this.fd}/${name}` : join(this.path, name);
	}

	/** The directory's own path (for readdir). */
	self(): string {
		return walkMode.procfs ? `/proc/self/fd/${this.fd}` : this.path;
	}

	/** Portable mode: the name still leads to the directory that was opened. */
	verify(): void {
		if (walkMode.procfs) return;
		const now = lstatSync(this.path, { throwIfNoEntry: false });
		if (!now || !sameFile(now, this.id))
			throw sysError("ELOOP", `${this.path} changed while it was being opened`);
	}

	/** Close a descriptor opened by a lookup; the root stays open (see dispose). */
	async close(): Promise<void> {
		if (this.owned) await this.dispose();
	}

	/** Close it whatever it is: the root's owner, when the root is no longer needed. */
	async dispose(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		try {
			await this.release();
		} catch {
			// Closing a directory descriptor cannot lose data.
		}
	}
}

export interface LookupOptions {
	/** Follow symlinks met on the way (inside the root only); otherwise each one is refused (ELOOP). */
	follow: boolean;
	/** Objects no lookup may reach (the state directory): they are reported as missing. */
	hidden?: (id: Identity) => boolean;
}

type Step<T> = { opened: T; stats: Stats } | { link: string };

/** An open that failed on a symlink gives the link's target; any other failure is thrown. */
function linkTarget(dir: Dir, name: string, e: unknown): { link: string } {
	const code = (e as NodeJS.ErrnoException).code;
	// O_NOFOLLOW|O_DIRECTORY on a symlink gives ENOTDIR on Linux, ELOOP otherwise.
	if (code === "ELOOP" || code === "ENOTDIR" || code === "EMLINK") {
		try {
			return { link: readlinkSync(dir.at(name)) };
		} catch {
			// Not a symlink (any more): the open's own error stands.
		}
	}
	throw e;
}

/** What was opened may be used: the parent was not swapped (portable mode), it is not hidden. */
function admit(dir: Dir, name: string, stats: Stats, opts: LookupOptions): void {
	dir.verify();
	if (opts.hidden?.(stats)) throw sysError("ENOENT", `${name} does not exist`);
}

/**
 * One directory step. Synchronous on purpose: opening a directory with
 * O_DIRECTORY|O_NONBLOCK cannot block (a FIFO gives ENOTDIR), and a walk
 * costs a few microseconds this way instead of a thread-pool round trip
 * per syscall — it runs once per file of a 10,000-file tree.
 */
function stepDir(dir: Dir, name: string, opts: LookupOptions): Step<number> {
	let fd: number;
	try {
		fd = openSync(dir.at(name), constants.O_RDONLY | O_DIRECTORY | STEP_FLAGS);
	} catch (e) {
		return linkTarget(dir, name, e);
	}
	try {
		const stats = fstatSync(fd);
		admit(dir, name, stats, opts);
		return { opened: fd, stats };
	} catch (e) {
		closeSync(fd);
		throw e;
	}
}

/** The last step, to a FileHandle the caller reads through (any type: the caller checks it). */
async function stepFinal(
	dir: Dir,
	name: string,
	flags: number,
	opts: LookupOptions,
): Promise<Step<FileHandle>> {
	let fh: FileHandle;
	try {
		fh = await open(dir.at(name), flags | STEP_FLAGS);
	} catch (e) {
		return linkTarget(dir, name, e);
	}
	try {
		const stats = await fh.stat();
		admit(dir, name, stats, opts);
		return { opened: fh, stats };
	} catch (e) {
		await fh.close().catch(() => undefined);
		throw e;
	}
}

/** Components of a symlink's target, to be looked up from the root: relative ones after `base`. */
function targetParts(root: Dir, base: readonly string[], target: string): string[] {
	const parts = target.split(/[\\/]+/);
	if (!target.startsWith("/") && !/^[A-Za-z]:[\\/]/.test(target)) return [...base, ...parts];
	const rootParts = root.path.split(sep).filter(Boolean);
	const abs = parts.filter(Boolean);
	if (process.platform === "win32" && abs[0]) abs[0] = abs[0].toUpperCase();
	if (rootParts.some((p, i) => abs[i] !== p)) throw new Outside(target);
	return abs.slice(rootParts.length);
}

interface Budget {
	links: number;
}

function countLink(budget: Budget): void {
	if (++budget.links > MAX_LINKS) throw sysError("ELOOP", "too many levels of symbolic links");
}

/**
 * The directory at `parts` below `root`. `..` may appear only in symlink
 * targets and is taken against the physical path; it never rises above the root.
 */
export async function openDir(
	root: Dir,
	parts: readonly string[],
	opts: LookupOptions,
	budget: Budget = { links: 0 },
): Promise<Dir> {
	let cur = root;
	const queue = [...parts];
	try {
		while (queue.length > 0) {
			const name = queue.shift() as string;
			if (name === "" || name === ".") continue;
			let next: Dir;
			if (name === "..") {
				if (cur.stack.length === 0) throw new Outside("..");
				next = await openDir(root, cur.stack.slice(0, -1), { ...opts, follow: false }, budget);
			} else {
				const s = stepDir(cur, name, opts);
				if ("link" in s) {
					if (!opts.follow) throw sysError("ELOOP", `${name} is a symbolic link`);
					countLink(budget);
					next = await openDir(root, targetParts(root, cur.stack, s.link), opts, budget);
				} else {
					const fd = s.opened;
					next = new Dir(
						fd,
						() => closeSync(fd),
						[...cur.stack, name],
						join(cur.path, name),
						s.stats,
						true,
					);
				}
			}
			if (cur !== root) await cur.close();
			cur = next;
		}
		return cur;
	} catch (e) {
		if (cur !== root) await cur.close();
		throw e;
	}
}

export interface Opened {
	fh: FileHandle;
	stats: Stats;
	/** Components below the root of what was opened (after any symlinks). */
	stack: string[];
}

/**
 * Open the object at `parts` (any type: callers check `stats`) with `flags`
 * plus O_NOFOLLOW|O_NONBLOCK, following symlinks only when `opts.follow`.
 */
export async function openBeneath(
	root: Dir,
	parts: readonly string[],
	flags: number,
	opts: LookupOptions,
	budget: Budget = { links: 0 },
): Promise<Opened> {
	const name = parts.at(-1);
	if (name === undefined || name === "." || name === "..") {
		const dir = await openDir(root, parts, opts, budget);
		try {
			// A descriptor of its own for the caller (the root's belongs to the root).
			const fh = await open(dir.self(), constants.O_RDONLY | O_DIRECTORY | O_NONBLOCK);
			const stats = await fh.stat();
			if (!sameFile(stats, dir.id)) {
				await fh.close();
				throw sysError("ELOOP", `${dir.path} changed while it was being opened`);
			}
			return { fh, stats, stack: [...dir.stack] };
		} finally {
			if (dir !== root) await dir.close();
		}
	}
	const dir = await openDir(root, parts.slice(0, -1), opts, budget);
	let s: Step<FileHandle>;
	try {
		s = await stepFinal(dir, name, flags, opts);
	} finally {
		if (dir !== root) await dir.close();
	}
	if ("opened" in s) return { fh: s.opened, stats: s.stats, stack: [...dir.stack, name] };
	if (!opts.follow) throw sysError("ELOOP", `${name} is a symbolic link`);
	countLink(budget);
	return openBeneath(root, targetParts(root, dir.stack, s.link), flags, opts, budget);
}

/**
 * Open a directory by path as the root of lookups (the path itself may be
 * a symlink: the user chose it). Kept open for the root's lifetime; `path`
 * should be its real path (absolute symlink targets are compared with it).
 */
export function openRootSync(path: string): Dir {
	const fd = openSync(path, constants.O_RDONLY | O_DIRECTORY | O_NONBLOCK);
	try {
		return new Dir(fd, () => closeSync(fd), [], path, fstatSync(fd), false);
	} catch (e) {
		closeSync(fd);
		throw e;
	}
}
