import { describe, expect, test } from "bun:test";
import { ristretto255 } from "@noble/curves/ed25519.js";
import { bytesToNumberLE } from "@noble/curves/utils.js";
import {
	cpaceInitiatorFinish,
	cpaceInitiatorStart,
	cpaceResponderRespond,
	cpaceResponderVerify,
	POINT_BYTES,
	pairlinkAssociatedData,
	pairlinkChannelIdentifier,
	type RandomBytes,
	sampleScalar,
	scalarMultVfy,
	TAG_BYTES,
} from "../../src/crypto/cpace.ts";
import { PairlinkError } from "../../src/errors.ts";
import { makePrng, type Prng, seedFromEnv } from "../helpers/prng.ts";

const SEED = seedFromEnv();
const BUDGET_MS = 2000;

const ADA = pairlinkAssociatedData("fuzz-a");
const ADB = pairlinkAssociatedData("fuzz-b");
const CI = pairlinkChannelIdentifier(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
const SID = new Uint8Array(32).fill(3);
const PRS = new TextEncoder().encode("abandon-ability-able-about");

/** Seeded scalars keep a failing run reproducible from its seed. */
function seededRandom(rng: Prng): RandomBytes {
	return (array) => {
		array.set(rng.bytes(array.length));
		return array;
	};
}

/** A 32-byte candidate share: random, a real point, or a real point with a few bits flipped. */
function candidatePoint(rng: Prng): Uint8Array {
	const kind = rng.int(4);
	if (kind === 0) return rng.bytes(POINT_BYTES);
	const y = sampleScalar(seededRandom(rng));
	const bytes = ristretto255.Point.BASE.multiply(bytesToNumberLE(y)).toBytes();
	if (kind === 1) return bytes;
	const flips = 1 + rng.int(kind === 2 ? 1 : 4);
	for (let f = 0; f < flips; f++) {
		const i = rng.int(POINT_BYTES);
		bytes[i] = (bytes[i] as number) ^ (1 << rng.int(8));
	}
	return bytes;
}

/** Random length, occasionally 32 / 64 so the length checks are passed too. */
function candidateBytes(rng: Prng, usual: number): Uint8Array {
	const r = rng.int(4);
	return rng.bytes(r === 0 ? rng.int(2 * usual + 2) : usual);
}

/** fn may succeed; if it throws, it must be a PairlinkError with one of `codes`. */
function expectOnlyPairlinkError(fn: () => void, context: string, codes: string[]): void {
	try {
		fn();
	} catch (e) {
		checkError(e, context, codes);
	}
}

/** fn must throw a PairlinkError with one of `codes`. */
function expectPairlinkErrorThrown(fn: () => void, context: string, codes: string[]): void {
	try {
		fn();
	} catch (e) {
		checkError(e, context, codes);
		return;
	}
	throw new Error(`${context}: forged input was accepted`);
}

function checkError(e: unknown, context: string, codes: string[]): void {
	expect(e instanceof PairlinkError, `${context}: threw ${String(e)}`).toBe(true);
	expect(codes, `${context}: code ${(e as PairlinkError).code}`).toContain(
		(e as PairlinkError).code,
	);
}

function runFor(label: string, budgetMs: number, body: (rng: Prng, context: string) => void): void {
	const rng = makePrng(SEED ^ hash(label));
	const start = performance.now();
	let i = 0;
	for (; i < 100_000 && performance.now() - start < budgetMs; i++) {
		body(rng, `seed=${SEED} (FUZZ_SEED=${SEED} to replay) ${label} iteration=${i}`);
	}
	expect(i, `seed=${SEED} ${label}: too few iterations`).toBeGreaterThan(50);
}

function hash(s: string): number {
	let h = 2166136261;
	for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
	return h >>> 0;
}

describe(`CPace on hostile peer input (seed ${SEED})`, () => {
	test("scalarMultVfy: PairlinkError(protocol) or a non-identity K", () => {
		let valid = 0;
		runFor("scalarMultVfy", BUDGET_MS / 4, (rng, context) => {
			const y = sampleScalar(seededRandom(rng));
			const X = candidatePoint(rng);
			let K: Uint8Array;
			try {
				K = scalarMultVfy(y, X);
			} catch (e) {
				expect(e instanceof PairlinkError, `${context}: threw ${String(e)}`).toBe(true);
				expect((e as PairlinkError).code, context).toBe("protocol");
				return;
			}
			valid++;
			expect(K.length, context).toBe(POINT_BYTES);
			expect(
				K.some((b) => b !== 0),
				`${context}: identity K`,
			).toBe(true);
		});
		expect(valid, `seed=${SEED}: no valid points were generated`).toBeGreaterThan(0);
	});

	test("responder: any Ya/ADa gives PAKE2 or PairlinkError(protocol)", () => {
		runFor("responder", BUDGET_MS / 4, (rng, context) => {
			const Ya = rng.int(8) === 0 ? candidateBytes(rng, POINT_BYTES) : candidatePoint(rng);
			const ADa = candidateBytes(rng, 16);
			expectOnlyPairlinkError(
				() => {
					const out = cpaceResponderRespond(
						{ prs: PRS, ci: CI, sid: SID, ad: ADB, random: seededRandom(rng) },
						{ Ya, ADa },
					);
					expect(out.Yb.length, context).toBe(POINT_BYTES);
					expect(out.Tb.length, context).toBe(TAG_BYTES);
					// A peer without a real run cannot produce the right Ta.
					const Ta = rng.bytes(TAG_BYTES);
					expectPairlinkErrorThrown(() => cpaceResponderVerify(out.state, Ta), context, [
						"wrong-code",
					]);
				},
				context,
				["protocol"],
			);
		});
	});

	test("initiator: any PAKE2 gives PairlinkError(protocol or wrong-code), never success", () => {
		runFor("initiator", BUDGET_MS / 4, (rng, context) => {
			const start = cpaceInitiatorStart({
				prs: PRS,
				ci: CI,
				sid: SID,
				ad: ADA,
				random: seededRandom(rng),
			});
			const pake2 = {
				Yb: rng.int(8) === 0 ? candidateBytes(rng, POINT_BYTES) : candidatePoint(rng),
				ADb: candidateBytes(rng, 16),
				Tb: candidateBytes(rng, TAG_BYTES),
			};
			expectPairlinkErrorThrown(() => cpaceInitiatorFinish(start.state, pake2), context, [
				"protocol",
				"wrong-code",
			]);
		});
	});

	test("responder verify: any Ta from a stranger gives PairlinkError(protocol or wrong-code)", () => {
		runFor("verify", BUDGET_MS / 4, (rng, context) => {
			const start = cpaceInitiatorStart({ prs: PRS, ci: CI, sid: SID, ad: ADA });
			const resp = cpaceResponderRespond(
				{ prs: PRS, ci: CI, sid: SID, ad: ADB, random: seededRandom(rng) },
				{ Ya: start.Ya, ADa: start.ADa },
			);
			const Ta = candidateBytes(rng, TAG_BYTES);
			expectPairlinkErrorThrown(() => cpaceResponderVerify(resp.state, Ta), context, [
				"protocol",
				"wrong-code",
			]);
		});
	});
});
