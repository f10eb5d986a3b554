/**
 * Control messages: JSON objects in control frames, discriminated by `t`.
 * Every message from the peer is validated against its schema before any
 * code looks at it; anything else is a protocol error.
 */
import * as v from "valibot";
import { PairlinkError } from "../errors.ts";
import { CONTROL_CHARS } from "./characters.ts";
import { type Frame, frameBytes } from "./frame.ts";
import { MAX_EXCLUDE_BYTES, MAX_EXCLUDES, MAX_NAME_LENGTH } from "./limits.ts";
import { WIRE_ERROR_CODES } from "./wire-errors.ts";

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
const Id = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(0xffffffff));
const Size = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));
/** Milliseconds since the epoch, within what a Date can hold (formatting must not throw). */
const Mtime = v.pipe(v.number(), v.integer(), v.minValue(-8.64e15), v.maxValue(8.64e15));
/** Permission bits; a receiver keeps only the executable ones (SPEC "Metadata"). */
const Mode = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0o7777));
/** Glob patterns a walk leaves out (SPEC "--exclude"): bounded in number and bytes. */
const Excludes = v.pipe(
	v.array(
		v.pipe(
			v.string(),
			v.minLength(1),
			v.check((s) => Buffer.byteLength(s) <= MAX_EXCLUDE_BYTES, "exclude pattern too long"),
		),
	),
	v.maxLength(MAX_EXCLUDES),
);
/** Paths are checked by fs/safe-path.ts; the schema only bounds them. */
const WirePath = v.pipe(v.string(), v.maxLength(4096));
const Sha256 = Hex32;

export const EntrySchema = v.strictObject({
	name: v.pipe(v.string(), v.maxLength(1024)),
	type: v.picklist(["file", "dir", "symlink"]),
	size: Size,
	mtime: Mtime,
});
export const WalkEntrySchema = v.strictObject({
	...EntrySchema.entries,
	path: WirePath,
	/** A symlink the server does not follow: why (its target leaves the share, a loop…). */
	why: v.optional(v.pipe(v.string(), v.maxLength(256))),
});
/** Entries per listing message; the sender also keeps each message under the control-frame cap. */
export const MAX_ENTRIES_PER_MESSAGE = 128;
/**
 * A file below a walked directory that the server cannot send (its name
 * breaks the wire rules, say): reported so the client can account for it.
 * `path` is for people only (it may be anything the disk holds, escaped
 * when printed), never used as a path.
 */
export const WalkRefusalSchema = v.strictObject({
	path: WirePath,
	code: v.picklist(WIRE_ERROR_CODES),
	why: v.pipe(v.string(), v.maxLength(256)),
});

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
	/** `left`: attempts the code allows after this one (0: a wrong code burns it). */
	v.strictObject({
		t: v.literal("pake2"),
		yb: Hex32,
		name: DeviceNameSchema,
		tb: Hex64,
		left: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(255))),
	}),
	v.strictObject({ t: v.literal("pake3"), ta: Hex64 }),
	v.strictObject({ t: v.literal("paired") }),
	// Requests: client -> server. Every request carries an id; answers repeat it.
	v.strictObject({ t: v.literal("list"), id: Id, path: WirePath }),
	/** `follow`: a final symlink whose target stays inside the share is described by its target. */
	v.strictObject({ t: v.literal("stat"), id: Id, path: WirePath, follow: v.optional(v.boolean()) }),
	v.strictObject({ t: v.literal("walk"), id: Id, path: WirePath, exclude: v.optional(Excludes) }),
	/** SHA-256 of a remote file (--checksum): answered by hash-ok. */
	v.strictObject({ t: v.literal("hash"), id: Id, path: WirePath }),
	v.strictObject({ t: v.literal("mkdir"), id: Id, path: WirePath, parents: v.boolean() }),
	v.strictObject({ t: v.literal("rm"), id: Id, path: WirePath, recursive: v.boolean() }),
	/** Download; `offset`/`prefix` offer verified partial data the client already holds. */
	v.strictObject({
		t: v.literal("get"),
		id: Id,
		path: WirePath,
		offset: Size,
		prefix: v.optional(Sha256),
	}),
	/** The client verified a download: the server may log it as done. */
	v.strictObject({ t: v.literal("ack"), id: Id }),
	/**
	 * Upload; answered by put-ready, then the client sends put-start, data
	 * frames and put-end. A file of at most one data frame may instead carry
	 * its `sha256` here and its data right after: no put-ready, put-start or
	 * put-end (many small files then cost no round trip each).
	 */
	v.strictObject({
		t: v.literal("put"),
		id: Id,
		path: WirePath,
		size: Size,
		overwrite: v.boolean(),
		sha256: v.optional(Sha256),
		/** The source's metadata: applied at commit, and the server's up-to-date check (no round trip). */
		mtime: v.optional(Mtime),
		mode: v.optional(Mode),
		/** false: the client compared by SHA-256 (--checksum) and wants it sent even if size and mtime match. */
		quick: v.optional(v.boolean()),
		/** Standard input: length unknown until put-end (`size` is then 0), never resumed. */
		stream: v.optional(v.literal(true)),
	}),
	v.strictObject({ t: v.literal("put-start"), id: Id, offset: Size }),
	/** `size` only for a stream: the length it turned out to have. */
	v.strictObject({ t: v.literal("put-end"), id: Id, sha256: Sha256, size: v.optional(Size) }),
	/** The source changed while it was sent: discard what arrived, commit nothing. */
	v.strictObject({ t: v.literal("put-abort"), id: Id }),
	// Answers: server -> client.
	v.strictObject({ t: v.literal("ok"), id: Id }),
	v.strictObject({
		t: v.literal("entries"),
		id: Id,
		entries: v.pipe(v.array(EntrySchema), v.maxLength(MAX_ENTRIES_PER_MESSAGE)),
		done: v.boolean(),
	}),
	v.strictObject({
		t: v.literal("walk-entries"),
		id: Id,
		entries: v.pipe(v.array(WalkEntrySchema), v.maxLength(MAX_ENTRIES_PER_MESSAGE)),
		refused: v.optional(v.pipe(v.array(WalkRefusalSchema), v.maxLength(MAX_ENTRIES_PER_MESSAGE))),
		done: v.boolean(),
	}),
	v.strictObject({ t: v.literal("stat-ok"), id: Id, entry: EntrySchema }),
	/**
	 * Start of a download: data frames on stream `id` follow from `offset`,
	 * then file-end — or, for a file of at most one data frame sent whole,
	 * its `sha256` here and no file-end.
	 */
	v.strictObject({
		t: v.literal("file"),
		id: Id,
		size: Size,
		mtime: Mtime,
		/** The source's permission bits (absent: none executable). */
		mode: v.optional(Mode),
		offset: Size,
		sha256: v.optional(Sha256),
	}),
	v.strictObject({ t: v.literal("file-end"), id: Id, sha256: Sha256 }),
	v.strictObject({ t: v.literal("put-ready"), id: Id, offset: Size, prefix: v.optional(Sha256) }),
	v.strictObject({ t: v.literal("put-ok"), id: Id, sha256: Sha256 }),
	/** The server's file already has this size and mtime: nothing is sent or written. */
	v.strictObject({ t: v.literal("up-to-date"), id: Id }),
	v.strictObject({ t: v.literal("hash-ok"), id: Id, size: Size, sha256: Sha256 }),
	v.strictObject({
		t: v.literal("error"),
		code: v.picklist(WIRE_ERROR_CODES),
		id: v.optional(Id),
		/** With disk-full: the bytes free on the server, so the message can give the numbers. */
		free: v.optional(Size),
	}),
]);

export type Message = v.InferOutput<typeof MessageSchema>;
export type MessageOf<T extends Message["t"]> = Extract<Message, { t: T }>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeMessage(msg: Message): Uint8Array {
	return encoder.encode(JSON.stringify(msg));
}

/**
 * One schema per message type, looked up by `t`: validating against the
 * whole variant would try (and build issues for) every other type first,
 * which showed as a third of the server's CPU when moving many small files.
 */
const SCHEMA_BY_TYPE = new Map<string, v.GenericSchema>(
	MessageSchema.options.map((o) => [o.entries.t.literal, o as v.GenericSchema]),
);
const ABORT_EARLY = { abortEarly: true } as const;

/** A control frame's message. Only PairlinkError("protocol") ever escapes. */
export function decodeControlFrame(frame: Frame): Message {
	return decodeMessage(frameBytes(frame));
}

/** Only PairlinkError("protocol") ever escapes, whatever the payload. */
export function decodeMessage(payload: Uint8Array): Message {
	let raw: unknown;
	try {
		raw = JSON.parse(decoder.decode(payload));
	} catch {
		throw new PairlinkError("protocol", "the peer sent a control message that is not valid JSON");
	}
	const type =
		typeof raw === "object" && raw !== null && "t" in raw ? (raw as { t: unknown }).t : undefined;
	const schema = typeof type === "string" ? SCHEMA_BY_TYPE.get(type) : undefined;
	let parsed: { success: boolean; output?: unknown };
	try {
		parsed = schema ? v.safeParse(schema, raw, ABORT_EARLY) : { success: false };
	} catch {
		parsed = { success: false }; // whatever a validator trips over is an invalid message
	}
	if (!parsed.success) {
		// The peer's own `t`, described safely: it may be anything, even an object whose toString throws.
		const t = typeof type === "string" ? type : typeof type;
		throw new PairlinkError(
			"protocol",
			`the peer sent an invalid control message (type ${JSON.stringify(t.slice(0, 32))})`,
		);
	}
	return parsed.output as Message;
}
