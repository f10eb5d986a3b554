import { describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ristretto255, ristretto255_hasher } from "@noble/curves/ed25519.js";
import { bytesToNumberLE } from "@noble/curves/utils.js";
import { sha512 } from "@noble/hashes/sha2.js";
import {
	CPACE_DSI,
	CPACE_DSI_ISK,
	type CpaceParams,
	calculateGenerator,
	confirmationTag,
	cpaceInitiatorFinish,
	cpaceInitiatorStart,
	cpaceResponderRespond,
	cpaceResponderVerify,
	deriveIsk,
	deriveMacKey,
	generatorHash,
	generatorString,
	ISK_BYTES,
	lexicographicallyLarger,
	lvCat,
	oCat,
	POINT_BYTES,
	pairlinkAssociatedData,
	pairlinkChannelIdentifier,
	prependLen,
	type RandomBytes,
	SHA512_BLOCK_BYTES,
	sampleScalar,
	scalarMult,
	scalarMultVfy,
	TAG_BYTES,
	tagsEqual,
	transcriptIr,
	transcriptOc,
	zeroBytes,
} from "../../src/crypto/cpace.ts";
import { generateCode } from "../../src/crypto/pairing-code.ts";
import { PairlinkError } from "../../src/errors.ts";

// ---------------------------------------------------------------------------
// Fixtures

// Vendored from the project's shared/vectors/cpace-ristretto255.json; its "source"
// field names the draft section the values come from.
const VECTORS_URL = new URL("../fixtures/vectors/cpace-ristretto255.json", import.meta.url);
const V = JSON.parse(readFileSync(fileURLToPath(VECTORS_URL), "utf8")) as Record<string, unknown>;

function str(key: string, obj: Record<string, unknown> = V): string {
	const value = obj[key];
	if (typeof value !== "string") throw new Error(`vector ${key} is not a string`);
	return value;
}

function sub(key: string): Record<string, unknown> {
	const value = V[key];
	if (typeof value !== "object" || value === null)
		throw new Error(`vector ${key} is not an object`);
	return value as Record<string, unknown>;
}

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, "hex"));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const h = (key: string, obj?: Record<string, unknown>): Uint8Array => hex(str(key, obj));

const DSI = h("DSI");
const DSI_ISK = h("DSI_ISK");
const PRS = h("PRS");
const CI = h("CI");
const SID = h("sid");
const ADa = h("ADa");
const ADb = h("ADb");
const ya = h("ya");
const yb = h("yb");
const Ya = h("Ya");
const Yb = h("Yb");
const K = h("K");

/** A "random" source that hands out the given byte strings in turn. */
function scripted(...chunks: Uint8Array[]): RandomBytes & { calls: number } {
	const fn = Object.assign(
		(array: Uint8Array): Uint8Array => {
			const chunk = chunks[fn.calls % chunks.length] as Uint8Array;
			fn.calls++;
			array.set(chunk.subarray(0, array.length));
			return array;
		},
		{ calls: 0 },
	);
	return fn;
}

function expectPairlinkError(fn: () => unknown, code: PairlinkError["code"]): PairlinkError {
	let caught: unknown;
	try {
		fn();
	} catch (e) {
		caught = e;
	}
	expect(caught).toBeInstanceOf(PairlinkError);
	expect((caught as PairlinkError).code).toBe(code);
	return caught as PairlinkError;
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
	const out = bytes.slice();
	const i = Math.floor(bit / 8) % out.length;
	out[i] = (out[i] as number) ^ (1 << (bit % 8));
	return out;
}

// Every key of the vector file, each mapped to the test(s) that check it, so a
// new key in the file makes this suite fail until someone decides about it.
const COVERED_KEYS = [
	"source",
	"suite",
	"encoding",
	"H",
	"H_s_in_bytes",
	"H_b_in_bytes",
	"DSI",
	"DSI_ascii",
	"DSI_ISK_ascii",
	"DSI_ISK",
	"PRS",
	"PRS_ascii",
	"CI",
	"CI_ascii_note",
	"sid",
	"zpad_len",
	"generator_string",
	"generator_hash",
	"g",
	"ADa",
	"ADa_ascii",
	"ya",
	"Ya",
	"ADb",
	"ADb_ascii",
	"yb",
	"Yb",
	"K",
	"transcript_ir",
	"isk_input_ir",
	"ISK_IR",
	"transcript_oc",
	"isk_input_oc",
	"ISK_SY",
	"sid_output_ir",
	"sid_output_oc",
	"scalar_mult_valid",
	"scalar_mult_vfy_invalid",
	"string_utils",
	"notes",
];

// ---------------------------------------------------------------------------

describe("vector file", () => {
	test("every key is covered by this suite", () => {
		expect(Object.keys(V).sort()).toEqual([...COVERED_KEYS].sort());
	});

	test("suite parameters match the implementation", () => {
		expect(str("suite")).toBe("CPACE-RISTR255-SHA512");
		expect(str("H")).toBe("SHA-512");
		expect(str("source")).toContain("draft-irtf-cfrg-cpace-21");
		expect(str("encoding")).toContain("little-endian");
		expect(V.H_s_in_bytes).toBe(SHA512_BLOCK_BYTES);
		expect(V.H_b_in_bytes).toBe(ISK_BYTES);
		expect(sha512(new Uint8Array()).length).toBe(ISK_BYTES);
	});

	test("ASCII fields agree with their hex and with our constants", () => {
		expect(toHex(DSI)).toBe(toHex(ascii(str("DSI_ascii"))));
		expect(toHex(CPACE_DSI)).toBe(toHex(DSI));
		expect(toHex(DSI_ISK)).toBe(toHex(ascii(str("DSI_ISK_ascii"))));
		expect(toHex(CPACE_DSI_ISK)).toBe(toHex(DSI_ISK));
		expect(toHex(PRS)).toBe(toHex(ascii(str("PRS_ascii"))));
		expect(toHex(ADa)).toBe(toHex(ascii(str("ADa_ascii"))));
		expect(toHex(ADb)).toBe(toHex(ascii(str("ADb_ascii"))));
	});

	test("CI is lv_cat(b'A_initiator', b'B_responder') as its note says", () => {
		expect(str("CI_ascii_note")).toBe("lv_cat(b'A_initiator', b'B_responder')");
		expect(toHex(lvCat(ascii("A_initiator"), ascii("B_responder")))).toBe(toHex(CI));
	});

	test("the notes describe what this suite assumes", () => {
		const notes = V.notes as string[];
		expect(notes.length).toBe(4);
		expect(notes.join("\n")).toContain("CPaceMac");
		// Scalars in the file are below the order, as scalarMult requires.
		for (const s of [ya, yb, h("s", sub("scalar_mult_valid"))]) {
			expect(bytesToNumberLE(s) < ristretto255.Point.Fn.ORDER).toBe(true);
		}
	});
});

describe("string utilities (vectors)", () => {
	const utils = sub("string_utils");

	test("prepend_len", () => {
		const cases = utils.prepend_len as Record<string, string>;
		expect(Object.keys(cases).length).toBeGreaterThan(0);
		for (const [input, expected] of Object.entries(cases)) {
			expect(toHex(prependLen(hex(input)))).toBe(expected);
		}
	});

	// Keys look like `lv_cat(b'1234',b'5',b'',b'678')`; parse them so every
	// entry is checked, not just the ones someone remembered to copy.
	const functions: Record<string, (args: Uint8Array[]) => Uint8Array> = {
		lv_cat: (args) => lvCat(...args),
		o_cat: ([a, b]) => oCat(a as Uint8Array, b as Uint8Array),
		transcript_ir: ([a, b, c, d]) =>
			transcriptIr(a as Uint8Array, b as Uint8Array, c as Uint8Array, d as Uint8Array),
		transcript_oc: ([a, b, c, d]) =>
			transcriptOc(a as Uint8Array, b as Uint8Array, c as Uint8Array, d as Uint8Array),
	};
	const calls = Object.entries(utils).filter(([key]) => key !== "prepend_len");

	test("the file has an entry for each function", () => {
		const names = new Set(calls.map(([key]) => key.slice(0, key.indexOf("("))));
		expect([...names].sort()).toEqual(Object.keys(functions).sort());
	});

	for (const [key, expected] of calls) {
		test(key, () => {
			const match = /^(\w+)\((.*)\)$/.exec(key);
			if (match === null) throw new Error(`unparsable key ${key}`);
			const fn = functions[match[1] as string];
			if (fn === undefined) throw new Error(`no function for ${key}`);
			const args = [...(match[2] as string).matchAll(/b'([^']*)'/g)].map((m) =>
				ascii(m[1] as string),
			);
			expect(toHex(fn(args))).toBe(expected as string);
		});
	}
});

describe("string utilities (draft appendix and edge cases)", () => {
	test("prepend_len of 127 and 128 bytes (LEB128 grows to two bytes)", () => {
		const b127 = Uint8Array.from({ length: 127 }, (_, i) => i);
		const b128 = Uint8Array.from({ length: 128 }, (_, i) => i);
		expect(toHex(prependLen(b127))).toBe(`7f${toHex(b127)}`);
		expect(toHex(prependLen(b128))).toBe(`8001${toHex(b128)}`);
	});

	test("prepend_len of larger lengths", () => {
		expect(toHex(prependLen(new Uint8Array(300)).subarray(0, 2))).toBe("ac02");
		expect(toHex(prependLen(new Uint8Array(16383)).subarray(0, 2))).toBe("ff7f");
		expect(toHex(prependLen(new Uint8Array(16384)).subarray(0, 3))).toBe("808001");
		expect(prependLen(new Uint8Array(16384)).length).toBe(16387);
	});

	test("lv_cat of nothing is empty; of one string is prepend_len", () => {
		expect(lvCat().length).toBe(0);
		expect(toHex(lvCat(ascii("abc")))).toBe(toHex(prependLen(ascii("abc"))));
	});

	test("prefix_free_cat vector from the draft appendix", () => {
		expect(toHex(lvCat(ascii("1234"), ascii("5"), ascii(""), ascii("6789")))).toBe(
			"04313233340135000436373839",
		);
	});

	test("lexiographically_larger vectors from the draft appendix", () => {
		const b = (...xs: number[]) => Uint8Array.from(xs);
		expect(lexicographicallyLarger(b(0), b(0, 0))).toBe(false);
		expect(lexicographicallyLarger(b(1), b(0, 0))).toBe(true);
		expect(lexicographicallyLarger(b(0, 0), b(0))).toBe(true);
		expect(lexicographicallyLarger(b(0, 0), b(1))).toBe(false);
		expect(lexicographicallyLarger(b(0, 1), b(1))).toBe(false);
		expect(lexicographicallyLarger(ascii("ABCD"), ascii("BCD"))).toBe(false);
		expect(lexicographicallyLarger(ascii("same"), ascii("same"))).toBe(false);
	});

	test("zero_bytes", () => {
		expect(toHex(zeroBytes(3))).toBe("000000");
		expect(zeroBytes(0).length).toBe(0);
	});

	test("functions do not alias their inputs", () => {
		const a = ascii("xyz");
		const out = lvCat(a);
		out[1] = 0;
		expect(toHex(a)).toBe(toHex(ascii("xyz")));
	});
});

describe("generator (vectors)", () => {
	test("generator_string, with zpad_len zero bytes filling the first block", () => {
		const gs = generatorString(DSI, PRS, CI, SID, 128);
		expect(toHex(gs)).toBe(str("generator_string"));
		expect(toHex(generatorString(DSI, PRS, CI, SID))).toBe(str("generator_string"));
		const zpadLen = V.zpad_len as number;
		const zpadAt = prependLen(DSI).length + prependLen(PRS).length;
		expect(gs[zpadAt]).toBe(zpadLen);
		expect(gs.subarray(zpadAt + 1, zpadAt + 1 + zpadLen).every((x) => x === 0)).toBe(true);
		// DSI, PRS and the padding exactly fill one SHA-512 block.
		expect(zpadAt + 1 + zpadLen).toBe(SHA512_BLOCK_BYTES);
		expect(toHex(gs.subarray(zpadAt + 1 + zpadLen))).toBe(toHex(lvCat(CI, SID)));
	});

	test("zero padding shrinks to nothing for a PRS that fills the block", () => {
		const longPrs = new Uint8Array(200).fill(0x41);
		const gs = generatorString(DSI, longPrs, CI, SID);
		expect(toHex(gs)).toBe(toHex(lvCat(DSI, longPrs, new Uint8Array(0), CI, SID)));
	});

	test("generator_hash", () => {
		expect(toHex(generatorHash(PRS, CI, SID))).toBe(str("generator_hash"));
		expect(toHex(sha512(hex(str("generator_string"))))).toBe(str("generator_hash"));
	});

	test("g = deriveToCurve(generator_hash)", () => {
		expect(toHex(calculateGenerator(PRS, CI, SID).toBytes())).toBe(str("g"));
	});

	test("hashToCurve would give a different point (the API trap DESIGN warns about)", () => {
		const wrong = ristretto255_hasher.hashToCurve(hex(str("generator_string")));
		expect(toHex(wrong.toBytes())).not.toBe(str("g"));
	});

	test("g depends on each of PRS, CI and sid", () => {
		const g = toHex(calculateGenerator(PRS, CI, SID).toBytes());
		expect(toHex(calculateGenerator(ascii("Passwore"), CI, SID).toBytes())).not.toBe(g);
		expect(toHex(calculateGenerator(PRS, flipBit(CI, 0), SID).toBytes())).not.toBe(g);
		expect(toHex(calculateGenerator(PRS, CI, flipBit(SID, 0)).toBytes())).not.toBe(g);
	});
});

describe("messages, K and ISK (vectors)", () => {
	const g = calculateGenerator(PRS, CI, SID);

	test("Ya = scalar_mult(ya, g)", () => {
		expect(toHex(scalarMult(ya, g))).toBe(str("Ya"));
	});

	test("Yb = scalar_mult(yb, g)", () => {
		expect(toHex(scalarMult(yb, g))).toBe(str("Yb"));
	});

	test("K = scalar_mult_vfy(ya, Yb) = scalar_mult_vfy(yb, Ya)", () => {
		expect(toHex(scalarMultVfy(ya, Yb))).toBe(str("K"));
		expect(toHex(scalarMultVfy(yb, Ya))).toBe(str("K"));
	});

	test("transcript_ir", () => {
		expect(toHex(transcriptIr(Ya, ADa, Yb, ADb))).toBe(str("transcript_ir"));
	});

	test("isk_input_ir", () => {
		const input = Buffer.concat([lvCat(DSI_ISK, SID, K), transcriptIr(Ya, ADa, Yb, ADb)]);
		expect(toHex(input)).toBe(str("isk_input_ir"));
		expect(toHex(sha512(input))).toBe(str("ISK_IR"));
	});

	test("ISK_IR", () => {
		expect(toHex(deriveIsk(SID, K, Ya, ADa, Yb, ADb))).toBe(str("ISK_IR"));
	});

	test("transcript_oc, isk_input_oc and ISK_SY (parallel mode, shared utilities)", () => {
		const transcript = transcriptOc(Ya, ADa, Yb, ADb);
		expect(toHex(transcript)).toBe(str("transcript_oc"));
		// Symmetric in the two parties' messages.
		expect(toHex(transcriptOc(Yb, ADb, Ya, ADa))).toBe(str("transcript_oc"));
		const input = Buffer.concat([lvCat(DSI_ISK, SID, K), transcript]);
		expect(toHex(input)).toBe(str("isk_input_oc"));
		expect(toHex(sha512(input))).toBe(str("ISK_SY"));
	});

	test("sid_output_ir and sid_output_oc", () => {
		const label = ascii("CPaceSidOutput");
		expect(toHex(sha512(Buffer.concat([label, transcriptIr(Ya, ADa, Yb, ADb)])))).toBe(
			str("sid_output_ir"),
		);
		expect(toHex(sha512(Buffer.concat([label, transcriptOc(Ya, ADa, Yb, ADb)])))).toBe(
			str("sid_output_oc"),
		);
	});

	test("the role API reproduces Ya, Yb and ISK_IR from injected scalars", () => {
		const a = cpaceInitiatorStart({ prs: PRS, ci: CI, sid: SID, ad: ADa, random: scripted(ya) });
		expect(toHex(a.Ya)).toBe(str("Ya"));
		const b = cpaceResponderRespond(
			{ prs: PRS, ci: CI, sid: SID, ad: ADb, random: scripted(yb) },
			{ Ya: a.Ya, ADa },
		);
		expect(toHex(b.Yb)).toBe(str("Yb"));
		const { isk, Ta } = cpaceInitiatorFinish(a.state, { Yb: b.Yb, ADb, Tb: b.Tb });
		expect(toHex(isk)).toBe(str("ISK_IR"));
		expect(toHex(cpaceResponderVerify(b.state, Ta))).toBe(str("ISK_IR"));
	});

	test("Ta and Tb match an independent HMAC-SHA-512 (node:crypto) of the documented formula", () => {
		// The draft has no MAC vectors; recompute with a second implementation.
		const macKey = createHash("sha512")
			.update(ascii("CPaceMac"))
			.update(SID)
			.update(h("ISK_IR"))
			.digest();
		const Tb = createHmac("sha512", macKey).update(lvCat(Yb, ADb)).digest("hex");
		const Ta = createHmac("sha512", macKey).update(lvCat(Ya, ADa)).digest("hex");
		expect(toHex(deriveMacKey(SID, h("ISK_IR")))).toBe(macKey.toString("hex"));
		expect(toHex(confirmationTag(macKey, Yb, ADb))).toBe(Tb);
		expect(toHex(confirmationTag(macKey, Ya, ADa))).toBe(Ta);

		const a = cpaceInitiatorStart({ prs: PRS, ci: CI, sid: SID, ad: ADa, random: scripted(ya) });
		const b = cpaceResponderRespond(
			{ prs: PRS, ci: CI, sid: SID, ad: ADb, random: scripted(yb) },
			{ Ya: a.Ya, ADa },
		);
		expect(toHex(b.Tb)).toBe(Tb);
		expect(toHex(cpaceInitiatorFinish(a.state, { Yb: b.Yb, ADb, Tb: b.Tb }).Ta)).toBe(Ta);
	});
});

describe("scalar_mult on valid and invalid points (vectors)", () => {
	const valid = sub("scalar_mult_valid");
	const invalid = sub("scalar_mult_vfy_invalid");

	test("scalar_mult on the decoded point", () => {
		const X = ristretto255.Point.fromBytes(h("X", valid));
		expect(toHex(scalarMult(h("s", valid), X))).toBe(str("scalar_mult_decoded", valid));
	});

	test("scalar_mult_vfy on the encoded point", () => {
		expect(toHex(scalarMultVfy(h("s", valid), h("X", valid)))).toBe(str("scalar_mult_vfy", valid));
	});

	test("Y_i1 (not a valid encoding) aborts with a protocol error", () => {
		expect(str("expected", invalid)).toContain("MUST abort");
		const err = expectPairlinkError(
			() => scalarMultVfy(h("s", invalid), h("Y_i1", invalid)),
			"protocol",
		);
		expect(err.cause).toBeDefined();
	});

	test("Y_i2 (the identity) aborts with a protocol error", () => {
		expect(toHex(h("Y_i2_identity", invalid))).toBe(toHex(zeroBytes(POINT_BYTES)));
		expectPairlinkError(
			() => scalarMultVfy(h("s", invalid), h("Y_i2_identity", invalid)),
			"protocol",
		);
	});

	test("both invalid points abort each role", () => {
		for (const bad of [h("Y_i1", invalid), h("Y_i2_identity", invalid)]) {
			expectPairlinkError(
				() => cpaceResponderRespond({ prs: PRS, ci: CI, sid: SID, ad: ADb }, { Ya: bad, ADa }),
				"protocol",
			);
			const a = cpaceInitiatorStart({ prs: PRS, ci: CI, sid: SID, ad: ADa });
			expectPairlinkError(
				() => cpaceInitiatorFinish(a.state, { Yb: bad, ADb, Tb: new Uint8Array(TAG_BYTES) }),
				"protocol",
			);
		}
	});
});

// ---------------------------------------------------------------------------
// Our own properties

const fpA = new Uint8Array(32).fill(0xaa);
const fpB = new Uint8Array(32).fill(0xbb);
const fpM = new Uint8Array(32).fill(0xee);

function params(over: Partial<CpaceParams> & { ad: Uint8Array }): CpaceParams {
	return {
		prs: ascii("abandon-ability-able-about"),
		ci: pairlinkChannelIdentifier(fpA, fpB),
		sid: new Uint8Array(32).fill(7),
		...over,
	};
}

const ADA = pairlinkAssociatedData("laptop");
const ADB = pairlinkAssociatedData("server");

/** Runs PAKE1 and PAKE2; returns what each side holds before PAKE3. */
function runToPake2(a: CpaceParams, b: CpaceParams) {
	const start = cpaceInitiatorStart(a);
	const resp = cpaceResponderRespond(b, { Ya: start.Ya, ADa: start.ADa });
	return { start, resp };
}

describe("a full run", () => {
	test("both sides derive the same 64-byte ISK", () => {
		const prs = ascii(generateCode());
		const { start, resp } = runToPake2(params({ prs, ad: ADA }), params({ prs, ad: ADB }));
		expect(start.Ya.length).toBe(POINT_BYTES);
		expect(resp.Yb.length).toBe(POINT_BYTES);
		expect(resp.Tb.length).toBe(TAG_BYTES);
		const a = cpaceInitiatorFinish(start.state, { Yb: resp.Yb, ADb: resp.ADb, Tb: resp.Tb });
		expect(a.Ta.length).toBe(TAG_BYTES);
		const iskB = cpaceResponderVerify(resp.state, a.Ta);
		expect(a.isk.length).toBe(ISK_BYTES);
		expect(toHex(a.isk)).toBe(toHex(iskB));
	});

	test("fresh scalars: two runs with the same inputs give different shares and ISKs", () => {
		const one = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
		const two = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
		expect(toHex(one.start.Ya)).not.toBe(toHex(two.start.Ya));
		expect(toHex(one.resp.Yb)).not.toBe(toHex(two.resp.Yb));
		const isk1 = cpaceInitiatorFinish(one.start.state, one.resp).isk;
		const isk2 = cpaceInitiatorFinish(two.start.state, two.resp).isk;
		expect(toHex(isk1)).not.toBe(toHex(isk2));
	});

	test("ADa and ADb reach the other side unchanged", () => {
		const { start, resp } = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
		expect(toHex(start.ADa)).toBe(toHex(ADA));
		expect(toHex(resp.ADb)).toBe(toHex(ADB));
	});

	test("states are single-use (a scalar is never used twice)", () => {
		const { start, resp } = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
		const { Ta } = cpaceInitiatorFinish(start.state, resp);
		expectPairlinkError(() => cpaceInitiatorFinish(start.state, resp), "internal");
		cpaceResponderVerify(resp.state, Ta);
		expectPairlinkError(() => cpaceResponderVerify(resp.state, Ta), "internal");
	});

	test("a failed verification also consumes the state (one guess per run)", () => {
		const { start, resp } = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
		const { Ta } = cpaceInitiatorFinish(start.state, resp);
		expectPairlinkError(() => cpaceResponderVerify(resp.state, flipBit(Ta, 0)), "wrong-code");
		expectPairlinkError(() => cpaceResponderVerify(resp.state, Ta), "internal");
	});

	test("states carry no readable secrets", () => {
		const { start, resp } = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
		expect(JSON.stringify(start.state)).toBe('{"role":"cpace-initiator"}');
		expect(JSON.stringify(resp.state)).toBe('{"role":"cpace-responder"}');
		expect(Object.isFrozen(start.state)).toBe(true);
		// A look-alike object is not a state.
		expectPairlinkError(
			() => cpaceResponderVerify({ role: "cpace-responder" }, new Uint8Array(TAG_BYTES)),
			"internal",
		);
	});
});

describe("failures", () => {
	/** What a cheating initiator with its own guess would send as PAKE3. */
	function taFromGuess(guess: CpaceParams, responder: CpaceParams) {
		const y = sampleScalar();
		const g = calculateGenerator(guess.prs, guess.ci, guess.sid);
		const Yx = scalarMult(y, g);
		const resp = cpaceResponderRespond(responder, { Ya: Yx, ADa: guess.ad });
		const Kx = scalarMultVfy(y, resp.Yb);
		const isk = deriveIsk(guess.sid, Kx, Yx, guess.ad, resp.Yb, resp.ADb);
		const Ta = confirmationTag(deriveMacKey(guess.sid, isk), Yx, guess.ad);
		return { resp, Ta };
	}

	test("wrong code: the initiator rejects Tb", () => {
		const { start, resp } = runToPake2(
			params({ prs: ascii("abandon-ability-able-about"), ad: ADA }),
			params({ prs: ascii("abandon-ability-able-above"), ad: ADB }),
		);
		expectPairlinkError(() => cpaceInitiatorFinish(start.state, resp), "wrong-code");
	});

	test("wrong code: the responder rejects a Ta made with another code", () => {
		const b = params({ prs: ascii("abandon-ability-able-about"), ad: ADB });
		const { resp, Ta } = taFromGuess(
			params({ prs: ascii("abandon-ability-able-above"), ad: ADA }),
			b,
		);
		expectPairlinkError(() => cpaceResponderVerify(resp.state, Ta), "wrong-code");
	});

	test("(control) the same cheating path with the right code is accepted", () => {
		const b = params({ ad: ADB });
		const { resp, Ta } = taFromGuess(params({ ad: ADA }), b);
		expect(cpaceResponderVerify(resp.state, Ta).length).toBe(ISK_BYTES);
	});

	// A state is single-use, so each flipped bit gets a fresh run; a spread of
	// bit positions (first, last, byte edges) rather than all 512.
	test("single-bit changes of Tb are rejected", () => {
		for (const bit of [0, 1, 7, 8, 100, 255, 256, 511]) {
			const run = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
			expectPairlinkError(
				() => cpaceInitiatorFinish(run.start.state, { ...run.resp, Tb: flipBit(run.resp.Tb, bit) }),
				"wrong-code",
			);
		}
	});

	test("single-bit changes of Ta are rejected", () => {
		for (const bit of [0, 1, 7, 8, 100, 255, 256, 511]) {
			const { start, resp } = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
			const { Ta } = cpaceInitiatorFinish(start.state, resp);
			expectPairlinkError(() => cpaceResponderVerify(resp.state, flipBit(Ta, bit)), "wrong-code");
		}
	});

	test("Ta or Tb of the wrong length is a protocol error", () => {
		for (const len of [0, 32, 63, 65]) {
			const { start, resp } = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
			// Right prefix, wrong length: must not be mistaken for a wrong code.
			const resized = (tag: Uint8Array) => {
				const out = new Uint8Array(len);
				out.set(tag.subarray(0, len));
				return out;
			};
			expectPairlinkError(
				() => cpaceInitiatorFinish(start.state, { ...resp, Tb: resized(resp.Tb) }),
				"protocol",
			);
			const run = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
			const { Ta } = cpaceInitiatorFinish(run.start.state, run.resp);
			expectPairlinkError(() => cpaceResponderVerify(run.resp.state, resized(Ta)), "protocol");
		}
	});

	test("tampered ADb (Tb computed over the original) is rejected", () => {
		const { start, resp } = runToPake2(params({ ad: ADA }), params({ ad: ADB }));
		expectPairlinkError(
			() => cpaceInitiatorFinish(start.state, { ...resp, ADb: pairlinkAssociatedData("mallory") }),
			"wrong-code",
		);
	});

	test("tampered ADa on the way to the responder is rejected by the initiator", () => {
		const start = cpaceInitiatorStart(params({ ad: ADA }));
		const resp = cpaceResponderRespond(params({ ad: ADB }), {
			Ya: start.Ya,
			ADa: pairlinkAssociatedData("mallory"),
		});
		expectPairlinkError(() => cpaceInitiatorFinish(start.state, resp), "wrong-code");
	});

	test("a different sid (relayed between two TLS sessions) fails key confirmation", () => {
		const { start, resp } = runToPake2(
			params({ sid: new Uint8Array(32).fill(1), ad: ADA }),
			params({ sid: new Uint8Array(32).fill(2), ad: ADB }),
		);
		expectPairlinkError(() => cpaceInitiatorFinish(start.state, resp), "wrong-code");
	});

	test("man in the middle with his own certificates: CIs differ, both sides fail", () => {
		// A talks TLS to M (sees fpM as the server), M talks TLS to B (B sees
		// fpM as the client). M knows no code and relays the messages as they are.
		const aSide = params({ ci: pairlinkChannelIdentifier(fpA, fpM), ad: ADA });
		const bSide = params({ ci: pairlinkChannelIdentifier(fpM, fpB), ad: ADB });
		const { start, resp } = runToPake2(aSide, bSide);
		expectPairlinkError(() => cpaceInitiatorFinish(start.state, resp), "wrong-code");
		// And had A gone on, B would reject the Ta computed under A's CI.
		const { resp: resp2, Ta } = taFromGuess(aSide, bSide);
		expectPairlinkError(() => cpaceResponderVerify(resp2.state, Ta), "wrong-code");
	});

	test("relayed messages with sid and CI both differing fail", () => {
		const { start, resp } = runToPake2(
			params({ ci: pairlinkChannelIdentifier(fpA, fpM), sid: new Uint8Array(32).fill(3), ad: ADA }),
			params({ ci: pairlinkChannelIdentifier(fpM, fpB), sid: new Uint8Array(32).fill(4), ad: ADB }),
		);
		expectPairlinkError(() => cpaceInitiatorFinish(start.state, resp), "wrong-code");
	});

	test("swapping Ya and Yb roles (reflection) fails", () => {
		const start = cpaceInitiatorStart(params({ ad: ADA }));
		const resp = cpaceResponderRespond(params({ ad: ADB }), { Ya: start.Ya, ADa: start.ADa });
		// An attacker reflects A's own message back as PAKE2 with a forged tag.
		expectPairlinkError(
			() => cpaceInitiatorFinish(start.state, { Yb: start.Ya, ADb: start.ADa, Tb: resp.Tb }),
			"wrong-code",
		);
	});
});

describe("peer point validation", () => {
	const identity = zeroBytes(POINT_BYTES);
	// Invalid encodings from RFC 9496 appendix A.2, one or two per class.
	const badEncodings = [
		// non-canonical field elements
		"00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		// top bit set
		"0100000000000000000000000000000000000000000000000000000000000080",
		// negative field elements
		"0100000000000000000000000000000000000000000000000000000000000000",
		"01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		// non-square x^2
		"26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
		// negative xy
		"3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
		// s = -1, so y = 0
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	].map(hex);
	const wrongLengths = [0, 1, 31, 33, 64].map((n) => new Uint8Array(n).fill(0x42));
	const y = sampleScalar();

	test("the identity is refused", () => {
		expectPairlinkError(() => scalarMultVfy(y, identity), "protocol");
	});

	test("invalid encodings are refused", () => {
		for (const X of badEncodings) expectPairlinkError(() => scalarMultVfy(y, X), "protocol");
	});

	test("wrong lengths are refused", () => {
		for (const X of wrongLengths) expectPairlinkError(() => scalarMultVfy(y, X), "protocol");
	});

	test("the responder refuses an identity, invalid or mis-sized Ya", () => {
		for (const Ya of [identity, ...badEncodings, ...wrongLengths]) {
			expectPairlinkError(
				() => cpaceResponderRespond(params({ ad: ADB }), { Ya, ADa: ADA }),
				"protocol",
			);
		}
	});

	test("the initiator refuses an identity, invalid or mis-sized Yb", () => {
		for (const Yb of [identity, ...badEncodings, ...wrongLengths]) {
			const start = cpaceInitiatorStart(params({ ad: ADA }));
			expectPairlinkError(
				() => cpaceInitiatorFinish(start.state, { Yb, ADb: ADB, Tb: new Uint8Array(TAG_BYTES) }),
				"protocol",
			);
		}
	});

	test("a valid point other than a CPace share still gives a usable, non-identity K", () => {
		const X = ristretto255.Point.BASE.multiply(12345n).toBytes();
		const out = scalarMultVfy(y, X);
		expect(out.length).toBe(POINT_BYTES);
		expect(out.some((b) => b !== 0)).toBe(true);
	});
});

describe("scalars", () => {
	const ORDER = ristretto255.Point.Fn.ORDER;

	test("sampleScalar clears the top 4 bits, so every value is below 2^252 < order", () => {
		const y = sampleScalar(scripted(new Uint8Array(32).fill(0xff)));
		expect(y[31]).toBe(0x0f);
		expect(bytesToNumberLE(y)).toBe(2n ** 252n - 1n);
		expect(2n ** 252n < ORDER).toBe(true);
	});

	test("sampleScalar keeps the low 252 bits as given (no reduction, no bias)", () => {
		const raw = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
		const y = sampleScalar(scripted(raw));
		expect(toHex(y.subarray(0, 31))).toBe(toHex(raw.subarray(0, 31)));
		expect(y[31]).toBe((raw[31] as number) & 0x0f);
	});

	test("sampleScalar rejects zero and draws again", () => {
		const onlyTopBits = new Uint8Array(32);
		onlyTopBits[31] = 0xf0; // clears to zero
		const random = scripted(new Uint8Array(32), onlyTopBits, new Uint8Array(32).fill(1));
		const y = sampleScalar(random);
		expect(random.calls).toBe(3);
		expect(toHex(y)).toBe(toHex(new Uint8Array(32).fill(1)));
	});

	test("sampleScalar gives up on a random source that only returns zeros", () => {
		expectPairlinkError(() => sampleScalar(scripted(new Uint8Array(32))), "internal");
	});

	test("sampleScalar with the default source yields distinct in-range scalars", () => {
		const seen = new Set<string>();
		for (let i = 0; i < 64; i++) {
			const y = sampleScalar();
			const n = bytesToNumberLE(y);
			expect(n > 0n && n < 2n ** 252n).toBe(true);
			seen.add(toHex(y));
		}
		expect(seen.size).toBe(64);
	});

	test("scalarMult refuses scalars that are zero, not below the order, or mis-sized", () => {
		const g = ristretto255.Point.BASE;
		const order = new Uint8Array(32);
		let n = ORDER;
		for (let i = 0; i < 32; i++) {
			order[i] = Number(n & 0xffn);
			n >>= 8n;
		}
		for (const bad of [
			zeroBytes(32),
			order,
			new Uint8Array(32).fill(0xff),
			new Uint8Array(31).fill(1),
		]) {
			expectPairlinkError(() => scalarMult(bad, g), "internal");
			expectPairlinkError(() => scalarMultVfy(bad, g.toBytes()), "internal");
		}
	});
});

describe("pairlink inputs", () => {
	test("CI = lv_cat('pairlink/1', fpA, fpB), order-sensitive", () => {
		const ci = pairlinkChannelIdentifier(fpA, fpB);
		expect(toHex(ci)).toBe(`0a${toHex(ascii("pairlink/1"))}20${toHex(fpA)}20${toHex(fpB)}`);
		expect(toHex(pairlinkChannelIdentifier(fpB, fpA))).not.toBe(toHex(ci));
	});

	test("CI refuses fingerprints that are not 32 raw bytes (e.g. hex strings' bytes)", () => {
		expectPairlinkError(() => pairlinkChannelIdentifier(new Uint8Array(31), fpB), "internal");
		expectPairlinkError(() => pairlinkChannelIdentifier(fpA, ascii(toHex(fpB))), "internal");
	});

	test("AD = lv_cat('pairlink/1', utf8(name))", () => {
		expect(toHex(pairlinkAssociatedData("laptop"))).toBe(
			`0a${toHex(ascii("pairlink/1"))}06${toHex(ascii("laptop"))}`,
		);
		const long = "ü".repeat(100); // 200 UTF-8 bytes: a two-byte length
		expect(toHex(pairlinkAssociatedData(long).subarray(11, 13))).toBe("c801");
		expect(toHex(pairlinkAssociatedData(""))).toBe(`0a${toHex(ascii("pairlink/1"))}00`);
	});

	test("tagsEqual compares by value and length", () => {
		const a = new Uint8Array(64).fill(9);
		expect(tagsEqual(a, a.slice())).toBe(true);
		expect(tagsEqual(a, flipBit(a, 300))).toBe(false);
		expect(tagsEqual(a, a.subarray(0, 63))).toBe(false);
	});
});
