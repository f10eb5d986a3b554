/**
 * Pairing codes: N words from the BIP39 English list (2048 words, 11 bits
 * each), shown as "word-word-word-word". The canonical form is what CPace
 * uses as PRS, so both sides must normalise the same way.
 *
 * Pure: no I/O; randomness is injected.
 */

import { wordlist } from "@scure/bip39/wordlists/english.js";
import { PairlinkError } from "../errors.ts";

/** Fills `array` with random values in place and returns it, like `crypto.getRandomValues`. */
export type RandomUint16 = (array: Uint16Array) => Uint16Array;

export const DEFAULT_CODE_WORDS = 4;
/** SPEC asks for at least 40 bits by default; 4 words give 44, 3 would give only 33. */
export const MIN_CODE_WORDS = 4;
export const MAX_CODE_WORDS = 8;
export const BITS_PER_WORD = 11;
/** Every word in the list is unique in its first 4 letters. */
export const WORD_PREFIX_LETTERS = 4;

const WORD_MASK = 2047;
// Generous for 8 words of at most 8 letters plus separators; bounds the work
// done on pasted garbage.
const MAX_INPUT_LENGTH = 256;

const defaultRandom: RandomUint16 = (array) => crypto.getRandomValues(array);

/** Key = first 4 letters (or the whole word when shorter) → full word. */
const byPrefix: ReadonlyMap<string, string> = buildPrefixIndex(wordlist);

function buildPrefixIndex(words: readonly string[]): Map<string, string> {
	if (words.length !== WORD_MASK + 1) {
		throw new PairlinkError("internal", "the BIP39 English word list must have 2048 words");
	}
	const index = new Map<string, string>();
	for (const word of words) {
		const key = word.slice(0, WORD_PREFIX_LETTERS);
		if (index.has(key)) {
			throw new PairlinkError("internal", "BIP39 words are not unique in their first 4 letters");
		}
		index.set(key, word);
	}
	return index;
}

function checkWordCount(words: number): void {
	if (!Number.isInteger(words) || words < MIN_CODE_WORDS || words > MAX_CODE_WORDS) {
		throw new PairlinkError(
			"usage",
			`a pairing code has ${MIN_CODE_WORDS} to ${MAX_CODE_WORDS} words, not ${words}`,
		);
	}
}

export function codeEntropyBits(words: number = DEFAULT_CODE_WORDS): number {
	return words * BITS_PER_WORD;
}

/** A fresh code in canonical form, e.g. "abandon-ability-able-about". */
export function generateCode(
	words: number = DEFAULT_CODE_WORDS,
	random: RandomUint16 = defaultRandom,
): string {
	checkWordCount(words);
	const values = new Uint16Array(words);
	random(values);
	// 2048 divides 65536, so masking keeps every word equally likely (a modulo
	// by a non-power of two would not).
	const chosen = Array.from(values, (v) => wordlist[v & WORD_MASK] as string);
	values.fill(0);
	return chosen.join("-");
}

function resolveWord(token: string): string | undefined {
	if (!/^[a-z]+$/.test(token)) return undefined;
	const word = byPrefix.get(token.slice(0, WORD_PREFIX_LETTERS));
	if (word === undefined) return undefined;
	// Short tokens must be a whole (short) word: "aba" is not "abandon".
	if (token.length < WORD_PREFIX_LETTERS) return word === token ? word : undefined;
	return word.startsWith(token) ? word : undefined;
}

/**
 * Normalise what a person typed into the canonical code. Case-insensitive;
 * words separated by any run of whitespace and/or hyphens; each word may be
 * abbreviated to a prefix of at least 4 letters. With `words`, exactly that
 * many words are required, otherwise any count from 4 to 8.
 *
 * Error messages name the position of a bad word but never echo the input:
 * it is (nearly) the secret.
 */
export function parseCode(input: string, words?: number): string {
	if (words !== undefined) checkWordCount(words);
	if (input.length > MAX_INPUT_LENGTH) {
		throw new PairlinkError("usage", "the pairing code is too long");
	}
	// Only ASCII letters are folded: toLowerCase() would also turn e.g. the
	// Kelvin sign into "k" and accept look-alike characters.
	const lowered = input.replace(/[A-Z]/g, (c) => c.toLowerCase());
	const tokens = lowered.split(/[\s-]+/).filter((t) => t.length > 0);
	if (tokens.length === 0) throw new PairlinkError("usage", "the pairing code is empty");
	const min = words ?? MIN_CODE_WORDS;
	const max = words ?? MAX_CODE_WORDS;
	if (tokens.length < min || tokens.length > max) {
		const expected = min === max ? `${min}` : `${min} to ${max}`;
		throw new PairlinkError(
			"usage",
			`the pairing code has ${tokens.length} words; expected ${expected}`,
		);
	}
	const resolved = tokens.map((token, i) => {
		const word = resolveWord(token);
		if (word === undefined) {
			throw new PairlinkError(
				"usage",
				`word ${i + 1} of the pairing code is not in the word list (check its spelling)`,
			);
		}
		return word;
	});
	return resolved.join("-");
}
