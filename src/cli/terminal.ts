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

const UNSAFE =
	// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what we escape
	/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * The one escaper for text that may have come from a peer (device and file
 * names, error messages, stack traces, completion candidates): C0 and C1
 * controls, line separators and every bidi control (including the marks
 * U+200E, U+200F, U+061C) and the invisible U+FEFF are shown as escapes, so
 * a name cannot move the cursor, change colours, reorder what is shown, or
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

/** `safe` for multi-line text (a stack trace): line breaks kept, everything else escaped. */
export function safeLines(text: string): string {
	return text.split("\n").map(safe).join("\n");
}
