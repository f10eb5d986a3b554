/**
 * Backpressure-correct writes over a Bun socket.
 *
 * Bun's `write()` may accept only part of a buffer and does not keep the
 * rest; it returns how many bytes it took (< 0 once the socket is gone). So
 * we keep the unsent tail, retry it from `drain`, and resolve each write only
 * when all of its bytes were accepted — in order.
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

export class SocketWriter {
	private readonly queue: PendingWrite[] = [];
	private queuedBytes = 0;
	private failure: Error | undefined;

	constructor(private readonly sink: WritableSink) {}

	/** Bytes accepted by `write` but not yet by the socket. */
	get pendingBytes(): number {
		return this.queuedBytes;
	}

	get closed(): boolean {
		return this.failure !== undefined;
	}

	write(data: Uint8Array): Promise<void> {
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

	/** Resolves once everything written so far was accepted by the socket. */
	flush(): Promise<void> {
		if (this.failure) return Promise.reject(this.failure);
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
		this.queuedBytes = 0;
		for (const w of pending) w.reject(this.failure);
	}
}
