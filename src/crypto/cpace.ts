/**
 * CPace (draft-irtf-cfrg-cpace-21), suite CPACE-RISTR255-SHA512, with fixed
 * initiator/responder roles (transcript_ir) and HMAC-SHA-512 key confirmation.
 *
 * Pure: no I/O; randomness is injected. The low-level functions mirror the
 * draft's names so they can be checked against its test vectors one by one;
 * the four `cpace*` role functions at the bottom are what the pairing
 * protocol uses.
 */

import { ristretto255, ristretto255_hasher } from "@noble/curves/ed25519.js";
import { bytesToNumberLE, equalBytes } from "@noble/curves/utils.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { concatBytes } from "@noble/hashes/utils.js";
import { PairlinkError } from "../errors.ts";

type RistrettoPoint = InstanceType<typeof ristretto255.Point>;

/** Fills `array` with random bytes in place and returns it, like `crypto.getRandomValues`. */
export type RandomBytes = (array: Uint8Array) => Uint8Array;

const defaultRandom: RandomBytes = (array) => crypto.getRandomValues(array);

const encoder = new TextEncoder();
const utf8 = (s: string): Uint8Array => encoder.encode(s);

export const CPACE_DSI: Uint8Array = utf8("CPaceRistretto255");
export const CPACE_DSI_ISK: Uint8Array = utf8("CPaceRistretto255_ISK");
/** SHA-512 input block size (H.s_in_bytes): the zero padding fills the first block. */
export const SHA512_BLOCK_BYTES = 128;
export const POINT_BYTES = 32;
export const SCALAR_BYTES = 32;
export const ISK_BYTES = 64;
export const TAG_BYTES = 64;

const GROUP_ORDER: bigint = ristretto255.Point.Fn.ORDER;
const MAC_KEY_LABEL = utf8("CPaceMac");
const PAIRLINK_LABEL = utf8("pairlink/1");
const FINGERPRINT_BYTES = 32;

// ---------------------------------------------------------------------------
// String utilities (draft appendix "CPace function definitions")

/** LEB128 length prefix followed by the data (draft `prepend_len`). */
export function prependLen(data: Uint8Array): Uint8Array {
	const prefix: number[] = [];
	let length = data.length;
	do {
		const low = length & 0x7f;
		// Division, not `>>>`, so lengths above 2^31 would still encode correctly.
		length = Math.floor(length / 128);
		prefix.push(length === 0 ? low : low | 0x80);
	} while (length !== 0);
	return concatBytes(Uint8Array.from(prefix), data);
}

/** Prefix-free concatenation (draft `lv_cat` / `prefix_free_cat`). */
export function lvCat(...parts: readonly Uint8Array[]): Uint8Array {
	return concatBytes(...parts.map(prependLen));
}

export function zeroBytes(n: number): Uint8Array {
	return new Uint8Array(n);
}

/** Draft `lexiographically_larger`: true iff a > b; a proper prefix is smaller. */
export function lexicographicallyLarger(a: Uint8Array, b: Uint8Array): boolean {
	const n = Math.min(a.length, b.length);
	for (let i = 0; i < n; i++) {
		const x = a[i] as number;
		const y = b[i] as number;
		if (x > y) return true;
		if (x < y) return false;
	}
	return a.length > b.length;
}

/** Ordered concatenation (draft `o_cat`): "oc", then the larger string first. */
export function oCat(a: Uint8Array, b: Uint8Array): Uint8Array {
	const tag = utf8("oc");
	return lexicographicallyLarger(a, b) ? concatBytes(tag, a, b) : concatBytes(tag, b, a);
}

/** Transcript for fixed roles: MSGa ‖ MSGb, with MSGx = lv_cat(Yx, ADx). */
export function transcriptIr(
	Ya: Uint8Array,
	ADa: Uint8Array,
	Yb: Uint8Array,
	ADb: Uint8Array,
): Uint8Array {
	return concatBytes(lvCat(Ya, ADa), lvCat(Yb, ADb));
}

/** Transcript for the parallel setting (unused by pairlink; kept to check the vectors). */
export function transcriptOc(
	Ya: Uint8Array,
	ADa: Uint8Array,
	Yb: Uint8Array,
	ADb: Uint8Array,
): Uint8Array {
	return oCat(lvCat(Ya, ADa), lvCat(Yb, ADb));
}

// ---------------------------------------------------------------------------
// Group operations (draft "CPace group objects G_Ristretto255")

export function generatorString(
	dsi: Uint8Array,
	prs: Uint8Array,
	ci: Uint8Array,
	sid: Uint8Array,
	sInBytes: number = SHA512_BLOCK_BYTES,
): Uint8Array {
	// The padding makes DSI ‖ PRS fill exactly the first hash block, so the
	// amount of hashing does not depend on the password's length.
	const lenZpad = Math.max(0, sInBytes - 1 - prependLen(prs).length - prependLen(dsi).length);
	return lvCat(dsi, prs, zeroBytes(lenZpad), ci, sid);
}

/** SHA-512 of the generator string: the 64 uniform bytes fed to the one-way map. */
export function generatorHash(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
	return sha512(generatorString(CPACE_DSI, prs, ci, sid, SHA512_BLOCK_BYTES));
}

/**
 * The password-dependent generator g. Uses RFC 9496 element derivation
 * (`deriveToCurve`, the draft's one_way_map), not RFC 9380 `hashToCurve`,
 * which would add its own DST and expand_message and give a different point.
 */
export function calculateGenerator(
	prs: Uint8Array,
	ci: Uint8Array,
	sid: Uint8Array,
): RistrettoPoint {
	if (ristretto255_hasher.deriveToCurve === undefined) {
		// Typed as optional in @noble/curves' shared hasher interface.
		throw new PairlinkError("internal", "ristretto255 deriveToCurve is unavailable");
	}
	return ristretto255_hasher.deriveToCurve(generatorHash(prs, ci, sid));
}

/**
 * A fresh secret scalar, 32 little-endian bytes in [1, group order).
 *
 * As the draft recommends for ristretto255: 32 random bytes with every bit
 * above bit 251 cleared. That gives a value below 2^252, which is already
 * below the group order (2^252 + ~2^124.4), so no reduction (and no reduction
 * bias) is needed and @noble's `multiply` accepts it as is; the scalars in
 * [2^252, order) are never drawn, a ~2^-128 deviation from uniform that the
 * draft accepts. The draft leaves zero possible (probability 2^-252); we
 * reject it because `multiply` refuses 0 and our share would be the identity.
 * The retry limit only stops a broken random source from looping forever.
 */
export function sampleScalar(random: RandomBytes = defaultRandom): Uint8Array {
	for (let attempt = 0; attempt < 8; attempt++) {
		const y = new Uint8Array(SCALAR_BYTES);
		random(y);
		y[SCALAR_BYTES - 1] = (y[SCALAR_BYTES - 1] as number) & 0x0f;
		if (y.some((b) => b !== 0)) return y;
	}
	throw new PairlinkError("internal", "the random source returned only zero scalars");
}

function scalarToBigint(y: Uint8Array): bigint {
	if (y.length !== SCALAR_BYTES) {
		throw new PairlinkError("internal", `a CPace scalar must be ${SCALAR_BYTES} bytes`);
	}
	const n = bytesToNumberLE(y);
	if (n === 0n || n >= GROUP_ORDER) {
		throw new PairlinkError("internal", "a CPace scalar must be in [1, group order)");
	}
	return n;
}

/** Y = encode(g^y): our own public share. */
export function scalarMult(y: Uint8Array, g: RistrettoPoint): Uint8Array {
	return g.multiply(scalarToBigint(y)).toBytes();
}

/**
 * K = encode(decode(X)^y) for a peer's share X. Where the draft returns the
 * identity G.I and then aborts, we throw at once: an undecodable X, the
 * identity, or an identity result are all PairlinkError("protocol").
 */
export function scalarMultVfy(y: Uint8Array, X: Uint8Array): Uint8Array {
	const n = scalarToBigint(y);
	const point = decodePeerPoint(X);
	const K = point.multiply(n);
	// Unreachable in a prime-order group with y in [1, order) and X ≠ I, but
	// the draft makes this check mandatory, so it stays.
	if (K.is0()) throw new PairlinkError("protocol", "the peer's CPace share gave the identity");
	return K.toBytes();
}

function decodePeerPoint(X: Uint8Array): RistrettoPoint {
	if (X.length !== POINT_BYTES) {
		throw new PairlinkError("protocol", `a CPace share must be ${POINT_BYTES} bytes`);
	}
	let point: RistrettoPoint;
	try {
		point = ristretto255.Point.fromBytes(X);
	} catch (cause) {
		throw new PairlinkError("protocol", "the peer's CPace share is not a valid point", { cause });
	}
	if (point.is0()) throw new PairlinkError("protocol", "the peer's CPace share is the identity");
	return point;
}

/** ISK = SHA-512(lv_cat(DSI_ISK, sid, K) ‖ transcript_ir). */
export function deriveIsk(
	sid: Uint8Array,
	K: Uint8Array,
	Ya: Uint8Array,
	ADa: Uint8Array,
	Yb: Uint8Array,
	ADb: Uint8Array,
): Uint8Array {
	return sha512(concatBytes(lvCat(CPACE_DSI_ISK, sid, K), transcriptIr(Ya, ADa, Yb, ADb)));
}

// ---------------------------------------------------------------------------
// Key confirmation

/** mac_key = SHA-512("CPaceMac" ‖ sid ‖ ISK). */
export function deriveMacKey(sid: Uint8Array, isk: Uint8Array): Uint8Array {
	return sha512(concatBytes(MAC_KEY_LABEL, sid, isk));
}

/** HMAC-SHA-512 over the message a party sent, lv_cat(Y, AD). */
export function confirmationTag(macKey: Uint8Array, Y: Uint8Array, AD: Uint8Array): Uint8Array {
	return hmac(sha512, macKey, lvCat(Y, AD));
}

/** Constant-time for equal lengths; the length itself is public. */
export function tagsEqual(expected: Uint8Array, received: Uint8Array): boolean {
	return expected.length === received.length && equalBytes(expected, received);
}

// ---------------------------------------------------------------------------
// pairlink's inputs

/** CI = lv_cat("pairlink/1", fpA, fpB): binds the run to both TLS certificates. */
export function pairlinkChannelIdentifier(fpA: Uint8Array, fpB: Uint8Array): Uint8Array {
	if (fpA.length !== FINGERPRINT_BYTES || fpB.length !== FINGERPRINT_BYTES) {
		throw new PairlinkError("internal", `fingerprints must be ${FINGERPRINT_BYTES} raw bytes`);
	}
	return lvCat(PAIRLINK_LABEL, fpA, fpB);
}

/** AD = lv_cat("pairlink/1", name). */
export function pairlinkAssociatedData(name: string): Uint8Array {
	return lvCat(PAIRLINK_LABEL, utf8(name));
}

// ---------------------------------------------------------------------------
// Roles. A = initiator (types the code), B = responder (shows it).
// PAKE1 A→B (Ya, ADa); PAKE2 B→A (Yb, ADb, Tb); PAKE3 A→B (Ta).

export interface CpaceParams {
	/** The password-related string: the canonical pairing code. */
	prs: Uint8Array;
	ci: Uint8Array;
	sid: Uint8Array;
	/** Our own associated data (ADa for A, ADb for B). */
	ad: Uint8Array;
	random?: RandomBytes;
}

export interface CpacePake1 {
	Ya: Uint8Array;
	ADa: Uint8Array;
}

export interface CpacePake2 {
	Yb: Uint8Array;
	ADb: Uint8Array;
	Tb: Uint8Array;
}

/**
 * Opaque, single-use handles. The secrets behind them sit in module-private
 * WeakMaps, so nothing outside this module can read a scalar, logging a
 * state shows nothing, and taking the secrets out deletes them: a scalar is
 * never used for a second run.
 */
export interface CpaceInitiatorState {
	readonly role: "cpace-initiator";
}

export interface CpaceResponderState {
	readonly role: "cpace-responder";
}

interface InitiatorSecrets {
	sid: Uint8Array;
	ya: Uint8Array;
	Ya: Uint8Array;
	ADa: Uint8Array;
}

interface ResponderSecrets {
	isk: Uint8Array;
	expectedTa: Uint8Array;
}

const initiatorSecrets = new WeakMap<CpaceInitiatorState, InitiatorSecrets>();
const responderSecrets = new WeakMap<CpaceResponderState, ResponderSecrets>();

function takeSecrets<K extends object, V>(map: WeakMap<K, V>, state: K): V {
	const secrets = map.get(state);
	if (secrets === undefined) {
		throw new PairlinkError("internal", "CPace state used twice or not from this module");
	}
	map.delete(state);
	return secrets;
}

function checkTagLength(tag: Uint8Array, name: string): void {
	if (tag.length !== TAG_BYTES) {
		throw new PairlinkError("protocol", `the peer's ${name} must be ${TAG_BYTES} bytes`);
	}
}

/** A: compute PAKE1. */
export function cpaceInitiatorStart(params: CpaceParams): {
	state: CpaceInitiatorState;
	Ya: Uint8Array;
	ADa: Uint8Array;
} {
	const g = calculateGenerator(params.prs, params.ci, params.sid);
	const ya = sampleScalar(params.random ?? defaultRandom);
	const Ya = scalarMult(ya, g);
	const ADa = params.ad.slice();
	const state: CpaceInitiatorState = Object.freeze({ role: "cpace-initiator" });
	initiatorSecrets.set(state, { sid: params.sid.slice(), ya, Ya, ADa });
	return { state, Ya, ADa };
}

/**
 * A: check PAKE2 and produce PAKE3. Throws "protocol" for an invalid Yb and
 * "wrong-code" when Tb does not verify, in which case Ta is never computed.
 */
export function cpaceInitiatorFinish(
	state: CpaceInitiatorState,
	pake2: CpacePake2,
): { isk: Uint8Array; Ta: Uint8Array } {
	const { sid, ya, Ya, ADa } = takeSecrets(initiatorSecrets, state);
	let K: Uint8Array;
	try {
		checkTagLength(pake2.Tb, "Tb");
		K = scalarMultVfy(ya, pake2.Yb);
	} finally {
		ya.fill(0);
	}
	const isk = deriveIsk(sid, K, Ya, ADa, pake2.Yb, pake2.ADb);
	K.fill(0);
	const macKey = deriveMacKey(sid, isk);
	if (!tagsEqual(confirmationTag(macKey, pake2.Yb, pake2.ADb), pake2.Tb)) {
		isk.fill(0);
		throw new PairlinkError("wrong-code", "the pairing code does not match the other device's");
	}
	return { isk, Ta: confirmationTag(macKey, Ya, ADa) };
}

/**
 * B: on PAKE1, compute PAKE2. The generator is computed only now, as the
 * draft describes for the initiator-responder setting. Throws "protocol" for
 * an invalid Ya.
 */
export function cpaceResponderRespond(
	params: CpaceParams,
	pake1: CpacePake1,
): { state: CpaceResponderState; Yb: Uint8Array; ADb: Uint8Array; Tb: Uint8Array } {
	const g = calculateGenerator(params.prs, params.ci, params.sid);
	const yb = sampleScalar(params.random ?? defaultRandom);
	let Yb: Uint8Array;
	let K: Uint8Array;
	try {
		Yb = scalarMult(yb, g);
		K = scalarMultVfy(yb, pake1.Ya);
	} finally {
		yb.fill(0);
	}
	const ADb = params.ad.slice();
	const isk = deriveIsk(params.sid, K, pake1.Ya, pake1.ADa, Yb, ADb);
	K.fill(0);
	const macKey = deriveMacKey(params.sid, isk);
	const Tb = confirmationTag(macKey, Yb, ADb);
	const expectedTa = confirmationTag(macKey, pake1.Ya, pake1.ADa);
	const state: CpaceResponderState = Object.freeze({ role: "cpace-responder" });
	responderSecrets.set(state, { isk, expectedTa });
	return { state, Yb, ADb, Tb };
}

/** B: check PAKE3. Returns ISK, or throws "wrong-code". */
export function cpaceResponderVerify(state: CpaceResponderState, Ta: Uint8Array): Uint8Array {
	const { isk, expectedTa } = takeSecrets(responderSecrets, state);
	checkTagLength(Ta, "Ta");
	if (!tagsEqual(expectedTa, Ta)) {
		isk.fill(0);
		throw new PairlinkError("wrong-code", "the pairing code does not match the other device's");
	}
	return isk;
}
