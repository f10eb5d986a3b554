/**
 * Open a pinned, handshaken connection to a server: dial TLS, decide on the
 * server's certificate before sending anything, exchange HELLO, and pair
 * first when the server is new and a code is at hand.
 */
import { dirname } from "node:path";
import { PairlinkError } from "../errors.ts";
import type { PeerInfo } from "../protocol/channel.ts";
import { type Frame, FrameType } from "../protocol/frame.ts";
import { DEFAULT_TIMEOUTS, type Timeouts } from "../protocol/limits.ts";
import { decodeControlFrame, type Message } from "../protocol/messages.ts";
import { ClientSession } from "../session/client-session.ts";
import { type ClientState, clientStep, type HandshakeAction } from "../session/handshake.ts";
import { MachineRunner } from "../session/machine-runner.ts";
import {
	type InitiatorEvent,
	type InitiatorState,
	initiatorStep,
	type PairingAction,
} from "../session/pairing.ts";
import { decidePin } from "../session/pin.ts";
import { FilePartRecords } from "../store/part-records.ts";
import { sanitizeDeviceName, type TrustedDevice, type TrustStore } from "../store/trust-store.ts";
import { watchTrustStore } from "../store/trust-watch.ts";
import { dialTls } from "../transport/dial.ts";
import type { FrameSocket, TlsInfo } from "../transport/frame-socket.ts";
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
	/**
	 * Where the pairing code comes from, asked only when pairing is needed
	 * (so a prompt appears only for a server we do not know yet). Absent:
	 * no code is at hand.
	 */
	code?: () => Promise<string>;
	/** Pair even when the server is already trusted (`pairlink pair`). */
	wantPair?: boolean;
	/** Save the server under this name instead of the one it announces. */
	saveAs?: string;
}

export interface Connection {
	readonly peer: PeerInfo;
	/** This connection paired the two devices before its session began. */
	readonly paired: boolean;
	readonly session: ClientSession;
	/** Resolves when the connection is gone, with the reason if it was not an orderly close. */
	readonly closed: Promise<PairlinkError | undefined>;
	/** Resolves once this address and "last seen" are saved for the peer (never rejects). */
	readonly recorded: Promise<void>;
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
	return new ClientConnection(opts, socket, tls).established;
}

class ClientConnection {
	readonly established: Promise<Connection>;
	private resolve!: (c: Connection) => void;
	private reject!: (e: PairlinkError) => void;
	private settled = false;
	private state: ClientState = { phase: "tls" };
	private pairing: MachineRunner<InitiatorState, InitiatorEvent, PairingAction> | undefined;
	private session: ClientSession | undefined;
	private helloSent = false;
	private peer: PeerInfo;
	private paired = false;
	/** Stops watching the trust store once the connection is gone. */
	private unwatch: (() => void) | undefined;
	private resolveClosed!: (e: PairlinkError | undefined) => void;
	private readonly closed = new Promise<PairlinkError | undefined>((r) => {
		this.resolveClosed = r;
	});

	constructor(
		private readonly opts: ConnectOptions,
		private readonly socket: FrameSocket,
		private readonly tls: TlsInfo,
	) {
		this.established = new Promise<Connection>((resolve, reject) => {
			this.resolve = resolve;
			this.reject = reject;
		});
		const address = formatAddress(opts.target.hostname, opts.target.port);
		const fp = tls.peerFingerprint;
		const trusted = fp ? opts.trust.findByFingerprint(fp) : undefined;
		this.peer = { name: trusted?.name ?? "", fingerprint: fp ?? "", address };
		socket.attach({
			onHandshake: () => undefined,
			onFrame: (frame) => this.onFrame(frame),
			onClose: (error) => this.onClose(error),
		});
		const decision = fp
			? decidePin({
					peerFingerprint: fp,
					host: opts.target.display,
					trusted,
					named: opts.target.named,
					announced: opts.target.announced,
					lastAtAddress: lastSeenAt(opts.trust, address),
					canPair: opts.code !== undefined,
					wantPair: opts.wantPair ?? false,
				})
			: {
					ok: false as const,
					error: new PairlinkError("no-certificate", "the server presented no certificate"),
				};
		this.apply(
			clientStep(
				this.state,
				{ type: "tls", tlsVersion: tls.tlsVersion, peerFingerprint: fp, decision },
				opts.identity.name,
			),
		);
	}

	private onFrame(frame: Frame): void {
		if (frame.type === FrameType.data) {
			if (this.pairing) this.pairingEvent({ type: "data" });
			else if (this.session) this.session.onData(frame.stream, frame.parts, frame.length);
			else this.apply(clientStep(this.state, { type: "data" }, this.opts.identity.name));
			return;
		}
		let message: Message;
		try {
			message = decodeControlFrame(frame);
		} catch (e) {
			this.fail(e as PairlinkError); // decodeControlFrame throws nothing else
			return;
		}
		if (this.pairing) this.pairingEvent({ type: "message", message });
		else if (this.session) this.session.onMessage(message);
		else this.apply(clientStep(this.state, { type: "message", message }, this.opts.identity.name));
	}

	private apply(step: { state: ClientState; actions: HandshakeAction[] }): void {
		this.state = step.state;
		for (const action of step.actions) {
			if (action.type === "send") {
				this.helloSent = true;
				void this.socket.send(action.message).catch(() => undefined);
			} else if (action.type === "fail") {
				this.fail(action.error);
			} else if (action.mode === "session") {
				this.peer.name ||= action.peerName;
				this.startSession();
			} else {
				this.startPairing();
			}
		}
	}

	private startPairing(): void {
		const getCode = this.opts.code;
		if (!getCode) {
			this.fail(new PairlinkError("internal", "pairing started without a code"));
			return;
		}
		const ctx = {
			ownName: this.opts.identity.name,
			binding: {
				initiatorFingerprint: this.opts.identity.fingerprint,
				responderFingerprint: this.peer.fingerprint,
				sid: this.tls.exporter,
			},
		};
		const runner = new MachineRunner<InitiatorState, InitiatorEvent, PairingAction>(
			{ phase: "idle" },
			(state, event) => initiatorStep(state, event, ctx),
			(action) => this.pairingAction(action),
		);
		this.pairing = runner;
		// The code is asked for only now (a prompt, maybe): events from the server wait behind it.
		const code = getCode().then(
			(c) => runner.dispatch({ type: "start", code: c }),
			(e) =>
				this.fail(
					e instanceof PairlinkError ? e : new PairlinkError("internal", String(e), { cause: e }),
				),
		);
		runner.after(code);
	}

	private pairingEvent(event: InitiatorEvent): void {
		if (!this.socket.closed) this.pairing?.dispatch(event);
	}

	private async pairingAction(action: PairingAction): Promise<void> {
		switch (action.type) {
			case "send":
				await this.socket.send(action.message).catch(() => undefined);
				return;
			case "fail":
				this.fail(action.error, action.wire);
				return;
			case "trust": {
				const saved = await this.opts.trust.add({
					name: this.opts.saveAs ?? sanitizeDeviceName(action.name),
					fingerprint: this.peer.fingerprint,
					address: this.peer.address,
				});
				this.peer.name = saved.name;
				this.pairingEvent({ type: "trusted" });
				return;
			}
			case "paired":
				this.pairing?.stop();
				this.pairing = undefined;
				this.paired = true;
				this.startSession();
				return;
			case "admit":
				return; // the responder's action; never produced for the initiator
		}
	}

	private startSession(): void {
		this.socket.markEstablished();
		const session = new ClientSession(this.socket);
		// Downloads record their part files next to the trust store, under this server's name.
		session.partOwner = {
			records: new FilePartRecords(dirname(this.opts.trust.file)),
			peer: this.peer.fingerprint,
		};
		this.session = session;
		// Removing this server on our side (`pairlink devices remove` in another
		// shell) ends the session now, not at the next connection (attack 1, finding 6).
		const watcher = watchTrustStore(this.opts.trust, () => {
			if (this.opts.trust.findByFingerprint(this.peer.fingerprint)) return;
			this.fail(
				new PairlinkError(
					"not-trusted",
					`${this.peer.name || this.opts.target.display} was removed from this device's trusted devices`,
				),
			);
		});
		this.unwatch = () => watcher?.close();
		const recorded = this.opts.trust
			.touch(this.peer.fingerprint, this.peer.address)
			.then(() => undefined)
			.catch(() => undefined);
		this.settled = true;
		this.resolve({
			peer: this.peer,
			paired: this.paired,
			session,
			closed: this.closed,
			recorded,
			close: () => this.socket.close(),
		});
	}

	private fail(error: PairlinkError, wire?: Parameters<FrameSocket["fail"]>[1]): void {
		this.pairing?.stop();
		this.pairing = undefined;
		// Before our HELLO the server has had no byte from us, and gets none;
		// nor does it hear about our own bad input (a mistyped code word).
		if (this.helloSent && error.code !== "usage") this.socket.fail(error, wire);
		else this.socket.abort(error);
		if (!this.settled) {
			this.settled = true;
			this.reject(error);
		}
	}

	private onClose(error: PairlinkError | undefined): void {
		const reason =
			error ??
			(this.session
				? undefined
				: new PairlinkError(
						"connect-failed",
						`${this.opts.target.display} closed the connection during the handshake`,
					));
		this.unwatch?.();
		this.session?.onClose(reason);
		this.resolveClosed(reason);
		if (!this.settled) {
			this.settled = true;
			this.reject(reason ?? new PairlinkError("interrupted", "the connection closed"));
		}
	}
}

/** The device most recently reached at `address` (several may have been, as addresses move). */
function lastSeenAt(trust: TrustStore, address: string): TrustedDevice | undefined {
	return trust
		.list()
		.filter((d) => d.address === address)
		.sort((a, b) => Date.parse(b.lastSeen) - Date.parse(a.lastSeen))[0];
}
