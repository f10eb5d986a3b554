/**
 * A directory that remote names are confined to. Every path is parsed by
 * safe-path first; then every operation looks it up beneath the root's
 * descriptor one component at a time (fs/beneath.ts), so containment holds
 * for the object actually opened, not for a name checked earlier. Symlinks
 * met on the way are followed only when the root allows it (a server's
 * share: only while they stay inside); a client's destination follows none.
 * Writes never go through a final symlink, and the hidden objects (the
 * state directory) cannot be reached at all.
 */
import { constants, lstatSync, realpathSync, type Stats, statSync } from "node:fs";
import { lstat, mkdir, readdir, rmdir, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { PairlinkError } from "../errors.ts";
import {
	Dir,
	type Identity,
	type LookupOptions,
	type Opened,
	Outside,
	openBeneath,
	openDir,
	openRootSync,
	sameFile,
	sysError,
} from "./beneath.ts";
import { type Excluded, NOTHING_EXCLUDED } from "./exclude.ts";
import { isPartName } from "./part-name.ts";
import { joinWirePath, parseWirePath, wireNameProblem } from "./safe-path.ts";

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
			return new PairlinkError("permission", `no permission for ${what}`, { cause: e }); // EROFS or EACCES, for the client to tell apart
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

export interface RootOptions {
	/**
	 * Follow symlinks inside the root (a server's share, SPEC "Files").
	 * false: never follow one at any depth (a client's destination).
	 */
	followLinks?: boolean;
	/** Directories no peer may reach through this root, whatever their name (the state directory). */
	hide?: readonly string[];
}

export class SandboxRoot {
	private readonly lookup: LookupOptions;

	private constructor(
		/** The real path of the root, for messages and absolute symlink targets. */
		readonly dir: string,
		private readonly fd: Dir,
		private readonly hidden: readonly Identity[],
		follow: boolean,
	) {
		this.lookup = {
			follow,
			hidden: hidden.length > 0 ? (id) => hidden.some((h) => sameFile(h, id)) : undefined,
		};
	}

	/** `dir` must exist; the directory it names now is the boundary, held open by descriptor. */
	static async open(dir: string, options: RootOptions = {}): Promise<SandboxRoot> {
		let real: string;
		let root: Dir;
		try {
			real = realpathSync(dir);
			root = openRootSync(real);
		} catch (e) {
			if (errno(e) === "ENOTDIR") throw new PairlinkError("usage", `${dir} is not a directory`);
			throw fsError(e, dir);
		}
		const hidden: Identity[] = [];
		for (const h of options.hide ?? []) {
			const s = statSync(h, { throwIfNoEntry: false });
			if (s) hidden.push({ dev: s.dev, ino: s.ino });
		}
		return new SandboxRoot(real, root, hidden, options.followLinks ?? true);
	}

	/**
	 * The share of `serve`: `dir` must not lie inside `stateDir` (it holds the
	 * private key), and `stateDir` is hidden from every lookup through it —
	 * by device and inode, so no name, symlink or bind mount leads there.
	 */
	static async openShare(dir: string, stateDir: string): Promise<SandboxRoot> {
		const secret = statSync(stateDir, { throwIfNoEntry: false });
		if (secret) {
			let real: string;
			try {
				real = realpathSync(dir);
			} catch (e) {
				throw fsError(e, dir);
			}
			for (let p = real; ; p = dirname(p)) {
				const s = statSync(p, { throwIfNoEntry: false });
				if (s && sameFile(s, secret))
					throw new PairlinkError(
						"usage",
						`${dir} is inside pairlink's state directory ${stateDir}, which holds this device's private key; share another directory`,
					);
				if (dirname(p) === p) break;
			}
		}
		return SandboxRoot.open(dir, { hide: [stateDir] });
	}

	/** For a directory whose real path is already known (tests). */
	static fromRealPath(realDir: string): SandboxRoot {
		return new SandboxRoot(realDir, openRootSync(realDir), [], true);
	}

	/** Release the root's descriptor (a root lives as long as its server or transfer). */
	async close(): Promise<void> {
		await this.fd.dispose();
	}

	/** Whether `id` is one of the objects this root hides. */
	isHidden(id: Identity): boolean {
		return this.lookup.hidden?.(id) ?? false;
	}

	private parse(wirePath: string): string[] {
		const parts = parseWirePath(wirePath);
		// Unfinished transfers are never addressed, in any letter case (case-insensitive file systems).
		if (parts.some(isPartName))
			throw new PairlinkError("invalid-path", `${display(parts)} names an unfinished transfer`);
		return parts;
	}

	/** Map a lookup failure to what the peer is told. */
	private fail(e: unknown, parts: readonly string[]): PairlinkError {
		if (e instanceof Outside)
			return new PairlinkError(
				"invalid-path",
				`${display(parts)} leads outside the shared directory`,
			);
		return fsError(e, display(parts));
	}

	/**
	 * The directory that holds the last component of `wirePath`, opened
	 * beneath the root; the last component itself is not looked up. The
	 * caller closes `dir`.
	 */
	async parentOf(wirePath: string): Promise<{ dir: Dir; name: string; parts: string[] }> {
		const parts = this.parse(wirePath);
		const name = parts.at(-1);
		if (name === undefined)
			throw new PairlinkError("refused", "the shared directory itself cannot be used here");
		try {
			return { dir: await openDir(this.fd, parts.slice(0, -1), this.lookup), name, parts };
		} catch (e) {
			throw this.fail(e, parts);
		}
	}

	/**
	 * Open what `wirePath` names, following a final symlink if this root
	 * follows links (and only while it stays inside). Never blocks: a FIFO
	 * or device is opened O_NONBLOCK and comes back for the caller to refuse.
	 */
	async openExisting(wirePath: string): Promise<Opened & { parts: string[] }> {
		const parts = this.parse(wirePath);
		try {
			return { ...(await openBeneath(this.fd, parts, constants.O_RDONLY, this.lookup)), parts };
		} catch (e) {
			throw this.fail(e, parts);
		}
	}

	/**
	 * The entry itself (a symlink is reported as one, not followed); with
	 * `follow`, what a final symlink leads to while it stays inside.
	 */
	async stat(wirePath: string, follow = false): Promise<Entry> {
		const parts = this.parse(wirePath);
		if (follow) return entryFromStats(parts.at(-1) ?? "", await this.statTarget(wirePath));
		if (parts.length === 0) return entryFromStats("", await stat(this.fd.self()));
		const { dir, name } = await this.parentOf(wirePath);
		try {
			return entryFromStats(name, await this.lstatIn(dir, name));
		} catch (e) {
			throw this.fail(e, parts);
		} finally {
			await dir.close();
		}
	}

	/** What `wirePath` leads to (a final symlink followed while it stays inside), opened to be sure. */
	async statTarget(wirePath: string): Promise<Stats> {
		const { fh, stats } = await this.openExisting(wirePath);
		await fh.close();
		return stats;
	}

	/** lstat of `name` in `dir`; a hidden object does not exist. */
	private async lstatIn(dir: Dir, name: string): Promise<Stats> {
		const s = await lstat(dir.at(name));
		if (this.isHidden(s)) throw sysError("ENOENT", `${name} does not exist`);
		return s;
	}

	/**
	 * Entries of a directory, sorted by name; unfinished transfers are left
	 * out. Names the wire rules refuse (control characters, say) are listed
	 * all the same, so a person sees them (escaped) — they just cannot be
	 * fetched.
	 */
	async list(wirePath: string): Promise<Entry[]> {
		const entries: Entry[] = [];
		for await (const batch of this.listBatches(wirePath, Number.POSITIVE_INFINITY))
			entries.push(...batch);
		return entries;
	}

	/**
	 * list() in batches of up to `size` names, each looked up only when the
	 * caller asks for it: a server sends a huge directory one batch at a
	 * time, so what it holds is the names and one batch of entries, never
	 * every entry at once (attack 1, finding 2).
	 */
	async *listBatches(wirePath: string, size: number): AsyncGenerator<Entry[]> {
		const parts = this.parse(wirePath);
		const dir = await this.dirOrEntry(parts);
		if (!(dir instanceof Dir)) {
			yield [dir];
			return;
		}
		try {
			const names = await this.names(dir, parts);
			for (let at = 0; at < names.length; at += size) {
				const { entries } = this.lookUp(dir, names.slice(at, at + size));
				yield entries.filter((e) => e.name.isWellFormed());
			}
		} finally {
			await dir.close();
		}
	}

	/** The directory `parts` names, opened; or, when it is not one, its own entry. */
	private async dirOrEntry(parts: string[]): Promise<Dir | Entry> {
		try {
			return await openDir(this.fd, parts, this.lookup);
		} catch (e) {
			if (errno(e) !== "ENOTDIR" || parts.length === 0) throw this.fail(e, parts);
		}
		// A file (or a link to one, followed like a get would): the entry of what was opened.
		const { fh, stats } = await this.openExisting(joinWirePath(parts));
		await fh.close();
		return entryFromStats(parts.at(-1) as string, stats);
	}

	/**
	 * The entries of `dir`, sorted, without part files or hidden objects;
	 * names that cannot be looked up again (not UTF-8, or vanished) apart.
	 */
	private async read(
		dir: Dir,
		parts: readonly string[],
	): Promise<{ entries: Entry[]; unreadable: string[] }> {
		return this.lookUp(dir, await this.names(dir, parts));
	}

	/** The names in `dir`, sorted, without part files. */
	private async names(dir: Dir, parts: readonly string[]): Promise<string[]> {
		try {
			return (await readdir(dir.self())).sort().filter((name) => !isPartName(name));
		} catch (e) {
			throw this.fail(e, parts);
		}
	}

	/** The entries of `names` in `dir`, hidden objects left out; names that vanished or are not UTF-8 apart. */
	private lookUp(dir: Dir, names: readonly string[]): { entries: Entry[]; unreadable: string[] } {
		const entries: Entry[] = [];
		const unreadable: string[] = [];
		for (const name of names) {
			// Synchronous: a thread-pool round trip per file made a 10,000-file walk
			// (a re-run's whole cost) take ten times as long; one directory at a time.
			let s: Stats | undefined;
			try {
				s = lstatSync(dir.at(name));
			} catch {
				s = undefined;
			}
			if (!s) unreadable.push(name);
			else if (!this.isHidden(s)) entries.push(entryFromStats(name, s));
		}
		return { entries, unreadable };
	}

	/**
	 * Depth-first walk of a directory: directories before their contents.
	 * `excluded` leaves paths out (an excluded directory is never read). A
	 * symlink is followed when its target stays inside the root and is not a
	 * directory already walked (a loop or a repeat); otherwise it is reported
	 * with `why`, never followed. Every directory is opened beneath the root
	 * by its real components, never through a symlink.
	 */
	async *walk(wirePath: string, excluded: Excluded = NOTHING_EXCLUDED): AsyncGenerator<WalkEntry> {
		const parts = this.parse(wirePath);
		const top = await this.dirOrEntry(parts);
		if (!(top instanceof Dir)) {
			yield { ...top, path: top.name };
			return;
		}
		const topStack = [...top.stack];
		await top.close();
		const walked = new Set<string>();
		const stack: { rel: string[]; real: string[] }[] = [{ rel: [], real: topStack }];
		while (stack.length > 0) {
			const { rel, real } = stack.pop() as { rel: string[]; real: string[] };
			const dir: Dir = await openDir(this.fd, real, { ...this.lookup, follow: false }).catch((e) =>
				Promise.reject(this.fail(e, [...parts, ...rel])),
			);
			walked.add(idKey(dir.id));
			const subdirs: { rel: string[]; real: string[] }[] = [];
			try {
				const { entries, unreadable } = await this.read(dir, [...parts, ...rel]);
				const at = (name: string) => [...rel, name].join("/");
				// Subdirectories first: a symlink to one of them is a repeat, whatever the names' order.
				for (const e of entries) {
					if (e.type !== "dir") continue;
					const id = lstatSync(dir.at(e.name), { throwIfNoEntry: false });
					if (id) walked.add(idKey(id));
				}
				// A name that is not UTF-8 reads back with U+FFFD and cannot be found by it again.
				for (const name of unreadable.filter((n) => n.includes("\uFFFD") && !excluded(at(n))))
					yield {
						name,
						type: "file",
						size: 0,
						mtime: 0,
						path: at(name),
						refused: "not valid UTF-8",
					};
				for (const e of entries) {
					const path = at(e.name);
					if (excluded(path)) continue;
					// Reported, not skipped: the peer accounts for every file (its subtree included).
					const refused = wireNameProblem(e.name);
					if (refused) {
						yield { ...e, path, refused };
						continue;
					}
					if (e.type === "symlink") {
						const target = await this.followLink([...real, e.name], walked);
						if (typeof target === "string") {
							yield { ...e, path, why: target };
							continue;
						}
						yield { ...entryFromStats(e.name, target.stats), path };
						if (target.stats.isDirectory()) {
							walked.add(idKey(target.stats));
							subdirs.push({ rel: [...rel, e.name], real: target.stack });
						}
						continue;
					}
					yield { ...e, path };
					if (e.type === "dir") subdirs.push({ rel: [...rel, e.name], real: [...real, e.name] });
				}
			} finally {
				await dir.close();
			}
			stack.push(...subdirs.reverse());
		}
	}

	/** A symlink met by a walk, followed beneath the root: its target, or why it is not followed. */
	private async followLink(
		link: string[],
		walked: ReadonlySet<string>,
	): Promise<{ stats: Stats; stack: string[] } | string> {
		let opened: Opened;
		try {
			opened = await openBeneath(this.fd, link, constants.O_RDONLY, this.lookup);
		} catch (e) {
			if (e instanceof Outside) return "its target is outside the shared directory";
			if (errno(e) === "ELOOP") return "a symlink loop";
			return "its target does not exist";
		}
		await opened.fh.close();
		const { stats, stack } = opened;
		if (stats.isDirectory() && walked.has(idKey(stats)))
			return "its target is a directory sent already (a loop or a repeat)";
		if (!stats.isDirectory() && !stats.isFile()) return "its target is not a regular file";
		return { stats, stack };
	}

	/** Open a regular file for reading; reading goes on through this descriptor only. */
	async openRead(wirePath: string) {
		const { fh, stats, parts } = await this.openExisting(wirePath);
		if (!stats.isFile()) {
			await fh.close();
			if (stats.isDirectory())
				throw new PairlinkError("is-directory", `${display(parts)} is a directory`);
			throw new PairlinkError("refused", `${display(parts)} is not a regular file`);
		}
		return { fh, size: stats.size, mtime: Math.round(stats.mtimeMs) };
	}

	async mkdir(wirePath: string, parents: boolean): Promise<void> {
		if (this.parse(wirePath).length === 0)
			throw new PairlinkError("exists", "the shared directory already exists");
		const { dir, name, parts } = await this.parentOf(wirePath);
		try {
			await mkdir(dir.at(name));
		} catch (e) {
			if (errno(e) === "EEXIST") {
				// lstatIn: what the root hides does not exist, not even as "already exists".
				const s = await this.lstatIn(dir, name).catch((why) =>
					Promise.reject(this.fail(why, parts)),
				);
				if (parents && s.isDirectory()) return;
				if (parents && s.isSymbolicLink()) throw symlinkRefusal(parts);
			}
			throw this.fail(e, parts);
		} finally {
			await dir.close();
		}
	}

	async remove(wirePath: string, recursive: boolean): Promise<void> {
		if (this.parse(wirePath).length === 0)
			throw new PairlinkError("permission", "the shared directory itself cannot be removed");
		const { dir, name, parts } = await this.parentOf(wirePath);
		try {
			// lstat: a symlink is removed as a link, never followed.
			const s = await this.lstatIn(dir, name);
			if (!s.isDirectory()) return await unlink(dir.at(name));
			const sub = await openDir(dir, [name], { ...this.lookup, follow: false });
			try {
				if (!recursive && (await readdir(sub.self())).length > 0)
					throw new PairlinkError(
						"not-empty",
						`${display(parts)} is a directory that is not empty`,
					);
				if (recursive) await this.emptyDir(sub);
			} finally {
				await sub.close();
			}
			await rmdir(dir.at(name));
		} catch (e) {
			throw this.fail(e, parts);
		} finally {
			await dir.close();
		}
	}

	/** Remove everything inside `dir`, each entry through its parent's descriptor (no name is followed). */
	private async emptyDir(dir: Dir): Promise<void> {
		for (const name of await readdir(dir.self())) {
			const s = await lstat(dir.at(name));
			if (this.isHidden(s)) throw sysError("EPERM", `${name} cannot be removed`);
			if (s.isDirectory()) {
				const sub = await openDir(dir, [name], { ...this.lookup, follow: false });
				try {
					await this.emptyDir(sub);
				} finally {
					await sub.close();
				}
				await rmdir(dir.at(name));
			} else await unlink(dir.at(name));
		}
	}
}

function symlinkRefusal(parts: readonly string[]): PairlinkError {
	return new PairlinkError(
		"invalid-path",
		`${display(parts)} is a symbolic link; pairlink never writes through one`,
	);
}

const idKey = (id: Identity) => `${id.dev}:${id.ino}`;

export function display(parts: readonly string[]): string {
	return parts.length === 0 ? "the shared directory" : JSON.stringify(parts.join("/"));
}
