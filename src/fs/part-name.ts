/**
 * Names of unfinished transfers (part files). A part file lives beside its
 * target, hidden from listings and never addressable by a peer; its name
 * never exceeds the 255-byte component limit, however long the target's.
 */
import { createHash } from "node:crypto";
import { MAX_NAME_BYTES, PART_SUFFIX } from "./safe-path.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Bytes of the hash that keeps shortened names apart. */
const TAG_CHARS = 16;

/**
 * Matches in any letter case: on a case-insensitive file system
 * `.X.PAIRLINK-PART` is the same file as `.X.pairlink-part`.
 */
export function isPartName(name: string): boolean {
	return name.toLowerCase().endsWith(PART_SUFFIX);
}

/**
 * `.NAME.pairlink-part`, or — when that would pass the limit — NAME cut to
 * fit (on a character boundary) plus a hash of the whole name, so two long
 * names that share a beginning still get different part files.
 */
export function partName(name: string): string {
	const plain = `.${name}${PART_SUFFIX}`;
	if (encoder.encode(plain).length <= MAX_NAME_BYTES) return plain;
	const tag = createHash("sha256").update(name).digest("hex").slice(0, TAG_CHARS);
	const room = MAX_NAME_BYTES - 1 - 1 - TAG_CHARS - PART_SUFFIX.length;
	// Cutting bytes may split a character: drop the broken tail.
	const cut = decoder.decode(encoder.encode(name).slice(0, room)).replace(/\uFFFD+$/, "");
	return `.${cut}~${tag}${PART_SUFFIX}`;
}
