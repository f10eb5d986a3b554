/**
 * The client's view of an established session: requests out, answers
 * matched back to the caller that is waiting for them.
 */
import { PairlinkError } from "../errors.ts";
import type { Channel } from "../protocol/channel.ts";
import type { Message } from "../protocol/messages.ts";
import { errorFromWire } from "../protocol/wire-errors.ts";

export class ClientSession {
	private readonly pings = new Map<string, (endedAt: number) => void>();
	private readonly failers = new Set<(e: PairlinkError) => void>();
	private closedWith: PairlinkError | undefined;
	private nextNonce = 0;

	constructor(
		private readonly channel: Channel,
		private readonly now: () => number = () => performance.now(),
	) {}

	/** Round trip through the server; resolves with the time it took in ms. */
	ping(): Promise<number> {
		if (this.closedWith) return Promise.reject(this.closedWith);
		const nonce = String(this.nextNonce++);
		const started = this.now();
		return new Promise<number>((resolve, reject) => {
			this.failers.add(reject);
			this.pings.set(nonce, (endedAt) => {
				this.failers.delete(reject);
				resolve(endedAt);
			});
			this.channel.send({ t: "ping", nonce }).catch(reject);
		}).then((end) => end - started);
	}

	onMessage(message: Message): void {
		if (message.t === "pong") {
			const done = this.pings.get(message.nonce);
			if (!done) {
				this.channel.fail(
					new PairlinkError("protocol", "the server answered a ping that was never sent"),
				);
				return;
			}
			this.pings.delete(message.nonce);
			done(this.now());
			return;
		}
		if (message.t === "error") {
			const e = errorFromWire(message.code);
			this.channel.fail(e);
			this.onClose(e);
			return;
		}
		this.channel.fail(
			new PairlinkError("protocol", `unexpected "${message.t}" message from the server`),
		);
	}

	onData(): void {
		this.channel.fail(new PairlinkError("protocol", "unexpected data frame from the server"));
	}

	/** Every waiting caller learns why the connection ended. */
	onClose(error: PairlinkError | undefined): void {
		if (this.closedWith) return;
		this.closedWith = error ?? new PairlinkError("interrupted", "the server closed the connection");
		for (const fail of this.failers) fail(this.closedWith);
		this.failers.clear();
		this.pings.clear();
	}
}
