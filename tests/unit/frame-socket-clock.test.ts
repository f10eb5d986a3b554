/**
 * FrameSocket's timers run on an injected clock: each timeout is tested by
 * advancing time, and what the peer was told is read off the bytes written.
 */
import { describe, expect, test } from "bun:test";
import type { PairlinkError } from "../../src/errors.ts";
import { encodeFrame, FrameDecoder, FrameType } from "../../src/protocol/frame.ts";
import { CLOSE_GRACE_MS } from "../../src/protocol/limits.ts";
import { decodeControlFrame, encodeMessage, type Message } from "../../src/protocol/messages.ts";
import { FrameSocket, type TlsInfo } from "../../src/transport/frame-socket.ts";
import { ManualClock } from "../helpers/clock.ts";

const TIMEOUTS = { handshakeMs: 10_000, idleMs: 120_000 };

/** A socket that records what is written and how it ended; `reads` false plays a peer that never reads. */
function fakeRaw(reads = true) {
	const written: Uint8Array[] = [];
	const raw = {
		remoteAddress: "127.0.0.1",
		ended: false,
		terminated: false,
		write(data: Uint8Array): number {
			if (!reads) return 0;
			written.push(data.slice());
			return data.length;
		},
		end(): number {
			raw.ended = true;
			return 0;
		},
		terminate() {
			raw.terminated = true;
		},
		pause() {},
		resume() {},
		sent(): Message[] {
			const decoder = new FrameDecoder();
			return written.flatMap((b) => decoder.push(b)).map(decodeControlFrame);
		},
	};
	return raw;
}

function open(reads = true) {
	const clock = new ManualClock();
	const raw = fakeRaw(reads);
	const socket = new FrameSocket(raw, TIMEOUTS, clock);
	const seen: { frames: number; closed: PairlinkError | undefined | "open" } = {
		frames: 0,
		closed: "open",
	};
	socket.attach({
		onHandshake() {},
		onFrame() {
			seen.frames++;
		},
		onClose(e) {
			seen.closed = e;
		},
	});
	return { clock, raw, socket, seen };
}

/** Small writes are coalesced and sent on the next turn of the event loop (socket-writer.ts): let two turns pass. */
async function turns(): Promise<void> {
	for (let i = 0; i < 2; i++) await new Promise<void>((r) => setImmediate(r));
}

const ping = () =>
	encodeFrame(FrameType.control, 0, encodeMessage({ t: "ping", nonce: "00".repeat(16) }));

describe("FrameSocket timeouts on an injected clock", () => {
	test("no TLS handshake within handshakeMs: hung up without a word, the error is a timeout", () => {
		const { clock, raw, socket, seen } = open();
		clock.advance(TIMEOUTS.handshakeMs - 1);
		expect(raw.terminated).toBe(false);
		clock.advance(1);
		expect([raw.terminated, raw.sent().length]).toEqual([true, 0]);
		socket.handleClose();
		expect(seen.closed !== "open" && seen.closed?.code).toBe("timeout");
	});

	test("TLS done but no HELLO within handshakeMs: the peer is told `timeout`", async () => {
		const { clock, raw, socket } = open();
		socket.handleHandshake({} as TlsInfo);
		clock.advance(TIMEOUTS.handshakeMs);
		await turns();
		expect(raw.sent()).toEqual([{ t: "error", code: "timeout" }]);
		expect(raw.ended).toBe(true);
	});

	test("established: a whole frame resets the idle timer; a full idle period closes with `timeout`", async () => {
		const { clock, raw, socket, seen } = open();
		socket.handleHandshake({} as TlsInfo);
		socket.markEstablished();
		clock.advance(TIMEOUTS.handshakeMs * 2); // the handshake timer is gone once established
		expect(raw.sent()).toEqual([]);
		clock.advance(TIMEOUTS.idleMs - TIMEOUTS.handshakeMs * 2 - 1);
		socket.handleData(ping());
		expect(seen.frames).toBe(1);
		clock.advance(TIMEOUTS.idleMs - 1); // idle counts from the ping, not from established
		expect(raw.sent()).toEqual([]);
		clock.advance(1);
		await turns();
		expect(raw.sent()).toEqual([{ t: "error", code: "timeout" }]);
	});

	test("a byte at a time is not activity: the idle timeout still fires", async () => {
		const { clock, raw, socket } = open();
		socket.handleHandshake({} as TlsInfo);
		socket.markEstablished();
		const frame = ping();
		for (let i = 0; i < 4; i++) {
			clock.advance(TIMEOUTS.idleMs / 4 - 1);
			socket.handleData(frame.subarray(i, i + 1));
		}
		clock.advance(4);
		await turns();
		expect(raw.sent()).toEqual([{ t: "error", code: "timeout" }]);
	});

	test("a peer that never reads the error is cut after CLOSE_GRACE_MS", () => {
		const { clock, raw, socket } = open(false);
		socket.handleHandshake({} as TlsInfo);
		socket.markEstablished();
		clock.advance(TIMEOUTS.idleMs);
		expect(raw.terminated).toBe(false);
		clock.advance(CLOSE_GRACE_MS);
		expect([raw.terminated, raw.ended]).toEqual([true, false]);
	});
});
