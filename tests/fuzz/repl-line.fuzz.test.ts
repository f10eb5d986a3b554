/**
 * The REPL's line helpers (src/cli/repl/line.ts) under mixed Unicode,
 * quotes and backslashes. tests/unit/repl-line.test.ts checks that random
 * lines never crash splitLine; this adds what it does not: quoting round
 * trips (any word, quoted any of three ways, comes back exactly, with the
 * right `literal` flag), idempotence, path resolution that never climbs
 * out, and glob patterns that never crash.
 *
 * Seeded: FUZZ_SEED replays a run; PAIRLINK_FUZZ_ITERATIONS=N runs N times longer.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import {
	globToRegExp,
	hasGlob,
	matchGlob,
	resolveRemote,
	splitLine,
	type Word,
} from "../../src/cli/repl/line.ts";
import { PairlinkError } from "../../src/errors.ts";
import { fuzzBudget, fuzzLoop } from "../helpers/bad-peers.ts";
import { makePrng, type Prng, seedFromEnv } from "../helpers/prng.ts";

// The heavy variant (PAIRLINK_FUZZ_ITERATIONS) runs longer than the CLI's default timeout.
setDefaultTimeout(fuzzBudget(1).testTimeoutMs);

/** Characters that make lines hard: quotes, backslashes, Unicode spaces, astral, combining, controls. */
const ALPHABET = [
	"a",
	"Z",
	"0",
	".",
	"-",
	"*",
	"?",
	"[",
	"]",
	"!",
	"/",
	"'",
	'"',
	"\\",
	" ",
	"\t",
	"\n",
	"\u00a0",
	"\u2028",
	"\u3000",
	"\ufeff",
	"\u200b",
	"é",
	"e\u0301",
	"漢",
	"🙂",
	"\u202e",
	"\u0000",
	"\u001b",
	"\ud800",
	"\udfff",
	"$",
	"`",
	"~",
];
const SEPARATORS = [" ", "  ", "\t", " \t ", "\u00a0", "\u3000", "\u2028"];
const SPECIAL = /[\s'"\\]/;

function randomText(rng: Prng, max: number): string {
	let s = "";
	for (let n = rng.int(max + 1); n > 0; n--) s += rng.pick(ALPHABET);
	return s;
}

type Quoting = "bare" | "single" | "double" | "backslash";

function quote(word: string, how: Quoting): string {
	switch (how) {
		case "bare":
			return word;
		case "single":
			return `'${word.replaceAll("'", "'\\''")}'`;
		case "double":
			return `"${word.replace(/["\\]/g, "\\$&")}"`;
		case "backslash":
			if (word === "") return "''";
			return [...word].map((c) => (SPECIAL.test(c) ? `\\${c}` : c)).join("");
	}
}

/** How a word may be quoted, and whether splitLine must then call it literal. */
function quotingFor(rng: Prng, word: string): { how: Quoting; literal: boolean } {
	const canBeBare = word !== "" && !SPECIAL.test(word);
	const how = rng.pick<Quoting>(
		canBeBare ? ["bare", "single", "double", "backslash"] : ["single", "double", "backslash"],
	);
	const literal =
		how === "single" ||
		how === "double" ||
		(how === "backslash" && (word === "" || SPECIAL.test(word)));
	return { how, literal };
}

function usageOnly(e: unknown, line: string, seed: number): void {
	if (!(e instanceof PairlinkError) || e.code !== "usage")
		throw new Error(`seed ${seed}: ${JSON.stringify(line)} threw ${String(e)}`);
}

describe("REPL line: fuzzing", () => {
	test("any words, quoted any way, split back exactly with the right literal flag", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		fuzzLoop("repl-line/round-trip", seed, fuzzBudget(200_000, 1500), () => {
			const words = Array.from({ length: rng.int(6) }, () => randomText(rng, 8));
			const quoted = words.map((w) => ({ w, ...quotingFor(rng, w) }));
			let line = rng.int(3) === 0 ? rng.pick(SEPARATORS) : "";
			line += quoted.map((q) => quote(q.w, q.how)).join(rng.pick(SEPARATORS));
			if (rng.int(3) === 0) line += rng.pick(SEPARATORS);
			let got: Word[];
			try {
				got = splitLine(line);
			} catch (e) {
				throw new Error(`${JSON.stringify(line)} did not split: ${String(e)}`);
			}
			expect(got.map((w) => w.text)).toEqual(words);
			expect(got.map((w) => w.literal)).toEqual(quoted.map((q) => q.literal));
			// Quoted or escaped words never expand as globs.
			for (const w of got) if (w.literal) expect(hasGlob(w)).toBe(false);
		});
	});

	test("arbitrary lines either split or fail as usage errors, and splitting is idempotent", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		let split = 0;
		const stats = fuzzLoop("repl-line/arbitrary", seed, fuzzBudget(200_000, 1500), () => {
			const line = randomText(rng, 24);
			let words: Word[];
			try {
				words = splitLine(line);
			} catch (e) {
				usageOnly(e, line, seed);
				return;
			}
			split++;
			// Quote what came out and split again: the same words come back.
			const again = splitLine(words.map((w) => quote(w.text, "single")).join(" "));
			expect(again.map((w) => w.text)).toEqual(words.map((w) => w.text));
		});
		expect(split).toBeGreaterThan(0);
		expect(split).toBeLessThan(stats.iterations);
	});

	test("resolveRemote never leaves the top and never yields empty, '.' or '..' components", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		const parts = ["a", "b", "..", ".", "", "漢", "...", " ", "\\", "..\\.."];
		const path = () => Array.from({ length: rng.int(7) }, () => rng.pick(parts)).join("/");
		fuzzLoop("repl-line/resolve", seed, fuzzBudget(200_000, 1000), () => {
			const cwd = resolveRemote("", (rng.int(2) ? "/" : "") + path());
			const input = (rng.int(3) === 0 ? "/" : "") + path();
			const out = resolveRemote(cwd, input);
			expect(out.startsWith("/")).toBe(false);
			if (out !== "") {
				for (const c of out.split("/")) expect(["", ".", ".."]).not.toContain(c);
			}
			// Resolving again changes nothing; ".." from anywhere stays at or under the top.
			expect(resolveRemote("", out)).toBe(out);
			const up = resolveRemote(out, "..");
			expect(out === "" ? up === "" : out.startsWith(up)).toBe(true);
		});
	});

	test("glob patterns without brackets match exactly like a reference matcher", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		const chars = [
			"a",
			"b",
			".",
			"*",
			"?",
			"漢",
			"🙂",
			"+",
			"(",
			")",
			"$",
			"^",
			"|",
			"{",
			"}",
			"\\",
		];
		const names = [
			"",
			"a",
			"b",
			"ab",
			".a",
			"a.b",
			"漢",
			"🙂",
			"a+b",
			"(a)",
			"$",
			"\\",
			"ba.",
			"a\\b",
		];
		/** Shell semantics: * any run, ? one character (here: one UTF-16 unit), leading dot explicit. */
		const reference = (p: string, n: string): boolean => {
			const go = (i: number, j: number): boolean => {
				if (i === p.length) return j === n.length;
				if (p[i] === "*") return go(i + 1, j) || (j < n.length && go(i, j + 1));
				if (j === n.length) return false;
				return (p[i] === "?" || p[i] === n[j]) && go(i + 1, j + 1);
			};
			return go(0, 0);
		};
		fuzzLoop("repl-line/glob", seed, fuzzBudget(100_000, 1000), () => {
			let pattern = "";
			for (let n = 1 + rng.int(5); n > 0; n--) pattern += rng.pick(chars);
			const want = names.filter(
				(n) => reference(pattern, n) && (!n.startsWith(".") || pattern.startsWith(".")),
			);
			expect(matchGlob(pattern, names)).toEqual(want);
		});
	});

	// Regression (once a bug):
	test("glob patterns with brackets never crash: they match or fail as usage errors", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		const corpus = ["[z-a]", "[a-\\]", "x[9-0]*"];
		const chars = ["[", "]", "!", "^", "-", "a", "z", "0", "9", "\\", "*", "?", ":", ".", "漢"];
		const check = (pattern: string) => {
			try {
				globToRegExp(pattern);
				matchGlob(pattern, ["a", "z", "-", "]", "[", "漢"]);
			} catch (e) {
				usageOnly(e, pattern, seed);
			}
		};
		for (const p of corpus) check(p);
		fuzzLoop("repl-line/glob-brackets", seed, fuzzBudget(30_000, 1000), () => {
			let pattern = "";
			for (let n = 1 + rng.int(8); n > 0; n--) pattern += rng.pick(chars);
			check(pattern);
		});
	});
});
