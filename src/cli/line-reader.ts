/**
 * Standard input as lines, shared by everyone who reads it in one process:
 * `connect --code-stdin` takes the code from the first line and the batch
 * session the commands from the rest, without losing what one read ahead.
 */
import { createInterface } from "node:readline";

export interface LineReader {
	/** The next line, or undefined at end of input. */
	next(): Promise<string | undefined>;
	close(): void;
}

let shared: LineReader | undefined;

export function stdinLines(): LineReader {
	if (shared) return shared;
	const rl = createInterface({
		input: process.stdin,
		terminal: false,
		crlfDelay: Number.POSITIVE_INFINITY,
	});
	const it = rl[Symbol.asyncIterator]();
	shared = {
		async next() {
			const r = await it.next();
			return r.done ? undefined : r.value;
		},
		close: () => rl.close(),
	};
	return shared;
}
