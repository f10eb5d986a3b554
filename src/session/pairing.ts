/**
 * The pairing sub-protocol as pure reducers (DESIGN.md §3).
 *
 *   A (client, types the code)            B (server, shows the code)
 *   PAKE1 {Ya, name}           -------->  counts an attempt, then
 *                              <--------  PAKE2 {Yb, name, Tb}
 *   checks Tb; PAKE3 {Ta}      -------->  checks Ta, trusts A
 *                              <--------  PAIRED
 *   trusts B
 *
 * The attempt is counted when B receives PAKE1, before it answers: an
 * attacker who learns from Tb that a guess was wrong and hangs up has
 * still spent one of the code's three runs. Each side trusts the other only
 * after the other's MAC verified. CPace is bound to this TLS connection:
 * CI carries both certificate fingerprints as seen here, sid is the TLS
 * exporter, so messages relayed by a man in the middle with his own
 * certificates produce keys that do not match.
 */
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import {
	type CpaceInitiatorState,
	type CpaceResponderState,
	cpaceInitiatorFinish,
	cpaceInitiatorStart,
	cpaceResponderRespond,
	cpaceResponderVerify,
	pairlinkAssociatedData,
	pairlinkChannelIdentifier,
	type RandomBytes,
} from "../crypto/cpace.ts";
import { fingerprintBytes } from "../crypto/fingerprint.ts";
import { PairlinkError } from "../errors.ts";
import type { Message } from "../protocol/messages.ts";
import { errorFromWire, type WireErrorCode } from "../protocol/wire-errors.ts";

/** What this TLS connection says about both ends: the channel binding. */
export interface PairingBinding {
	/** The client's (initiator's) certificate fingerprint, as seen on this connection. */
	initiatorFingerprint: string;
	/** The server's (responder's) certificate fingerprint, as seen on this connection. */
	responderFingerprint: string;
	/** TLS exporter output for this connection. */
	sid: Uint8Array;
	random?: RandomBytes;
}

export type PairingAction =
	| { type: "send"; message: Message }
	| { type: "fail"; error: PairlinkError; wire?: WireErrorCode }
	/** Responder only: count an attempt; answer with `admitted` or `refused`. */
	| { type: "admit" }
	/** Save the peer in the trust store; the next action waits for it. */
	| { type: "trust"; name: string }
	| { type: "paired"; name: string };

interface Step<S> {
	state: S;
	actions: PairingAction[];
}

const utf8 = (s: string) => new TextEncoder().encode(s);

function channelIdentifier(b: PairingBinding): Uint8Array {
	return pairlinkChannelIdentifier(
		fingerprintBytes(b.initiatorFingerprint),
		fingerprintBytes(b.responderFingerprint),
	);
}

function failed<S>(state: S, error: PairlinkError, wire?: WireErrorCode): Step<S> {
	return { state, actions: [wire ? { type: "fail", error, wire } : { type: "fail", error }] };
}

function unexpected(message: Message | undefined, phase: string): PairlinkError {
	if (message?.t === "error") return errorFromWire(message.code);
	return new PairlinkError(
		"protocol",
		`unexpected ${message ? `"${message.t}"` : "data"} during pairing (${phase})`,
	);
}

/**
 * Turn a CPace failure into what each side reports and tells the peer.
 * `left` (the server's count, in PAKE2) tells the client whether another
 * try can work, or the wrong code just burned the pairing code.
 */
function cpaceFailure(e: unknown, left?: number): { error: PairlinkError; wire: WireErrorCode } {
	if (e instanceof PairlinkError && e.code === "wrong-code") {
		const error =
			left === 0
				? new PairlinkError(
						"code-used",
						"Pairing failed: wrong code, and that was its last attempt: the code is burned",
						{ advice: "code-burned" },
					)
				: new PairlinkError(
						"wrong-code",
						`Pairing failed: wrong code${left === undefined ? "" : ` (${left} ${left === 1 ? "attempt" : "attempts"} left)`}`,
					);
		return { error, wire: "wrong-code" };
	}
	if (e instanceof PairlinkError) return { error: e, wire: "protocol" };
	return { error: new PairlinkError("internal", "pairing failed unexpectedly"), wire: "internal" };
}

// ---------------------------------------------------------------- responder (server)

export type ResponderState =
	| { phase: "await-pake1" }
	| { phase: "admitting"; ya: Uint8Array; peerName: string }
	| { phase: "await-pake3"; cpace: CpaceResponderState; peerName: string }
	| { phase: "trusting"; peerName: string }
	| { phase: "done" }
	| { phase: "failed" };

export type ResponderEvent =
	| { type: "message"; message: Message }
	| { type: "data" }
	| { type: "admitted"; code: string; left?: number }
	| { type: "refused"; error: PairlinkError }
	| { type: "trusted" };

export function responderStep(
	state: ResponderState,
	event: ResponderEvent,
	ctx: { ownName: string; binding: PairingBinding },
): Step<ResponderState> {
	const fail = (error: PairlinkError, wire?: WireErrorCode) =>
		failed<ResponderState>({ phase: "failed" }, error, wire);
	if (state.phase === "done" || state.phase === "failed") return { state, actions: [] };
	const message = event.type === "message" ? event.message : undefined;

	switch (state.phase) {
		case "await-pake1":
			if (message?.t !== "pake1") return fail(unexpected(message, "waiting for PAKE1"));
			return {
				state: { phase: "admitting", ya: hexToBytes(message.ya), peerName: message.name },
				actions: [{ type: "admit" }],
			};
		case "admitting":
			if (event.type === "refused") return fail(event.error);
			if (event.type !== "admitted") return fail(unexpected(message, "counting the attempt"));
			try {
				const r = cpaceResponderRespond(
					{
						prs: utf8(event.code),
						ci: channelIdentifier(ctx.binding),
						sid: ctx.binding.sid,
						ad: pairlinkAssociatedData(ctx.ownName),
						...(ctx.binding.random ? { random: ctx.binding.random } : {}),
					},
					{ Ya: state.ya, ADa: pairlinkAssociatedData(state.peerName) },
				);
				return {
					state: { phase: "await-pake3", cpace: r.state, peerName: state.peerName },
					actions: [
						{
							type: "send",
							message: {
								t: "pake2",
								yb: bytesToHex(r.Yb),
								name: ctx.ownName,
								tb: bytesToHex(r.Tb),
								...(event.left === undefined ? {} : { left: event.left }),
							},
						},
					],
				};
			} catch (e) {
				const f = cpaceFailure(e);
				return fail(f.error, f.wire);
			}
		case "await-pake3":
			if (message?.t === "error" && message.code === "wrong-code") {
				return fail(
					new PairlinkError("wrong-code", `Pairing with "${state.peerName}" failed: wrong code`),
				);
			}
			if (message?.t !== "pake3") return fail(unexpected(message, "waiting for PAKE3"));
			try {
				cpaceResponderVerify(state.cpace, hexToBytes(message.ta)).fill(0);
			} catch (e) {
				const f = cpaceFailure(e);
				return fail(f.error, f.wire);
			}
			return {
				state: { phase: "trusting", peerName: state.peerName },
				actions: [{ type: "trust", name: state.peerName }],
			};
		case "trusting":
			if (event.type !== "trusted") return fail(unexpected(message, "saving the device"));
			return {
				state: { phase: "done" },
				actions: [
					{ type: "send", message: { t: "paired" } },
					{ type: "paired", name: state.peerName },
				],
			};
	}
}

// ---------------------------------------------------------------- initiator (client)

export type InitiatorState =
	| { phase: "idle" }
	| { phase: "await-pake2"; cpace: CpaceInitiatorState }
	| { phase: "await-paired"; peerName: string }
	| { phase: "trusting"; peerName: string }
	| { phase: "done" }
	| { phase: "failed" };

export type InitiatorEvent =
	| { type: "start"; code: string }
	| { type: "message"; message: Message }
	| { type: "data" }
	| { type: "trusted" };

export function initiatorStep(
	state: InitiatorState,
	event: InitiatorEvent,
	ctx: { ownName: string; binding: PairingBinding },
): Step<InitiatorState> {
	const fail = (error: PairlinkError, wire?: WireErrorCode) =>
		failed<InitiatorState>({ phase: "failed" }, error, wire);
	if (state.phase === "done" || state.phase === "failed") return { state, actions: [] };
	const message = event.type === "message" ? event.message : undefined;

	switch (state.phase) {
		case "idle": {
			if (event.type !== "start") return fail(unexpected(message, "before PAKE1"));
			const r = cpaceInitiatorStart({
				prs: utf8(event.code),
				ci: channelIdentifier(ctx.binding),
				sid: ctx.binding.sid,
				ad: pairlinkAssociatedData(ctx.ownName),
				...(ctx.binding.random ? { random: ctx.binding.random } : {}),
			});
			return {
				state: { phase: "await-pake2", cpace: r.state },
				actions: [
					{ type: "send", message: { t: "pake1", ya: bytesToHex(r.Ya), name: ctx.ownName } },
				],
			};
		}
		case "await-pake2": {
			if (message?.t !== "pake2") return fail(unexpected(message, "waiting for PAKE2"));
			let ta: Uint8Array;
			try {
				const r = cpaceInitiatorFinish(state.cpace, {
					Yb: hexToBytes(message.yb),
					ADb: pairlinkAssociatedData(message.name),
					Tb: hexToBytes(message.tb),
				});
				r.isk.fill(0);
				ta = r.Ta;
			} catch (e) {
				const f = cpaceFailure(e, message.left);
				return fail(f.error, f.wire);
			}
			return {
				state: { phase: "await-paired", peerName: message.name },
				actions: [{ type: "send", message: { t: "pake3", ta: bytesToHex(ta) } }],
			};
		}
		case "await-paired":
			if (message?.t !== "paired") return fail(unexpected(message, "waiting for PAIRED"));
			return {
				state: { phase: "trusting", peerName: state.peerName },
				actions: [{ type: "trust", name: state.peerName }],
			};
		case "trusting":
			if (event.type !== "trusted") return fail(unexpected(message, "saving the device"));
			return { state: { phase: "done" }, actions: [{ type: "paired", name: state.peerName }] };
	}
}
