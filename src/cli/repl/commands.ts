/**
 * What can be typed in `pairlink connect`. Every operation goes through the
 * same client functions as the one-shot commands; nothing is implemented
 * twice.
 */
import { lstat, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { getFiles, putFiles } from "../../client/transfer.ts";
import { PairlinkError } from "../../errors.ts";
import { entryFromStats, fsError } from "../../fs/root.ts";
import { reportTransfer } from "../commands/files.ts";
import { adviseOn } from "../error-report.ts";
import { entryLine } from "../format.ts";
import { out, safe } from "../terminal.ts";
import { hasGlob, matchGlob, resolveRemote, splitDirBase, type Word } from "./line.ts";
import type { RemoteLink } from "./remote-link.ts";

export interface ReplState {
	link: RemoteLink;
	/** Remote working directory as a wire path ("" is the top). */
	cwd: string;
	/** Set by exit/quit. */
	done: boolean;
	/** Ctrl-C cancelled the running command. */
	cancelled: boolean;
}

type ArgKind = "remote" | "local" | "command" | "none";

export interface ReplCommand {
	usage: string;
	help: string;
	/** What tab completion offers for the arguments. */
	args: ArgKind;
	run(state: ReplState, words: Word[]): Promise<void>;
}

const usageError = (cmd: string) =>
	new PairlinkError("usage", `usage: ${COMMANDS[cmd]?.usage ?? cmd}`);

/** Split flags (from a fixed set) from operands; "--" ends flags. */
function parseFlags(
	cmd: string,
	words: Word[],
	allowed: readonly string[],
): { flags: Set<string>; rest: Word[] } {
	const flags = new Set<string>();
	const rest: Word[] = [];
	let flagsDone = false;
	for (const w of words) {
		if (!flagsDone && !w.literal && w.text === "--") flagsDone = true;
		else if (!flagsDone && !w.literal && w.text.startsWith("-") && w.text !== "-") {
			if (!allowed.includes(w.text))
				throw new PairlinkError("usage", `${cmd}: unknown option ${w.text}`);
			flags.add(w.text);
		} else rest.push(w);
	}
	return { flags, rest };
}

/** Remote operands with globs expanded against the remote listing. */
async function expandRemote(state: ReplState, words: Word[]): Promise<string[]> {
	const out: string[] = [];
	for (const w of words) {
		const path = resolveRemote(state.cwd, w.text);
		if (!hasGlob(w)) {
			out.push(path);
			continue;
		}
		const [dir, pattern] = splitDirBase(w.text);
		const base = resolveRemote(state.cwd, dir);
		const names = (await (await state.link.session()).list(base)).map((e) => e.name);
		const matches = matchGlob(pattern, names);
		if (matches.length === 0)
			throw new PairlinkError("not-found", `no remote file matches ${JSON.stringify(w.text)}`);
		out.push(...matches.map((n) => (base ? `${base}/${n}` : n)));
	}
	return out;
}

async function expandLocal(words: Word[]): Promise<string[]> {
	const out: string[] = [];
	for (const w of words) {
		if (!hasGlob(w)) {
			out.push(w.text);
			continue;
		}
		const [dir, pattern] = splitDirBase(w.text);
		const names = await readdir(resolve(dir || ".")).catch((e) =>
			Promise.reject(fsError(e, dir || ".")),
		);
		const matches = matchGlob(pattern, names.sort());
		if (matches.length === 0)
			throw new PairlinkError("not-found", `no local file matches ${JSON.stringify(w.text)}`);
		out.push(...matches.map((n) => (dir ? join(dir, n) : n)));
	}
	return out;
}

export const COMMANDS: Record<string, ReplCommand> = {
	ls: {
		usage: "ls [-l] [PATH]",
		help: "List a remote directory (globs allowed)",
		args: "remote",
		async run(state, words) {
			const { flags, rest } = parseFlags("ls", words, ["-l"]);
			const session = await state.link.session();
			const long = flags.has("-l");
			if (rest.length === 0) rest.push({ text: ".", literal: true });
			for (const w of rest) {
				if (hasGlob(w)) {
					for (const p of await expandRemote(state, [w]))
						out(entryLine({ ...(await session.stat(p)), name: p }, long));
					continue;
				}
				for (const e of await session.list(resolveRemote(state.cwd, w.text)))
					out(entryLine(e, long));
			}
		},
	},
	cd: {
		usage: "cd [PATH]",
		help: "Change the remote directory (no PATH: the top)",
		args: "remote",
		async run(state, words) {
			if (words.length > 1) throw usageError("cd");
			const target = resolveRemote(state.cwd, words[0]?.text ?? "/");
			if (target !== "") {
				const entry = await (await state.link.session()).stat(target);
				if (entry.type !== "dir")
					throw new PairlinkError("refused", `${JSON.stringify(target)} is not a directory`);
			}
			state.cwd = target;
		},
	},
	pwd: {
		usage: "pwd",
		help: "Show the remote directory",
		args: "none",
		async run(state) {
			out(`/${safe(state.cwd)}`);
		},
	},
	get: {
		usage: "get [-r] [--overwrite] REMOTE... [LOCAL]",
		help: "Download files (directories with -r); LOCAL defaults to the local directory",
		args: "remote",
		async run(state, words) {
			const { flags, rest } = parseFlags("get", words, ["-r", "--overwrite"]);
			if (rest.length === 0) throw usageError("get");
			// With two or more operands and no glob in the last, the last one is the local destination.
			const last = rest.at(-1) as Word;
			const dest = rest.length > 1 && !hasGlob(last) ? (rest.pop() as Word).text : undefined;
			const remotes = await expandRemote(state, rest);
			const session = await state.link.session();
			await reportTransfer(false, (hooks) =>
				getFiles(
					session,
					remotes,
					{ recursive: flags.has("-r"), overwrite: flags.has("--overwrite"), dest },
					hooks,
				),
			);
		},
	},
	put: {
		usage: "put [-r] [--overwrite] LOCAL... [REMOTE_DIR]",
		help: "Upload files (directories with -r) into the remote directory",
		args: "local",
		async run(state, words) {
			const { flags, rest } = parseFlags("put", words, ["-r", "--overwrite"]);
			if (rest.length === 0) throw usageError("put");
			let to = state.cwd;
			if (rest.length > 1) {
				const last = rest.at(-1) as Word;
				const candidate = resolveRemote(state.cwd, last.text);
				const session = await state.link.session();
				const entry =
					candidate === "" ? { type: "dir" } : await session.stat(candidate).catch(() => undefined);
				// The last operand is the remote directory when it is one, and also
				// when no local file has its name (`put huge.bin upl`): then the
				// server says that `upl` is missing, not the local side.
				const local =
					hasGlob(last) ||
					(await lstat(last.text).then(
						() => true,
						() => false,
					));
				if (entry?.type === "dir" || !local) {
					rest.pop();
					to = candidate;
				}
			}
			const locals = await expandLocal(rest);
			const session = await state.link.session();
			await reportTransfer(false, (hooks) =>
				putFiles(
					session,
					locals,
					{ recursive: flags.has("-r"), overwrite: flags.has("--overwrite"), to },
					hooks,
				),
			);
		},
	},
	mkdir: {
		usage: "mkdir PATH",
		help: "Create a remote directory",
		args: "remote",
		async run(state, words) {
			if (words.length !== 1) throw usageError("mkdir");
			await (await state.link.session())
				.mkdir(resolveRemote(state.cwd, (words[0] as Word).text))
				.catch(adviseOn("exists", "dir-exists"));
		},
	},
	rm: {
		usage: "rm [-r] PATH...",
		help: "Remove remote files (directories with -r; the server must allow deleting)",
		args: "remote",
		async run(state, words) {
			const { flags, rest } = parseFlags("rm", words, ["-r"]);
			if (rest.length === 0) throw usageError("rm");
			const session = await state.link.session();
			for (const p of await expandRemote(state, rest)) await session.rm(p, flags.has("-r"));
		},
	},
	lcd: {
		usage: "lcd [PATH]",
		help: "Change the local directory (no PATH: home)",
		args: "local",
		async run(_state, words) {
			if (words.length > 1) throw usageError("lcd");
			const target = resolve(words[0]?.text ?? process.env.HOME ?? ".");
			try {
				process.chdir(target);
			} catch (e) {
				adviseOn("not-found", "local-path")(fsError(e, JSON.stringify(target)));
			}
		},
	},
	lls: {
		usage: "lls [-l] [PATH]",
		help: "List a local directory",
		args: "local",
		async run(_state, words) {
			const { flags, rest } = parseFlags("lls", words, ["-l"]);
			const dir = resolve(rest[0]?.text ?? ".");
			const names = await readdir(dir).catch((e) =>
				adviseOn("not-found", "local-path")(fsError(e, JSON.stringify(dir))),
			);
			for (const name of names.sort()) {
				const s = await lstat(join(dir, name)).catch(() => undefined);
				if (s) out(entryLine(entryFromStats(name, s), flags.has("-l")));
			}
		},
	},
	lpwd: {
		usage: "lpwd",
		help: "Show the local directory",
		args: "none",
		async run() {
			out(process.cwd());
		},
	},
	help: {
		usage: "help [COMMAND]",
		help: "Show the commands, or one command's usage",
		args: "command",
		async run(_state, words) {
			const name = words[0]?.text;
			if (name) {
				const c = COMMANDS[name];
				if (!c)
					throw new PairlinkError("usage", `no such command: ${safe(name)}`, {
						advice: "shell-help",
					});
				out(commandHelp(c));
				return;
			}
			for (const line of helpLines(process.stdout.columns || 80)) out(line);
		},
	},
	exit: {
		usage: "exit",
		help: "End the session (also quit, Ctrl-D)",
		args: "none",
		async run(state) {
			state.done = true;
		},
	},
};
export const commandHelp = (c: ReplCommand) => `${c.usage}\n  ${c.help}`;

/** The command list, each description wrapped to the width (at most 120 columns). */
export function helpLines(columns: number): string[] {
	const width = Math.min(Math.max(columns, 60), 120) - 1;
	const usageWidth = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
	const indent = usageWidth + 4;
	const lines: string[] = [];
	for (const c of Object.values(COMMANDS)) {
		let line = `  ${c.usage.padEnd(usageWidth)}  `;
		for (const word of c.help.split(" ")) {
			if (line.length + word.length > width && line.trim().length > 0 && line.length > indent) {
				lines.push(line.trimEnd());
				line = " ".repeat(indent);
			}
			line += `${word} `;
		}
		lines.push(line.trimEnd());
	}
	return lines;
}

COMMANDS.quit = { ...(COMMANDS.exit as ReplCommand), usage: "quit", help: "End the session" };
