import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import {
	encodeFrame,
	type Frame,
	FrameDecoder,
	FrameType,
	frameBytes,
	HEADER_SIZE,
} from "../../src/protocol/frame.ts";
import {
	MAX_CONTROL_PAYLOAD,
	MAX_DATA_PAYLOAD,
	PROTOCOL_VERSION,
} from "../../src/protocol/limits.ts";

interface Expected {
	type: FrameType;
	stream: number;
	payload: Uint8Array;
}

function sample(): { bytes: Uint8Array; frames: Expected[] } {
	const frames: Expected[] = [
		{
			type: FrameType.control,
			stream: 0,
			payload: new TextEncoder().encode('{"t":"ping","nonce":"a"}'),
		},
		{ type: FrameType.data, stream: 7, payload: new Uint8Array(0) },
		{
			type: FrameType.data,
			stream: 0xffffffff,
			payload: Uint8Array.from({ length: 300 }, (_, i) => i & 255),
		},
		{ type: FrameType.control, stream: 3, payload: new Uint8Array([1, 2, 3]) },
	];
	const parts = frames.map((f) => encodeFrame(f.type, f.stream, f.payload));
	const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
	let off = 0;
	for (const p of parts) {
		bytes.set(p, off);
		off += p.length;
	}
	return { bytes, frames };
}

function normalise(frames: (Frame | Expected)[]) {
	return frames.map((f) => ({
		type: f.type,
		stream: f.stream,
		payload: Array.from("parts" in f ? frameBytes(f) : f.payload),
	}));
}

describe("frame codec", () => {
	test("round-trips in one push", () => {
		const { bytes, frames } = sample();
		expect(normalise(new FrameDecoder().push(bytes))).toEqual(normalise(frames));
	});

	test("byte-at-a-time decoding yields the same frames", () => {
		const { bytes, frames } = sample();
		const d = new FrameDecoder();
		const out: Frame[] = [];
		for (let i = 0; i < bytes.length; i++) out.push(...d.push(bytes.subarray(i, i + 1)));
		expect(normalise(out)).toEqual(normalise(frames));
		expect(d.bufferedBytes).toBe(0);
	});

	test("every split point yields the same frames", () => {
		const { bytes, frames } = sample();
		const want = normalise(frames);
		for (let cut = 0; cut <= bytes.length; cut++) {
			const d = new FrameDecoder();
			const out = [...d.push(bytes.slice(0, cut)), ...d.push(bytes.slice(cut))];
			expect(normalise(out)).toEqual(want);
		}
	});

	test("every pair of split points yields the same frames", () => {
		const { bytes, frames } = sample();
		const want = JSON.stringify(normalise(frames));
		for (let a = 0; a < bytes.length; a += 7) {
			for (let b = a; b <= bytes.length; b += 5) {
				const d = new FrameDecoder();
				const out = [
					...d.push(bytes.slice(0, a)),
					...d.push(bytes.slice(a, b)),
					...d.push(bytes.slice(b)),
				];
				expect(JSON.stringify(normalise(out))).toBe(want);
			}
		}
	});

	test("accepts payloads exactly at the caps", () => {
		const d = new FrameDecoder();
		const c = d.push(encodeFrame(FrameType.control, 1, new Uint8Array(MAX_CONTROL_PAYLOAD)));
		const b = d.push(encodeFrame(FrameType.data, 1, new Uint8Array(MAX_DATA_PAYLOAD)));
		expect(c[0]?.length).toBe(MAX_CONTROL_PAYLOAD);
		expect(b[0]?.length).toBe(MAX_DATA_PAYLOAD);
		expect(b[0]?.parts.reduce((n, p) => n + p.length, 0)).toBe(MAX_DATA_PAYLOAD);
	});

	test("rejects an oversized length from the header alone, before buffering the payload", () => {
		for (const [type, cap] of [
			[FrameType.control, MAX_CONTROL_PAYLOAD],
			[FrameType.data, MAX_DATA_PAYLOAD],
		] as const) {
			const header = encodeFrame(type, 0, new Uint8Array(0));
			new DataView(header.buffer).setUint32(8, cap + 1);
			const d = new FrameDecoder();
			let err: unknown;
			try {
				d.push(header); // only the 12 header bytes: no payload ever sent
			} catch (e) {
				err = e;
			}
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).code).toBe("frame-too-large");
			expect(d.bufferedBytes).toBe(0);
		}
	});

	test("rejects bad magic, version and type, and stays failed", () => {
		const good = encodeFrame(FrameType.control, 0, new Uint8Array([1]));
		for (const [index, value] of [
			[0, 0x47],
			[1, 0x45],
			[2, 1],
			[2, 3],
			[3, 0],
			[3, 9],
		] as const) {
			const bad = good.slice();
			bad[index] = value;
			const d = new FrameDecoder();
			expect(() => d.push(bad)).toThrow(PairlinkError);
			expect(() => d.push(good)).toThrow(PairlinkError);
		}
	});

	test("a peer on protocol 1 is told which side to upgrade", () => {
		const old = encodeFrame(FrameType.control, 0, new Uint8Array([1]));
		old[2] = 1;
		expect(() => new FrameDecoder().push(old)).toThrow(/upgrade pairlink on the other side/);
		const newer = old.slice();
		newer[2] = PROTOCOL_VERSION + 1;
		expect(() => new FrameDecoder().push(newer)).toThrow(/upgrade pairlink on this device/);
	});

	test("an HTTP request or a TLS record is recognised as not pairlink", () => {
		for (const text of ["GET / HTTP/1.1\r\n\r\n", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"]) {
			const d = new FrameDecoder();
			expect(() => d.push(new TextEncoder().encode(text))).toThrow(
				/not speaking the pairlink protocol/,
			);
		}
	});

	test("waits for a complete header", () => {
		const d = new FrameDecoder();
		const f = encodeFrame(FrameType.control, 5, new Uint8Array([9]));
		expect(d.push(f.subarray(0, HEADER_SIZE - 1))).toEqual([]);
		expect(d.bufferedBytes).toBe(HEADER_SIZE - 1);
		expect(d.push(f.subarray(HEADER_SIZE - 1)).length).toBe(1);
	});

	test("encoder refuses what the decoder would refuse", () => {
		expect(() =>
			encodeFrame(FrameType.control, 0, new Uint8Array(MAX_CONTROL_PAYLOAD + 1)),
		).toThrow(PairlinkError);
		expect(() => encodeFrame(FrameType.data, -1, new Uint8Array(0))).toThrow(PairlinkError);
		expect(() => encodeFrame(9 as FrameType, 0, new Uint8Array(0))).toThrow(PairlinkError);
	});
});
