/**
 * Many-file transfers on top of the session's single-file operations:
 * expand directories, create them on the receiving side, then move files
 * several at a time over the one connection (requests are pipelined, so
 * small files do not wait a round trip each).
 */
import { lstat, mkdir, readdir, realpath, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { PairlinkError } from "../errors.ts";
import { errno, fsError, SandboxRoot } from "../fs/root.ts";
import { checkName, joinWirePath, parseWirePath } from "../fs/safe-path.ts";
import type { ClientSession, TransferResult } from "../session/client-session.ts";

export interface FileDone extends TransferResult {
	/** Path as the user knows it: remote path for get, local path for put. */
	path: string;
}

export interface TransferHooks {
	onFile?(done: FileDone): void;
	/** Total bytes done so far across all files, and the total planned. */
	onProgress?(done: number, total: number): void;
	/** Bytes of one file done so far; `done === size` once it is complete. */
	onFileProgress?(path: string, done: number, size: number): void;
	/** A file or directory that was skipped (e.g. a symlink), with why. */
	onSkip?(path: string, why: string): void;
}

export interface Summary {
	files: number;
	bytes: number;
	seconds: number;
}

/** Files moved at once over one connection. */
export const PARALLEL_FILES = 64;

interface Job {
	label: string;
	size: number;
	/** `size` is reported once known (a tree's files are not stat-ed until they are opened). */
	run(onProgress: (done: number, size: number) => void): Promise<TransferResult>;
}

/** Run jobs with bounded concurrency; the first failure is rethrown after the rest finish. */
async function runJobs(jobs: Job[], hooks: TransferHooks, started: number): Promise<Summary> {
	let total = jobs.reduce((n, j) => n + j.size, 0);
	const progress = new Map<Job, number>();
	let doneBytes = 0;
	let files = 0;
	const errors: PairlinkError[] = [];
	let next = 0;
	const report = () =>
		hooks.onProgress?.(doneBytes + [...progress.values()].reduce((a, b) => a + b, 0), total);
	async function worker() {
		for (;;) {
			const job = jobs[next++];
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
				errors.push(e instanceof PairlinkError ? e : new PairlinkError("internal", String(e)));
				if (errors[0]?.code === "interrupted") return; // the connection is gone
			}
		}
	}
	await Promise.all(Array.from({ length: Math.min(PARALLEL_FILES, jobs.length) }, worker));
	const first = errors[0];
	if (first) {
		if (jobs.length === 1) throw first;
		throw new PairlinkError(
			first.code,
			`${errors.length} of ${jobs.length} files failed; the first: ${first.message}`,
		);
	}
	return { files, bytes: doneBytes, seconds: (performance.now() - started) / 1000 };
}

export interface GetOptions {
	recursive: boolean;
	overwrite: boolean;
	/** -o DEST; default: the current directory. */
	dest: string | undefined;
}

/** Download remote files (and, with -r, directories) into a local destination. */
export async function getFiles(
	session: ClientSession,
	remotes: string[],
	opts: GetOptions,
	hooks: TransferHooks = {},
): Promise<Summary> {
	// The destinations, held open by descriptor until every file is in.
	const roots: SandboxRoot[] = [];
	try {
		return await getInto(roots, session, remotes, opts, hooks);
	} finally {
		await Promise.all(roots.map((r) => r.close()));
	}
}

async function getInto(
	roots: SandboxRoot[],
	session: ClientSession,
	remotes: string[],
	opts: GetOptions,
	hooks: TransferHooks,
): Promise<Summary> {
	const started = performance.now();
	const destAbs = resolve(opts.dest ?? ".");
	// stat, not lstat: the -o path the user typed may itself be a symlink (SPEC); nothing below it is followed.
	const destInfo = await stat(destAbs).catch((e) =>
		errno(e) === "ENOENT" ? undefined : Promise.reject(fsError(e, destAbs)),
	);
	const destIsDir = destInfo?.isDirectory() ?? false;
	if (remotes.length > 1 && !destIsDir) {
		throw new PairlinkError(
			"usage",
			`${opts.dest ?? "."} must be an existing directory when getting several files`,
		);
	}
	const jobs: Job[] = [];
	const localRoot = async (dir: string) => {
		const root = await SandboxRoot.open(dir, { followLinks: false });
		roots.push(root);
		return root;
	};
	const fetch = (from: string, root: SandboxRoot, local: string, size: number): Job => ({
		label: from,
		size,
		run: (p) =>
			session.download(from, root, local, {
				overwrite: opts.overwrite,
				onProgress: (d, t) => p(d, t),
			}),
	});
	for (const remote of remotes) {
		const remoteParts = parseWirePath(normalizeRemote(remote));
		const entry = await session.stat(joinWirePath(remoteParts));
		const name = remoteParts.at(-1);
		if (entry.type === "dir") {
			if (!opts.recursive)
				throw new PairlinkError("is-directory", `${JSON.stringify(remote)} is a directory`);
			// Walk (and check every name) before creating anything locally.
			const entries = await session.walk(joinWirePath(remoteParts));
			// Into DEST/<name> (or DEST itself when it does not exist yet and one directory is copied).
			// DEST itself may be a symlink (the user typed it); nothing below it is ever followed.
			if (!destIsDir)
				await mkdir(destAbs, { recursive: true }).catch((e) => Promise.reject(fsError(e, destAbs)));
			const root = await localRoot(destAbs);
			const below = destIsDir && name ? [name] : [];
			if (below.length > 0) await root.mkdir(joinWirePath(below), true);
			for (const e of entries) {
				const local = joinWirePath([...below, ...parseWirePath(e.path)]);
				if (e.type === "dir") await root.mkdir(local, true);
				else if (e.type === "file")
					jobs.push(
						fetch(joinWirePath([...remoteParts, ...parseWirePath(e.path)]), root, local, e.size),
					);
				else
					hooks.onSkip?.(joinWirePath([...remoteParts, e.path]), "symbolic links are not copied");
			}
		} else if (entry.type === "file") {
			if (!name)
				throw new PairlinkError("is-directory", "the shared directory itself is a directory");
			const target = destIsDir ? join(destAbs, name) : destAbs;
			const root = await localRoot(resolve(target, ".."));
			jobs.push(fetch(joinWirePath(remoteParts), root, basename(target), entry.size));
		} else {
			throw new PairlinkError(
				"refused",
				`${JSON.stringify(remote)} is a symbolic link; pairlink does not copy links`,
			);
		}
	}
	return runJobs(jobs, hooks, started);
}

export interface PutOptions {
	recursive: boolean;
	overwrite: boolean;
	/** --to REMOTE_DIR; default: the shared directory's top. */
	to: string | undefined;
}

/** Upload local files (and, with -r, directories) into a remote directory. */
export async function putFiles(
	session: ClientSession,
	locals: string[],
	opts: PutOptions,
	hooks: TransferHooks = {},
): Promise<Summary> {
	const started = performance.now();
	const toParts = parseWirePath(normalizeRemote(opts.to ?? ""));
	const jobs: Job[] = [];
	for (const local of locals) {
		const abs = resolve(local);
		const info = await lstat(abs).catch((e) => Promise.reject(fsError(e, JSON.stringify(local))));
		const name = basename(await realpath(abs).catch(() => abs));
		checkName(name);
		const remoteBase = [...toParts, name];
		if (info.isDirectory()) {
			if (!opts.recursive)
				throw new PairlinkError("is-directory", `${JSON.stringify(local)} is a directory`);
			// Directories level by level: all of one depth at once (their parents exist by then).
			const levels: string[][] = [[joinWirePath(remoteBase)]];
			for await (const item of walkLocal(abs, hooks)) {
				const remote = joinWirePath([...remoteBase, ...item.rel]);
				if (item.dir) {
					levels[item.rel.length] ??= [];
					levels[item.rel.length]?.push(remote);
				} else {
					jobs.push({
						label: item.abs,
						// Unknown until the upload opens it: totals grow as files are reached.
						size: 0,
						run: (p) =>
							session.upload(item.abs, remote, {
								overwrite: opts.overwrite,
								onProgress: (d, t) => p(d, t),
							}),
					});
				}
			}
			for (const level of levels)
				await Promise.all((level ?? []).map((dir) => session.mkdir(dir, true)));
		} else if (info.isFile()) {
			const remote = joinWirePath(remoteBase);
			jobs.push({
				label: local,
				size: info.size,
				run: (p) =>
					session.upload(abs, remote, { overwrite: opts.overwrite, onProgress: (d, t) => p(d, t) }),
			});
		} else {
			throw new PairlinkError(
				"refused",
				`${JSON.stringify(local)} is not a regular file or directory`,
			);
		}
	}
	return runJobs(jobs, hooks, started);
}

/** A local tree, depth first, directories before their contents; symlinks are skipped. */
async function* walkLocal(
	top: string,
	hooks: TransferHooks,
): AsyncGenerator<{ abs: string; rel: string[]; dir: boolean }> {
	const stack: { abs: string; rel: string[] }[] = [{ abs: top, rel: [] }];
	while (stack.length > 0) {
		const d = stack.pop() as { abs: string; rel: string[] };
		// Entry types come with the listing: no stat per file here (the upload's fstat is the only one).
		const entries = await readdir(d.abs, { withFileTypes: true }).catch((e) =>
			Promise.reject(fsError(e, d.abs)),
		);
		entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
		const subdirs: { abs: string; rel: string[] }[] = [];
		for (const entry of entries) {
			const abs = join(d.abs, entry.name);
			try {
				checkName(entry.name);
			} catch (e) {
				hooks.onSkip?.(abs, (e as Error).message);
				continue;
			}
			const rel = [...d.rel, entry.name];
			if (entry.isDirectory()) {
				yield { abs, rel, dir: true };
				subdirs.push({ abs, rel });
			} else if (entry.isFile()) yield { abs, rel, dir: false };
			else hooks.onSkip?.(abs, "not a regular file or directory (symbolic links are not copied)");
		}
		stack.push(...subdirs.reverse());
	}
}

/** Users type "/docs/a.txt" or "docs/"; the wire wants "docs/a.txt". */
export function normalizeRemote(p: string): string {
	return p.replace(/^\/+/, "").replace(/\/+$/, "");
}
