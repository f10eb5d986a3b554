/**
 * The connection's frame routing (session/frame-router.ts), shared by the
 * server and the client, driven here with the server's handshake reducer the
 * way server.ts wires it: the file session exists only once HELLO has
 * established it. "No application frame before HELLO" is decided here.
 */
import { describe, expect, test } from "bun:test";
import type { PairlinkError } from "../../src/errors.ts";
import { encodeFrame, FrameDecoder, FrameType } from "../../src/protocol/frame.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/limits.ts";
import { encodeMessage, type Message } from "../../src/protocol/messages.ts";
import { routeFrame, type StageEvent } from "../../src/session/frame-router.ts";
import { type ServerState, serverStep } from "../../src/session/handshake.ts";

const control = (m: Message) =>
	new FrameDecoder().push(encodeFrame(FrameType.control, 0, encodeMessage(m)))[0];
const data = (stream: number, bytes: number) =>
	new FrameDecoder().push(encodeFrame(FrameType.data, stream, new Uint8Array(bytes)))[0];
const ping: Message = { t: "ping", nonce: "n" };
const hello = (mode: "session" | "pair"): Message => ({
	t: "hello",
	version: PROTOCOL_VERSION,
	mode,
	name: "laptop",
});

/** A server connection in miniature: handshake state, then a session or pairing once established. */
function connection() {
	let state: ServerState = { phase: "tls" };
	const seen: string[] = [];
	let session:
		| { onData(s: number, p: Uint8Array[], n: number): void; onMessage(m: Message): void }
		| undefined;
	let pairing: ((e: StageEvent) => void) | undefined;
	const handshake = (event: StageEvent | { type: "tls" }) => {
		const ev =
			event.type === "tls"
				? {
						type: "tls" as const,
						tlsVersion: "TLSv1.3",
						peerFingerprint: "ab".repeat(32),
						access: { trusted: true, pairingOpen: true },
					}
				: event;
		const next = serverStep(state, ev, "desk");
		state = next.state;
		for (const a of next.actions) {
			if (a.type === "send") seen.push(`sent:${a.message.t}`);
			if (a.type === "fail") seen.push(`fail:${a.error.code}`);
			if (a.type === "established" && a.mode === "session")
				session = {
					onData: (s, _p, n) => seen.push(`session-data:${s}:${n}`),
					onMessage: (m) => seen.push(`session:${m.t}`),
				};
			if (a.type === "established" && a.mode === "pair")
				pairing = (e) => seen.push(`pairing:${e.type === "data" ? "data" : e.message.t}`);
		}
	};
	handshake({ type: "tls" });
	const feed = (frame: ReturnType<typeof control>) =>
		routeFrame(frame as NonNullable<typeof frame>, {
			pairing,
			session,
			handshake,
			fail: (e: PairlinkError) => seen.push(`fail:${e.code}`),
		});
	return { feed, seen };
}

describe("one frame router for both sides", () => {
	test("no application frame before HELLO: a ping is refused, never answered", () => {
		const c = connection();
		c.feed(control(ping));
		c.feed(control(hello("session")));
		expect(c.seen).toEqual(["fail:protocol"]);
	});

	test("no data frame before HELLO either", () => {
		const c = connection();
		c.feed(data(1, 3));
		expect(c.seen).toEqual(["fail:protocol"]);
	});

	test("after HELLO the session gets every message and data frame, decoded once", () => {
		const c = connection();
		c.feed(control(hello("session")));
		c.feed(control(ping));
		c.feed(data(7, 5));
		expect(c.seen).toEqual(["sent:hello", "session:ping", "session-data:7:5"]);
	});

	test("HELLO in pair mode hands frames to pairing, not to a session", () => {
		const c = connection();
		c.feed(control(hello("pair")));
		c.feed(control(ping));
		c.feed(data(1, 1));
		expect(c.seen).toEqual(["sent:hello", "pairing:ping", "pairing:data"]);
	});

	test("a control frame that does not decode ends the connection with a protocol error", () => {
		const c = connection();
		const bad = new FrameDecoder().push(
			encodeFrame(FrameType.control, 0, new TextEncoder().encode('{"t":"nope"}')),
		)[0];
		c.feed(bad);
		expect(c.seen).toEqual(["fail:protocol"]);
	});
});
