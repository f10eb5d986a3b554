/**
 * `pairlink serve` without the terminal: listens, pins every peer against
 * the trust store, runs the handshake, and hands trusted connections to a
 * session (or, with a pending code, to pairing).
 */
import { PairlinkError } from "../errors.ts";
import type { SandboxRoot } from "../fs/root.ts";
import type { PeerInfo } from "../protocol/channel.ts";
import type { Frame } from "../protocol/frame.ts";
import { FrameType } from "../protocol/frame.ts";
import { DEFAULT_TIMEOUTS, PEER_LIMITS, type Timeouts } from "../protocol/limits.ts";
import { decodeControlFrame, type Message } from "../protocol/messages.ts";
import { type HandshakeAction, type ServerState, serverStep } from "../session/handshake.ts";
import { MachineRunner } from "../session/machine-runner.ts";
import {
	type PairingAction,
	type ResponderEvent,
	type ResponderState,
	responderStep,
} from "../session/pairing.ts";
import { HalfOpenLedger, keepReading, sourceKey } from "../session/peer-limits.ts";
import type { ServePolicy } from "../session/policy.ts";
import { type OperationEvent, ServerSession } from "../session/server-session.ts";
import type { PartRecordStore } from "../store/part-records.ts";
import { sanitizeDeviceName, type TrustStore } from "../store/trust-store.ts";
import { watchTrustStore } from "../store/trust-watch.ts";
import type { FrameSocket, TlsInfo } from "../transport/frame-socket.ts";
import { listenTls } from "../transport/listen.ts";
import type { Credentials } from "../transport/tls-options.ts";
import type { PairingGate } from "./pairing-gate.ts";

export type ServerEvent =
	| { event: "listening"; host: string; port: number; fingerprint: string }
	| { event: "connected"; name: string; fingerprint: string; address: string }
	| { event: "disconnected"; name: string; fingerprint: string; address: string; reason?: string }
	| { event: "refused"; address: string; reason: string; fingerprint?: string }
	| { event: "paired"; name: string; fingerprint: string; address: string }
	| {
			event: "transfer";
			op: "get" | "put";
			path: string;
			bytes: number;
			sha256: string;
			resumedFrom: number;
			device: string;
			fingerprint: string;
	  }
	| {
			event: "operation";
			op: OperationEvent["op"];
			path: string;
			device: string;
			fingerprint: string;
			/** The code the client was refused with; absent when it was done. */
			refused?: string;
	  }
	/** An upload cut short by the connection's end; its verified part waits for the resume. */
	| {
			event: "interrupted";
			op: "put";
			path: string;
			kept: number;
			device: string;
			fingerprint: string;
	  }
	| { event: "stopped" };

export interface ServerIdentity extends Credentials {
	name: string;
	fingerprint: string;
}

export interface ServerOptions {
	hostname: string;
	port: number;
	identity: ServerIdentity;
	trust: TrustStore;
	/** The shared directory every remote path is confined to. */
	root: SandboxRoot;
	/** Where part files are recorded (the state directory); default: for this process only. */
	partRecords?: PartRecordStore;
	policy: ServePolicy;
	/** Absent: pairing is off (`--no-pair`). */
	pairing?: PairingGate;
	timeouts?: Timeouts;
	maxClients?: number;
	onEvent?(event: ServerEvent): void;
	/** The OS whose name rules uploads must meet (default: this one's); for tests. */
	platform?: string;
}

export interface RunningServer {
	readonly hostname: string;
	readonly port: number;
	/** Connections that completed the handshake and are still open. */
	readonly activeConnections: number;
	/**
	 * Stop accepting; close idle connections at once and give connections
	 * with a transfer in flight up to `graceMs` to finish, then drop them
	 * (their partial uploads stay resumable). Resolves when all are closed.
	 */
	stop(graceMs?: number): Promise<void>;
}

export const DEFAULT_MAX_CLIENTS = 32;
/** How long a stopping server lets running transfers go on. */
export const DEFAULT_STOP_GRACE_MS = 5000;

export function startServer(opts: ServerOptions): RunningServer {
	const emit = opts.onEvent ?? (() => undefined);
	const maxClients = opts.maxClients ?? DEFAULT_MAX_CLIENTS;
	const open = new Set<ServerConnection>();
	// Connections not yet known to be a trusted device, counted per source (peer-limits.ts);
	// a trusted device's connections that have not sent HELLO yet, counted per device.
	const halfOpen = HalfOpenLedger.forClients<ServerConnection>(maxClients);
	const beforeHello = HalfOpenLedger.forClients<ServerConnection>(maxClients);
	let established = 0;
	/** Established sessions per device fingerprint (PEER_LIMITS.sessionsPerDevice). */
	const perDevice = new Map<string, number>();
	let stopping: Promise<void> | undefined;
	let onEmpty: (() => void) | undefined;
	const listener = listenTls({
		hostname: opts.hostname,
		port: opts.port,
		credentials: opts.identity,
		timeouts: opts.timeouts ?? DEFAULT_TIMEOUTS,
		onConnection(socket) {
			if (stopping) {
				socket.fail(new PairlinkError("interrupted", "the server is stopping"), "stopping");
				return;
			}
			const conn = new ServerConnection(socket, opts, emit, {
				admit: (fingerprint) =>
					established < maxClients &&
					(perDevice.get(fingerprint) ?? 0) < PEER_LIMITS.sessionsPerDevice,
				stopping: () => stopping !== undefined,
				onTrusted: (fingerprint) => {
					halfOpen.leave(conn);
					if (!beforeHello.admit(fingerprint, conn, performance.now()).admitted) conn.shed();
				},
				onEstablished: (fingerprint) => {
					established++;
					perDevice.set(fingerprint, (perDevice.get(fingerprint) ?? 0) + 1);
					halfOpen.leave(conn);
					beforeHello.leave(conn);
				},
				onClosed: (device) => {
					open.delete(conn);
					halfOpen.leave(conn);
					beforeHello.leave(conn);
					if (device !== undefined) {
						established--;
						const left = (perDevice.get(device) ?? 1) - 1;
						if (left > 0) perDevice.set(device, left);
						else perDevice.delete(device);
					}
					if (open.size === 0) onEmpty?.();
				},
			});
			// Every unauthenticated connection holds a slot of its source, so a
			// flood of half-open handshakes from one source only starves itself.
			const { admitted, shed } = halfOpen.admit(
				sourceKey(socket.remoteAddress),
				conn,
				performance.now(),
			);
			shed?.shed();
			if (!admitted) {
				conn.shed();
				return;
			}
			open.add(conn);
		},
	});
	const revoker = watchTrustStore(opts.trust, () => {
		for (const conn of open) conn.checkStillTrusted();
	});
	return {
		hostname: listener.hostname,
		port: listener.port,
		get activeConnections() {
			return established;
		},
		async stop(graceMs = DEFAULT_STOP_GRACE_MS) {
			if (stopping) return stopping;
			stopping = (async () => {
				revoker?.close();
				listener.stop(false);
				for (const conn of open) if (!conn.busy) conn.close();
				const allClosed = new Promise<void>((resolve) => {
					onEmpty = resolve;
					if (open.size === 0) resolve();
				});
				let timer: ReturnType<typeof setTimeout> | undefined;
				const graceOver = new Promise<void>((r) => {
					timer = setTimeout(r, graceMs);
				});
				await Promise.race([allClosed, graceOver]);
				clearTimeout(timer);
				for (const conn of open) conn.terminate();
				let last: ReturnType<typeof setTimeout> | undefined;
				await Promise.race([allClosed, new Promise((r) => (last = setTimeout(r, 1000)))]);
				clearTimeout(last);
				// Still closing (its files being flushed): its "disconnected" must not follow "stopped".
				for (const conn of open)
					conn.tellDisconnected(new PairlinkError("interrupted", "the server stopped"));
				listener.stop(true);
				emit({ event: "stopped" });
			})();
			return stopping;
		},
	};
}

interface Slots {
	/** Room for one more session of this device: under --max-clients and its per-device cap. */
	admit(fingerprint: string): boolean;
	/** The server is stopping: an idle connection is closed. */
	stopping(): boolean;
	/** The peer showed a trusted certificate: it leaves its source's slots for its device's. */
	onTrusted(fingerprint: string): void;
	onEstablished(fingerprint: string): void;
	/** `device`: the fingerprint of the session that ended; absent when none was established. */
	onClosed(device: string | undefined): void;
}

interface PairingRun {
	runner: MachineRunner<ResponderState, ResponderEvent, PairingAction>;
	admitted: boolean;
}

class ServerConnection {
	private state: ServerState = { phase: "tls" };
	private session: ServerSession | undefined;
	private toldDisconnected = false;
	private pairing: PairingRun | undefined;
	private peer: PeerInfo | undefined;
	private tls: TlsInfo | undefined;
	/** The certificate was found in the trust store at the end of TLS (not a pairing run). */
	private trusted = false;
	/** Frames that arrive while the trust store is being read. */
	private held: Frame[] | undefined;
	/** Settles once "paired" and "connected" are out: "disconnected" never comes first. */
	private announced: Promise<void> = Promise.resolve();

	constructor(
		private readonly socket: FrameSocket,
		private readonly opts: ServerOptions,
		private readonly emit: (e: ServerEvent) => void,
		private readonly slots: Slots,
	) {
		socket.attach({
			onHandshake: (info) => void this.onHandshake(info),
			onFrame: (frame) => {
				this.onFrame(frame);
				this.applyLimits();
			},
			onClose: (error) => this.onClose(error),
			onDrain: () => this.applyLimits(),
		});
	}

	/**
	 * Stop reading from a peer past its per-connection caps (requests in
	 * flight, queued gets, reply bytes it has not read), resume once it is
	 * back under them: backpressure, never buffering.
	 */
	private applyLimits(): void {
		if (!this.session || this.socket.closed) return;
		const load = { ...this.session.load, queuedReplyBytes: this.socket.pendingBytes };
		if (keepReading(load, this.socket.reading)) this.socket.release("limits");
		else this.socket.hold("limits");
	}

	/** A transfer is in flight on this connection. */
	get busy(): boolean {
		return this.session?.busy ?? this.pairing !== undefined;
	}

	close(): void {
		this.socket.close();
	}

	/** Its source is over its half-open cap, or a newcomer from a smaller source needs the slot. */
	shed(): void {
		this.socket.fail(
			new PairlinkError("connect-failed", "too many connections from its source"),
			"busy",
		);
	}

	/**
	 * The trust store changed: a removed device's connection ends now, not
	 * at its next connection — whatever its state. A connection that
	 * finished TLS as a trusted device but has not sent HELLO yet is checked
	 * too (attack 1, finding 1: such a connection, held open, got a full
	 * session after its device was removed). A pairing run is not trusted
	 * yet and is left alone.
	 */
	checkStillTrusted(): void {
		if (!(this.trusted || this.session) || !this.peer || this.socket.closed) return;
		if (this.opts.trust.findByFingerprint(this.peer.fingerprint)) return;
		this.fail(new PairlinkError("not-trusted", "the device was removed"), "not-trusted");
	}

	/** Emit "disconnected" now if it was not already (at most once per connection). */
	tellDisconnected(error?: PairlinkError): void {
		if (this.toldDisconnected || !this.session || !this.peer) return;
		this.toldDisconnected = true;
		this.emit({
			event: "disconnected",
			name: this.peer.name,
			fingerprint: this.peer.fingerprint,
			address: this.peer.address,
			...(error ? { reason: error.message } : {}),
		});
	}

	terminate(): void {
		this.socket.fail(new PairlinkError("interrupted", "the server stopped"), "stopping");
	}

	private async onHandshake(info: TlsInfo): Promise<void> {
		this.held = [];
		this.tls = info;
		this.peer = { name: "", fingerprint: info.peerFingerprint ?? "", address: info.remoteAddress };
		let trusted = false;
		let pairingOpen = false;
		try {
			if (info.peerFingerprint) {
				// Re-read on every connection: `pairlink devices remove` in another
				// process must revoke the device for the very next connection.
				await this.opts.trust.reload();
				const device = this.opts.trust.findByFingerprint(info.peerFingerprint);
				if (device) {
					trusted = true;
					this.trusted = true;
					this.peer.name = device.name;
					this.slots.onTrusted(device.fingerprint);
				}
				pairingOpen = (await this.opts.pairing?.isOpen()) ?? false;
			}
		} catch (e) {
			this.fail(e instanceof PairlinkError ? e : new PairlinkError("internal", String(e)));
			return;
		}
		if (this.socket.closed) return;
		this.apply(
			serverStep(
				this.state,
				{
					type: "tls",
					tlsVersion: info.tlsVersion,
					peerFingerprint: info.peerFingerprint,
					access: { trusted, pairingOpen },
				},
				this.opts.identity.name,
			),
		);
		const held = this.held;
		this.held = undefined;
		for (const frame of held) this.onFrame(frame);
	}

	private onFrame(frame: Frame): void {
		if (this.held) {
			this.held.push(frame);
			return;
		}
		if (this.pairing) {
			if (frame.type === FrameType.data) this.pairingEvent({ type: "data" });
			else this.withMessage(frame, (message) => this.pairingEvent({ type: "message", message }));
			return;
		}
		if (this.session) {
			if (frame.type === FrameType.data)
				this.session.onData(frame.stream, frame.parts, frame.length);
			else this.withMessage(frame, (m) => this.session?.onMessage(m));
			return;
		}
		if (frame.type === FrameType.data) {
			this.apply(serverStep(this.state, { type: "data" }, this.opts.identity.name));
			return;
		}
		this.withMessage(frame, (message) =>
			this.apply(serverStep(this.state, { type: "message", message }, this.opts.identity.name)),
		);
	}

	private withMessage(frame: Frame, use: (m: Message) => void): void {
		let message: Message;
		try {
			message = decodeControlFrame(frame);
		} catch (e) {
			this.fail(e as PairlinkError); // decodeControlFrame throws nothing else
			return;
		}
		use(message);
	}

	private apply(step: { state: ServerState; actions: HandshakeAction[] }): void {
		this.state = step.state;
		for (const action of step.actions) {
			switch (action.type) {
				case "send":
					void this.socket.send(action.message).catch(() => undefined);
					break;
				case "fail":
					this.fail(action.error, action.wire);
					break;
				case "established":
					if (action.mode === "session") {
						// Trust is decided again at HELLO: the device may have been removed
						// since its TLS handshake ended (the watcher keeps the store current).
						if (!this.opts.trust.findByFingerprint((this.peer as PeerInfo).fingerprint)) {
							this.fail(new PairlinkError("not-trusted", "the device was removed"), "not-trusted");
							return;
						}
						if (this.startSession()) this.emitConnected();
					} else {
						// Pairing stays under the handshake timeout: a run cannot hold the one pairing slot for long.
						this.startPairing();
					}
					break;
			}
		}
	}

	private startPairing(): void {
		const tls = this.tls as TlsInfo;
		const ctx = {
			ownName: this.opts.identity.name,
			binding: {
				initiatorFingerprint: tls.peerFingerprint as string,
				responderFingerprint: this.opts.identity.fingerprint,
				sid: tls.exporter,
			},
		};
		const run: PairingRun = {
			runner: new MachineRunner<ResponderState, ResponderEvent, PairingAction>(
				{ phase: "await-pake1" },
				(state, event) => responderStep(state, event, ctx),
				(action) => this.pairingAction(run, action),
			),
			admitted: false,
		};
		this.pairing = run;
	}

	private pairingEvent(event: ResponderEvent): void {
		if (!this.socket.closed) this.pairing?.runner.dispatch(event);
	}

	/**
	 * The error boundary of pairing: whatever fails here (the trust store
	 * locked by another process, a full disk, EACCES) ends this connection
	 * with a reason, never the server and its other clients.
	 */
	private async pairingAction(run: PairingRun, action: PairingAction): Promise<void> {
		try {
			await this.performPairing(run, action);
		} catch (e) {
			this.fail(
				e instanceof PairlinkError
					? e
					: new PairlinkError("internal", `pairing failed: ${String(e)}`, { cause: e }),
			);
		}
	}

	private async performPairing(run: PairingRun, action: PairingAction): Promise<void> {
		const peer = this.peer as PeerInfo;
		switch (action.type) {
			case "send":
				await this.socket.send(action.message).catch(() => undefined);
				return;
			case "fail":
				this.fail(action.error, action.wire);
				return;
			case "admit":
				try {
					const { code, left } = await (this.opts.pairing as PairingGate).admit();
					run.admitted = true;
					// The peer may have gone while the attempt was being counted: free the gate.
					if (run.runner.stopped) await this.opts.pairing?.release();
					else this.pairingEvent({ type: "admitted", code, left });
				} catch (e) {
					this.pairingEvent({ type: "refused", error: e as PairlinkError });
				}
				return;
			case "trust": {
				// The code is spent before anyone is trusted with it: if another
				// `serve` on this state directory consumed it first, this run fails.
				await (this.opts.pairing as PairingGate).consume();
				const saved = await this.opts.trust.add({
					name: sanitizeDeviceName(action.name),
					fingerprint: peer.fingerprint,
					address: peer.address,
				});
				peer.name = saved.name;
				this.pairingEvent({ type: "trusted" });
				return;
			}
			case "paired":
				this.pairing = undefined;
				// The client may send its first request the moment it reads PAIRED:
				// the session must exist before anything else is awaited. The code
				// was marked used before the device was trusted; the gate is freed
				// whether or not the client limit lets this session start.
				if (!this.startSession()) {
					void this.opts.pairing?.release().catch(() => undefined);
					return;
				}
				this.announced = (async () => {
					await this.opts.pairing?.release().catch(() => undefined);
					this.emit({
						event: "paired",
						name: peer.name,
						fingerprint: peer.fingerprint,
						address: peer.address,
					});
					this.emitConnected();
				})();
				await this.announced;
				return;
		}
	}

	/** false when the client limit refused it (the connection is closed then). */
	private startSession(): boolean {
		const peer = this.peer as PeerInfo;
		if (!this.slots.admit(peer.fingerprint)) {
			this.fail(new PairlinkError("connect-failed", "too many clients"), "busy");
			return false;
		}
		this.slots.onEstablished(peer.fingerprint);
		this.socket.markEstablished();
		this.session = new ServerSession(this.socket, {
			root: this.opts.root,
			partRecords: this.opts.partRecords,
			policy: this.opts.policy,
			platform: this.opts.platform,
			peer,
			onIdle: () => {
				if (this.slots.stopping()) this.close();
			},
			onLoad: () => this.applyLimits(),
			onTransfer: (t) =>
				this.emit({ event: "transfer", ...t, device: peer.name, fingerprint: peer.fingerprint }),
			onOperation: (o) =>
				this.emit({ event: "operation", ...o, device: peer.name, fingerprint: peer.fingerprint }),
		});
		void this.opts.trust.touch(peer.fingerprint, peer.address).catch(() => undefined);
		return true;
	}

	private emitConnected(): void {
		const peer = this.peer as PeerInfo;
		this.emit({
			event: "connected",
			name: peer.name,
			fingerprint: peer.fingerprint,
			address: peer.address,
		});
	}

	private fail(error: PairlinkError, wire?: Parameters<FrameSocket["fail"]>[1]): void {
		if (!this.session) {
			this.emit({
				event: "refused",
				address: this.socket.remoteAddress,
				reason: error.message,
				...(this.peer?.fingerprint ? { fingerprint: this.peer.fingerprint } : {}),
			});
		}
		this.state = { phase: "closed" };
		this.endPairing();
		this.socket.fail(error, wire);
	}

	private endPairing(): void {
		const run = this.pairing;
		this.pairing = undefined;
		run?.runner.stop();
		if (run?.admitted) void this.opts.pairing?.release().catch(() => undefined);
	}

	private onClose(error: PairlinkError | undefined): void {
		// Partial uploads are flushed and their claims released before anyone
		// hears of the disconnect: a client that reconnects at once finds them resumable.
		void Promise.all([this.session?.onClose(), this.announced]).then(([cut]) => {
			const peer = this.peer;
			if (peer)
				for (const c of cut ?? [])
					this.emit({
						event: "interrupted",
						op: "put",
						path: c.path,
						kept: c.kept,
						device: peer.name,
						fingerprint: peer.fingerprint,
					});
			this.closed(error);
		});
	}

	private closed(error: PairlinkError | undefined): void {
		const wasEstablished = this.session !== undefined;
		this.tellDisconnected(error);
		if (
			this.state.phase === "tls" ||
			this.state.phase === "hello" ||
			(this.pairing && !this.session)
		) {
			// Gone before HELLO or mid-pairing: a port scan, a failed TLS handshake,
			// a client that did not trust us, or an abandoned pairing run.
			this.emit({
				event: "refused",
				address: this.socket.remoteAddress,
				reason:
					error?.message ??
					(this.pairing
						? "the peer abandoned pairing"
						: "the peer closed the connection before its HELLO"),
				...(this.peer?.fingerprint ? { fingerprint: this.peer.fingerprint } : {}),
			});
		}
		this.endPairing();
		this.slots.onClosed(wasEstablished ? this.peer?.fingerprint : undefined);
	}
}
