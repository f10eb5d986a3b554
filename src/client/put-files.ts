/**
 * Uploads: plan every file (walking local trees, checking that each name
 * may cross the wire), create the remote directories level by level, then
 * move the files several at a time over the one connection.
 */
import { lstat, readdir, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { PairlinkError } from "../errors.ts";
import { joinWirePath, normalizeRemote, parseWirePath, wireNameProblem } from "../fs/safe-path.ts";
import type { ClientSession } from "../session/client-session.ts";
import { endsTransfer, onThisDevice } from "./file-failures.ts";
import {
	destIsDirectory,
	forSource,
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
	const upload = (label: string, abs: string, remoteParts: string[], size: number) => {
		const remote = joinWirePath(remoteParts);
		if (!plan.claim(label, remote, "server")) return;
		plan.jobs.push({
			label,
			remote,
			size,
			run: (p) =>
				session.upload(abs, remote, { overwrite: opts.overwrite, onProgress: (d, t) => p(d, t) }),
		});
	};
	const trees: { label: string; abs: string; base: string[] }[] = [];
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
				trees.push({ label: local, abs, base: remote });
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
				plan.fail(shown, new PairlinkError("invalid-name", what));
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
