/**
 * The only way text reaches the terminal. Results go to stdout; logs,
 * prompts and errors to stderr through one consola instance.
 */
import { createConsola } from "consola";

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

// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what we escape
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Peer-controlled text (device and file names) shown with every control
 * character escaped, so a name cannot move the cursor, change colours or
 * rewrite the screen (croc issue #595).
 */
export function safe(text: string): string {
	return text.replace(UNSAFE, (c) => {
		const code = c.charCodeAt(0);
		return code <= 0xff
			? `\\x${code.toString(16).padStart(2, "0")}`
			: `\\u${code.toString(16).padStart(4, "0")}`;
	});
}
