/** The one-shot file commands: ls, get, put, mkdir, rm. */
import { defineCommand } from "citty";
import {
	type Action,
	type FileDone,
	type FileFailed,
	getFiles,
	putFiles,
	type Summary,
	type TransferHooks,
} from "../../client/transfer.ts";
import { type ErrorCode, EXIT, PairlinkError } from "../../errors.ts";
import { checkExcludes } from "../../fs/exclude.ts";
import { normalizeRemote } from "../../fs/safe-path.ts";
import { jsonArg } from "../context.ts";
import { adviseOn, sentence } from "../error-report.ts";
import { entryJson, entryLine, formatBytes, formatRate } from "../format.ts";
import { withSession } from "../open-connection.ts";
import { progressFor } from "../progress.ts";
import { logger, out, outJson, safe } from "../terminal.ts";
import { getToStdout } from "./stream.ts";

const hostArg = {
	host: {
		type: "positional",
		description: "HOST[:PORT] or the name of a trusted device",
		required: true,
	},
} as const;

const fileLine = (f: FileDone) =>
	`${safe(f.path)}  ${formatBytes(f.bytes)}${f.resumedFrom > 0 ? ` (resumed at ${formatBytes(f.resumedFrom)})` : ""}`;

/** `resumed`: bytes already verified here, counted in `s.bytes` but not sent again. */
export const summaryLine = (s: Summary, resumed = 0) => {
	const sent = s.bytes - resumed;
	const rest = resumed > 0 ? `, resumed (${formatBytes(resumed)} were already there)` : "";
	return `${s.files} file${s.files === 1 ? "" : "s"}, ${formatBytes(sent)} in ${s.seconds.toFixed(2)} s (${formatRate(sent, s.seconds)})${rest}${s.upToDate > 0 ? `, ${s.upToDate} up to date` : ""}${s.failed.length > 0 ? `, ${s.failed.length} failed` : ""}`;
};

/** --dry-run, for people: what would happen to each file. */
const PLANNED: Record<Action, string> = {
	move: "would move",
	"up-to-date": "up to date",
	overwrite: "would overwrite",
	refuse: "would refuse (it exists and differs; --overwrite replaces it)",
};

/** The flags get and put share (SPEC "Moving files"). */
const movingArgs = {
	exclude: {
		type: "string",
		description: "Leave out files and directories matching GLOB (repeatable)",
		valueHint: "GLOB",
	},
	checksum: {
		type: "boolean",
		description: "Up to date means the same SHA-256, not the same size and time",
	},
	"dry-run": { type: "boolean", description: "Say what would happen to each file; change nothing" },
} as const;

/** citty keeps only the last of a repeated option: every --exclude, in order. */
export function excludesOf(rawArgs: readonly string[]): string[] {
	const found: string[] = [];
	for (let i = 0; i < rawArgs.length; i++) {
		const a = rawArgs[i] as string;
		if (a === "--") break;
		if (a === "--exclude" && i + 1 < rawArgs.length) found.push(rawArgs[++i] as string);
		else if (a.startsWith("--exclude=")) found.push(a.slice("--exclude=".length));
	}
	checkExcludes(found);
	return found;
}

/** The short stable word of SPEC's `error` objects, by error code. */
const REASONS: Partial<Record<ErrorCode, string>> = {
	"not-found": "not-found",
	"local-not-found": "not-found",
	exists: "exists",
	"local-exists": "exists",
	"invalid-path": "invalid-name",
	"invalid-name": "invalid-name",
	busy: "in-use",
	"stream-broken": "interrupted",
};

export const reasonOf = (e: PairlinkError): string => REASONS[e.code] ?? e.code;

/**
 * The error a transfer with failed files ends with: a transfer failure
 * (exit 6) if there was one, else the first refusal (exit 5). One failed
 * file is its own error; several were each reported, and this counts them.
 */
function failureOf(s: Summary): PairlinkError {
	const failed = s.failed.map((f) => f.error);
	const worst = failed.find((e) => e.exitCode === EXIT.transfer) ?? (failed[0] as PairlinkError);
	if (failed.length === 1) return worst;
	const asked = s.files + s.upToDate + failed.length;
	const others = s.files + s.upToDate > 0 ? "; the others were moved or up to date" : "";
	// Not the first failure's own advice: it need not fit the others.
	return new PairlinkError(
		worst.code,
		`${failed.length} of ${asked} files failed, each named above with its reason${others}`,
		{ advice: "several-failed" },
	);
}

/**
 * Report a many-file transfer: one line (or JSON object) per file moved or
 * failed, warnings for skipped entries, live bars on a terminal, a summary
 * at the end; then fail with the exit code SPEC gives when any file failed.
 * The interactive session reports through the same function.
 */
export async function reportTransfer(
	json: boolean,
	run: (hooks: TransferHooks) => Promise<Summary>,
): Promise<Summary> {
	const progress = progressFor(json);
	// Without --json a lone failure is held back: it becomes the command's own error message.
	let held: FileFailed | undefined;
	let resumed = 0;
	let reportedEach = false;
	// Files that failed for one reason (a destination directory that could not be made) name it once.
	const told = new Set<string>();
	const tell = (f: FileFailed) => {
		const line = sentence(safe(f.error.message));
		logger.error(told.has(line) ? `${safe(f.path)} failed for the same reason.` : line);
		told.add(line);
	};
	try {
		const summary = await run({
			...progress.hooks,
			onFile: (f) => {
				if (!f.skipped) resumed += f.resumedFrom;
				if (json && f.skipped)
					outJson({
						path: f.path,
						bytes: f.bytes,
						...(f.sha256 ? { sha256: f.sha256 } : {}),
						skipped: f.skipped,
					});
				else if (json)
					outJson({ path: f.path, bytes: f.bytes, sha256: f.sha256, resumedFrom: f.resumedFrom });
				// For people, files already up to date are counted in the summary, not listed (as rsync).
				else if (!f.skipped) progress.print(fileLine(f));
			},
			onPlan: (path, action, bytes) => {
				if (json) outJson({ path, bytes, action, dryRun: true });
				else
					out(
						`${PLANNED[action]}  ${safe(path)}${action === "up-to-date" ? "" : `  ${formatBytes(bytes)}`}`,
					);
			},
			onFailed: (f) => {
				if (json) {
					const { error } = f;
					outJson({
						event: "error",
						path: f.path,
						code: error.exitCode,
						reason: reasonOf(error),
						message: sentence(error.message),
					});
				} else if (held === undefined && !reportedEach) held = f;
				else {
					if (held) tell(held);
					held = undefined;
					reportedEach = true;
					tell(f);
				}
			},
			onSkip: (path, why) => {
				if (json) outJson({ path, skipped: "symlink", reason: why });
				else logger.warn(`Skipped ${safe(path)}: ${safe(why)}`);
			},
		});
		progress.stop();
		if (json) {
			outJson({
				event: "done",
				files: summary.files,
				upToDate: summary.upToDate,
				failed: summary.failed.length,
				bytes: summary.bytes,
				seconds: Number(summary.seconds.toFixed(3)),
			});
		} else if (summary.files + summary.upToDate > 0 || summary.failed.length !== 1)
			out(summaryLine(summary, resumed)); // a lone failure is all there is to say: it is the error
		if (summary.failed.length > 0) throw failureOf(summary);
		return summary;
	} finally {
		progress.stop();
	}
}

export const lsCommand = defineCommand({
	meta: { name: "ls", description: "List a remote directory" },
	args: {
		...hostArg,
		path: {
			type: "positional",
			description: "Remote path (default: the top of the shared directory)",
			required: false,
		},
		long: { type: "boolean", alias: "l", description: "Show type, size and modification time" },
		...jsonArg,
	},
	async run({ args }) {
		const entries = await withSession(args.host, {}, (c) =>
			c.session.list(normalizeRemote(args.path ?? "")),
		);
		for (const e of entries) {
			if (args.json) outJson(entryJson(e));
			else out(entryLine(e, args.long === true));
		}
	},
});

export const getCommand = Object.assign(
	defineCommand({
		meta: { name: "get", description: "Download files (and directories with -r) from a device" },
		args: {
			...hostArg,
			remote: { type: "positional", description: "Remote paths (one or more)", required: true },
			output: {
				type: "string",
				alias: "o",
				description: "Destination file or directory (default: .); - writes one file to stdout",
				valueHint: "DEST",
			},
			recursive: {
				type: "boolean",
				alias: "r",
				description: "Copy directories and everything in them",
			},
			overwrite: { type: "boolean", description: "Replace existing local files that differ" },
			...movingArgs,
			...jsonArg,
		},
		async run({ args, rawArgs }) {
			const options = {
				recursive: args.recursive === true,
				overwrite: args.overwrite === true,
				dest: args.output,
				exclude: excludesOf(rawArgs),
				checksum: args.checksum === true,
				dryRun: args["dry-run"] === true,
			};
			const json = args.json === true;
			const remotes = args._.slice(1);
			await withSession(args.host, {}, async (c) => {
				if (args.output === "-")
					await getToStdout(c.session, remotes, { recursive: options.recursive, json });
				else await reportTransfer(json, (hooks) => getFiles(c.session, remotes, options, hooks));
			});
		},
	}),
	{ variadic: true },
);

export const putCommand = Object.assign(
	defineCommand({
		meta: { name: "put", description: "Upload files (and directories with -r) to a device" },
		args: {
			...hostArg,
			local: {
				type: "positional",
				description: "Local paths (one or more); - reads standard input into --to REMOTE",
				required: true,
			},
			to: {
				type: "string",
				description:
					"Where on the device: a directory when it exists there, ends with /, or several sources or -r are given (created if needed); else the file to write (default: the top)",
				valueHint: "REMOTE",
			},
			recursive: {
				type: "boolean",
				alias: "r",
				description: "Copy directories and everything in them",
			},
			overwrite: {
				type: "boolean",
				description: "Replace existing remote files that differ (the server must allow it)",
			},
			...movingArgs,
			...jsonArg,
		},
		async run({ args, rawArgs }) {
			const locals = args._.slice(1);
			if (locals.includes("-") && locals.length > 1)
				throw new PairlinkError("usage", "put - reads standard input: it is the only LOCAL then");
			const options = {
				recursive: args.recursive === true,
				overwrite: args.overwrite === true,
				to: args.to,
				exclude: excludesOf(rawArgs),
				checksum: args.checksum === true,
				dryRun: args["dry-run"] === true,
				stdin: () => Bun.stdin.stream() as unknown as AsyncIterable<Uint8Array>,
			};
			await withSession(args.host, {}, (c) =>
				reportTransfer(args.json === true, (hooks) => putFiles(c.session, locals, options, hooks)),
			);
		},
	}),
	{ variadic: true },
);

export const mkdirCommand = defineCommand({
	meta: { name: "mkdir", description: "Create a remote directory" },
	args: {
		...hostArg,
		path: { type: "positional", description: "Remote path of the new directory", required: true },
	},
	async run({ args }) {
		const path = normalizeRemote(args.path);
		await withSession(args.host, {}, (c) =>
			c.session
				.mkdir(path)
				.catch(adviseOn("exists", "dir-exists"))
				.catch((e: unknown) => {
					// The server says the path is "not found": it is the parent that is missing.
					if (!(e instanceof PairlinkError) || e.code !== "not-found" || !path.includes("/"))
						throw e;
					throw new PairlinkError(
						"not-found",
						`The parent directory of ${JSON.stringify(path)} does not exist on the server`,
						{ advice: "mkdir-parents", cause: e },
					);
				}),
		);
	},
});

export const rmCommand = defineCommand({
	meta: {
		name: "rm",
		description: "Remove a remote file, or a directory with -r (the server must allow deleting)",
	},
	args: {
		...hostArg,
		path: { type: "positional", description: "Remote path to remove", required: true },
		recursive: {
			type: "boolean",
			alias: "r",
			description: "Remove a directory and everything in it",
		},
	},
	async run({ args }) {
		const path = normalizeRemote(args.path);
		// Refused here: the server would only say it has no permission, which is not why.
		if (path === "")
			throw new PairlinkError("refused", "The top of the shared directory cannot be removed", {
				advice: "rm-top",
			});
		await withSession(args.host, {}, (c) => c.session.rm(path, args.recursive === true));
	},
});
