/**
 * A directory that remote names are confined to. Every path is parsed by
 * safe-path first; then the real path of its parent must still lie inside
 * the root (a symlinked directory cannot lead out), and a final component
 * that is a symlink is followed only when its target stays inside too.
 * Writes never go through a symlink.
 */
import { constants, lstatSync, type Stats } from "node:fs";
import { lstat, mkdir, open, readdir, realpath, rm, stat } from "node:fs/promises";
import { isAbsolute, join, relative } from "node:path";
import { PairlinkError } from "../errors.ts";
import { type Excluded, NOTHING_EXCLUDED } from "./exclude.ts";
import { PART_SUFFIX, parseWirePath, wireNameProblem } from "./safe-path.ts";

export type EntryType = "file" | "dir" | "symlink";

export interface Entry {
	name: string;
	type: EntryType;
	size: number;
	/** Milliseconds since the epoch. */
	mtime: number;
}

export interface WalkEntry extends Entry {
	/** Wire path relative to the walked directory. */
	path: string;
	/** Set when the name breaks the wire rules: why it cannot be sent (`path` is then for people only). */
	refused?: string;
	/** A symlink that is not followed: why. */
	why?: string;
}

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;

export function errno(e: unknown): string | undefined {
	return typeof e === "object" && e !== null && "code" in e
		? String((e as { code: unknown }).code)
		: undefined;
}

/** Map a file-system failure to what the user is told; `what` names the path for people. */
export function fsError(e: unknown, what: string): PairlinkError {
	if (e instanceof PairlinkError) return e;
	switch (errno(e)) {
		case "ENOENT":
			return new PairlinkError("not-found", `${what} does not exist`);
		case "EEXIST":
		case "ENOTEMPTY":
			return errno(e) === "ENOTEMPTY"
				? new PairlinkError("not-empty", `${what} is not empty`)
				: new PairlinkError("exists", `${what} already exists`);
		case "EACCES":
		case "EPERM":
		case "EROFS":
			return new PairlinkError("permission", `no permission for ${what}`);
		case "ENOSPC":
		case "EDQUOT":
		case "EFBIG":
			return new PairlinkError("disk-full", `no space left for ${what}`);
		case "ENOTDIR":
			return new PairlinkError("not-found", `a parent of ${what} is not a directory`);
		case "EISDIR":
			return new PairlinkError("is-directory", `${what} is a directory`);
		case "ELOOP":
			return new PairlinkError("invalid-path", `${what} is a symbolic link`);
		default:
			return new PairlinkError(
				"internal",
				`file-system error on ${what}: ${(e as Error)?.message ?? String(e)}`,
			);
	}
}

export function entryFromStats(name: string, s: Stats): Entry {
	return {
		name,
		type: s.isSymbolicLink() ? "symlink" : s.isDirectory() ? "dir" : "file",
		size: s.isFile() ? s.size : 0,
		mtime: Math.round(s.mtimeMs),
	};
}

export function partName(name: string): string {
	return `.${name}${PART_SUFFIX}`;
}

/** How long a directory's real path is reused: long enough for a burst of small files. */
const REALPATH_TTL_MS = 1000;

export class SandboxRoot {
	/**
	 * Real paths of directories looked up recently. A tree of 10,000 files in
	 * 100 directories would otherwise resolve the same parent 100 times, and
	 * realpath is a syscall per path component. Anything that removes or
	 * renames directories here clears it.
	 */
	private readonly realDirs = new Map<string, { real: string; at: number }>();

	private constructor(readonly dir: string) {}

	private async realDir(path: string): Promise<string> {
		const now = performance.now();
		const hit = this.realDirs.get(path);
		if (hit && now - hit.at < REALPATH_TTL_MS) return hit.real;
		const real = await realpath(path);
		if (this.realDirs.size > 4096) this.realDirs.clear();
		this.realDirs.set(path, { real, at: now });
		return real;
	}

	/** `dir` must exist; its real path becomes the boundary. */
	static async open(dir: string): Promise<SandboxRoot> {
		let real: string;
		try {
			real = await realpath(dir);
		} catch (e) {
			throw fsError(e, dir);
		}
		const s = await stat(real);
		if (!s.isDirectory()) throw new PairlinkError("usage", `${dir} is not a directory`);
		return new SandboxRoot(real);
	}

	/** For a directory whose real path is already known (tests, callers that resolved it). */
	static fromRealPath(realDir: string): SandboxRoot {
		return new SandboxRoot(realDir);
	}

	contains(abs: string): boolean {
		const rel = relative(this.dir, abs);
		return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
	}

	/**
	 * The absolute path for a wire path, with its parent's real path checked
	 * to lie inside the root. The final component itself is not resolved.
	 */
	async locate(wirePath: string): Promise<{ abs: string; parts: string[] }> {
		const parts = parseWirePath(wirePath);
		if (parts.length === 0) return { abs: this.dir, parts };
		const parentParts = parts.slice(0, -1);
		let parentReal: string;
		try {
			parentReal = await this.realDir(join(this.dir, ...parentParts));
		} catch (e) {
			throw fsError(e, display(parentParts));
		}
		if (!this.contains(parentReal)) {
			throw new PairlinkError(
				"invalid-path",
				`${display(parentParts)} leads outside the shared directory`,
			);
		}
		return { abs: join(parentReal, parts.at(-1) as string), parts };
	}

	/** Like locate, but a final symlink is followed if (and only if) its target stays inside. */
	async resolveExisting(wirePath: string): Promise<{ abs: string; stats: Stats; parts: string[] }> {
		const { abs, parts } = await this.locate(wirePath);
		let real: string;
		try {
			// The parent's real path is known: only a final symlink needs resolving.
			const own = await lstat(abs);
			if (!own.isSymbolicLink()) return { abs, stats: own, parts };
			real = await realpath(abs);
		} catch (e) {
			throw fsError(e, display(parts));
		}
		if (!this.contains(real))
			throw new PairlinkError(
				"invalid-path",
				`${display(parts)} leads outside the shared directory`,
			);
		return { abs: real, stats: await stat(real), parts };
	}

	/**
	 * The entry itself (a symlink is reported as one, not followed); with
	 * `follow`, what a final symlink leads to while it stays inside.
	 */
	async stat(wirePath: string, follow = false): Promise<Entry> {
		if (follow)
			return entryFromStats(parseWirePath(wirePath).at(-1) ?? "", await this.statTarget(wirePath));
		const { abs, parts } = await this.locate(wirePath);
		try {
			return entryFromStats(parts.at(-1) ?? "", await lstat(abs));
		} catch (e) {
			throw fsError(e, display(parts));
		}
	}

	/** What `wirePath` leads to (a final symlink followed while it stays inside). */
	async statTarget(wirePath: string): Promise<Stats> {
		return (await this.resolveExisting(wirePath)).stats;
	}

	/**
	 * Entries of a directory, sorted by name; unfinished transfers are left
	 * out. Names the wire rules refuse (control characters, say) are listed
	 * all the same, so a person sees them (escaped) — they just cannot be
	 * fetched.
	 */
	async list(wirePath: string): Promise<Entry[]> {
		const { abs, stats, parts } = await this.resolveExisting(wirePath);
		if (!stats.isDirectory())
			return [entryFromStats(parts.at(-1) ?? "", await lstat((await this.locate(wirePath)).abs))];
		let names: string[];
		try {
			names = await readdir(abs);
		} catch (e) {
			throw fsError(e, display(parts));
		}
		const entries: Entry[] = [];
		for (const name of names.sort()) {
			if (name.endsWith(PART_SUFFIX) || !name.isWellFormed()) continue;
			try {
				entries.push(entryFromStats(name, await lstat(join(abs, name))));
			} catch {
				// Vanished between readdir and lstat: not an error for a listing.
			}
		}
		return entries;
	}

	/**
	 * Depth-first walk of a directory: directories before their contents.
	 * `excluded` leaves paths out (an excluded directory is never read). A
	 * symlink is followed when its target stays inside the root and is not a
	 * directory already walked (a loop or a repeat); otherwise it is reported
	 * with `why`, never followed.
	 */
	async *walk(wirePath: string, excluded: Excluded = NOTHING_EXCLUDED): AsyncGenerator<WalkEntry> {
		const { abs, stats, parts } = await this.resolveExisting(wirePath);
		if (!stats.isDirectory()) {
			yield { ...entryFromStats(parts.at(-1) ?? "", stats), path: parts.at(-1) ?? "" };
			return;
		}
		const walked = new Set<string>([`${stats.dev}:${stats.ino}`]);
		const stack: { abs: string; rel: string }[] = [{ abs, rel: "" }];
		while (stack.length > 0) {
			const dir = stack.pop() as { abs: string; rel: string };
			let names: string[];
			try {
				names = (await readdir(dir.abs)).sort();
			} catch (e) {
				throw fsError(e, dir.rel || display(parts));
			}
			const subdirs: { abs: string; rel: string }[] = [];
			// Synchronous: a thread-pool round trip per file made a 10,000-file walk (a
			// re-run's whole cost) take ten times as long; one directory at a time.
			const found = new Map<string, Stats | undefined>();
			for (const name of names) {
				let s: Stats | undefined;
				try {
					s = lstatSync(join(dir.abs, name));
				} catch {
					s = undefined; // vanished since readdir, or not UTF-8 (below)
				}
				found.set(name, s);
				// Subdirectories first: a symlink to one of them is a repeat, whatever the names' order.
				if (s?.isDirectory()) walked.add(`${s.dev}:${s.ino}`);
			}
			for (const name of names) {
				if (name.endsWith(PART_SUFFIX)) continue; // unfinished transfers are not files to send
				let childAbs = join(dir.abs, name);
				const rel = dir.rel ? `${dir.rel}/${name}` : name;
				if (excluded(rel)) continue;
				let s = found.get(name);
				if (s === undefined) {
					// A name that is not UTF-8 reads back with U+FFFD and cannot be found by it again.
					if (name.includes("\uFFFD"))
						yield { name, type: "file", size: 0, mtime: 0, path: rel, refused: "not valid UTF-8" };
					continue; // otherwise it vanished since readdir
				}
				// Reported, not skipped: the peer accounts for every file (its subtree included).
				const refused = wireNameProblem(name);
				if (refused) {
					yield { ...entryFromStats(name, s), path: rel, refused };
					continue;
				}
				if (s.isSymbolicLink()) {
					const target = await this.followLink(childAbs, walked);
					if (typeof target === "string") {
						yield { ...entryFromStats(name, s), path: rel, why: target };
						continue;
					}
					({ abs: childAbs, stats: s } = target);
				}
				yield { ...entryFromStats(name, s), path: rel };
				if (s.isDirectory()) {
					walked.add(`${s.dev}:${s.ino}`);
					subdirs.push({ abs: childAbs, rel });
				}
			}
			stack.push(...subdirs.reverse());
		}
	}

	/** A symlink met by a walk: its target inside the root, or why it is not followed. */
	private async followLink(
		link: string,
		walked: ReadonlySet<string>,
	): Promise<{ abs: string; stats: Stats } | string> {
		let real: string;
		let stats: Stats;
		try {
			real = await realpath(link);
			stats = await stat(real);
		} catch (e) {
			return errno(e) === "ELOOP" ? "a symlink loop" : "its target does not exist";
		}
		if (!this.contains(real)) return "its target is outside the shared directory";
		if (stats.isDirectory() && walked.has(`${stats.dev}:${stats.ino}`))
			return "its target is a directory sent already (a loop or a repeat)";
		if (!stats.isDirectory() && !stats.isFile()) return "its target is not a regular file";
		return { abs: real, stats };
	}

	/** Open a regular file for reading without following a symlink that leads out. */
	async openRead(wirePath: string) {
		const { abs, stats, parts } = await this.resolveExisting(wirePath);
		if (!stats.isFile()) {
			if (stats.isDirectory())
				throw new PairlinkError("is-directory", `${display(parts)} is a directory`);
			throw new PairlinkError("refused", `${display(parts)} is not a regular file`);
		}
		try {
			const fh = await open(abs, constants.O_RDONLY | O_NOFOLLOW);
			const s = await fh.stat();
			return { fh, size: s.size, mtime: Math.round(s.mtimeMs), abs };
		} catch (e) {
			throw fsError(e, display(parts));
		}
	}

	async mkdir(wirePath: string, parents: boolean): Promise<void> {
		const { abs, parts } = await this.locate(wirePath);
		if (parts.length === 0)
			throw new PairlinkError("exists", "the shared directory already exists");
		try {
			await mkdir(abs, { recursive: false });
		} catch (e) {
			if (parents && errno(e) === "EEXIST") {
				const s = await lstat(abs);
				if (s.isDirectory()) return;
			}
			throw fsError(e, display(parts));
		}
	}

	async remove(wirePath: string, recursive: boolean): Promise<void> {
		const { abs, parts } = await this.locate(wirePath);
		if (parts.length === 0)
			throw new PairlinkError("permission", "the shared directory itself cannot be removed");
		let s: Stats;
		try {
			s = await lstat(abs);
		} catch (e) {
			throw fsError(e, display(parts));
		}
		if (s.isDirectory() && !recursive) {
			const names = await readdir(abs);
			if (names.length > 0)
				throw new PairlinkError("not-empty", `${display(parts)} is a directory that is not empty`);
		}
		this.realDirs.clear();
		try {
			// lstat above: a symlink is removed as a link, never followed.
			await rm(abs, { recursive: s.isDirectory(), force: false });
		} catch (e) {
			throw fsError(e, display(parts));
		}
	}
}

export function display(parts: readonly string[]): string {
	return parts.length === 0 ? "the shared directory" : JSON.stringify(parts.join("/"));
}
