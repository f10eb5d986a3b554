import { expect, test } from "bun:test";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { parseCode } from "../../src/crypto/pairing-code.ts";
import { PairlinkError } from "../../src/errors.ts";
import { makePrng, type Prng, seedFromEnv } from "../helpers/prng.ts";

const SEED = seedFromEnv();
const MAX_ITERATIONS = 200_000;
const BUDGET_MS = 2000;

const FRAGMENTS = [
	" ",
	"-",
	"  ",
	"--",
	" - ",
	"\t",
	"\n",
	"\u00a0",
	"\u212a",
	"ö",
	"İ",
	"ß",
	"\u0000",
	"\u202e",
	"🙂",
	"0",
	"_",
	".",
	"A",
	"z",
	"\ud800",
];

/** Mostly near-misses: real words, prefixes, case changes and junk, joined oddly. */
function candidate(rng: Prng): string {
	const parts: string[] = [];
	const n = rng.int(12);
	for (let i = 0; i < n; i++) {
		const word = rng.pick(wordlist);
		switch (rng.int(7)) {
			case 0:
				parts.push(word);
				break;
			case 1:
				parts.push(word.slice(0, 1 + rng.int(word.length)));
				break;
			case 2:
				parts.push(word.toUpperCase());
				break;
			case 3: {
				const at = rng.int(word.length + 1);
				parts.push(word.slice(0, at) + rng.pick(FRAGMENTS) + word.slice(at));
				break;
			}
			case 4:
				parts.push(
					String.fromCharCode(...Array.from({ length: rng.int(10) }, () => rng.int(0x10000))),
				);
				break;
			case 5:
				parts.push(
					String.fromCharCode(...Array.from({ length: rng.int(10) }, () => 32 + rng.int(95))),
				);
				break;
			default:
				parts.push(rng.pick(FRAGMENTS));
		}
		parts.push(rng.int(4) === 0 ? rng.pick(FRAGMENTS) : rng.pick([" ", "-"]));
	}
	if (rng.int(50) === 0) parts.push("x".repeat(rng.int(600)));
	return parts.join("");
}

test(`parseCode on random input only ever returns a canonical code or throws PairlinkError("usage") (seed ${SEED})`, () => {
	const rng = makePrng(SEED);
	const start = performance.now();
	let accepted = 0;
	let iterations = 0;
	for (; iterations < MAX_ITERATIONS && performance.now() - start < BUDGET_MS; iterations++) {
		const input = candidate(rng);
		const context = `seed=${SEED} iteration=${iterations} input=${JSON.stringify(input)}`;
		let out: string | undefined;
		try {
			out = parseCode(input);
		} catch (e) {
			expect(e instanceof PairlinkError, `${context}: threw ${String(e)}`).toBe(true);
			expect((e as PairlinkError).code, context).toBe("usage");
			continue;
		}
		accepted++;
		const words = out.split("-");
		expect(words.length >= 4 && words.length <= 8, context).toBe(true);
		for (const w of words) expect(wordlist.includes(w), `${context}: word ${w}`).toBe(true);
		// Canonical output is a fixed point.
		expect(parseCode(out), context).toBe(out);
	}
	expect(iterations, `seed=${SEED}`).toBeGreaterThan(1000);
	// The generator makes some valid codes too, so both paths are exercised.
	expect(accepted, `seed=${SEED}`).toBeGreaterThan(0);
});
