/**
 * The one place a connection's frames are decoded and handed on, for the
 * server and the client alike: to the handshake until HELLO is done, then to
 * pairing or to the file session, whichever HELLO established. A frame never
 * reaches a stage the connection is not in, so no application message is
 * served before HELLO (the handshake reducer refuses it).
 */
import type { PairlinkError } from "../errors.ts";
import { type Frame, FrameType } from "../protocol/frame.ts";
import { decodeControlFrame, type Message } from "../protocol/messages.ts";

export type StageEvent = { type: "data" } | { type: "message"; message: Message };

export interface FrameStages {
	/** Pairing, while it runs (HELLO in pair mode). */
	pairing: ((event: StageEvent) => void) | undefined;
	/** The file session, once HELLO established one. */
	session:
		| {
				onData(stream: number, parts: Uint8Array[], length: number): void;
				onMessage(message: Message): void;
		  }
		| undefined;
	/** Neither yet: the handshake reducer decides. */
	handshake(event: StageEvent): void;
	/** A control frame that does not decode ends the connection. */
	fail(error: PairlinkError): void;
}

export function routeFrame(frame: Frame, to: FrameStages): void {
	if (frame.type === FrameType.data) {
		if (to.pairing) to.pairing({ type: "data" });
		else if (to.session) to.session.onData(frame.stream, frame.parts, frame.length);
		else to.handshake({ type: "data" });
		return;
	}
	let message: Message;
	try {
		message = decodeControlFrame(frame);
	} catch (e) {
		to.fail(e as PairlinkError); // decodeControlFrame throws nothing else
		return;
	}
	if (to.pairing) to.pairing({ type: "message", message });
	else if (to.session) to.session.onMessage(message);
	else to.handshake({ type: "message", message });
}
