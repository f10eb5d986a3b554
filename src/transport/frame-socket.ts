/**
 * A TLS socket seen as a stream of frames: the transport adapter every
 * higher layer uses. It owns the decoder, the backpressure-correct writer,
 * and the handshake and idle timers; it knows nothing about what the frames
 * mean or whom to trust.
 */
import type { Socket } from "bun";
import { PairlinkError } from "../errors.ts";
import {
	encodeFrame,
	encodeHeader,
	type Frame,
	FrameDecoder,
	FrameType,
} from "../protocol/frame.ts";
import type { Timeouts } from "../protocol/limits.ts";
import { encodeMessage, type Message } from "../protocol/messages.ts";
import { type WireErrorCode, wireCodeFor } from "../protocol/wire-errors.ts";
import { SocketWriter } from "./socket-writer.ts";

/** What the TLS layer tells us about the peer, after its handshake. */
export interface TlsInfo {
	tlsVersion: string;
	/** Lowercase hex SHA-256 of the peer's certificate; undefined if it sent none. */
	peerFingerprint: string | undefined;
	/** 32 bytes from the TLS exporter: equal on both ends, unique per connection. */
	exporter: Uint8Array;
	remoteAddress: string;
}

export interface FrameSocketHandlers {
	onHandshake(info: TlsInfo): void;
	onFrame(frame: Frame): void;
	/** Exactly once; `error` is undefined for an orderly close. */
	onClose(error: PairlinkError | undefined): void;
	/** The peer took some of the bytes queued for it. */
	onDrain?(): void;
}

/** Frames held between the TLS handshake and attach(); a HELLO needs one. */
const MAX_EARLY_FRAMES = 8;

/**
 * Every socket read is a fresh buffer, garbage once written to disk; at
 * hundreds of MB/s the collector lets them pile up to well over 100 MB.
 * Every 32 MiB received, a full collection if the process has grown past
 * 110 MB keeps a transfer's memory flat without paying for needless ones.
 */
const COLLECT_EVERY = 32 * 1024 * 1024;
/** Only when memory has grown: a collection costs milliseconds. */
const COLLECT_ABOVE_RSS = 110 * 1024 * 1024;
let receivedSinceCollect = 0;
function collectEvery(n: number): void {
	receivedSinceCollect += n;
	if (receivedSinceCollect < COLLECT_EVERY) return;
	receivedSinceCollect = 0;
	if (process.memoryUsage.rss() > COLLECT_ABOVE_RSS) Bun.gc(true);
}

export const EXPORTER_LABEL = "EXPORTER-pairlink-cpace";

type RawSocket = Pick<
	Socket<unknown>,
	"write" | "end" | "terminate" | "pause" | "resume" | "remoteAddress"
>;

export class FrameSocket {
	private readonly decoder = new FrameDecoder();
	private readonly writer: SocketWriter;
	private handlers: FrameSocketHandlers | undefined;
	private closeError: PairlinkError | undefined;
	private isClosed = false;
	private established = false;
	private lastActivity = performance.now();
	private timer: ReturnType<typeof setTimeout> | undefined;
	private closing = false;
	private tlsDone = false;
	private readonly early: Frame[] = [];
	/** Why reading is stopped; frames already read meanwhile wait in `backlog`. */
	private readonly holds = new Set<string>();
	private readonly backlog: Frame[] = [];
	private readonly address: string;

	constructor(
		private readonly raw: RawSocket,
		private readonly timeouts: Timeouts,
	) {
		this.writer = new SocketWriter(raw);
		this.address = raw.remoteAddress;
		this.timer = setTimeout(() => this.onHandshakeTimeout(), timeouts.handshakeMs);
	}

	get closed(): boolean {
		return this.isClosed;
	}

	/** Read at accept: once TLS has failed the socket no longer knows it, and the log needs it. */
	get remoteAddress(): string {
		return this.address;
	}

	/**
	 * Frames or a close that arrive before the owner attaches are held and
	 * replayed here, so nothing the peer sent right after the TLS handshake
	 * (a refusal, say) is lost.
	 */
	attach(handlers: FrameSocketHandlers): void {
		this.handlers = handlers;
		const early = this.early.splice(0);
		for (const frame of early) {
			if (this.closing) break;
			handlers.onFrame(frame);
		}
		if (this.isClosed) handlers.onClose(this.closeError);
	}

	/** The owner calls this once the pairlink handshake (HELLO) is done: from now on the idle timeout applies. */
	markEstablished(): void {
		if (this.established || this.isClosed) return;
		this.established = true;
		clearTimeout(this.timer);
		this.lastActivity = performance.now();
		this.timer = setTimeout(() => this.onIdleCheck(), this.timeouts.idleMs);
	}

	send(msg: Message, stream = 0): Promise<void> {
		return this.sendFrame(FrameType.control, stream, encodeMessage(msg));
	}

	/** Header and payload go out as two writes, back to back (nothing can come between): no copy of the chunk. */
	sendData(stream: number, bytes: Uint8Array): Promise<void> {
		this.lastActivity = performance.now();
		void this.writer
			.write(encodeHeader(FrameType.data, stream, bytes.length))
			.catch(() => undefined);
		return this.writer.write(bytes);
	}

	/** Bytes queued behind the socket: senders wait when this grows. */
	get pendingBytes(): number {
		return this.writer.pendingBytes;
	}

	/** Stop reading because the receiver is behind (disk writes); resume() undoes it. */
	pause(): void {
		this.hold("receiver");
	}

	resume(): void {
		this.release("receiver");
	}

	/**
	 * Stop handing frames to the owner, and reading from the peer, until every
	 * reason is released. Frames the socket still delivers meanwhile (TLS may
	 * hand over one more read after pause()) wait, so a limit the owner
	 * enforces by holding is exact.
	 */
	hold(reason: string): void {
		if (this.holds.size === 0) this.raw.pause();
		this.holds.add(reason);
	}

	release(reason: string): void {
		if (!this.holds.delete(reason) || this.holds.size > 0) return;
		this.raw.resume();
		while (this.holds.size === 0 && this.backlog.length > 0) {
			if (!this.dispatch(this.backlog.shift() as Frame)) return;
		}
	}

	get reading(): boolean {
		return this.holds.size === 0;
	}

	/**
	 * Tell the peer why (a small wire code, never our message), flush, then
	 * close. The local error is what our side reports.
	 */
	fail(error: PairlinkError, wire: WireErrorCode = wireCodeFor(error)): void {
		if (this.isClosed || this.closing) return;
		if (!this.tlsDone) {
			// No TLS session yet, so no way to say anything: just hang up.
			this.closing = true;
			this.closeError = error;
			this.raw.terminate();
			return;
		}
		this.closing = true;
		this.closeError = error;
		const flushed = this.writer.closed
			? Promise.resolve()
			: this.send({ t: "error", code: wire }).catch(() => undefined);
		// A peer that does not read must not keep us waiting for the flush.
		const guard = setTimeout(() => this.raw.terminate(), 1000);
		void flushed.then(() => {
			clearTimeout(guard);
			this.raw.end();
		});
	}

	/** Close without a word to the peer: for refusing a server before sending it anything. */
	abort(error: PairlinkError): void {
		if (this.isClosed || this.closing) return;
		this.closing = true;
		this.closeError = error;
		this.raw.end();
	}

	/** Orderly close after everything written so far has been handed to the socket. */
	close(): void {
		if (this.isClosed || this.closing) return;
		this.closing = true;
		void this.writer
			.flush()
			.catch(() => undefined)
			.then(() => this.raw.end());
	}

	// ---- called by the Bun socket handlers (listen.ts / dial.ts) ----

	handleHandshake(info: TlsInfo): void {
		if (this.isClosed) return;
		this.tlsDone = true;
		this.handlers?.onHandshake(info);
	}

	handleData(bytes: Uint8Array): void {
		if (this.isClosed || this.closing) return;
		collectEvery(bytes.length);
		let frames: Frame[];
		try {
			frames = this.decoder.push(bytes);
		} catch (e) {
			this.fail(e as PairlinkError);
			return;
		}
		// Activity is a whole frame, not a byte: one byte per idle period keeps nothing open.
		if (frames.length > 0) this.lastActivity = performance.now();
		for (const frame of frames) {
			if (this.isClosed || this.closing) return;
			if (!this.handlers) {
				if (this.early.length < MAX_EARLY_FRAMES) this.early.push(frame);
				else
					this.fail(new PairlinkError("protocol", "the peer sent too much before the handshake"));
			} else if (this.holds.size > 0) this.backlog.push(frame);
			else if (!this.dispatch(frame)) return;
		}
	}

	/** false once the connection is failing. */
	private dispatch(frame: Frame): boolean {
		if (this.isClosed || this.closing) return false;
		try {
			this.handlers?.onFrame(frame);
			return true;
		} catch (e) {
			// A handler bug must end this connection cleanly, not escape into Bun's socket loop.
			this.fail(
				e instanceof PairlinkError ? e : new PairlinkError("internal", String(e), { cause: e }),
			);
			return false;
		}
	}

	handleDrain(): void {
		this.lastActivity = performance.now();
		this.writer.drain();
		this.handlers?.onDrain?.();
	}

	handleClose(error?: Error): void {
		if (this.isClosed) return;
		this.isClosed = true;
		clearTimeout(this.timer);
		this.backlog.length = 0;
		this.closeError ??= error
			? new PairlinkError("interrupted", `the connection failed: ${error.message}`)
			: undefined;
		this.writer.fail(
			this.closeError ?? new PairlinkError("interrupted", "the connection is closed"),
		);
		this.handlers?.onClose(this.closeError);
	}

	private sendFrame(type: FrameType, stream: number, payload: Uint8Array): Promise<void> {
		this.lastActivity = performance.now();
		return this.writer.write(encodeFrame(type, stream, payload));
	}

	private onHandshakeTimeout(): void {
		if (this.established || this.isClosed) return;
		this.fail(new PairlinkError("timeout", "the peer did not complete the handshake in time"));
	}

	private onIdleCheck(): void {
		if (this.isClosed) return;
		const idle = performance.now() - this.lastActivity;
		if (idle >= this.timeouts.idleMs) {
			this.fail(new PairlinkError("timeout", "the connection was idle for too long"));
			return;
		}
		this.timer = setTimeout(() => this.onIdleCheck(), this.timeouts.idleMs - idle);
	}
}
