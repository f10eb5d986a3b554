/**
 * `pairlink connect`: a prompt on a terminal, or commands read line by line
 * from a pipe (like `sftp -b -`). Errors never end an interactive session;
 * in batch mode the first failing command ends it with its exit code.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { ADVICE, EXIT, type ExitCode, isPairlinkError, PairlinkError } from "../../errors.ts";
import { writeFileAtomic } from "../../store/state-dir.ts";
import { stateDir } from "../context.ts";
import { reportError } from "../error-report.ts";
import { stdinLines } from "../line-reader.ts";
import { logger, out, safe } from "../terminal.ts";
import { COMMANDS, commandHelp, type ReplState } from "./commands.ts";
import { resolveRemote, splitDirBase, splitLine } from "./line.ts";
import type { RemoteLink } from "./remote-link.ts";

const HISTORY_FILE = "history";
const HISTORY_LINES = 1000;

/** Run one typed line; resolves with its exit code (0 on success). `where` locates an error. */
export async function runLine(
	state: ReplState,
	line: string,
	debug: boolean,
	where?: string,
): Promise<ExitCode> {
	try {
		const words = splitLine(line);
		const first = words.shift();
		if (!first) return EXIT.ok;
		const command = COMMANDS[first.text];
		if (!command)
			throw new PairlinkError("usage", `unknown command ${JSON.stringify(safe(first.text))}`, {
				advice: "shell-help",
			});
		// `ls --help` as on the command line: the usage, not an unknown option.
		if (words.some((w) => !w.literal && (w.text === "--help" || w.text === "-h"))) {
			out(commandHelp(command));
			return EXIT.ok;
		}
		await command.run(state, words);
		return EXIT.ok;
	} catch (e) {
		// The user's own Ctrl-C closed the connection: say that, not "the server closed it".
		const error = state.cancelled
			? new PairlinkError("interrupted", "Cancelled by Ctrl-C", { advice: "user-cancelled" })
			: inShell(e);
		// There is no --help in a session: its own help command says the usage.
		const usageHint = ADVICE["shell-help"];
		return reportError(
			error,
			debug,
			where === undefined ? { usageHint } : { prefix: where, usageHint },
		);
	} finally {
		state.cancelled = false;
	}
}

/**
 * Commands from a pipe, like `sftp -b`: blank lines and `# comments` are
 * skipped, each command is echoed to stderr as it runs, and the first
 * failure stops the run with its exit code, naming its line.
 */
export async function runBatch(state: ReplState, debug: boolean): Promise<ExitCode> {
	const lines = stdinLines();
	for (let number = 1; ; number++) {
		const line = await lines.next();
		if (line === undefined || state.done) break;
		const command = line.trim();
		if (command === "" || command.startsWith("#")) continue;
		process.stderr.write(`pairlink> ${safe(command)}\n`);
		const code = await runLine(state, line, debug, `line ${number}: ${safe(command)}`);
		if (code !== EXIT.ok) return code;
		if (state.done) break;
	}
	return EXIT.ok;
}

/** A prompt with completion and history; resolves when the user leaves. */
export async function runInteractive(state: ReplState, debug: boolean): Promise<ExitCode> {
	const history = await loadHistory();
	const rl = createInterface({
		input: process.stdin,
		output: process.stdout,
		terminal: true,
		history,
		historySize: HISTORY_LINES,
		removeHistoryDuplicates: true,
		completer: (line: string, cb: (err: Error | null, result: [string[], string]) => void) => {
			complete(state, line).then(
				(r) => cb(null, r),
				() => cb(null, [[], line]),
			);
		},
	});
	let running = false;
	let closed = false;
	rl.on("close", () => {
		closed = true;
	});
	rl.on("SIGINT", () => {
		if (running) {
			// Cancel the transfer: the partial file stays resumable; the next command reconnects.
			state.cancelled = true;
			state.link.cancel();
			process.stdout.write("\n");
			return;
		}
		rl.write(null, { ctrl: true, name: "u" });
		process.stdout.write("^C\n");
		rl.prompt();
	});
	// A warning while the prompt waits: clear the prompt's line, print it, draw the prompt again.
	state.link.notice = (text) => {
		if (running) {
			logger.warn(text);
			return;
		}
		process.stdout.write("\r\u001b[K");
		logger.warn(text);
		rl.prompt(true);
	};
	const prompt = () => {
		rl.setPrompt(`${safe(state.link.peerName)}:/${safe(state.cwd)}> `);
		rl.prompt();
	};
	out(
		`Connected to ${safe(state.link.peerName)}. Type help for the commands, exit or Ctrl-D to leave.`,
	);
	prompt();
	for await (const line of rl as AsyncIterable<string>) {
		// readline stays unpaused while a command runs: a paused terminal would
		// not deliver Ctrl-C until the command ended.
		running = true;
		// An error was reported by runLine; an interactive session goes on regardless.
		await runLine(state, line, debug);
		running = false;
		// Saved after every command: a session that ends badly keeps its history too.
		await saveHistory(rl);
		// Ctrl-D typed while the command ran closed readline: no prompt after that.
		if (state.done || closed) break;
		prompt();
	}
	// Ctrl-D: end the prompt's line, so the shell's prompt starts on its own.
	if (!state.done) process.stdout.write("\n");
	rl.close();
	return EXIT.ok;
}

async function complete(state: ReplState, line: string): Promise<[string[], string]> {
	let words: ReturnType<typeof splitLine>;
	try {
		words = splitLine(line);
	} catch {
		return [[], line];
	}
	const endsInSpace = /\s$/.test(line) || line === "";
	if (words.length === 0 || (words.length === 1 && !endsInSpace)) {
		const partial = words[0]?.text ?? "";
		return [
			Object.keys(COMMANDS)
				.filter((c) => c.startsWith(partial))
				.map((c) => `${c} `),
			partial,
		];
	}
	const kind = COMMANDS[words[0]?.text ?? ""]?.args;
	const partial = endsInSpace ? "" : (words.at(-1)?.text ?? "");
	const [dir, base] = splitDirBase(partial);
	let names: string[] = [];
	if (kind === "command") names = Object.keys(COMMANDS);
	else if (kind === "remote") {
		const entries = await (await state.link.session()).list(resolveRemote(state.cwd, dir || "."));
		names = entries.map((e) => (e.type === "dir" ? `${e.name}/` : e.name));
	} else if (kind === "local") {
		const { readdir } = await import("node:fs/promises");
		const entries = await readdir(dir || ".", { withFileTypes: true });
		names = entries.map((e) => (e.isDirectory() ? `${e.name}/` : e.name));
	}
	const prefix = dir ? `${dir}/` : "";
	// readline prints the candidates as they are: remote names are escaped
	// like every other text from the peer (a name with a control character
	// is offered in its escaped, harmless spelling).
	const hits = names
		.filter((n) => n.startsWith(base))
		.map((n) => safe(prefix + n.replace(/([\s'"\\])/g, "\\$1")));
	return [hits, partial];
}

async function loadHistory(): Promise<string[]> {
	const text = await readFile(join(stateDir(), HISTORY_FILE), "utf8").catch(() => "");
	// readline wants the most recent line first.
	return text.split("\n").filter(Boolean).slice(-HISTORY_LINES).reverse();
}

async function saveHistory(rl: Interface): Promise<void> {
	const lines = ((rl as unknown as { history?: string[] }).history ?? [])
		.slice(0, HISTORY_LINES)
		.reverse();
	await writeFileAtomic(join(stateDir(), HISTORY_FILE), `${lines.join("\n")}\n`).catch(
		() => undefined,
	);
}

export function newState(link: RemoteLink): ReplState {
	return { link, cwd: "", done: false, cancelled: false };
}

/** A command-line hint that names `pairlink ls` becomes the session's own `ls`. */
const inShell = (e: unknown): unknown =>
	isPairlinkError(e) && e.code === "not-found" && !e.advice
		? new PairlinkError("not-found", e.message, { advice: "shell-ls", cause: e })
		: e;
