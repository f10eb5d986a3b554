/**
 * Downloads: plan every file first (expanding directories, checking every
 * name the server sends and what this device's OS can hold), then create
 * local directories as each file's turn comes and move the files several at
 * a time over the one connection (requests are pipelined, so small files do
 * not wait a round trip each). Uploads are in put-files.ts.
 */
import { lstatSync, type Stats } from "node:fs";
import { mkdir, stat, statfs } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { PairlinkError } from "../errors.ts";
import { sha256Of, upToDate } from "../fs/metadata.ts";
import { errno, SandboxRoot } from "../fs/root.ts";
import {
	joinWirePath,
	normalizeRemote,
	parseWirePath,
	receiverPathProblem,
} from "../fs/safe-path.ts";
import type { ClientSession } from "../session/client-session.ts";
import { accountFor, onThisDevice } from "./file-failures.ts";
import {
	type Action,
	destIsDirectory,
	forSource,
	Plan,
	runJobs,
	type Summary,
	type TransferHooks,
} from "./transfer-plan.ts";

export { type PutOptions, putFiles } from "./put-files.ts";
export type { Action, FileDone, FileFailed, Summary, TransferHooks } from "./transfer-plan.ts";

export interface GetOptions {
	recursive: boolean;
	overwrite: boolean;
	/** -o DEST; default: the current directory. */
	dest: string | undefined;
	/** --exclude: applied by the server, which walks. */
	exclude?: string[];
	/** --checksum: up to date means the same SHA-256, not the same size and mtime. */
	checksum?: boolean;
	dryRun?: boolean;
	/** The OS whose name rules apply to what lands here (default: this one's); for tests. */
	platform?: string;
}

/** Download remote files (and, with -r, directories) into a local destination. */
export async function getFiles(
	session: ClientSession,
	remotes: string[],
	opts: GetOptions,
	hooks: TransferHooks = {},
): Promise<Summary> {
	const started = performance.now();
	const platform = opts.platform ?? process.platform;
	const given = opts.dest ?? ".";
	const destAbs = resolve(given);
	// stat, not lstat: the -o path the user typed may itself be a symlink to a directory.
	const intoDir = await destIsDirectory(
		given,
		() =>
			stat(destAbs).then(
				(s) => s.isDirectory(),
				() => false,
			),
		remotes.length,
		opts.recursive,
	);
	const plan = new Plan(hooks);
	// Destinations are held open by descriptor until every file is in.
	const roots: SandboxRoot[] = [];
	const localRoot = async (dir: string) => {
		const root = await openLocal(dir);
		roots.push(root);
		return root;
	};
	const addFile: AddFile = (from, target, remote, place) => {
		if (!plan.claim(from, target, "here")) return;
		const { size } = remote;
		plan.jobs.push({
			label: from,
			local: forPeople(target),
			size,
			assess: () =>
				assessLocal(target, remote, opts, async () => (await session.hash(from)).sha256),
			run: async (p) => {
				const { root, rel } = await place();
				return session.download(from, root, rel, {
					overwrite: opts.overwrite,
					size,
					onProgress: (d, t) => p(d, t),
				});
			},
		});
	};
	for (const remote of remotes) {
		await forSource(plan, remote, async () => {
			const remoteParts = parseWirePath(normalizeRemote(remote));
			const from = joinWirePath(remoteParts);
			const name = remoteParts.at(-1);
			const problem = intoDir && name ? receiverPathProblem([name], platform) : undefined;
			if (problem)
				throw new PairlinkError(
					"invalid-name",
					`${JSON.stringify(remote)} cannot be written on this device: ${problem.why}`,
				);
			let entry = await session.stat(from);
			if (entry.type === "symlink") {
				// A link the user named is followed when its target stays inside the share.
				const target = await session
					.stat(from, true)
					.catch((e) =>
						e instanceof PairlinkError && e.code === "invalid-path" ? undefined : Promise.reject(e),
					);
				if (!target) {
					hooks.onSkip?.(from, "a symbolic link whose target is outside the shared directory");
					return;
				}
				entry = target;
			}
			if (entry.type === "file" && name) {
				const target = intoDir ? join(destAbs, name) : destAbs;
				// The parent is created (and opened) only when this file's turn comes.
				addFile(from, target, entry, async () => ({
					root: await localRoot(dirname(target)),
					rel: basename(target),
				}));
			} else if (entry.type === "dir") {
				if (!opts.recursive)
					throw new PairlinkError(
						"is-directory",
						`${JSON.stringify(from || "/")} is a directory on the server`,
					);
				// Into DEST/<name> (or DEST itself): DEST may be a symlink (the user typed it),
				// nothing below it is ever followed.
				await planTree(session, plan, from, destAbs, intoDir && name ? [name] : [], {
					platform,
					hooks,
					addFile,
					exclude: opts.exclude ?? [],
					localRoot,
				});
			} else hooks.onSkip?.(from, "a symbolic link whose target is outside the shared directory");
		});
	}
	try {
		return await runJobs(plan, hooks, started, {
			dryRun: opts.dryRun === true,
			freeSpace: () => freeBytesAt(destAbs),
		});
	} finally {
		await Promise.all(roots.map((r) => r.close()));
	}
}

/**
 * What a download would do to its local target: nothing there (move), the
 * same file (up to date: same size and mtime, or with --checksum the same
 * SHA-256 — the server hashes only files of the same size), or another file
 * (overwrite with --overwrite, else refuse).
 */
async function assessLocal(
	target: string,
	remote: { size: number; mtime: number },
	opts: GetOptions,
	remoteSha256: () => Promise<string>,
): Promise<Action> {
	let here: Stats | undefined;
	try {
		// Synchronous: no thread-pool round trip per file of a re-run (its whole cost).
		here = lstatSync(target, { throwIfNoEntry: false });
	} catch (e) {
		// A file where a parent directory must be: the download says so when it tries.
		if (errno(e) !== "ENOTDIR") throw e;
	}
	if (!here) return "move";
	if (!here.isFile()) return "refuse";
	const same = opts.checksum
		? here.size === remote.size && (await sha256Of(target)) === (await remoteSha256())
		: upToDate(remote, { size: here.size, mtime: Math.round(here.mtimeMs) });
	if (same) return "up-to-date";
	return opts.overwrite ? "overwrite" : "refuse";
}

/** Bytes free on the file system where `dir` is (or would be created). */
async function freeBytesAt(dir: string): Promise<number> {
	for (let at = dir; ; at = dirname(at)) {
		const s = await statfs(at).catch(() => undefined);
		if (s) return Number(s.bavail) * Number(s.bsize);
		if (dirname(at) === at) return Number.POSITIVE_INFINITY;
	}
}

/** A local path as a person would type it here: relative to the working directory when inside it. */
function forPeople(abs: string): string {
	const rel = relative(process.cwd(), abs);
	return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
}

/**
 * `mkdir -p` of a directory the user named (nothing is created before every
 * source is planned), then open it as a root below which no symlink is
 * followed, at any depth.
 */
async function openLocal(dir: string): Promise<SandboxRoot> {
	await mkdir(dir, { recursive: true }).catch((e) => Promise.reject(onThisDevice(e, dir)));
	return SandboxRoot.open(dir, { followLinks: false });
}

/** Queue one download: `place` creates and opens its local directory when its turn comes. */
type AddFile = (
	from: string,
	target: string,
	remote: { size: number; mtime: number },
	place: () => Promise<{ root: SandboxRoot; rel: string }>,
) => void;

/** Walk one remote directory: every name checked before anything is created here. */
async function planTree(
	session: ClientSession,
	plan: Plan,
	from: string,
	dest: string,
	below: string[],
	ctx: {
		platform: string;
		hooks: TransferHooks;
		addFile: AddFile;
		exclude: string[];
		localRoot(dir: string): Promise<SandboxRoot>;
	},
): Promise<void> {
	const top = join(dest, ...below);
	/** A path of the tree as the destination root sees it. */
	const inRoot = (rel: string) => joinWirePath([...below, ...rel.split("/")]);
	const walk = await session.walk(from, ctx.exclude);
	const under = (rel: string) => (from ? `${from}/${rel}` : rel);
	for (const r of walk.refused) {
		const why = `The server cannot send ${JSON.stringify(under(r.path))}: ${r.why}`;
		plan.fail(under(r.path), new PairlinkError("invalid-name", why));
	}
	const unholdable = (rel: string) => receiverPathProblem(rel.split("/"), ctx.platform);
	const dirs = walk.entries.filter((e) => e.type === "dir" && !unholdable(e.path));
	/** Directories that could not be created here: the files below them fail with that error. */
	const dirFailures = new Map<string, PairlinkError>();
	let made: Promise<SandboxRoot> | undefined;
	// The tree's directories are created once, when its first file's turn comes.
	const makeTree = () => {
		made ??= (async () => {
			const root = await ctx.localRoot(dest);
			if (below.length > 0) await root.mkdir(joinWirePath(below), true);
			for (const d of dirs) {
				if (dirFailures.has(dirname(d.path))) {
					dirFailures.set(d.path, dirFailures.get(dirname(d.path)) as PairlinkError);
					continue;
				}
				await root.mkdir(inRoot(d.path), true).catch((e) => {
					const local = join(top, ...d.path.split("/"));
					const why = `${JSON.stringify(local)} cannot be created on this device: a file stands where a directory must be`;
					const error =
						e instanceof PairlinkError && e.code === "exists"
							? new PairlinkError("local-exists", why, { advice: "file-in-the-way" })
							: onThisDevice(e, local);
					dirFailures.set(d.path, error);
				});
			}
			return root;
		})();
		return made;
	};
	if (!walk.entries.some((e) => e.type === "file"))
		plan.emptyTrees.push(() => makeTree().catch((e) => plan.fail(from, accountFor(e, top))));
	for (const e of walk.entries) {
		const path = under(e.path);
		if (e.type === "symlink") ctx.hooks.onSkip?.(path, e.why ?? "a symbolic link");
		if (e.type !== "file") continue;
		const problem = unholdable(e.path);
		if (problem) {
			const why = `${JSON.stringify(path)} cannot be written on this device: ${problem.why}`;
			plan.fail(path, new PairlinkError("invalid-name", why));
			continue;
		}
		ctx.addFile(path, join(top, ...e.path.split("/")), e, async () => {
			const root = await makeTree();
			const failed = dirFailures.get(dirname(e.path));
			if (failed) throw failed;
			return { root, rel: inRoot(e.path) };
		});
	}
}
