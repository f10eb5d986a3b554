/**
 * Control messages: JSON objects in control frames, discriminated by `t`.
 * Every message from the peer is validated against its schema before any
 * code looks at it; anything else is a protocol error.
 */
import * as v from "valibot";
import { PairlinkError } from "../errors.ts";
import { MAX_NAME_LENGTH } from "./limits.ts";
import { WIRE_ERROR_CODES } from "./wire-errors.ts";

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

export const DeviceNameSchema = v.pipe(
	v.string(),
	v.minLength(1),
	v.maxLength(MAX_NAME_LENGTH),
	v.check((s) => !CONTROL_CHARS.test(s), "control characters are not allowed in device names"),
);

const Hex = (bytes: number) =>
	v.pipe(v.string(), v.length(bytes * 2), v.regex(/^[0-9a-f]*$/, "lowercase hex expected"));

export const Hex32 = Hex(32);
export const Hex64 = Hex(64);

const Nonce = v.pipe(v.string(), v.maxLength(64));

export const MessageSchema = v.variant("t", [
	v.strictObject({
		t: v.literal("hello"),
		version: v.pipe(v.number(), v.integer()),
		mode: v.picklist(["session", "pair"]),
		name: DeviceNameSchema,
	}),
	v.strictObject({ t: v.literal("ping"), nonce: Nonce }),
	v.strictObject({ t: v.literal("pong"), nonce: Nonce }),
	// Pairing (CPace): A = the client typing the code, B = the server showing it.
	v.strictObject({ t: v.literal("pake1"), ya: Hex32, name: DeviceNameSchema }),
	v.strictObject({ t: v.literal("pake2"), yb: Hex32, name: DeviceNameSchema, tb: Hex64 }),
	v.strictObject({ t: v.literal("pake3"), ta: Hex64 }),
	v.strictObject({ t: v.literal("paired") }),
	v.strictObject({
		t: v.literal("error"),
		code: v.picklist(WIRE_ERROR_CODES),
		id: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
	}),
]);

export type Message = v.InferOutput<typeof MessageSchema>;
export type MessageOf<T extends Message["t"]> = Extract<Message, { t: T }>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeMessage(msg: Message): Uint8Array {
	return encoder.encode(JSON.stringify(msg));
}

export function decodeMessage(payload: Uint8Array): Message {
	let raw: unknown;
	try {
		raw = JSON.parse(decoder.decode(payload));
	} catch {
		throw new PairlinkError("protocol", "the peer sent a control message that is not valid JSON");
	}
	const parsed = v.safeParse(MessageSchema, raw);
	if (!parsed.success) {
		const t = typeof raw === "object" && raw !== null && "t" in raw ? String(raw.t) : "?";
		throw new PairlinkError(
			"protocol",
			`the peer sent an invalid control message (type ${JSON.stringify(t.slice(0, 32))})`,
		);
	}
	return parsed.output;
}
