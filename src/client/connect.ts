/**
 * Open a pinned, handshaken connection to a server: dial TLS, decide on the
 * server's certificate before sending anything, exchange HELLO.
 */
import { PairlinkError } from "../errors.ts";
import type { PeerInfo } from "../protocol/channel.ts";
import { type Frame, FrameType } from "../protocol/frame.ts";
import { DEFAULT_TIMEOUTS, type Timeouts } from "../protocol/limits.ts";
import { decodeMessage, type Message } from "../protocol/messages.ts";
import { ClientSession } from "../session/client-session.ts";
import {
	type ClientState,
	clientStep,
	type HandshakeAction,
	type Mode,
} from "../session/handshake.ts";
import { decidePin } from "../session/pin.ts";
import type { TrustStore } from "../store/trust-store.ts";
import { dialTls } from "../transport/dial.ts";
import type { FrameSocket } from "../transport/frame-socket.ts";
import type { Credentials } from "../transport/tls-options.ts";
import { formatAddress, type Target } from "./target.ts";

export interface ClientIdentity extends Credentials {
	name: string;
	fingerprint: string;
}

export interface ConnectOptions {
	target: Target;
	identity: ClientIdentity;
	trust: TrustStore;
	timeouts?: Timeouts;
	/** A pairing code is at hand. */
	canPair?: boolean;
	/** Pair even when the server is already trusted (`pairlink pair`). */
	wantPair?: boolean;
}

export interface Connection {
	readonly peer: PeerInfo;
	readonly mode: Mode;
	readonly socket: FrameSocket;
	/** Set in session mode. */
	readonly session: ClientSession | undefined;
	/** Resolves when the connection is gone, with the reason if it was not an orderly close. */
	readonly closed: Promise<PairlinkError | undefined>;
	close(): void;
}

export async function connect(opts: ConnectOptions): Promise<Connection> {
	const { target } = opts;
	const { socket, tls } = await dialTls({
		hostname: target.hostname,
		port: target.port,
		credentials: opts.identity,
		timeouts: opts.timeouts ?? DEFAULT_TIMEOUTS,
	});
	const address = formatAddress(target.hostname, target.port);
	const fp = tls.peerFingerprint;
	const trusted = fp ? opts.trust.findByFingerprint(fp) : undefined;
	const lastAtAddress = opts.trust.list().find((d) => d.address === address);
	const decision = fp
		? decidePin({
				peerFingerprint: fp,
				host: target.display,
				trusted,
				named: target.named,
				lastAtAddress,
				canPair: opts.canPair ?? false,
				wantPair: opts.wantPair ?? false,
			})
		: {
				ok: false as const,
				error: new PairlinkError("no-certificate", "the server presented no certificate"),
			};

	return new Promise<Connection>((resolve, reject) => {
		let state: ClientState = { phase: "tls" };
		let session: ClientSession | undefined;
		let settled = false;
		let helloSent = false;
		let resolveClosed: (e: PairlinkError | undefined) => void = () => undefined;
		const closed = new Promise<PairlinkError | undefined>((r) => {
			resolveClosed = r;
		});

		const apply = (step: { state: ClientState; actions: HandshakeAction[] }) => {
			state = step.state;
			for (const action of step.actions) {
				if (action.type === "send") {
					helloSent = true;
					void socket.send(action.message).catch(() => undefined);
				} else if (action.type === "fail") {
					// Before our HELLO the server has had no byte from us, and gets none.
					if (helloSent) socket.fail(action.error);
					else socket.abort(action.error);
					if (!settled) {
						settled = true;
						reject(action.error);
					}
				} else {
					socket.markEstablished();
					if (action.mode === "session") session = new ClientSession(socket);
					void opts.trust.touch(action.peerFingerprint, address).catch(() => undefined);
					settled = true;
					resolve({
						peer: {
							name: trusted?.name ?? action.peerName,
							fingerprint: action.peerFingerprint,
							address,
						},
						mode: action.mode,
						socket,
						session,
						closed,
						close: () => socket.close(),
					});
				}
			}
		};

		const onMessage = (message: Message) => {
			if (state.phase === "ready") session?.onMessage(message);
			else apply(clientStep(state, { type: "message", message }, opts.identity.name));
		};

		socket.attach({
			onHandshake: () => undefined,
			onFrame: (frame: Frame) => {
				if (frame.type === FrameType.data) {
					if (state.phase === "ready") session?.onData();
					else apply(clientStep(state, { type: "data" }, opts.identity.name));
					return;
				}
				let message: Message;
				try {
					message = decodeMessage(frame.payload);
				} catch (e) {
					apply({
						state: { phase: "closed" },
						actions: [{ type: "fail", error: e as PairlinkError }],
					});
					return;
				}
				onMessage(message);
			},
			onClose: (error) => {
				const reason =
					error ??
					(state.phase === "ready"
						? undefined
						: new PairlinkError(
								"connect-failed",
								`${target.display} closed the connection during the handshake`,
							));
				session?.onClose(reason);
				resolveClosed(reason);
				if (!settled) {
					settled = true;
					reject(reason);
				}
			},
		});
		apply(
			clientStep(
				state,
				{ type: "tls", tlsVersion: tls.tlsVersion, peerFingerprint: fp, decision },
				opts.identity.name,
			),
		);
	});
}
