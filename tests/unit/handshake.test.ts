import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/limits.ts";
import type { Message } from "../../src/protocol/messages.ts";
import {
	type ClientEvent,
	type ClientState,
	clientStep,
	type HandshakeAction,
	type ServerEvent,
	type ServerState,
	serverStep,
} from "../../src/session/handshake.ts";

const FP = "ab".repeat(32);
const ACCESS = {
	trusted: { trusted: true, pairingOpen: false },
	pairing: { trusted: false, pairingOpen: true },
	untrusted: { trusted: false, pairingOpen: false },
	"trusted+pairing": { trusted: true, pairingOpen: true },
} as const;
const tls = (
	access: keyof typeof ACCESS,
	over: Partial<Extract<ServerEvent, { type: "tls" }>> = {},
): ServerEvent => ({
	type: "tls",
	tlsVersion: "TLSv1.3",
	peerFingerprint: FP,
	access: ACCESS[access],
	...over,
});
const msg = (message: Message): ServerEvent & ClientEvent => ({ type: "message", message });
const hello = (mode: "session" | "pair", version = PROTOCOL_VERSION): Message => ({
	t: "hello",
	version,
	mode,
	name: "laptop",
});

function runServer(events: ServerEvent[]) {
	let state: ServerState = { phase: "tls" };
	const actions: HandshakeAction[] = [];
	for (const e of events) {
		const r = serverStep(state, e, "desk");
		state = r.state;
		actions.push(...r.actions);
	}
	return {
		state,
		actions,
		kinds: actions.map((a) => (a.type === "fail" ? `fail:${a.error.code}:${a.wire}` : a.type)),
	};
}

function runClient(events: ClientEvent[]) {
	let state: ClientState = { phase: "tls" };
	const actions: HandshakeAction[] = [];
	for (const e of events) {
		const r = clientStep(state, e, "laptop");
		state = r.state;
		actions.push(...r.actions);
	}
	return {
		state,
		actions,
		kinds: actions.map((a) => (a.type === "fail" ? `fail:${a.error.code}` : a.type)),
	};
}

describe("server handshake", () => {
	test("trusted peer: HELLO session is answered and established", () => {
		const r = runServer([tls("trusted"), msg(hello("session"))]);
		expect(r.kinds).toEqual(["send", "established"]);
		expect(r.state).toEqual({
			phase: "ready",
			mode: "session",
			peerFingerprint: FP,
			peerName: "laptop",
		});
		expect(r.actions[0]).toEqual({
			type: "send",
			message: { t: "hello", version: PROTOCOL_VERSION, mode: "session", name: "desk" },
		});
	});

	test("events-list: each bad sequence fails closed with the right wire code", () => {
		const cases: [ServerEvent[], string[]][] = [
			[[tls("untrusted")], ["fail:not-trusted:not-trusted"]],
			[[tls("trusted", { tlsVersion: "TLSv1.2" })], ["fail:protocol:not-trusted"]],
			[[tls("trusted", { peerFingerprint: undefined })], ["fail:no-certificate:not-trusted"]],
			[[msg(hello("session"))], ["fail:protocol:undefined"]],
			[[{ type: "data" }], ["fail:protocol:undefined"]],
			[[tls("trusted"), { type: "data" }], ["fail:protocol:undefined"]],
			[[tls("trusted"), msg({ t: "ping", nonce: "x" })], ["fail:protocol:undefined"]],
			[[tls("trusted"), msg(hello("session", 1))], ["fail:protocol:version"]],
			[[tls("trusted"), msg(hello("session", PROTOCOL_VERSION + 1))], ["fail:protocol:version"]],
			[[tls("pairing"), msg(hello("session"))], ["fail:not-trusted:not-trusted"]],
			[[tls("trusted"), msg(hello("pair"))], ["fail:no-code:no-code"]],
			[[tls("untrusted"), msg(hello("session"))], ["fail:not-trusted:not-trusted"]],
			[[tls("trusted"), tls("trusted")], ["fail:protocol:undefined"]],
		];
		for (const [events, want] of cases) expect(runServer(events).kinds).toEqual(want);
	});

	test("pairing access admits only pair mode", () => {
		expect(runServer([tls("pairing"), msg(hello("pair"))]).kinds).toEqual(["send", "established"]);
	});

	test("a trusted device may pair again while a code is pending, or open a session", () => {
		expect(runServer([tls("trusted+pairing"), msg(hello("pair"))]).kinds).toEqual([
			"send",
			"established",
		]);
		expect(runServer([tls("trusted+pairing"), msg(hello("session"))]).kinds).toEqual([
			"send",
			"established",
		]);
	});

	test("nothing happens after close, whatever arrives", () => {
		const r = runServer([
			tls("untrusted"),
			msg(hello("session")),
			{ type: "data" },
			tls("trusted"),
		]);
		expect(r.kinds).toEqual(["fail:not-trusted:not-trusted"]);
		expect(r.state.phase).toBe("closed");
	});
});

describe("client handshake", () => {
	const ctls = (
		ok: boolean,
		over: Partial<Extract<ClientEvent, { type: "tls" }>> = {},
	): ClientEvent => ({
		type: "tls",
		tlsVersion: "TLSv1.3",
		peerFingerprint: FP,
		decision: ok
			? { ok: true, mode: "session" }
			: { ok: false, error: new PairlinkError("not-trusted", "no") },
		...over,
	});

	test("trusted server: HELLO out, HELLO back, established", () => {
		const r = runClient([
			ctls(true),
			msg({ t: "hello", version: PROTOCOL_VERSION, mode: "session", name: "desk" }),
		]);
		expect(r.kinds).toEqual(["send", "established"]);
		expect(r.state).toMatchObject({ phase: "ready", peerName: "desk" });
	});

	test("an untrusted server is refused before anything is sent", () => {
		const r = runClient([ctls(false)]);
		expect(r.kinds).toEqual(["fail:not-trusted"]);
		expect(r.actions.some((a) => a.type === "send")).toBe(false);
	});

	test("events-list failures", () => {
		const cases: [ClientEvent[], string[]][] = [
			[[ctls(true, { tlsVersion: "TLSv1.2" })], ["fail:protocol"]],
			[[ctls(true, { peerFingerprint: undefined })], ["fail:no-certificate"]],
			[[msg(hello("session"))], ["fail:protocol"]],
			[
				[ctls(true), msg({ t: "error", code: "not-trusted" })],
				["send", "fail:not-trusted"],
			],
			[
				[ctls(true), msg({ t: "pong", nonce: "" })],
				["send", "fail:protocol"],
			],
			[
				[ctls(true), { type: "data" }],
				["send", "fail:protocol"],
			],
			[
				[ctls(true), msg(hello("pair"))],
				["send", "fail:protocol"],
			],
			[
				[ctls(true), msg(hello("session", 7))],
				["send", "fail:protocol"],
			],
		];
		for (const [events, want] of cases) expect(runClient(events).kinds).toEqual(want);
	});
});
