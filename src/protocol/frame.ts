/**
 * Frames: the only unit that crosses the wire inside TLS.
 *
 *   magic "PL" (2) | version u8 | type u8 | stream id u32 BE | length u32 BE | payload
 *
 * The decoder is incremental and checks a frame's type and length against
 * its cap from the 12-byte header alone, before it buffers any payload, so a
 * peer can never make us hold more than one capped frame.
 */
import { concatBytes } from "@noble/hashes/utils.js";
import { PairlinkError } from "../errors.ts";
import { MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD, PROTOCOL_VERSION } from "./limits.ts";

export const HEADER_SIZE = 12;
const MAGIC0 = 0x50; // "P"
const MAGIC1 = 0x4c; // "L"

export const FrameType = {
	/** JSON control message (hello, requests, responses, pairing messages). */
	control: 1,
	/** Raw file bytes for the stream named in the header. */
	data: 2,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const PAYLOAD_CAP: Record<number, number> = {
	[FrameType.control]: MAX_CONTROL_PAYLOAD,
	[FrameType.data]: MAX_DATA_PAYLOAD,
};

export interface Frame {
	type: FrameType;
	stream: number;
	/**
	 * The payload in the pieces it arrived in: a 1 MiB data frame spans
	 * several socket reads, and copying it into one buffer would cost a
	 * memcpy and a fresh allocation per MiB for nothing.
	 */
	parts: Uint8Array[];
	length: number;
}

/** The payload as one buffer (copies only when it arrived in pieces): for small control frames. */
export function frameBytes(frame: Frame): Uint8Array {
	return frame.parts.length === 1 ? (frame.parts[0] as Uint8Array) : concatBytes(...frame.parts);
}

/** The 12-byte header alone: a data payload is then written as it is, without a copy. */
export function encodeHeader(
	type: FrameType,
	stream: number,
	length: number,
	into = new Uint8Array(HEADER_SIZE),
): Uint8Array {
	const cap = PAYLOAD_CAP[type];
	if (cap === undefined) throw new PairlinkError("internal", `unknown frame type ${type}`);
	if (length > cap) {
		throw new PairlinkError("internal", `frame payload of ${length} bytes exceeds ${cap}`);
	}
	if (!Number.isInteger(stream) || stream < 0 || stream > 0xffffffff) {
		throw new PairlinkError("internal", `invalid stream id ${stream}`);
	}
	const view = new DataView(into.buffer, into.byteOffset, HEADER_SIZE);
	into[0] = MAGIC0;
	into[1] = MAGIC1;
	into[2] = PROTOCOL_VERSION;
	into[3] = type;
	view.setUint32(4, stream);
	view.setUint32(8, length);
	return into;
}

/** Header and payload in one buffer: for small control frames. */
export function encodeFrame(type: FrameType, stream: number, payload: Uint8Array): Uint8Array {
	const out = new Uint8Array(HEADER_SIZE + payload.length);
	encodeHeader(type, stream, payload.length, out);
	out.set(payload, HEADER_SIZE);
	return out;
}

/**
 * Incremental decoder. Feed it whatever the socket delivered; it returns the
 * frames completed so far. After the first error it stays failed: the only
 * correct reaction to a framing error is to close the connection.
 */
export class FrameDecoder {
	private chunks: Uint8Array[] = [];
	private buffered = 0;
	private pending: { type: FrameType; stream: number; length: number } | undefined;
	private failed: PairlinkError | undefined;

	/** Bytes held while waiting for the rest of a frame; never above header + cap. */
	get bufferedBytes(): number {
		return this.buffered;
	}

	push(bytes: Uint8Array): Frame[] {
		if (this.failed) throw this.failed;
		if (bytes.length > 0) {
			this.chunks.push(bytes);
			this.buffered += bytes.length;
		}
		const frames: Frame[] = [];
		try {
			for (;;) {
				if (!this.pending) {
					if (this.buffered < HEADER_SIZE) break;
					this.pending = parseHeader(this.take(HEADER_SIZE));
				}
				if (this.buffered < this.pending.length) break;
				const { type, stream, length } = this.pending;
				this.pending = undefined;
				frames.push({ type, stream, parts: this.takeParts(length), length });
			}
		} catch (e) {
			this.failed =
				e instanceof PairlinkError ? e : new PairlinkError("protocol", "undecodable frame");
			this.chunks = [];
			this.buffered = 0;
			throw this.failed;
		}
		return frames;
	}

	/** Remove exactly n buffered bytes as the pieces they arrived in (no copy). */
	private takeParts(n: number): Uint8Array[] {
		const parts: Uint8Array[] = [];
		let left = n;
		while (left > 0) {
			const chunk = this.chunks[0];
			if (!chunk) throw new PairlinkError("internal", "frame decoder underflow");
			if (chunk.length <= left) {
				parts.push(chunk);
				this.chunks.shift();
				left -= chunk.length;
			} else {
				parts.push(chunk.subarray(0, left));
				this.chunks[0] = chunk.subarray(left);
				left = 0;
			}
		}
		this.buffered -= n;
		return parts;
	}

	/** Remove exactly n buffered bytes, copying only when a frame spans chunks. */
	private take(n: number): Uint8Array {
		const first = this.chunks[0];
		if (first && first.length >= n) {
			const out = first.subarray(0, n);
			if (first.length === n) this.chunks.shift();
			else this.chunks[0] = first.subarray(n);
			this.buffered -= n;
			return out;
		}
		const out = new Uint8Array(n);
		let filled = 0;
		while (filled < n) {
			const chunk = this.chunks[0];
			if (!chunk) throw new PairlinkError("internal", "frame decoder underflow");
			const part = Math.min(chunk.length, n - filled);
			out.set(chunk.subarray(0, part), filled);
			filled += part;
			if (part === chunk.length) this.chunks.shift();
			else this.chunks[0] = chunk.subarray(part);
		}
		this.buffered -= n;
		return out;
	}
}

function parseHeader(h: Uint8Array): { type: FrameType; stream: number; length: number } {
	if (h[0] !== MAGIC0 || h[1] !== MAGIC1) {
		throw new PairlinkError("protocol", "the peer is not speaking the pairlink protocol");
	}
	if (h[2] !== PROTOCOL_VERSION) {
		throw new PairlinkError("protocol", versionMismatch(h[2] as number));
	}
	const type = h[3] as number;
	const cap = PAYLOAD_CAP[type];
	if (cap === undefined) throw new PairlinkError("protocol", `unknown frame type ${type}`);
	const view = new DataView(h.buffer, h.byteOffset, HEADER_SIZE);
	const length = view.getUint32(8);
	if (length > cap) {
		throw new PairlinkError(
			"frame-too-large",
			`the peer announced a frame of ${length} bytes; the limit is ${cap}`,
		);
	}
	return { type: type as FrameType, stream: view.getUint32(4), length };
}

/** Said the same by the frame decoder and the HELLO check: which side to upgrade. */
export function versionMismatch(theirs: number): string {
	const upgrade = theirs < PROTOCOL_VERSION ? "on the other side" : "on this device";
	return `the peer speaks pairlink protocol version ${theirs}, this device speaks ${PROTOCOL_VERSION}: upgrade pairlink ${upgrade}`;
}
