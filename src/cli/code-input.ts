/**
 * Where a client's pairing code comes from: PAIRLINK_CODE, standard input
 * (--code-stdin), or a prompt on a terminal — never a command-line argument,
 * which every user of the machine can read in the process list
 * (croc's CVE-2023-43621).
 */
import { parseCode } from "../crypto/pairing-code.ts";
import { PairlinkError } from "../errors.ts";
import { logger } from "./terminal.ts";

export const codeStdinArg = {
	"code-stdin": { type: "boolean", description: "Read the pairing code from standard input" },
} as const;

/** A lazy source, asked only if pairing turns out to be needed; undefined when there is none. */
export function codeSource(opts: { codeStdin: boolean }): (() => Promise<string>) | undefined {
	const fromEnv = process.env.PAIRLINK_CODE;
	if (fromEnv !== undefined && fromEnv.trim() !== "") return async () => parseCode(fromEnv);
	if (opts.codeStdin) return async () => parseCode(await readFirstLine());
	if (process.stdin.isTTY) {
		return async () => {
			const answer = await logger.prompt("Pairing code shown by the server:", {
				type: "text",
				cancel: "null",
			});
			if (typeof answer !== "string" || answer.trim() === "") {
				throw new PairlinkError("usage", "No pairing code given");
			}
			return parseCode(answer);
		};
	}
	return undefined;
}

async function readFirstLine(): Promise<string> {
	let text = "";
	for await (const chunk of process.stdin) {
		text += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk as Uint8Array);
		if (text.includes("\n") || text.length > 1024) break;
	}
	const line = text.split(/\r?\n/, 1)[0] ?? "";
	if (line.trim() === "")
		throw new PairlinkError("usage", "--code-stdin: standard input held no pairing code");
	return line;
}
