/**
 * Backpressure-correct writes over a Bun socket.
 *
 * Bun's `write()` may accept only part of a buffer and does not keep the
 * rest; it returns how many bytes it took (< 0 once the socket is gone). So
 * we keep the unsent tail, retry it from `drain`, and resolve each write only
 * when all of its bytes were accepted — in order.
 *
 * Small writes made in the same turn of the event loop are coalesced into
 * one: a small file costs five messages (put, put-start, a frame header, its
 * data, put-end), and one TLS record and syscall each made sending many
 * small files slow.
 */
import { PairlinkError } from "../errors.ts";

export interface WritableSink {
	write(data: Uint8Array): number;
}

interface PendingWrite {
	data: Uint8Array;
	resolve: () => void;
	reject: (e: Error) => void;
}

/** Writes below this size wait for the end of the turn to go out together. */
export const COALESCE_BELOW = 64 * 1024;

export class SocketWriter {
	private readonly queue: PendingWrite[] = [];
	private queuedBytes = 0;
	private failure: Error | undefined;
	private batch: Uint8Array[] = [];
	private batchBytes = 0;
	private batchWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
	private flushScheduled = false;

	constructor(
		private readonly sink: WritableSink,
		private readonly schedule: (flush: () => void) => void = (f) => setImmediate(f),
	) {}

	/** Bytes accepted by `write` but not yet by the socket. */
	get pendingBytes(): number {
		return this.queuedBytes + this.batchBytes;
	}

	get closed(): boolean {
		return this.failure !== undefined;
	}

	write(data: Uint8Array): Promise<void> {
		if (this.failure) return Promise.reject(this.failure);
		if (data.length >= COALESCE_BELOW) {
			this.flushBatch();
			return this.writeNow(data);
		}
		return new Promise<void>((resolve, reject) => {
			this.batch.push(data);
			this.batchBytes += data.length;
			this.batchWaiters.push({ resolve, reject });
			if (this.batchBytes >= COALESCE_BELOW) this.flushBatch();
			else if (!this.flushScheduled) {
				this.flushScheduled = true;
				this.schedule(() => this.flushBatch());
			}
		});
	}

	/** Resolves once everything written so far was accepted by the socket. */
	flush(): Promise<void> {
		if (this.failure) return Promise.reject(this.failure);
		this.flushBatch();
		if (this.queue.length === 0) return Promise.resolve();
		return new Promise<void>((resolve, reject) => {
			this.queue.push({ data: new Uint8Array(0), resolve, reject });
		});
	}

	/** Call from the socket's `drain` handler. */
	drain(): void {
		while (!this.failure) {
			const head = this.queue[0];
			if (!head) return;
			const n = head.data.length === 0 ? 0 : this.sink.write(head.data);
			if (n < 0) {
				this.fail(new PairlinkError("interrupted", "the connection closed while sending"));
				return;
			}
			this.queuedBytes -= Math.min(n, head.data.length);
			if (n < head.data.length) {
				head.data = head.data.subarray(n);
				return;
			}
			this.queue.shift();
			head.resolve();
		}
	}

	/** Reject every pending write; later writes reject at once. */
	fail(error: Error): void {
		if (!this.failure) this.failure = error;
		const pending = this.queue.splice(0);
		const waiters = this.batchWaiters.splice(0);
		this.batch = [];
		this.batchBytes = 0;
		this.queuedBytes = 0;
		for (const w of pending) w.reject(this.failure);
		for (const w of waiters) w.reject(this.failure);
	}

	private flushBatch(): void {
		this.flushScheduled = false;
		if (this.batch.length === 0 || this.failure) return;
		const parts = this.batch;
		const waiters = this.batchWaiters;
		const size = this.batchBytes;
		this.batch = [];
		this.batchWaiters = [];
		this.batchBytes = 0;
		// Buffer.concat is one native copy; a checked JS concat cost 4x as much per batch.
		const data = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, size);
		this.writeNow(data).then(
			() => {
				for (const w of waiters) w.resolve();
			},
			(e: Error) => {
				for (const w of waiters) w.reject(e);
			},
		);
	}

	private writeNow(data: Uint8Array): Promise<void> {
		if (this.failure) return Promise.reject(this.failure);
		let rest = data;
		if (this.queue.length === 0) {
			const n = this.sink.write(rest);
			if (n < 0) {
				this.fail(new PairlinkError("interrupted", "the connection closed while sending"));
				return Promise.reject(this.failure);
			}
			if (n >= rest.length) return Promise.resolve();
			rest = rest.subarray(n);
		}
		return new Promise<void>((resolve, reject) => {
			this.queue.push({ data: rest, resolve, reject });
			this.queuedBytes += rest.length;
		});
	}
}
