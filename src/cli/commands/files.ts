/** The one-shot file commands: ls, get, put, mkdir, rm. */
import { defineCommand } from "citty";
import {
	type FileDone,
	getFiles,
	normalizeRemote,
	putFiles,
	type Summary,
	type TransferHooks,
} from "../../client/transfer.ts";
import { jsonArg } from "../context.ts";
import { adviseOn } from "../error-report.ts";
import { entryJson, entryLine, formatBytes, formatRate } from "../format.ts";
import { withSession } from "../open-connection.ts";
import { progressFor } from "../progress.ts";
import { logger, out, outJson, safe } from "../terminal.ts";

const hostArg = {
	host: {
		type: "positional",
		description: "HOST[:PORT] or the name of a trusted device",
		required: true,
	},
} as const;

const fileLine = (f: FileDone) =>
	`${safe(f.path)}  ${formatBytes(f.bytes)}${f.resumedFrom > 0 ? ` (resumed at ${formatBytes(f.resumedFrom)})` : ""}`;

export const summaryLine = (s: Summary) =>
	`${s.files} file${s.files === 1 ? "" : "s"}, ${formatBytes(s.bytes)} in ${s.seconds.toFixed(2)} s (${formatRate(s.bytes, s.seconds)})`;

/**
 * Report a many-file transfer: one line (or JSON object) per file, warnings
 * for skipped entries, live bars on a terminal, a summary at the end. The
 * interactive session reports through the same function.
 */
export async function reportTransfer(
	json: boolean,
	run: (hooks: TransferHooks) => Promise<Summary>,
): Promise<Summary> {
	const progress = progressFor(json);
	try {
		const summary = await run({
			...progress.hooks,
			onFile: (f) => {
				if (json)
					outJson({ path: f.path, bytes: f.bytes, sha256: f.sha256, resumedFrom: f.resumedFrom });
				else progress.print(fileLine(f));
			},
			onSkip: (path, why) => logger.warn(`Skipped ${safe(path)}: ${safe(why)}`),
		});
		progress.stop();
		if (json) {
			outJson({
				event: "done",
				files: summary.files,
				bytes: summary.bytes,
				seconds: Number(summary.seconds.toFixed(3)),
			});
		} else out(summaryLine(summary));
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
				description: "Destination file or directory (default: .)",
				valueHint: "DEST",
			},
			recursive: {
				type: "boolean",
				alias: "r",
				description: "Copy directories and everything in them",
			},
			overwrite: { type: "boolean", description: "Replace existing local files" },
			...jsonArg,
		},
		async run({ args }) {
			const options = {
				recursive: args.recursive === true,
				overwrite: args.overwrite === true,
				dest: args.output,
			};
			await withSession(args.host, {}, (c) =>
				reportTransfer(args.json === true, (hooks) =>
					getFiles(c.session, args._.slice(1), options, hooks),
				),
			);
		},
	}),
	{ variadic: true },
);

export const putCommand = Object.assign(
	defineCommand({
		meta: { name: "put", description: "Upload files (and directories with -r) to a device" },
		args: {
			...hostArg,
			local: { type: "positional", description: "Local paths (one or more)", required: true },
			to: {
				type: "string",
				description: "Remote directory to put them in (default: the top)",
				valueHint: "REMOTE_DIR",
			},
			recursive: {
				type: "boolean",
				alias: "r",
				description: "Copy directories and everything in them",
			},
			overwrite: {
				type: "boolean",
				description: "Replace existing remote files (the server must allow it)",
			},
			...jsonArg,
		},
		async run({ args }) {
			const options = {
				recursive: args.recursive === true,
				overwrite: args.overwrite === true,
				to: args.to,
			};
			await withSession(args.host, {}, (c) =>
				reportTransfer(args.json === true, (hooks) =>
					putFiles(c.session, args._.slice(1), options, hooks),
				),
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
		await withSession(args.host, {}, (c) =>
			c.session.mkdir(normalizeRemote(args.path)).catch(adviseOn("exists", "dir-exists")),
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
		await withSession(args.host, {}, (c) =>
			c.session.rm(normalizeRemote(args.path), args.recursive === true),
		);
	},
});
