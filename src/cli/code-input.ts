/**
 * Where a client's pairing code comes from: PAIRLINK_CODE, standard input
 * (--code-stdin), or a prompt on a terminal — never a command-line argument,
 * which every user of the machine can read in the process list
 * (croc's CVE-2023-43621).
 */

import { createInterface } from "node:readline";
import { parseCode } from "../crypto/pairing-code.ts";
import { ADVICE, PairlinkError } from "../errors.ts";
import { sentence } from "./error-report.ts";
import { stdinLines } from "./line-reader.ts";

/** How many malformed codes the terminal prompt takes before giving up. */
const PROMPT_TRIES = 3;
const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

export const codeStdinArg = {
	"code-stdin": { type: "boolean", description: "Read the pairing code from standard input" },
} as const;

/** A lazy source, asked only if pairing turns out to be needed; undefined when there is none. */
export function codeSource(opts: {
	codeStdin: boolean;
	/** More lines follow on stdin (connect's batch commands): do not close it after the code. */
	keepStdin?: boolean;
	/** false: never ask on the terminal (inside `connect`, whose own prompt owns it). */
	prompt?: boolean;
}): (() => Promise<string>) | undefined {
	const fromEnv = process.env.PAIRLINK_CODE;
	if (fromEnv !== undefined && fromEnv.trim() !== "") return async () => parseCode(fromEnv);
	if (opts.codeStdin) {
		return async () => {
			const lines = stdinLines();
			const line = await lines.next();
			if (!opts.keepStdin) lines.close();
			if (line === undefined || line.trim() === "") {
				throw new PairlinkError("usage", "--code-stdin: standard input held no pairing code");
			}
			return parseCode(line);
		};
	}
	if (process.stdin.isTTY && opts.prompt !== false) {
		return async () => {
			// A typo at the prompt costs a retype, not the command (and not one of the
			// server's attempts: nothing is sent until the code is well-formed).
			for (let attempt = 1; ; attempt++) {
				const answer = await ask("Pairing code shown by the server: ");
				if (answer.trim() === "") throw new PairlinkError("usage", "No pairing code given");
				try {
					return parseCode(answer);
				} catch (e) {
					if (!(e instanceof PairlinkError) || attempt === PROMPT_TRIES) throw e;
					process.stderr.write(`${sentence(capitalise(e.message))} ${ADVICE["retype-code"]}\n`);
				}
			}
		};
	}
	return undefined;
}

/**
 * A one-line prompt on stderr. node:readline rather than consola.prompt:
 * under Bun 1.4.4 consola's text prompt returns undefined in a terminal
 * (seen in a pseudo-terminal test), so nothing typed would ever arrive.
 */
export function ask(question: string): Promise<string> {
	const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
	return new Promise<string>((resolve) => {
		rl.once("close", () => resolve(""));
		rl.question(question, (answer) => {
			resolve(answer);
			rl.close();
		});
	});
}
