/**
 * Device fingerprints: SHA-256 of the certificate DER.
 *
 * Canonical form (JSON, trust store, comparisons): 64 lowercase hex digits.
 * Human form (`formatFingerprint`): 16 groups of 4 hex digits separated by
 * spaces, optionally split into two lines of 8 groups — short enough to read
 * aloud or compare by eye group by group.
 *
 * Pure: no I/O. SHA-256 comes from @noble/hashes rather than node:crypto or
 * Bun.CryptoHasher so this module stays free of runtime dependencies.
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { PairlinkError } from "../errors";

export const FINGERPRINT_BYTES = 32;
export const FINGERPRINT_HEX_LENGTH = 64;
/** Shorter prefixes match too many devices by chance to be a useful handle. */
export const MIN_FINGERPRINT_PREFIX = 4;

const GROUP = 4;
const GROUPS_PER_LINE = 8;
const FULL_HEX = /^[0-9a-f]{64}$/;
const HEX = /^[0-9a-f]*$/;
// Separators people and tools put between digits: Bun/OpenSSL use ":",
// our own display uses spaces and a newline.
const SEPARATORS = /[:\s]/g;

function strip(s: string): string {
	return s.replace(SEPARATORS, "").toLowerCase();
}

/** SHA-256 of a certificate in DER, as 64 lowercase hex digits. */
export function fingerprintOf(certDer: Uint8Array): string {
	return bytesToHex(sha256(certDer));
}

/**
 * Canonical form of a full fingerprint given as plain hex (any case), as
 * Bun's `getPeerCertificate().fingerprint256` ("AB:CD:…"), or as shown by
 * `formatFingerprint`. Throws PairlinkError "usage" for anything else.
 */
export function normalizeFingerprint(s: string): string {
	const hex = strip(s);
	if (!FULL_HEX.test(hex)) {
		throw new PairlinkError(
			"usage",
			`Not a fingerprint: expected ${FINGERPRINT_HEX_LENGTH} hex digits (SHA-256), got ${JSON.stringify(s.slice(0, 100))}.`,
		);
	}
	return hex;
}

/** Like normalizeFingerprint, but undefined instead of throwing. */
export function tryNormalizeFingerprint(s: string): string | undefined {
	const hex = strip(s);
	return FULL_HEX.test(hex) ? hex : undefined;
}

/**
 * True when `s`, with colons and whitespace ignored, is 4 to 64 hex digits:
 * something that may name a device by the start of its fingerprint.
 */
export function isFingerprintPrefix(s: string): boolean {
	return normalizeFingerprintPrefix(s) !== undefined;
}

/** Lowercase hex prefix (4..64 digits, separators removed), or undefined. */
export function normalizeFingerprintPrefix(s: string): string | undefined {
	const hex = strip(s);
	if (hex.length < MIN_FINGERPRINT_PREFIX || hex.length > FINGERPRINT_HEX_LENGTH) return undefined;
	return HEX.test(hex) ? hex : undefined;
}

/**
 * For people: "1d97 98ec 6d7d … cf60" (16 groups of 4, one line, 79 chars),
 * or with `lines: 2` two lines of 8 groups joined by "\n". Accepts any form
 * normalizeFingerprint accepts.
 */
export function formatFingerprint(hex: string, options: { lines?: 1 | 2 } = {}): string {
	const canonical = normalizeFingerprint(hex);
	const groups: string[] = [];
	for (let i = 0; i < canonical.length; i += GROUP) groups.push(canonical.slice(i, i + GROUP));
	if (options.lines === 2) {
		return `${groups.slice(0, GROUPS_PER_LINE).join(" ")}\n${groups.slice(GROUPS_PER_LINE).join(" ")}`;
	}
	return groups.join(" ");
}

/** The 32 raw bytes of a fingerprint (CPace binds these into its CI). */
export function fingerprintBytes(hex: string): Uint8Array {
	return hexToBytes(normalizeFingerprint(hex));
}
