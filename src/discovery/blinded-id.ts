/**
 * The blinded identity a server announces: a fresh random nonce and
 * SHA-256(nonce ‖ fingerprint) cut to 16 bytes. A device that knows the
 * fingerprint (a paired one) recognises the server; a passive listener sees
 * two unrelated random strings each time the nonce is renewed, so it can
 * neither learn the fingerprint nor link announcements to one device.
 * Pure: randomness is injected.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, concatBytes, hexToBytes } from "@noble/hashes/utils.js";
import { fingerprintBytes } from "../crypto/fingerprint.ts";

export const NONCE_BYTES = 16;
/** 128 bits: a chance collision with another device's id is out of reach. */
export const BLINDED_ID_BYTES = 16;

export type RandomBytes = (array: Uint8Array) => Uint8Array;
const defaultRandom: RandomBytes = (array) => crypto.getRandomValues(array);

export interface BlindedId {
	/** Lowercase hex, NONCE_BYTES long. */
	nonce: string;
	/** Lowercase hex, BLINDED_ID_BYTES long. */
	id: string;
}

export function blindedIdFor(nonceHex: string, fingerprint: string): string {
	const digest = sha256(concatBytes(hexToBytes(nonceHex), fingerprintBytes(fingerprint)));
	return bytesToHex(digest.subarray(0, BLINDED_ID_BYTES));
}

export function newBlindedId(fingerprint: string, random: RandomBytes = defaultRandom): BlindedId {
	const nonce = bytesToHex(random(new Uint8Array(NONCE_BYTES)));
	return { nonce, id: blindedIdFor(nonce, fingerprint) };
}

/** Which of `fingerprints` (if any) this nonce and id were made from. */
export function recognise(blinded: BlindedId, fingerprints: Iterable<string>): string | undefined {
	for (const fp of fingerprints) if (blindedIdFor(blinded.nonce, fp) === blinded.id) return fp;
	return undefined;
}
