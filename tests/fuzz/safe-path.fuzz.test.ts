import { expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import { parseWirePath, receiverNameProblem } from "../../src/fs/safe-path.ts";
import { makePrng, seedFromEnv } from "../helpers/prng.ts";

const ALPHABET = [
	"a",
	"b",
	".",
	"..",
	"/",
	"\\",
	":",
	"\u0000",
	"\u001b",
	" ",
	"CON",
	"nul",
	"\uff0e",
	"\u2025",
	"\uff0f",
	"é",
	"\ud800",
	"\u202e",
	"x.pairlink-part",
	"~",
	"-",
];

test("safe-path: random paths either parse into safe components (for a win32 receiver too) or throw PairlinkError", () => {
	const seed = seedFromEnv();
	const rng = makePrng(seed);
	const deadline = performance.now() + 1500;
	let runs = 0;
	let accepted = 0;
	while (performance.now() < deadline && runs < 100_000) {
		runs++;
		let p = "";
		for (let i = rng.int(12); i >= 0; i--) p += rng.pick(ALPHABET);
		try {
			const parts = parseWirePath(p);
			accepted++;
			for (const part of parts) {
				// The properties that matter, checked independently of the implementation.
				if (
					part === "" ||
					part === "." ||
					part === ".." ||
					// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are the point
					/[/\\\u0000-\u001f]/.test(part) ||
					// What a Windows receiver accepts must stay safe there too.
					(receiverNameProblem(part, "win32") === undefined &&
						(/[:/\\]/.test(part.normalize("NFKC")) || part.normalize("NFKC") === ".."))
				) {
					throw new Error(
						`seed ${seed}: accepted unsafe component ${JSON.stringify(part)} of ${JSON.stringify(p)}`,
					);
				}
			}
			if (p.startsWith("/"))
				throw new Error(`seed ${seed}: accepted absolute ${JSON.stringify(p)}`);
		} catch (e) {
			if (!(e instanceof PairlinkError))
				throw e instanceof Error && e.message.startsWith("seed")
					? e
					: new Error(`seed ${seed}: ${String(e)}`);
		}
	}
	expect(runs).toBeGreaterThan(1000);
	expect(accepted).toBeGreaterThan(0);
});
