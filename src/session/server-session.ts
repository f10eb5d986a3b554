/**
 * What a trusted client may ask once the handshake is over. Operations
 * (list, get, put…) plug in here; the transport never sees their meaning.
 */
import { PairlinkError } from "../errors.ts";
import type { Channel } from "../protocol/channel.ts";
import type { Message } from "../protocol/messages.ts";

export class ServerSession {
	constructor(private readonly channel: Channel) {}

	onMessage(message: Message): void {
		switch (message.t) {
			case "ping":
				void this.channel.send({ t: "pong", nonce: message.nonce }).catch(() => undefined);
				return;
			default:
				this.channel.fail(
					new PairlinkError("protocol", `unexpected "${message.t}" message from the client`),
				);
		}
	}

	onData(): void {
		this.channel.fail(new PairlinkError("protocol", "unexpected data frame from the client"));
	}
}
