/**
 * Uploads: plan every file (walking local trees, checking that each name
 * may cross the wire), create the remote directories level by level, then
 * move the files several at a time over the one connection.
 */
import { type Stats, statSync } from "node:fs";
import { lstat, readdir, realpath, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { PairlinkError } from "../errors.ts";
import { type Excluded, excluder } from "../fs/exclude.ts";
import { sha256Of, upToDate } from "../fs/metadata.ts";
import { errno } from "../fs/root.ts";
import { joinWirePath, normalizeRemote, parseWirePath, wireNameProblem } from "../fs/safe-path.ts";
import type { ClientSession } from "../session/client-session.ts";
import { endsTransfer, onThisDevice } from "./file-failures.ts";
import {
	type Action,
	destIsDirectory,
	forSource,
	type Job,
	Plan,
	runJobs,
	type Summary,
	type TransferHooks,
} from "./transfer-plan.ts";

export interface PutOptions {
	recursive: boolean;
	overwrite: boolean;
	/** --to REMOTE; default: the top of the shared directory. */
	to: string | undefined;
	/** --exclude: applied here, where the tree is walked. */
	exclude?: string[];
	/** --checksum: up to date means the same SHA-256 (the server hashes only same-size files). */
	checksum?: boolean;
	dryRun?: boolean;
	/** Standard input, for the LOCAL `-`. */
	stdin?: () => AsyncIterable<Uint8Array>;
}

/** A remote file as a walk or stat of the destination found it; undefined when there is none. */
type Remote = { type: string; size: number; mtime: number } | undefined;

/** Upload local files (and, with -r, directories) to the server. */
export async function putFiles(
	session: ClientSession,
	locals: string[],
	opts: PutOptions,
	hooks: TransferHooks = {},
): Promise<Summary> {
	const started = performance.now();
	if (locals.length === 1 && locals[0] === "-") return putStdin(session, opts, hooks, started);
	const toParts = parseWirePath(normalizeRemote(opts.to ?? ""));
	const intoDir =
		toParts.length === 0 ||
		(await destIsDirectory(
			opts.to ?? "",
			() =>
				session.stat(joinWirePath(toParts)).then(
					(e) => e.type === "dir",
					(e) => (e instanceof PairlinkError && e.code === "not-found" ? false : Promise.reject(e)),
				),
			locals.length,
			opts.recursive,
		));
	const plan = new Plan(hooks);
	/** Remote directories to create, shallowest first: the destination's chain, then each tree's. */
	const chain = intoDir ? toParts : toParts.slice(0, -1);
	const dirs = chain.map((_, i) => toParts.slice(0, i + 1));
	/**
	 * `known`: the destination's files from one walk per tree, so unchanged
	 * files are not even read. A single file is left to the server's own
	 * check in the put (no round trip), unless planning or hashing needs it.
	 */
	const upload = (
		label: string,
		abs: string,
		remoteParts: string[],
		size: number,
		known?: () => Promise<Remote>,
	) => {
		const remote = joinWirePath(remoteParts);
		if (!plan.claim(label, remote, "server")) return;
		const there =
			known ?? (opts.dryRun || opts.checksum ? () => remoteFile(session, remote) : undefined);
		const job: Job = {
			label,
			remote,
			size,
			run: (p) =>
				session.upload(abs, remote, {
					overwrite: opts.overwrite,
					checksum: opts.checksum === true,
					onProgress: (d, t) => p(d, t),
				}),
		};
		if (there)
			job.assess = async () => {
				let here: Stats;
				try {
					// Synchronous: no thread-pool round trip per file of a re-run (its whole cost).
					here = statSync(abs);
				} catch (e) {
					throw onThisDevice(e, label);
				}
				job.size = here.size;
				return assessRemote(session, remote, abs, here, await there(), opts);
			};
		plan.jobs.push(job);
	};
	const trees: { label: string; abs: string; base: string[]; name: string }[] = [];
	for (const local of locals) {
		await forSource(plan, local, async () => {
			const abs = resolve(local);
			const info = await stat(abs).catch(async (e) => {
				// A name typed (or globbed) in bytes that are not UTF-8 reaches us with U+FFFD.
				const why = await notUtf8(basename(abs), abs);
				throw why
					? new PairlinkError("invalid-name", `${JSON.stringify(local)} cannot be sent: ${why}`)
					: onThisDevice(e, local);
			});
			// stat, not lstat: a source given as a symlink is followed and sent under the name given.
			const name = basename(abs);
			const why = intoDir ? wireNameProblem(name) : undefined;
			if (why)
				throw new PairlinkError(
					"invalid-name",
					`${JSON.stringify(local)} cannot be sent under its name: ${why}`,
				);
			const remote = intoDir ? [...toParts, name] : toParts;
			if (info.isDirectory()) {
				if (!opts.recursive)
					throw new PairlinkError(
						"is-directory",
						`${JSON.stringify(local)} is a directory on this device`,
					);
				dirs.push(remote);
				trees.push({ label: local, abs, base: remote, name });
			} else if (info.isFile()) upload(local, abs, remote, info.size);
			else
				throw new PairlinkError(
					"refused",
					`${JSON.stringify(local)} on this device is not a regular file or directory`,
					{ advice: "local-kind" },
				);
		});
	}
	for (const tree of trees) {
		const excluded = excluder(opts.exclude ?? [], tree.name);
		// One walk of the destination tells which files are already there (none when it is new);
		// asked for at once, so the server walks while this side does.
		const there: Promise<Map<string, Remote>> = session.walk(joinWirePath(tree.base)).then(
			(w) => new Map(w.entries.map((e) => [e.path, e])),
			(e) => (e instanceof PairlinkError && e.code === "not-found" ? new Map() : Promise.reject(e)),
		);
		there.catch(() => undefined); // a lost connection is met again by whoever awaits it
		const existing = () => there;
		for await (const item of walkLocal(tree.abs, tree.label, plan, hooks, excluded)) {
			const remote = [...tree.base, ...item.rel];
			const rel = item.rel.join("/");
			if (item.dir) dirs.push(remote);
			// Sizes become known as files are opened (or assessed).
			else upload(item.label, item.abs, remote, 0, async () => (await existing()).get(rel));
		}
	}
	if (!opts.dryRun) await makeRemoteDirs(session, plan, dirs);
	return runJobs(plan, hooks, started, { dryRun: opts.dryRun === true });
}

/** The remote file at `remote`, or undefined when nothing is there. */
function remoteFile(session: ClientSession, remote: string): Promise<Remote> {
	return session
		.stat(remote)
		.catch((e) =>
			e instanceof PairlinkError && e.code === "not-found" ? undefined : Promise.reject(e),
		);
}

/** What an upload would do to the server's file (the server checks again when it writes). */
async function assessRemote(
	session: ClientSession,
	remote: string,
	abs: string,
	here: { size: number; mtimeMs: number },
	there: Remote,
	opts: PutOptions,
): Promise<Action> {
	if (!there) return "move";
	if (there.type !== "file") return "refuse";
	const same = opts.checksum
		? here.size === there.size && (await sha256Of(abs)) === (await session.hash(remote)).sha256
		: upToDate({ size: here.size, mtime: Math.round(here.mtimeMs) }, there);
	if (same) return "up-to-date";
	return opts.overwrite ? "overwrite" : "refuse";
}

/** `put DEVICE - --to REMOTE`: standard input into one remote file, verified, never resumed. */
async function putStdin(
	session: ClientSession,
	opts: PutOptions,
	hooks: TransferHooks,
	started: number,
): Promise<Summary> {
	const to = normalizeRemote(opts.to ?? "");
	if (!opts.to || !opts.stdin || /[/\\]$/.test(opts.to) || to === "")
		throw new PairlinkError(
			"usage",
			"put - reads standard input: give the file to write with --to REMOTE",
		);
	const parts = parseWirePath(to);
	const remote = joinWirePath(parts);
	const plan = new Plan(hooks);
	const source = opts.stdin;
	// The file's missing parent directories are created, as for any other destination.
	if (!opts.dryRun)
		await makeRemoteDirs(
			session,
			plan,
			parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1)),
		);
	plan.jobs.push({
		label: "-",
		remote,
		size: 0,
		run: (p) =>
			session.uploadStream(source(), remote, {
				overwrite: opts.overwrite,
				onProgress: (d, t) => p(d, t),
			}),
	});
	return runJobs(plan, hooks, started, { dryRun: opts.dryRun === true });
}

/**
 * Create remote directories, all of one depth at once (their parents exist
 * by then). A directory the server refuses fails every file planned below
 * it, with the server's reason; the other files still go.
 */
async function makeRemoteDirs(session: ClientSession, plan: Plan, dirs: string[][]): Promise<void> {
	const failed = new Map<string, PairlinkError>();
	const byDepth: string[][] = [];
	for (const d of dirs) {
		byDepth[d.length] ??= [];
		byDepth[d.length]?.push(joinWirePath(d));
	}
	const failedAbove = (path: string) => {
		for (let i = path.lastIndexOf("/"); i > 0; i = path.lastIndexOf("/", i - 1)) {
			const e = failed.get(path.slice(0, i));
			if (e) return e;
		}
		return undefined;
	};
	for (const level of byDepth) {
		await Promise.all(
			[...new Set(level ?? [])].map(async (dir) => {
				const above = failedAbove(dir);
				if (above) return failed.set(dir, above);
				await session.mkdir(dir, true).catch((e) => {
					if (e instanceof PairlinkError && endsTransfer(e)) throw e;
					failed.set(dir, e instanceof PairlinkError ? e : onThisDevice(e, dir));
				});
			}),
		);
	}
	if (failed.size === 0) return;
	const jobs = plan.jobs.splice(0);
	for (const job of jobs) {
		const error = failedAbove(job.remote ?? "");
		if (error) plan.fail(job.label, error);
		else plan.jobs.push(job);
	}
}

/**
 * A local tree, depth first, directories before their contents. A name the
 * wire rules refuse fails that file (or directory) with why; symbolic links
 * are skipped and reported.
 */
async function* walkLocal(
	top: string,
	label: string,
	plan: Plan,
	hooks: TransferHooks,
	excluded: Excluded,
): AsyncGenerator<{ abs: string; label: string; rel: string[]; dir: boolean }> {
	const links = await linkFollower(top);
	const stack: { abs: string; label: string; rel: string[] }[] = [{ abs: top, label, rel: [] }];
	while (stack.length > 0) {
		const d = stack.pop() as { abs: string; label: string; rel: string[] };
		// Entry types come with the listing: no stat per file here (the upload's fstat is the only one).
		const entries = await readdir(d.abs, { withFileTypes: true }).catch((e) => {
			plan.fail(d.label, onThisDevice(e, d.label));
			return [];
		});
		entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
		const subdirs: { abs: string; label: string; rel: string[] }[] = [];
		for (const entry of entries) {
			const abs = join(d.abs, entry.name);
			const shown = join(d.label, entry.name);
			const why = wireNameProblem(entry.name) ?? (await notUtf8(entry.name, abs));
			if (why) {
				const what = `${JSON.stringify(shown)} cannot be sent under its name: ${why}`;
				plan.fail(shown, new PairlinkError("invalid-name", what));
				continue;
			}
			const rel = [...d.rel, entry.name];
			if (excluded(rel.join("/"))) continue;
			let kind: "dir" | "file" | string = entry.isDirectory()
				? "dir"
				: entry.isFile()
					? "file"
					: "not a regular file or directory";
			let from = abs;
			if (entry.isSymbolicLink()) {
				const followed = await links(abs);
				if (typeof followed === "string") kind = followed;
				else ({ kind, abs: from } = followed);
			}
			if (kind === "dir") {
				yield { abs: from, label: shown, rel, dir: true };
				subdirs.push({ abs: from, label: shown, rel });
			} else if (kind === "file") yield { abs: from, label: shown, rel, dir: false };
			else hooks.onSkip?.(shown, kind);
		}
		stack.push(...subdirs.reverse());
	}
}

/**
 * Symlinks met in a tree being sent: followed only when the target stays
 * inside the tree, and a directory at most once (loops and repeats).
 * Returns the target to send, or why the link is skipped.
 */
async function linkFollower(
	top: string,
): Promise<(link: string) => Promise<{ kind: "dir" | "file"; abs: string } | string>> {
	const root = await realpath(top);
	const seen = new Set<string>();
	const topStat = await stat(root);
	seen.add(`${topStat.dev}:${topStat.ino}`);
	return async (link) => {
		let real: string;
		try {
			real = await realpath(link);
		} catch (e) {
			return errno(e) === "ELOOP" ? "a symlink loop" : "a symlink whose target does not exist";
		}
		const rel = relative(root, real);
		if (rel.startsWith("..") || isAbsolute(rel))
			return "a symlink whose target is outside the directory being sent";
		const s = await stat(real);
		if (s.isFile()) return { kind: "file", abs: real };
		if (!s.isDirectory()) return "a symlink to something that is not a regular file";
		const id = `${s.dev}:${s.ino}`;
		// A directory holding the link itself would be walked again, without end.
		const within = relative(real, await realpath(dirname(link)));
		if (seen.has(id) || !(within.startsWith("..") || isAbsolute(within)))
			return "a symlink to a directory sent already (a loop or a repeat)";
		seen.add(id);
		return { kind: "dir", abs: real };
	};
}

/** A name that is not UTF-8 reads back with U+FFFD, and cannot be found again by that string. */
async function notUtf8(name: string, abs: string): Promise<string | undefined> {
	if (!name.includes("\uFFFD")) return undefined;
	return lstat(abs).then(
		() => undefined,
		() => "its name is not valid UTF-8",
	);
}
