/**
 * What every many-file transfer shares: the plan (files to move, files
 * already failed), the runner that moves them several at a time over one
 * connection, and SPEC's rule for what a destination names. Every file
 * asked for ends up moved or failed with its path and why; one failure
 * never stops the others.
 */
import { PairlinkError } from "../errors.ts";
import type { TransferResult } from "../session/client-session.ts";
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
	/** --dry-run: what would happen to one file. */
	onPlan?(path: string, action: Action, bytes: number): void;
}

/** What happens to one file (SPEC "--dry-run"): moved, already there, replaced, or refused. */
export type Action = "move" | "up-to-date" | "overwrite" | "refuse";

export interface RunOptions {
	/** Say per file what would happen; change nothing. */
	dryRun?: boolean;
	/** The bytes free where downloads land, to refuse at once what cannot fit. */
	freeSpace?: () => Promise<number>;
}

export interface Summary {
	/** Files moved. */
	files: number;
	/** Files skipped as already up to date. */
	upToDate: number;
	failed: FileFailed[];
	bytes: number;
	seconds: number;
}

/** Files moved at once over one connection. */
export const PARALLEL_FILES = 64;

export interface Job {
	label: string;
	/** The file on this device, for failures that happen here (default: `label`). */
	local?: string;
	/** The remote file, for an upload: it fails with a directory above it the server refused. */
	remote?: string;
	size: number;
	/**
	 * What will happen to it, decided from metadata already at hand (a walk,
	 * a local lstat) before anything moves; without it the receiver decides
	 * while moving.
	 */
	assess?(): Promise<Action>;
	/** `size` is reported once known (a tree's files are not stat-ed until they are opened). */
	run(onProgress: (done: number, size: number) => void): Promise<TransferResult>;
}

/** Files planned and files already known to fail, before anything moves. */
export class Plan {
	readonly jobs: Job[] = [];
	readonly failed: FileFailed[] = [];
	/** Trees without files: their directories are made once every source is planned. */
	readonly emptyTrees: (() => Promise<unknown>)[] = [];
	constructor(private readonly hooks: TransferHooks) {}

	fail(path: string, error: PairlinkError): void {
		this.failed.push({ path, error });
		this.hooks.onFailed?.({ path, error });
	}

	/** Destination -> the source that goes there: two sources of one command must not land on one name. */
	private readonly claimed = new Map<string, string>();

	/** Claim `target` for `source`; a later claim fails, naming both, and returns false. */
	claim(source: string, target: string, side: "here" | "server"): boolean {
		const other = this.claimed.get(target);
		if (other === undefined) {
			this.claimed.set(target, source);
			return true;
		}
		const where = side === "here" ? "on this device" : "on the server";
		const why = `${JSON.stringify(source)} would land on ${JSON.stringify(target)} ${where}, where ${JSON.stringify(other)} goes; move them into separate directories`;
		this.fail(source, new PairlinkError(side === "here" ? "local-exists" : "exists", why));
		return false;
	}
}

/**
 * Run jobs with bounded concurrency. A file that fails is reported and the
 * others go on; only a failure of the connection itself ends the transfer.
 */
export async function runJobs(
	plan: Plan,
	hooks: TransferHooks,
	started: number,
	opts: RunOptions = {},
): Promise<Summary> {
	const actions = await assessAll(plan);
	const upToDate = plan.jobs.filter((j) => actions.get(j) === "up-to-date");
	const jobs = plan.jobs.filter((j) => actions.get(j) !== "up-to-date");
	const seconds = () => (performance.now() - started) / 1000;
	if (opts.dryRun) {
		for (const job of plan.jobs) hooks.onPlan?.(job.label, actions.get(job) ?? "move", job.size);
		const moving = jobs.filter((j) => actions.get(j) !== "refuse");
		const bytes = moving.reduce((n, j) => n + j.size, 0);
		return {
			files: moving.length,
			upToDate: upToDate.length,
			failed: plan.failed,
			bytes,
			seconds: seconds(),
		};
	}
	for (const job of upToDate)
		hooks.onFile?.({
			path: job.label,
			bytes: job.size,
			sha256: "",
			resumedFrom: 0,
			skipped: "up-to-date",
		});
	if (opts.freeSpace) await checkSpace(jobs, actions, opts.freeSpace);
	for (const make of plan.emptyTrees) await make();
	let total = jobs.reduce((n, j) => n + j.size, 0);
	const progress = new Map<Job, number>();
	let doneBytes = 0;
	let files = 0;
	let upToDateCount = upToDate.length;
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
				total += r.bytes - job.size;
				if (r.skipped) {
					total -= r.bytes;
					upToDateCount++;
				} else {
					doneBytes += r.bytes;
					files++;
				}
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
	return {
		files,
		upToDate: upToDateCount,
		failed: plan.failed,
		bytes: doneBytes,
		seconds: seconds(),
	};
}

/** Every job's action, decided several at a time; one that cannot be assessed fails alone. */
async function assessAll(plan: Plan): Promise<Map<Job, Action>> {
	const actions = new Map<Job, Action>();
	const failed = new Set<Job>();
	let next = 0;
	async function worker() {
		for (let job = plan.jobs[next++]; job; job = plan.jobs[next++]) {
			if (!job.assess) continue;
			try {
				actions.set(job, await job.assess());
			} catch (e) {
				const error = accountFor(e, job.local ?? job.label);
				if (endsTransfer(error)) throw error;
				plan.fail(job.label, error);
				failed.add(job);
			}
		}
	}
	await Promise.all(Array.from({ length: Math.min(PARALLEL_FILES, plan.jobs.length) }, worker));
	if (failed.size > 0)
		plan.jobs.splice(0, plan.jobs.length, ...plan.jobs.filter((j) => !failed.has(j)));
	return actions;
}

/** SPEC: the receiver refuses at once, with the numbers, what will not fit. */
async function checkSpace(
	jobs: readonly Job[],
	actions: ReadonlyMap<Job, Action>,
	freeSpace: () => Promise<number>,
): Promise<void> {
	const needed = jobs.reduce((n, j) => (actions.get(j) === "refuse" ? n : n + j.size), 0);
	if (needed === 0) return;
	const free = await freeSpace();
	if (needed > free)
		throw new PairlinkError(
			"disk-full",
			`This device has ${free} bytes free where the files go, and they need ${needed}; nothing was written`,
		);
}

/** Run `step`; a failure that is about this one source is recorded, a lost connection is thrown. */
export async function forSource(
	plan: Plan,
	label: string,
	step: () => Promise<void>,
): Promise<void> {
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
export async function destIsDirectory(
	given: string,
	isDir: () => Promise<boolean>,
	sources: number,
	recursive: boolean,
): Promise<boolean> {
	return /[/\\]$/.test(given) || sources > 1 || recursive || (await isDir());
}
