import { expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import { encodeFrame, FrameDecoder, FrameType, HEADER_SIZE } from "../../src/protocol/frame.ts";
import { MAX_DATA_PAYLOAD } from "../../src/protocol/limits.ts";
import { decodeMessage } from "../../src/protocol/messages.ts";
import { makePrng, seedFromEnv } from "../helpers/prng.ts";

const BUDGET_MS = 2000;

test("frame decoder: garbage only ever yields PairlinkError and never buffers past the cap", () => {
	const seed = seedFromEnv();
	const rng = makePrng(seed);
	const deadline = performance.now() + BUDGET_MS;
	let runs = 0;
	while (performance.now() < deadline && runs < 20_000) {
		runs++;
		const d = new FrameDecoder();
		// Mostly-valid streams with one mutation find more than pure noise does.
		const parts: Uint8Array[] = [];
		for (let i = rng.int(4); i >= 0; i--) {
			const type = rng.pick([FrameType.control, FrameType.data]);
			parts.push(encodeFrame(type, rng.u32(), rng.bytes(rng.int(64))));
		}
		const stream = Buffer.concat(parts);
		const mutations = rng.int(3);
		for (let m = 0; m < mutations; m++) stream[rng.int(stream.length)] = rng.int(256);
		if (rng.int(4) === 0) stream.writeUInt32BE(rng.u32(), 8); // random length field
		let pos = 0;
		try {
			while (pos < stream.length) {
				const n = 1 + rng.int(20);
				for (const f of d.push(stream.subarray(pos, pos + n))) {
					expect(f.length).toBeLessThanOrEqual(MAX_DATA_PAYLOAD);
				}
				pos += n;
				expect(d.bufferedBytes).toBeLessThanOrEqual(HEADER_SIZE + MAX_DATA_PAYLOAD);
			}
		} catch (e) {
			if (!(e instanceof PairlinkError))
				throw new Error(`seed ${seed}: non-PairlinkError ${String(e)}`);
		}
	}
	expect(runs).toBeGreaterThan(100);
});

test("control message decoder: random JSON-ish payloads only ever yield PairlinkError", () => {
	const seed = seedFromEnv();
	const rng = makePrng(seed);
	const atoms = [
		'"t"',
		'"hello"',
		'"ping"',
		'"error"',
		'"nonce"',
		"1",
		"-1",
		"1e309",
		"null",
		"true",
		"[]",
		"{}",
		'"x"',
		'"\\u0000"',
		'"mode"',
		'"pair"',
		'"session"',
		'"name"',
		'"version"',
		'"code"',
		'"__proto__"',
	];
	const deadline = performance.now() + BUDGET_MS;
	let runs = 0;
	let accepted = 0;
	while (performance.now() < deadline && runs < 50_000) {
		runs++;
		const fields: string[] = [];
		for (let i = rng.int(5); i >= 0; i--) fields.push(`${rng.pick(atoms)}:${rng.pick(atoms)}`);
		let text = `{${fields.join(",")}}`;
		if (rng.int(5) === 0) text = text.slice(0, rng.int(text.length));
		try {
			decodeMessage(new TextEncoder().encode(text));
			accepted++;
		} catch (e) {
			if (!(e instanceof PairlinkError))
				throw new Error(`seed ${seed}: non-PairlinkError for ${text}: ${String(e)}`);
		}
	}
	expect(runs).toBeGreaterThan(100);
	expect(accepted).toBeLessThan(runs);
});
