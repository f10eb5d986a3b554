import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import type { Message } from "../../src/protocol/messages.ts";
import {
	type InitiatorEvent,
	type InitiatorState,
	initiatorStep,
	type PairingAction,
	type PairingBinding,
	type ResponderEvent,
	type ResponderState,
	responderStep,
} from "../../src/session/pairing.ts";

const FP_A = "aa".repeat(32);
const FP_B = "bb".repeat(32);
const FP_M = "cc".repeat(32);
const SID = new Uint8Array(32).fill(7);
const CODE = "abandon-ability-able-about";
const binding: PairingBinding = {
	initiatorFingerprint: FP_A,
	responderFingerprint: FP_B,
	sid: SID,
};

class Initiator {
	state: InitiatorState = { phase: "idle" };
	actions: PairingAction[] = [];
	constructor(private b: PairingBinding = binding) {}
	step(e: InitiatorEvent): PairingAction[] {
		const r = initiatorStep(this.state, e, { ownName: "laptop", binding: this.b });
		this.state = r.state;
		this.actions.push(...r.actions);
		return r.actions;
	}
}

class Responder {
	state: ResponderState = { phase: "await-pake1" };
	actions: PairingAction[] = [];
	constructor(private b: PairingBinding = binding) {}
	step(e: ResponderEvent): PairingAction[] {
		const r = responderStep(this.state, e, { ownName: "desk", binding: this.b });
		this.state = r.state;
		this.actions.push(...r.actions);
		return r.actions;
	}
}

const sent = (actions: PairingAction[]): Message => {
	const s = actions.find((a) => a.type === "send");
	if (s?.type !== "send")
		throw new Error(`no message sent in ${JSON.stringify(actions.map((a) => a.type))}`);
	return s.message;
};
const kinds = (actions: PairingAction[]) =>
	actions.map((a) =>
		a.type === "fail"
			? `fail:${a.error.code}${a.wire ? `>${a.wire}` : ""}`
			: a.type === "send"
				? `send:${a.message.t}`
				: a.type,
	);
const msg = (message: Message) => ({ type: "message" as const, message });

/** Runs a whole pairing between the two machines, with the given codes on each side. */
function run(
	clientCode: string,
	serverCode: string,
	tamper: (m: Message) => Message = (m) => m,
	ib = binding,
	rb = binding,
) {
	const a = new Initiator(ib);
	const b = new Responder(rb);
	const pake1 = sent(a.step({ type: "start", code: clientCode }));
	expect(kinds(b.step(msg(tamper(pake1))))).toEqual(["admit"]);
	const r2 = b.step({ type: "admitted", code: serverCode });
	if ((b.state as ResponderState).phase === "failed") return { a, b };
	const pake2 = sent(r2);
	const r3 = a.step(msg(tamper(pake2)));
	const out = r3.find((x) => x.type === "send");
	if (out?.type !== "send") {
		// The client failed: the transport delivers its wire code to the server.
		const f = r3.find((x) => x.type === "fail");
		if (f?.type === "fail" && f.wire) b.step(msg({ t: "error", code: f.wire }));
		return { a, b };
	}
	const r4 = b.step(msg(tamper(out.message)));
	if (b.state.phase === "failed") {
		const f = r4.find((x) => x.type === "fail");
		if (f?.type === "fail" && f.wire) a.step(msg({ t: "error", code: f.wire }));
		return { a, b };
	}
	b.step({ type: "trusted" });
	a.step(msg(sent(b.actions.slice(-2))));
	a.step({ type: "trusted" });
	return { a, b };
}

describe("pairing machines", () => {
	test("the right code pairs both sides, each trusting the other under its announced name", () => {
		const { a, b } = run(CODE, CODE);
		expect(a.state.phase).toBe("done");
		expect(b.state.phase).toBe("done");
		expect(kinds(a.actions)).toEqual(["send:pake1", "send:pake3", "trust", "paired"]);
		expect(kinds(b.actions)).toEqual(["admit", "send:pake2", "trust", "send:paired", "paired"]);
		expect(a.actions.find((x) => x.type === "trust")).toEqual({ type: "trust", name: "desk" });
		expect(b.actions.find((x) => x.type === "trust")).toEqual({ type: "trust", name: "laptop" });
	});

	test("the code never appears in any message: not as words, bytes, hex, base64 or a plain hash", () => {
		const { a, b } = run(CODE, CODE);
		const sends = [...a.actions, ...b.actions].filter((x) => x.type === "send");
		expect(sends.length).toBeGreaterThanOrEqual(4);
		const wire = JSON.stringify(sends).toLowerCase();
		const spellings = [CODE, CODE.replaceAll("-", " "), CODE.replaceAll("-", "")];
		const forms: string[] = [...CODE.split("-")];
		for (const text of spellings) {
			const bytes = new TextEncoder().encode(text);
			const hash = new Bun.CryptoHasher("sha256").update(bytes).digest();
			for (const b of [Buffer.from(bytes), Buffer.from(hash)])
				forms.push(b.toString("hex"), b.toString("base64"), b.toString("base64url"));
		}
		// Base64 is case-sensitive, but lower-casing both sides only makes the search stricter.
		const leaked = forms.filter((f) => wire.includes(f.toLowerCase().replace(/=+$/, "")));
		expect(leaked).toEqual([]);
	});

	test("a wrong code fails on both sides with wrong-code, and nobody trusts anybody", () => {
		const { a, b } = run(CODE, "zoo-zoo-zoo-zoo");
		expect(kinds(a.actions)).toEqual(["send:pake1", "fail:wrong-code>wrong-code"]);
		expect(kinds(b.actions)).toEqual(["admit", "send:pake2", "fail:wrong-code"]);
		expect([...a.actions, ...b.actions].some((x) => x.type === "trust")).toBe(false);
		const f = a.actions.find((x) => x.type === "fail");
		expect(f?.type === "fail" && f.error.message).toMatch(/wrong code/);
	});

	test("a tampered Tb fails at the client", () => {
		const flip = (m: Message): Message =>
			m.t === "pake2" ? { ...m, tb: (m.tb[0] === "0" ? "1" : "0") + m.tb.slice(1) } : m;
		const { a, b } = run(CODE, CODE, flip);
		expect(a.state.phase).toBe("failed");
		expect(b.state.phase).toBe("failed");
		expect(kinds(a.actions)).toContain("fail:wrong-code>wrong-code");
	});

	test("a tampered Ta fails at the server, and the client is told", () => {
		const flip = (m: Message): Message =>
			m.t === "pake3" ? { ...m, ta: (m.ta[0] === "0" ? "1" : "0") + m.ta.slice(1) } : m;
		const { a, b } = run(CODE, CODE, flip);
		expect(kinds(b.actions)).toEqual(["admit", "send:pake2", "fail:wrong-code>wrong-code"]);
		expect(a.state.phase).toBe("failed");
		expect([...a.actions, ...b.actions].some((x) => x.type === "trust")).toBe(false);
	});

	test("a tampered name (AD) fails key confirmation", () => {
		const rename = (m: Message): Message => (m.t === "pake1" ? { ...m, name: "mallory" } : m);
		const { a, b } = run(CODE, CODE, rename);
		expect(a.state.phase).toBe("failed");
		expect(b.state.phase).toBe("failed");
	});

	test("a relaying man in the middle with his own certificates cannot pair, even with the right code", () => {
		// Each leg is its own TLS session: the client sees M's certificate and
		// one exporter, the server sees M's other certificate and another.
		const clientLeg: PairingBinding = {
			initiatorFingerprint: FP_A,
			responderFingerprint: FP_M,
			sid: new Uint8Array(32).fill(1),
		};
		const serverLeg: PairingBinding = {
			initiatorFingerprint: FP_M,
			responderFingerprint: FP_B,
			sid: new Uint8Array(32).fill(2),
		};
		const { a, b } = run(CODE, CODE, (m) => m, clientLeg, serverLeg);
		expect(kinds(a.actions)).toEqual(["send:pake1", "fail:wrong-code>wrong-code"]);
		expect(b.state.phase).toBe("failed");
		// Same sid, different certificates (a relay that could forward the exporter) fails too.
		const sameSid = run(
			CODE,
			CODE,
			(m) => m,
			{ ...clientLeg, sid: SID },
			{ ...serverLeg, sid: SID },
		);
		expect(sameSid.a.state.phase).toBe("failed");
	});

	test("the responder does no CPace work before the attempt is admitted, and stops if refused", () => {
		const a = new Initiator();
		const b = new Responder();
		expect(kinds(b.step(msg(sent(a.step({ type: "start", code: CODE })))))).toEqual(["admit"]);
		const refused = b.step({
			type: "refused",
			error: new PairlinkError("code-expired", "expired"),
		});
		expect(kinds(refused)).toEqual(["fail:code-expired"]);
	});

	test("events-list: out-of-order, repeated and unexpected input fails closed", () => {
		const a0 = new Initiator();
		const pake1 = sent(a0.step({ type: "start", code: CODE }));
		const responderCases: [ResponderEvent[], string][] = [
			[[msg({ t: "pake3", ta: "00".repeat(64) })], "fail:protocol"],
			[[msg({ t: "paired" })], "fail:protocol"],
			[[{ type: "data" }], "fail:protocol"],
			[[{ type: "admitted", code: CODE }], "fail:protocol"],
			[[{ type: "trusted" }], "fail:protocol"],
			[[msg(pake1), msg(pake1)], "fail:protocol"],
			[[msg(pake1), { type: "admitted", code: CODE }, msg(pake1)], "fail:protocol"],
			[[msg(pake1), { type: "admitted", code: CODE }, { type: "trusted" }], "fail:protocol"],
			[
				[msg({ t: "pake1", ya: "00".repeat(32), name: "x" }), { type: "admitted", code: CODE }],
				"fail:protocol>protocol",
			],
			[[msg({ t: "ping", nonce: "1" })], "fail:protocol"],
		];
		for (const [events, want] of responderCases) {
			const b = new Responder();
			for (const e of events) b.step(e);
			expect(b.state.phase).toBe("failed");
			expect(kinds(b.actions).at(-1)).toBe(want);
			expect(b.actions.some((x) => x.type === "trust" || x.type === "paired")).toBe(false);
		}
		const initiatorCases: InitiatorEvent[][] = [
			[msg({ t: "pake2", yb: "00".repeat(32), name: "x", tb: "00".repeat(64) })],
			[{ type: "start", code: CODE }, msg({ t: "paired" })],
			[{ type: "start", code: CODE }, { type: "data" }],
			[{ type: "start", code: CODE }, { type: "trusted" }],
			[
				{ type: "start", code: CODE },
				{ type: "start", code: CODE },
			],
			[
				{ type: "start", code: CODE },
				msg({ t: "pake2", yb: "00".repeat(32), name: "x", tb: "00".repeat(64) }),
			],
		];
		for (const events of initiatorCases) {
			const a = new Initiator();
			for (const e of events) a.step(e);
			expect(a.state.phase).toBe("failed");
			expect(a.actions.some((x) => x.type === "trust" || x.type === "paired")).toBe(false);
		}
	});

	test("an error from the server during pairing surfaces as its local meaning", () => {
		const a = new Initiator();
		a.step({ type: "start", code: CODE });
		a.step(msg({ t: "error", code: "code-expired" }));
		expect(kinds(a.actions).at(-1)).toBe("fail:code-expired");
	});
});
