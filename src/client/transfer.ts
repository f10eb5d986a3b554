/**
 * Many-file transfers on top of the session's single-file operations: plan
 * every file first (expanding directories, checking every name), create the
 * directories on the receiving side, then move files several at a time over
 * the one connection (requests are pipelined, so small files do not wait a
 * round trip each). Every file asked for ends up moved or failed with its
 * path and why (SPEC "Moving files"); one failure never stops the others.
 */
import { lstat, mkdir, readdir, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { PairlinkError } from "../errors.ts";
import { SandboxRoot } from "../fs/root.ts";
import {
	joinWirePath,
	normalizeRemote,
	parseWirePath,
	receiverPathProblem,
	wireNameProblem,
} from "../fs/safe-path.ts";
import type { ClientSession, TransferResult } from "../session/client-session.ts";
import { accountFor, endsTransfer, type FileFailed, onThisDevice } from "./file-failures.ts";

export type { FileFailed } from "./file-failures.ts";

export interface FileDone extends TransferResult {
	/** Path as the user knows it: remote path for get, local path for put. */
	path: string;
}

export interface TransferHooks {
	onFile?(done: FileDone): void;
	/** A file that was not moved, with why; the transfer goes on with the others. */
	onFailed?(failed: FileFailed): void;
	/** Total bytes done so far across all files, and the total planned. */
	onProgress?(done: number, total: number): void;
	/** Bytes of one file done so far; `done === size` once it is complete. */
	onFileProgress?(path: string, done: number, size: number): void;
	/** Something deliberately not copied (a symbolic link), with why: not a failure. */
	onSkip?(path: string, why: string): void;
}

export interface Summary {
	/** Files moved. */
	files: number;
	/** Files skipped as already up to date (none yet: every file is sent). */
	upToDate: number;
	failed: FileFailed[];
	bytes: number;
	seconds: number;
}

/** Files moved at once over one connection. */
export const PARALLEL_FILES = 64;

interface Job {
	label: string;
	/** The file on this device, for failures that happen here (default: `label`). */
	local?: string;
	/** The remote file, for an upload: it fails with a directory above it the server refused. */
	remote?: string;
	size: number;
	/** `size` is reported once known (a tree's files are not stat-ed until they are opened). */
	run(onProgress: (done: number, size: number) => void): Promise<TransferResult>;
}

/** Files planned and files already known to fail, before anything moves. */
class Plan {
	readonly jobs: Job[] = [];
	readonly failed: FileFailed[] = [];
	/** Trees without files: their directories are made once every source is planned. */
	readonly emptyTrees: (() => Promise<unknown>)[] = [];
	constructor(private readonly hooks: TransferHooks) {}

	fail(path: string, error: PairlinkError): void {
		this.failed.push({ path, error });
		this.hooks.onFailed?.({ path, error });
	}
}

/**
 * Run jobs with bounded concurrency. A file that fails is reported and the
 * others go on; only a failure of the connection itself ends the transfer.
 */
async function runJobs(plan: Plan, hooks: TransferHooks, started: number): Promise<Summary> {
	const { jobs } = plan;
	for (const make of plan.emptyTrees) await make();
	let total = jobs.reduce((n, j) => n + j.size, 0);
	const progress = new Map<Job, number>();
	let doneBytes = 0;
	let files = 0;
	let fatal: PairlinkError | undefined;
	let next = 0;
	const report = () =>
		hooks.onProgress?.(doneBytes + [...progress.values()].reduce((a, b) => a + b, 0), total);
	async function worker() {
		for (;;) {
			const job = fatal ? undefined : jobs[next++];
			if (!job) return;
			try {
				const r = await job.run((d, size) => {
					if (size !== job.size) {
						total += size - job.size;
						job.size = size;
					}
					progress.set(job, d);
					hooks.onFileProgress?.(job.label, d, job.size);
					report();
				});
				progress.delete(job);
				hooks.onFileProgress?.(job.label, r.bytes, r.bytes);
				doneBytes += r.bytes;
				total += r.bytes - job.size;
				files++;
				hooks.onFile?.({ path: job.label, ...r });
				report();
			} catch (e) {
				progress.delete(job);
				hooks.onFileProgress?.(job.label, job.size, job.size);
				const error = accountFor(e, job.local ?? job.label);
				if (endsTransfer(error)) fatal ??= error;
				else plan.fail(job.label, error);
			}
		}
	}
	await Promise.all(Array.from({ length: Math.min(PARALLEL_FILES, jobs.length) }, worker));
	if (fatal) throw fatal;
	const seconds = (performance.now() - started) / 1000;
	return { files, upToDate: 0, failed: plan.failed, bytes: doneBytes, seconds };
}

/** Run `step`; a failure that is about this one source is recorded, a lost connection is thrown. */
async function forSource(plan: Plan, label: string, step: () => Promise<void>): Promise<void> {
	try {
		await step();
	} catch (e) {
		const error = e instanceof PairlinkError ? e : onThisDevice(e, label);
		if (endsTransfer(error)) throw error;
		plan.fail(label, error);
	}
}

/**
 * SPEC "Destinations": DEST names a directory when it is one, ends with a
 * slash, or several sources (or -r) go there; otherwise the file to write.
 */
async function destIsDirectory(
	given: string,
	isDir: () => Promise<boolean>,
	sources: number,
	recursive: boolean,
): Promise<boolean> {
	return /[/\\]$/.test(given) || sources > 1 || recursive || (await isDir());
}

/** `mkdir -p` on this device, failing as a local error that names the directory. */
async function makeLocalDir(dir: string): Promise<void> {
	await mkdir(dir, { recursive: true }).catch((e) => Promise.reject(onThisDevice(e, dir)));
}

export interface GetOptions {
	recursive: boolean;
	overwrite: boolean;
	/** -o DEST; default: the current directory. */
	dest: string | undefined;
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
	if (intoDir) await makeLocalDir(destAbs);
	const plan = new Plan(hooks);
	/** Local file -> the remote file that goes there: two sources must not land on one name. */
	const claimed = new Map<string, string>();
	const addFile: AddFile = (from, target, size, place) => {
		const other = claimed.get(target);
		if (other !== undefined) {
			const err = `${JSON.stringify(from)} would land on ${JSON.stringify(target)} on this device, where ${JSON.stringify(other)} goes; get them into separate directories`;
			return plan.fail(from, new PairlinkError("local-exists", err));
		}
		claimed.set(target, from);
		plan.jobs.push({
			label: from,
			local: forPeople(target),
			size,
			run: async (p) => {
				const { root, rel } = await place();
				return session.download(from, root, rel, {
					overwrite: opts.overwrite,
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
			if (problem) throw new PairlinkError("invalid-path", `${remote}: ${problem.why}`);
			const entry = await session.stat(from);
			if (entry.type === "file" && name) {
				const target = intoDir ? join(destAbs, name) : destAbs;
				// The parent is created (and opened) only when this file's turn comes.
				addFile(from, target, entry.size, async () => ({
					root: await localRoot(dirname(target)),
					rel: basename(target),
				}));
			} else if (entry.type === "dir") {
				if (!opts.recursive)
					throw new PairlinkError(
						"is-directory",
						`${JSON.stringify(from)} is a directory on the server`,
					);
				await planTree(session, plan, from, intoDir ? join(destAbs, name ?? "") : destAbs, {
					platform,
					hooks,
					addFile,
				});
			} else hooks.onSkip?.(from, "a symbolic link; pairlink does not copy links");
		});
	}
	return runJobs(plan, hooks, started);
}

/** A local path as a person would type it here: relative to the working directory when inside it. */
function forPeople(abs: string): string {
	const rel = relative(process.cwd(), abs);
	return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
}

async function localRoot(dir: string): Promise<SandboxRoot> {
	await makeLocalDir(dir);
	return SandboxRoot.open(dir);
}

/** Queue one download: `place` creates and opens its local directory when its turn comes. */
type AddFile = (
	from: string,
	target: string,
	size: number,
	place: () => Promise<{ root: SandboxRoot; rel: string }>,
) => void;

/** Walk one remote directory: every name checked before anything is created here. */
async function planTree(
	session: ClientSession,
	plan: Plan,
	from: string,
	top: string,
	ctx: { platform: string; hooks: TransferHooks; addFile: AddFile },
): Promise<void> {
	const walk = await session.walk(from);
	const under = (rel: string) => (from ? `${from}/${rel}` : rel);
	for (const r of walk.refused) {
		const why = `the server cannot send ${JSON.stringify(under(r.path))}: ${r.why}`;
		plan.fail(under(r.path), new PairlinkError("invalid-path", why));
	}
	const unholdable = (rel: string) => receiverPathProblem(rel.split("/"), ctx.platform);
	const dirs = walk.entries.filter((e) => e.type === "dir" && !unholdable(e.path));
	/** Directories that could not be created here: the files below them fail with that error. */
	const dirFailures = new Map<string, PairlinkError>();
	let made: Promise<SandboxRoot> | undefined;
	// The tree's directories are created once, when its first file's turn comes.
	const makeTree = () => {
		made ??= (async () => {
			const root = await localRoot(top);
			for (const d of dirs) {
				if (dirFailures.has(dirname(d.path))) {
					dirFailures.set(d.path, dirFailures.get(dirname(d.path)) as PairlinkError);
					continue;
				}
				await root.mkdir(d.path, true).catch((e) => {
					const local = join(top, ...d.path.split("/"));
					const why = `${JSON.stringify(local)} cannot be created on this device: a file stands where a directory must be`;
					const error =
						e instanceof PairlinkError && e.code === "exists"
							? new PairlinkError("local-exists", why)
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
		if (e.type === "symlink")
			ctx.hooks.onSkip?.(path, "a symbolic link; pairlink does not copy links");
		if (e.type !== "file") continue;
		const problem = unholdable(e.path);
		if (problem) {
			const why = `${JSON.stringify(path)} cannot be written on this device: ${problem.why}`;
			plan.fail(path, new PairlinkError("invalid-path", why));
			continue;
		}
		ctx.addFile(path, join(top, ...e.path.split("/")), e.size, async () => {
			const root = await makeTree();
			const failed = dirFailures.get(dirname(e.path));
			if (failed) throw failed;
			return { root, rel: e.path };
		});
	}
}

export interface PutOptions {
	recursive: boolean;
	overwrite: boolean;
	/** --to REMOTE; default: the top of the shared directory. */
	to: string | undefined;
}

/** Upload local files (and, with -r, directories) to the server. */
export async function putFiles(
	session: ClientSession,
	locals: string[],
	opts: PutOptions,
	hooks: TransferHooks = {},
): Promise<Summary> {
	const started = performance.now();
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
	const upload = (label: string, abs: string, remote: string[], size: number) =>
		plan.jobs.push({
			label,
			remote: joinWirePath(remote),
			size,
			run: (p) =>
				session.upload(abs, joinWirePath(remote), {
					overwrite: opts.overwrite,
					onProgress: (d, t) => p(d, t),
				}),
		});
	const trees: { label: string; abs: string; base: string[] }[] = [];
	for (const local of locals) {
		await forSource(plan, local, async () => {
			const abs = resolve(local);
			const info = await stat(abs).catch((e) => Promise.reject(onThisDevice(e, local)));
			// stat, not lstat: a source given as a symlink is followed and sent under the name given.
			const name = basename(abs);
			const why = intoDir ? wireNameProblem(name) : undefined;
			if (why)
				throw new PairlinkError(
					"invalid-path",
					`${JSON.stringify(local)} cannot be sent under its name: ${why}`,
				);
			const remote = intoDir ? [...toParts, name] : toParts;
			if (info.isDirectory()) {
				if (!opts.recursive)
					throw new PairlinkError(
						"is-directory",
						`${JSON.stringify(local)} is a directory on this device; use -r`,
					);
				dirs.push(remote);
				trees.push({ label: local, abs, base: remote });
			} else if (info.isFile()) upload(local, abs, remote, info.size);
			else
				throw new PairlinkError(
					"refused",
					`${JSON.stringify(local)} is not a regular file or directory`,
				);
		});
	}
	for (const tree of trees) {
		for await (const item of walkLocal(tree.abs, tree.label, plan, hooks)) {
			const remote = [...tree.base, ...item.rel];
			if (item.dir) dirs.push(remote);
			else upload(item.label, item.abs, remote, 0); // sizes become known as files are opened
		}
	}
	await makeRemoteDirs(session, plan, dirs);
	return runJobs(plan, hooks, started);
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
): AsyncGenerator<{ abs: string; label: string; rel: string[]; dir: boolean }> {
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
				plan.fail(shown, new PairlinkError("invalid-path", what));
				continue;
			}
			const rel = [...d.rel, entry.name];
			if (entry.isDirectory()) {
				yield { abs, label: shown, rel, dir: true };
				subdirs.push({ abs, label: shown, rel });
			} else if (entry.isFile()) yield { abs, label: shown, rel, dir: false };
			else hooks.onSkip?.(shown, "not a regular file or directory (symbolic links are not copied)");
		}
		stack.push(...subdirs.reverse());
	}
}

/** A name that is not UTF-8 reads back with U+FFFD, and cannot be found again by that string. */
async function notUtf8(name: string, abs: string): Promise<string | undefined> {
	if (!name.includes("\uFFFD")) return undefined;
	return lstat(abs).then(
		() => undefined,
		() => "its name is not valid UTF-8",
	);
}
