/** The one-shot file commands: ls, get, put, mkdir, rm. */
import { defineCommand } from "citty";
import type { FileDone } from "../../client/transfer.ts";
import { getFiles, normalizeRemote, putFiles, type Summary } from "../../client/transfer.ts";
import { jsonArg } from "../context.ts";
import { entryJson, entryLine, formatBytes, formatRate } from "../format.ts";
import { withSession } from "../open-connection.ts";
import { logger, out, outJson, safe } from "../terminal.ts";

const hostArg = {
	host: {
		type: "positional",
		description: "HOST[:PORT] or the name of a trusted device",
		required: true,
	},
} as const;

function printFile(json: boolean) {
	return (f: FileDone) => {
		if (json)
			outJson({ path: f.path, bytes: f.bytes, sha256: f.sha256, resumedFrom: f.resumedFrom });
		else
			out(
				`${safe(f.path)}  ${formatBytes(f.bytes)}${f.resumedFrom > 0 ? ` (resumed at ${formatBytes(f.resumedFrom)})` : ""}`,
			);
	};
}

function printSummary(json: boolean, s: Summary): void {
	if (json)
		outJson({
			event: "done",
			files: s.files,
			bytes: s.bytes,
			seconds: Number(s.seconds.toFixed(3)),
		});
	else
		out(
			`${s.files} file${s.files === 1 ? "" : "s"}, ${formatBytes(s.bytes)} in ${s.seconds.toFixed(2)} s (${formatRate(s.bytes, s.seconds)})`,
		);
}

const skip = (path: string, why: string) => logger.warn(`Skipped ${safe(path)}: ${safe(why)}`);

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
			const remotes = args._.slice(1);
			const json = args.json === true;
			const summary = await withSession(args.host, {}, (c) =>
				getFiles(
					c.session,
					remotes,
					{
						recursive: args.recursive === true,
						overwrite: args.overwrite === true,
						dest: args.output,
					},
					{ onFile: printFile(json), onSkip: skip },
				),
			);
			printSummary(json, summary);
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
			const locals = args._.slice(1);
			const json = args.json === true;
			const summary = await withSession(args.host, {}, (c) =>
				putFiles(
					c.session,
					locals,
					{ recursive: args.recursive === true, overwrite: args.overwrite === true, to: args.to },
					{ onFile: printFile(json), onSkip: skip },
				),
			);
			printSummary(json, summary);
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
		await withSession(args.host, {}, (c) => c.session.mkdir(normalizeRemote(args.path)));
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
