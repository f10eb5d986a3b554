/**
 * The only way text reaches the terminal. Results go to stdout; logs,
 * prompts and errors to stderr through one consola instance.
 */
import { createConsola } from "consola";
import { escapeForTerminal } from "../fs/safe-path.ts";

export const logger = createConsola({
	stdout: process.stderr,
	stderr: process.stderr,
	formatOptions: { date: false },
});

// `pairlink ls … | head`: a reader that goes away is not an error worth a stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
	if (e.code === "EPIPE") process.exit(0);
});

export function out(line: string): void {
	process.stdout.write(`${line}\n`);
}

export function outJson(value: unknown): void {
	process.stdout.write(`${JSON.stringify(value)}\n`);
}

/**
 * Peer-controlled text (device and file names) made safe to print. The
 * escaping rule lives with the other character rules in fs/safe-path.ts.
 */
export function safe(text: string): string {
	return escapeForTerminal(text);
}

/** `safe` for multi-line text (a stack trace): line breaks kept, everything else escaped. */
export function safeLines(text: string): string {
	return text.split("\n").map(safe).join("\n");
}
