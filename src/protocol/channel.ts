/**
 * The abstract duplex the session layer talks through. transport/'s
 * FrameSocket implements it over TLS; tests implement it in memory.
 */
import type { PairlinkError } from "../errors.ts";
import type { Message } from "./messages.ts";
import type { WireErrorCode } from "./wire-errors.ts";

export interface Channel {
	send(message: Message, stream?: number): Promise<void>;
	/** Resolves once the transport holds no reference to `bytes`: the caller may then reuse the buffer. */
	sendData(stream: number, bytes: Uint8Array): Promise<void>;
	/** Tell the peer a wire code, then close; `error` is what this side reports. */
	fail(error: PairlinkError, wire?: WireErrorCode): void;
	/** Orderly close once everything sent so far is flushed. */
	close(): void;
	/** Stop reading from the peer (the receiver is behind); resume() undoes it. */
	pause(): void;
	resume(): void;
}

export interface PeerInfo {
	name: string;
	fingerprint: string;
	address: string;
}
