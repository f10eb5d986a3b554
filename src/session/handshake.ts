/**
 * The pairlink handshake after TLS, as pure reducers: `step(state, event)
 * -> {state, actions}`. No application frame is processed before the pin
 * decision and the HELLO exchange; the reducers make skipping them
 * impossible, and the events-list tests prove it.
 *
 *   client                                server
 *   TLS 1.3, both certificates  <------>  TLS 1.3, both certificates
 *   pin decision (trusted | pair | refuse) pin decision (trusted | pairing | refuse)
 *   HELLO {version, mode, name}  ------>  checks mode against its decision
 *                                <------  HELLO {version, mode, name} | ERROR {code}
 */
import { PairlinkError } from "../errors.ts";
import { versionMismatch } from "../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../protocol/limits.ts";
import type { Message, MessageOf } from "../protocol/messages.ts";
import { errorFromWire, type WireErrorCode } from "../protocol/wire-errors.ts";

export type Mode = "session" | "pair";

export type HandshakeAction =
	| { type: "send"; message: Message }
	| { type: "fail"; error: PairlinkError; wire?: WireErrorCode }
	| { type: "established"; mode: Mode; peerFingerprint: string; peerName: string };

interface Step<S> {
	state: S;
	actions: HandshakeAction[];
}

// ---------------------------------------------------------------- server

/** What the server's trust store and pending code say about a peer. */
export interface ServerAccess {
	/** The peer's certificate is in the trust store. */
	trusted: boolean;
	/** A pairing code is pending, so a pairing run may start. */
	pairingOpen: boolean;
}

export type ServerState =
	| { phase: "tls" }
	| { phase: "hello"; peerFingerprint: string; access: ServerAccess }
	| { phase: "ready"; mode: Mode; peerFingerprint: string; peerName: string }
	| { phase: "closed" };

export type ServerEvent =
	| { type: "tls"; tlsVersion: string; peerFingerprint: string | undefined; access: ServerAccess }
	| { type: "message"; message: Message }
	| { type: "data" };

export function serverStep(
	state: ServerState,
	event: ServerEvent,
	serverName: string,
): Step<ServerState> {
	const fail = (error: PairlinkError, wire?: WireErrorCode): Step<ServerState> => ({
		state: { phase: "closed" },
		actions: [wire ? { type: "fail", error, wire } : { type: "fail", error }],
	});
	if (state.phase === "closed") return { state, actions: [] };

	if (state.phase === "tls") {
		if (event.type !== "tls")
			return fail(new PairlinkError("protocol", "frame before the TLS handshake"));
		const tlsError = checkTls(event.tlsVersion, event.peerFingerprint);
		if (tlsError) return fail(tlsError, "not-trusted");
		if (!event.access.trusted && !event.access.pairingOpen) {
			return fail(
				new PairlinkError("not-trusted", "an untrusted device, and pairing is closed"),
				"not-trusted",
			);
		}
		return {
			state: {
				phase: "hello",
				peerFingerprint: event.peerFingerprint as string,
				access: event.access,
			},
			actions: [],
		};
	}

	if (state.phase === "hello") {
		if (event.type !== "message" || event.message.t !== "hello") {
			return fail(new PairlinkError("protocol", "the peer sent something before its HELLO"));
		}
		const hello = event.message;
		if (hello.version !== PROTOCOL_VERSION) {
			return fail(new PairlinkError("protocol", versionMismatch(hello.version)), "version");
		}
		if (hello.mode === "session" && !state.access.trusted) {
			return fail(
				new PairlinkError("not-trusted", "refused a session from an unpaired device"),
				"not-trusted",
			);
		}
		if (hello.mode === "pair" && !state.access.pairingOpen) {
			return fail(new PairlinkError("no-code", "refused pairing: no code is pending"), "no-code");
		}
		return {
			state: {
				phase: "ready",
				mode: hello.mode,
				peerFingerprint: state.peerFingerprint,
				peerName: hello.name,
			},
			actions: [
				{
					type: "send",
					message: { t: "hello", version: PROTOCOL_VERSION, mode: hello.mode, name: serverName },
				},
				{
					type: "established",
					mode: hello.mode,
					peerFingerprint: state.peerFingerprint,
					peerName: hello.name,
				},
			],
		};
	}

	// ready: the handshake is over; frames belong to the session now.
	return { state, actions: [] };
}

// ---------------------------------------------------------------- client

/** The client's pin decision, made from its trust store before it sends anything. */
export type ClientDecision = { ok: true; mode: Mode } | { ok: false; error: PairlinkError };

export type ClientState =
	| { phase: "tls" }
	| { phase: "hello"; mode: Mode; peerFingerprint: string }
	| { phase: "ready"; mode: Mode; peerFingerprint: string; peerName: string }
	| { phase: "closed" };

export type ClientEvent =
	| {
			type: "tls";
			tlsVersion: string;
			peerFingerprint: string | undefined;
			decision: ClientDecision;
	  }
	| { type: "message"; message: Message }
	| { type: "data" };

export function clientStep(
	state: ClientState,
	event: ClientEvent,
	clientName: string,
): Step<ClientState> {
	const fail = (error: PairlinkError): Step<ClientState> => ({
		state: { phase: "closed" },
		actions: [{ type: "fail", error }],
	});
	if (state.phase === "closed") return { state, actions: [] };

	if (state.phase === "tls") {
		if (event.type !== "tls")
			return fail(new PairlinkError("protocol", "the server sent data before the TLS handshake"));
		const tlsError = checkTls(event.tlsVersion, event.peerFingerprint);
		if (tlsError) return fail(tlsError);
		if (!event.decision.ok) return fail(event.decision.error);
		const mode = event.decision.mode;
		return {
			state: { phase: "hello", mode, peerFingerprint: event.peerFingerprint as string },
			actions: [
				{
					type: "send",
					message: { t: "hello", version: PROTOCOL_VERSION, mode, name: clientName },
				},
			],
		};
	}

	if (state.phase === "hello") {
		if (event.type === "message" && event.message.t === "error")
			return fail(errorFromWire(event.message.code));
		if (event.type !== "message" || event.message.t !== "hello") {
			return fail(new PairlinkError("protocol", "the server answered something other than HELLO"));
		}
		const hello: MessageOf<"hello"> = event.message;
		if (hello.version !== PROTOCOL_VERSION) {
			return fail(new PairlinkError("protocol", versionMismatch(hello.version)));
		}
		if (hello.mode !== state.mode) {
			return fail(new PairlinkError("protocol", "the server answered HELLO for another mode"));
		}
		return {
			state: {
				phase: "ready",
				mode: state.mode,
				peerFingerprint: state.peerFingerprint,
				peerName: hello.name,
			},
			actions: [
				{
					type: "established",
					mode: state.mode,
					peerFingerprint: state.peerFingerprint,
					peerName: hello.name,
				},
			],
		};
	}

	return { state, actions: [] };
}

function checkTls(version: string, fingerprint: string | undefined): PairlinkError | undefined {
	if (version !== "TLSv1.3")
		return new PairlinkError("protocol", `the peer negotiated ${version || "no TLS"}, not TLS 1.3`);
	if (!fingerprint) return new PairlinkError("no-certificate", "the peer presented no certificate");
	return undefined;
}
