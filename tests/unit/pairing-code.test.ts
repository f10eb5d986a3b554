import { describe, expect, test } from "bun:test";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import {
	BITS_PER_WORD,
	codeEntropyBits,
	DEFAULT_CODE_WORDS,
	generateCode,
	MAX_CODE_WORDS,
	MIN_CODE_WORDS,
	parseCode,
	type RandomUint16,
	WORD_PREFIX_LETTERS,
} from "../../src/crypto/pairing-code.ts";
import { PairlinkError } from "../../src/errors.ts";

const CANONICAL = /^[a-z]+(-[a-z]+)*$/;

/** A "random" source returning fixed values (cycled), recording each request. */
function fixed(...values: number[]): RandomUint16 & { lengths: number[] } {
	const lengths: number[] = [];
	const fn = (array: Uint16Array): Uint16Array => {
		lengths.push(array.length);
		for (let i = 0; i < array.length; i++) array[i] = values[i % values.length] as number;
		return array;
	};
	return Object.assign(fn, { lengths });
}

function usageError(fn: () => unknown): PairlinkError {
	let caught: unknown;
	try {
		fn();
	} catch (e) {
		caught = e;
	}
	expect(caught).toBeInstanceOf(PairlinkError);
	expect((caught as PairlinkError).code).toBe("usage");
	return caught as PairlinkError;
}

describe("the word list", () => {
	test("has 2048 lowercase ASCII words, unique in their first 4 letters", () => {
		expect(wordlist.length).toBe(2048);
		expect(2 ** BITS_PER_WORD).toBe(wordlist.length);
		for (const w of wordlist) expect(w).toMatch(/^[a-z]{3,8}$/);
		const prefixes = new Set(wordlist.map((w) => w.slice(0, WORD_PREFIX_LETTERS)));
		expect(prefixes.size).toBe(2048);
	});
});

describe("generateCode", () => {
	test("default: 4 words from the list, joined by hyphens", () => {
		const code = generateCode();
		const words = code.split("-");
		expect(words.length).toBe(DEFAULT_CODE_WORDS);
		expect(DEFAULT_CODE_WORDS).toBe(4);
		for (const w of words) expect(wordlist).toContain(w);
		expect(code).toMatch(CANONICAL);
	});

	test("1,000 codes are distinct and parse back to themselves", () => {
		const codes = new Set<string>();
		for (let i = 0; i < 1000; i++) {
			const code = generateCode();
			expect(parseCode(code)).toBe(code);
			expect(parseCode(code, 4)).toBe(code);
			codes.add(code);
		}
		// 1000 draws from 2^44: a collision has probability ~3e-8.
		expect(codes.size).toBe(1000);
	});

	test("every allowed length from 4 to 8 words", () => {
		for (let n = MIN_CODE_WORDS; n <= MAX_CODE_WORDS; n++) {
			const code = generateCode(n);
			expect(code.split("-").length).toBe(n);
			expect(parseCode(code)).toBe(code);
			expect(parseCode(code, n)).toBe(code);
		}
		expect([MIN_CODE_WORDS, MAX_CODE_WORDS]).toEqual([4, 8]);
	});

	test("refuses word counts outside 4..8 (3 words would be under 40 bits)", () => {
		for (const n of [-1, 0, 1, 2, 3, 9, 100, 4.5, Number.NaN, Number.POSITIVE_INFINITY]) {
			usageError(() => generateCode(n));
		}
	});

	test("all-zero randomness gives abandon-abandon-abandon-abandon", () => {
		expect(generateCode(4, fixed(0))).toBe("abandon-abandon-abandon-abandon");
	});

	test("injected values map to their list positions", () => {
		expect(generateCode(4, fixed(0, 1, 2, 2047))).toBe("abandon-ability-able-zoo");
		expect(generateCode(5, fixed(3, 4, 5, 1024, 2046))).toBe(
			[3, 4, 5, 1024, 2046].map((i) => wordlist[i]).join("-"),
		);
	});

	test("values of 2048 and above are masked with & 2047, not rejected or skewed", () => {
		expect(generateCode(4, fixed(2048, 2049, 4095, 65535))).toBe("abandon-ability-zoo-zoo");
		expect(generateCode(4, fixed(0x8000, 0x8001, 0xf800, 0x07ff))).toBe(
			"abandon-ability-abandon-zoo",
		);
		// Each of the 32 values with the same low 11 bits gives the same word.
		for (let high = 0; high < 32; high++) {
			expect(generateCode(4, fixed((high << 11) | 1234))).toBe(
				Array(4).fill(wordlist[1234]).join("-"),
			);
		}
	});

	test("asks the random source for exactly one Uint16 per word", () => {
		const random = fixed(7);
		generateCode(6, random);
		expect(random.lengths).toEqual([6]);
	});

	test("the default source really is random (a sanity check on the default)", () => {
		const first = new Set<string>();
		for (let i = 0; i < 50; i++) first.add(generateCode().split("-")[0] as string);
		expect(first.size).toBeGreaterThan(30);
	});
});

describe("codeEntropyBits", () => {
	test("11 bits per word; the default meets SPEC's 40-bit minimum", () => {
		expect(codeEntropyBits()).toBe(44);
		expect(codeEntropyBits(DEFAULT_CODE_WORDS)).toBeGreaterThanOrEqual(40);
		expect(codeEntropyBits(MIN_CODE_WORDS)).toBeGreaterThanOrEqual(40);
		expect(codeEntropyBits(8)).toBe(88);
		expect(codeEntropyBits(3)).toBeLessThan(40);
	});
});

describe("parseCode normalisation", () => {
	const canonical = "abandon-ability-able-zoo";

	test.each([
		["abandon-ability-able-zoo"],
		["ABANDON-ABILITY-ABLE-ZOO"],
		["Abandon-aBility-ablE-Zoo"],
		["abandon ability able zoo"],
		["abandon   ability  able    zoo"],
		["abandon--ability---able-zoo"],
		["abandon - ability -- able  -  zoo"],
		["  abandon-ability-able-zoo  "],
		["\tabandon ability\table zoo\n"],
		["abandon\u00a0ability able zoo"],
		["-abandon-ability-able-zoo-"],
		["abandon\r\nability able zoo"],
	])("%j", (input) => {
		expect(parseCode(input)).toBe(canonical);
	});

	test("4-letter prefixes of every word in the list", () => {
		for (const w of wordlist) {
			const p = w.slice(0, 4);
			expect(parseCode(`${p} ${p} ${p} ${p}`)).toBe(`${w}-${w}-${w}-${w}`);
		}
	});

	test("every longer prefix of every word, upper-cased too", () => {
		for (const w of wordlist) {
			for (let len = 5; len <= w.length; len++) {
				const p = w.slice(0, len);
				expect(parseCode(`${p}-able-able-${p.toUpperCase()}`)).toBe(`${w}-able-able-${w}`);
			}
		}
	});

	test("3-letter words are accepted as they are", () => {
		const short = wordlist.filter((w) => w.length === 3);
		expect(short.length).toBeGreaterThan(0);
		for (const w of short) expect(parseCode(`${w} ${w} ${w} ${w}`)).toBe(`${w}-${w}-${w}-${w}`);
	});

	test("a prefix that is itself a word resolves to that word", () => {
		// "act" is a word and also the start of "action", "actor", ...
		expect(parseCode("act acti acto actu")).toBe("act-action-actor-actual");
	});

	test("mixed prefixes and full words", () => {
		expect(parseCode("aban ABILITY able zoo")).toBe(canonical);
		expect(parseCode("aban abil able zoo")).toBe(canonical);
	});

	test("an exact word count can be required", () => {
		expect(parseCode("zoo zoo zoo zoo zoo", 5)).toBe("zoo-zoo-zoo-zoo-zoo");
		usageError(() => parseCode("zoo zoo zoo zoo zoo", 4));
		usageError(() => parseCode("zoo zoo zoo zoo", 5));
		usageError(() => parseCode("zoo zoo zoo zoo", 3));
	});
});

describe("parseCode rejections", () => {
	test("wrong number of words", () => {
		for (const input of [
			"",
			"   ",
			"-",
			" - - ",
			"zoo",
			"zoo zoo",
			"zoo zoo zoo",
			"zoo ".repeat(9),
		]) {
			usageError(() => parseCode(input));
		}
		const err = usageError(() => parseCode("abandon ability able"));
		expect(err.message).toContain("3 words");
		expect(err.message).not.toContain("abandon");
	});

	test("a word not in the list names its position but echoes no word", () => {
		const err = usageError(() => parseCode("abandon ability xyzzy zoo"));
		expect(err.message).toContain("word 3");
		for (const w of ["abandon", "ability", "xyzzy", "zoo"]) expect(err.message).not.toContain(w);
	});

	test("the first bad word is the one reported", () => {
		expect(usageError(() => parseCode("qqqq ability xyzzy zoo")).message).toContain("word 1");
		expect(usageError(() => parseCode("zoo zoo zoo zoo zoo zoo zoo nope")).message).toContain(
			"word 8",
		);
	});

	test.each([
		["aba", "a 3-letter prefix that is not a word"],
		["ab", "too short"],
		["a", "a single letter"],
		["abandonx", "a word with letters appended"],
		["abanx", "a 4-letter prefix followed by a wrong letter"],
		["abandom", "a typo after the prefix"],
		["xyzw", "an unknown 4-letter prefix"],
		["zooo", "longer than the word"],
		["abandön", "non-ASCII letter"],
		["\u212aey", "Kelvin sign, which toLowerCase() turns into k"],
		["ABANDON\u0130", "dotted capital I"],
		["able1", "a digit"],
		["able_", "punctuation"],
		["able.", "a trailing dot"],
		["ａｂｌｅ", "full-width letters"],
	])("%j: %s", (bad) => {
		const err = usageError(() => parseCode(`able able ${bad} able`));
		expect(err.message).toContain("word 3");
	});

	test("very long input is refused before any work", () => {
		usageError(() => parseCode("zoo ".repeat(1000)));
		usageError(() => parseCode(" ".repeat(10_000)));
	});

	test("an invalid required word count is a usage error too", () => {
		usageError(() => parseCode("zoo zoo zoo", 3));
		usageError(() => parseCode("zoo ".repeat(9), 9));
	});
});
