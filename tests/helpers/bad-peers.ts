/**
 * What the hostile-conditions suites share: fuzz budgets, a generator of
 * schema-valid control messages of every type (the raw material a bad peer
 * mutates), and bad peers on real sockets — raw TCP, and a TLS client
 * driven by hand that can write any byte it likes after a real handshake.
 */
import { createServer, type Socket as NetSocket, connect as tcpConnect } from "node:net";
import type { Socket } from "bun";
import * as v from "valibot";
import { fingerprintOf } from "../../src/crypto/fingerprint.ts";
import { encodeFrame, FrameDecoder, FrameType, frameBytes } from "../../src/protocol/frame.ts";
import { PROTOCOL_VERSION } from "../../src/protocol/limits.ts";
import {
	decodeMessage,
	type Message,
	type MessageOf,
	MessageSchema,
} from "../../src/protocol/messages.ts";
import { WIRE_ERROR_CODES } from "../../src/protocol/wire-errors.ts";
import type { TlsInfo } from "../../src/transport/frame-socket.ts";
import { readTlsInfo } from "../../src/transport/tls-info.ts";
import { type Credentials, tlsOptions } from "../../src/transport/tls-options.ts";
import type { Prng } from "./prng.ts";

// ---------------------------------------------------------------- fuzz budgets

/**
 * Iterations and wall time for one fuzz test. `PAIRLINK_FUZZ_ITERATIONS`
 * multiplies both (the heavy variant: e.g. 50); CI runs the default 1.
 */
export function fuzzBudget(baseIterations: number, baseMs = 2000) {
	const raw = process.env.PAIRLINK_FUZZ_ITERATIONS;
	const multiplier = raw === undefined || raw.trim() === "" ? 1 : Number(raw);
	if (!Number.isFinite(multiplier) || multiplier <= 0)
		throw new Error(`PAIRLINK_FUZZ_ITERATIONS must be a positive number, got ${raw}`);
	return {
		multiplier,
		iterations: Math.ceil(baseIterations * multiplier),
		ms: baseMs * multiplier,
		/** A bun:test timeout that leaves room around the budget. */
		testTimeoutMs: baseMs * multiplier + 20_000,
	};
}

export interface FuzzStats {
	iterations: number;
	ms: number;
	perSecond: number;
}

/**
 * Runs `body` until the iteration budget or the wall-time budget is spent.
 * Any throw is rethrown with the seed and the iteration, so
 * `FUZZ_SEED=<seed>` replays the very same inputs.
 */
export function fuzzLoop(
	name: string,
	seed: number,
	budget: { iterations: number; ms: number },
	body: (i: number) => void,
): FuzzStats {
	const started = performance.now();
	const deadline = started + budget.ms;
	let i = 0;
	while (i < budget.iterations && performance.now() < deadline) {
		try {
			body(i);
		} catch (e) {
			const detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
			throw new Error(
				`${name}: failed at iteration ${i} with FUZZ_SEED=${seed} (rerun with that env to replay): ${detail}`,
				{ cause: e },
			);
		}
		i++;
	}
	const ms = performance.now() - started;
	const stats = { iterations: i, ms, perSecond: Math.round((i * 1000) / Math.max(ms, 1)) };
	console.log(
		`FUZZ: ${name}: ${stats.iterations} iterations in ${ms.toFixed(0)} ms (${stats.perSecond}/s), FUZZ_SEED=${seed}`,
	);
	return stats;
}

// ---------------------------------------------------------------- valid messages

const HEX = "0123456789abcdef";

export function hex(rng: Prng, bytes: number): string {
	let s = "";
	for (let i = 0; i < bytes * 2; i++) s += HEX[rng.int(16)];
	return s;
}

/** Pieces of text that stress encoders: multi-byte, astral, combining, bidi, quotes, escapes. */
const PRINTABLE = [
	"a",
	"Z",
	"0",
	" ",
	".",
	"-",
	"_",
	'"',
	"'",
	"\\",
	"/",
	"é",
	"ß",
	"漢",
	"🙂",
	"e\u0301",
	"\u202e",
	"\u200b",
	"\u00a0",
	"\ufeff",
	"\u2028",
];
const ANY_CHAR = [...PRINTABLE, "\u0000", "\u001b", "\n", "\u007f", "\u009b", "\ud800", "\udfff"];

function textOf(rng: Prng, alphabet: readonly string[], maxUnits: number): string {
	if (maxUnits <= 0) return "";
	// Mostly short, sometimes right at the cap.
	const target = rng.int(8) === 0 ? maxUnits : rng.int(Math.min(maxUnits, 24) + 1);
	let s = "";
	while (s.length < target) {
		const piece = rng.pick(alphabet);
		if (s.length + piece.length > target) break;
		s += piece;
	}
	while (s.length < target) s += "x";
	return s;
}

/** A device name the schema accepts: 1..64 UTF-16 units, no C0/C1 control characters. */
export function deviceName(rng: Prng): string {
	const s = textOf(rng, PRINTABLE, 64);
	return s.length === 0 ? "d" : s;
}

function anyText(rng: Prng, max: number): string {
	return textOf(rng, ANY_CHAR, max);
}

const ID_EDGES = [1, 2, 0x7fffffff, 0xfffffffe, 0xffffffff];
const SIZE_EDGES = [0, 1, 1024 * 1024, 2 ** 32, Number.MAX_SAFE_INTEGER];

function id(rng: Prng): number {
	return rng.int(4) === 0 ? rng.pick(ID_EDGES) : 1 + rng.int(1000);
}
function size(rng: Prng): number {
	return rng.int(4) === 0 ? rng.pick(SIZE_EDGES) : rng.int(10_000_000);
}
function mtime(rng: Prng): number {
	return rng.pick([0, -1, 1_700_000_000_000, 8.64e15, -8.64e15, rng.int(2 ** 31)]);
}
function entry(rng: Prng) {
	return {
		name: anyText(rng, 1024),
		type: rng.pick(["file", "dir", "symlink"] as const),
		size: size(rng),
		mtime: mtime(rng),
	};
}
function entries<T>(rng: Prng, make: () => T): T[] {
	const n = rng.int(16) === 0 ? 128 : rng.int(4);
	return Array.from({ length: n }, make);
}
const maybe = <T extends object>(rng: Prng, extra: T): T | Record<never, never> =>
	rng.int(2) === 0 ? extra : {};

type Generators = { [K in Message["t"]]: (rng: Prng) => MessageOf<K> };

/** One generator per message type; tsc rejects the table if a type is missing. */
export const MESSAGE_GENERATORS: Generators = {
	hello: (r) => ({
		t: "hello",
		version: r.int(8) === 0 ? r.pick([0, 1, 3, -1, 2 ** 31]) : PROTOCOL_VERSION,
		mode: r.pick(["session", "pair"] as const),
		name: deviceName(r),
	}),
	ping: (r) => ({ t: "ping", nonce: anyText(r, 64) }),
	pong: (r) => ({ t: "pong", nonce: anyText(r, 64) }),
	pake1: (r) => ({ t: "pake1", ya: hex(r, 32), name: deviceName(r) }),
	pake2: (r) => ({ t: "pake2", yb: hex(r, 32), name: deviceName(r), tb: hex(r, 64) }),
	pake3: (r) => ({ t: "pake3", ta: hex(r, 64) }),
	paired: () => ({ t: "paired" }),
	list: (r) => ({ t: "list", id: id(r), path: anyText(r, 4096) }),
	stat: (r) => ({ t: "stat", id: id(r), path: anyText(r, 4096) }),
	walk: (r) => ({
		t: "walk",
		id: id(r),
		path: anyText(r, 4096),
		...maybe(r, { exclude: entries(r, () => anyText(r, 64) || "x").slice(0, 64) }),
	}),
	hash: (r) => ({ t: "hash", id: id(r), path: anyText(r, 4096) }),
	mkdir: (r) => ({ t: "mkdir", id: id(r), path: anyText(r, 4096), parents: r.int(2) === 0 }),
	rm: (r) => ({ t: "rm", id: id(r), path: anyText(r, 4096), recursive: r.int(2) === 0 }),
	get: (r) => ({
		t: "get",
		id: id(r),
		path: anyText(r, 4096),
		offset: size(r),
		...maybe(r, { prefix: hex(r, 32) }),
	}),
	ack: (r) => ({ t: "ack", id: id(r) }),
	put: (r) => ({
		t: "put",
		id: id(r),
		path: anyText(r, 4096),
		size: size(r),
		overwrite: r.int(2) === 0,
		...maybe(r, { mtime: mtime(r), mode: r.int(0o10000) }),
	}),
	"put-abort": (r) => ({ t: "put-abort", id: id(r) }),
	"put-start": (r) => ({ t: "put-start", id: id(r), offset: size(r) }),
	"put-end": (r) => ({ t: "put-end", id: id(r), sha256: hex(r, 32) }),
	ok: (r) => ({ t: "ok", id: id(r) }),
	entries: (r) => ({
		t: "entries",
		id: id(r),
		entries: entries(r, () => entry(r)),
		done: r.int(2) === 0,
	}),
	"walk-entries": (r) => ({
		t: "walk-entries",
		id: id(r),
		entries: entries(r, () => ({ ...entry(r), path: anyText(r, 4096) })),
		done: r.int(2) === 0,
	}),
	"stat-ok": (r) => ({ t: "stat-ok", id: id(r), entry: entry(r) }),
	file: (r) => ({ t: "file", id: id(r), size: size(r), mtime: mtime(r), offset: size(r) }),
	"file-end": (r) => ({ t: "file-end", id: id(r), sha256: hex(r, 32) }),
	"put-ready": (r) => ({
		t: "put-ready",
		id: id(r),
		offset: size(r),
		...maybe(r, { prefix: hex(r, 32) }),
	}),
	"put-ok": (r) => ({ t: "put-ok", id: id(r), sha256: hex(r, 32) }),
	"up-to-date": (r) => ({ t: "up-to-date", id: id(r) }),
	"hash-ok": (r) => ({ t: "hash-ok", id: id(r), size: size(r), sha256: hex(r, 32) }),
	error: (r) => ({ t: "error", code: r.pick(WIRE_ERROR_CODES), ...maybe(r, { id: id(r) }) }),
};

/** Every `t` the schema knows, read from the schema itself. */
export const MESSAGE_TYPES: readonly Message["t"][] = MessageSchema.options.map(
	(o) => o.entries.t.literal,
);

export function validMessage(rng: Prng, t: Message["t"] = rng.pick(MESSAGE_TYPES)): Message {
	return MESSAGE_GENERATORS[t](rng) as Message;
}

export function isSchemaValid(m: unknown): m is Message {
	return v.is(MessageSchema, m);
}

// ---------------------------------------------------------------- certificates

/**
 * A fresh self-signed certificate nobody has ever seen: a random key type
 * (ECDSA P-256 or Ed25519), a random subject and serial.
 */
export async function randomCredentials(
	rng: Prng,
	kind: "ECDSA P-256" | "Ed25519" = rng.int(2) === 0 ? "ECDSA P-256" : "Ed25519",
): Promise<Credentials & { fingerprint: string; kind: string }> {
	await import("reflect-metadata");
	const x509 = await import("@peculiar/x509");
	const ecdsa = kind === "ECDSA P-256";
	const keyAlg = ecdsa ? { name: "ECDSA", namedCurve: "P-256" } : { name: "Ed25519" };
	const signingAlgorithm = ecdsa ? { name: "ECDSA", hash: "SHA-256" } : { name: "Ed25519" };
	const keys = (await crypto.subtle.generateKey(keyAlg, true, ["sign", "verify"])) as CryptoKeyPair;
	const serial = hex(rng, 16).replace(/^./, "1");
	const cert = await x509.X509CertificateGenerator.createSelfSigned({
		serialNumber: serial,
		name: `CN=${hex(rng, 8)}, O=${hex(rng, 4)}`,
		notBefore: new Date(Date.now() - 86_400_000),
		notAfter: new Date(Date.now() + 86_400_000),
		signingAlgorithm,
		keys,
		extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
	});
	const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
	return {
		keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
		certPem: cert.toString("pem"),
		fingerprint: fingerprintOf(new Uint8Array(cert.rawData)),
		kind: ecdsa ? "ECDSA P-256" : "Ed25519",
	};
}

// ---------------------------------------------------------------- raw TCP peers

export interface RawTcpPeer {
	socket: NetSocket;
	readonly openedAt: number;
	/** Resolves once TCP connected (or failed). */
	readonly connected: Promise<void>;
	/** Resolves with performance.now() when the connection closed, from either side. */
	readonly closed: Promise<number>;
	readonly isClosed: boolean;
	/** Bytes the server sent us (before TLS: normally none). */
	readonly received: number;
}

/** `localAddress`: the loopback source to connect from (127.0.0.2 …), one "host" of a many-source flood. */
export function rawTcp(port: number, localAddress?: string): RawTcpPeer {
	const openedAt = performance.now();
	let isClosed = false;
	let received = 0;
	let onConnected!: () => void;
	const connected = new Promise<void>((r) => {
		onConnected = r;
	});
	const socket = tcpConnect({ host: "127.0.0.1", port, localAddress }, () => onConnected());
	const closed = new Promise<number>((resolve) => {
		socket.on("close", () => {
			isClosed = true;
			onConnected();
			resolve(performance.now());
		});
	});
	socket.on("error", () => undefined);
	socket.on("data", (d) => {
		received += d.length;
	});
	return {
		socket,
		openedAt,
		connected,
		closed,
		get isClosed() {
			return isClosed;
		},
		get received() {
			return received;
		},
	};
}

/**
 * The bytes of a real TLS 1.3 ClientHello as a pairlink client sends it,
 * captured by a plain TCP listener on loopback.
 */
export async function captureClientHello(creds: Credentials): Promise<Uint8Array> {
	let done!: (b: Uint8Array) => void;
	const hello = new Promise<Uint8Array>((r) => {
		done = r;
	});
	const server = createServer((s) => {
		let buf = Buffer.alloc(0);
		s.on("error", () => undefined);
		s.on("data", (d: Buffer) => {
			buf = Buffer.concat([buf, d]);
			// A TLS record: type, version (2), length (2), then the body.
			if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
				done(new Uint8Array(buf.subarray(0, 5 + buf.readUInt16BE(3))));
				s.destroy();
			}
		});
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	const port = (server.address() as { port: number }).port;
	Bun.connect({
		hostname: "127.0.0.1",
		port,
		tls: tlsOptions(creds, "client"),
		socket: { data() {}, error() {}, close() {}, connectError() {} },
	}).catch(() => undefined);
	try {
		return await hello;
	} finally {
		server.close();
	}
}

// ---------------------------------------------------------------- a TLS peer driven by hand

/**
 * Exactly the bytes asked for, in order, with Bun's partial writes handled
 * (kept independent of src/transport/socket-writer.ts, which batches).
 */
class RawWriter {
	private readonly queue: { data: Uint8Array; done: () => void; fail: (e: Error) => void }[] = [];
	constructor(private readonly sink: { write(d: Uint8Array): number }) {}

	write(data: Uint8Array): Promise<void> {
		return new Promise<void>((done, fail) => {
			this.queue.push({ data, done, fail });
			if (this.queue.length === 1) this.drain();
		});
	}

	drain(): void {
		for (;;) {
			const head = this.queue[0];
			if (!head) return;
			const n = head.data.length === 0 ? 0 : this.sink.write(head.data);
			if (n < 0) {
				for (const w of this.queue.splice(0)) w.fail(new Error("the connection is closed"));
				return;
			}
			if (n < head.data.length) {
				head.data = head.data.subarray(n);
				return;
			}
			this.queue.shift();
			head.done();
		}
	}

	close(): void {
		for (const w of this.queue.splice(0)) w.fail(new Error("the connection is closed"));
	}
}

export interface HandPeer {
	readonly openedAt: number;
	/** Resolves after the TLS handshake; rejects if the connection closed first. */
	readonly tls: Promise<TlsInfo>;
	/** Control messages received so far, in order. */
	readonly messages: Message[];
	/** Raw bytes, no framing: whatever a bad peer wants to send. */
	write(bytes: Uint8Array): Promise<void>;
	send(message: Message, stream?: number): Promise<void>;
	sendData(stream: number, payload: Uint8Array): Promise<void>;
	/** The next control message not yet taken; rejects once the connection is closed. */
	next(): Promise<Message>;
	/** Resolves with performance.now() when the connection closed. */
	readonly closed: Promise<number>;
	readonly isClosed: boolean;
	end(): void;
	/** Stop reading from the server (a peer that never reads its replies). */
	pause(): void;
	/** Close at once, whatever is still queued. */
	terminate(): void;
}

/**
 * A TLS 1.3 client with the given certificate that speaks pairlink frames
 * only when told to: everything else it may write is up to the test.
 */
export function handPeer(port: number, creds: Credentials): HandPeer {
	const openedAt = performance.now();
	const messages: Message[] = [];
	let taken = 0;
	let wake: (() => void) | undefined;
	let isClosed = false;
	let socket: Socket<unknown> | undefined;
	let writer: RawWriter | undefined;
	const decoder = new FrameDecoder();
	let decoding = true;
	let resolveTls!: (t: TlsInfo) => void;
	let rejectTls!: (e: Error) => void;
	const tls = new Promise<TlsInfo>((res, rej) => {
		resolveTls = res;
		rejectTls = rej;
	});
	tls.catch(() => undefined);
	let resolveClosed!: (at: number) => void;
	const closed = new Promise<number>((r) => {
		resolveClosed = r;
	});
	const onClose = () => {
		if (isClosed) return;
		isClosed = true;
		writer?.close();
		rejectTls(new Error("closed before the TLS handshake finished"));
		resolveClosed(performance.now());
		wake?.();
	};
	Bun.connect({
		hostname: "127.0.0.1",
		port,
		tls: tlsOptions(creds, "client"),
		socket: {
			binaryType: "uint8array",
			open(s) {
				socket = s as Socket<unknown>;
				writer = new RawWriter(s);
			},
			handshake(s) {
				try {
					resolveTls(readTlsInfo(s as Socket<unknown>));
				} catch (e) {
					rejectTls(e as Error);
				}
			},
			data(_s, data) {
				if (!decoding) return;
				try {
					for (const f of decoder.push(data)) {
						if (f.type === FrameType.control) messages.push(decodeMessage(frameBytes(f)));
					}
				} catch {
					decoding = false; // a bad server is not what these tests are about
				}
				wake?.();
			},
			drain() {
				writer?.drain();
			},
			close: onClose,
			error: onClose,
			connectError: onClose,
		},
	}).catch(onClose);
	const write = async (bytes: Uint8Array) => {
		await tls;
		if (!writer || isClosed) throw new Error("the connection is closed");
		await writer.write(bytes);
	};
	return {
		openedAt,
		tls,
		messages,
		write,
		send: (m, stream = 0) =>
			write(encodeFrame(FrameType.control, stream, new TextEncoder().encode(JSON.stringify(m)))),
		sendData: (stream, payload) => write(encodeFrame(FrameType.data, stream, payload)),
		async next() {
			while (taken >= messages.length) {
				if (isClosed) throw new Error("the server closed the connection");
				await new Promise<void>((r) => {
					wake = r;
				});
			}
			return messages[taken++] as Message;
		},
		closed,
		get isClosed() {
			return isClosed;
		},
		end() {
			socket?.end();
		},
		pause() {
			socket?.pause();
		},
		terminate() {
			socket?.terminate();
		},
	};
}

/** HELLO both ways on a hand peer; resolves with the server's HELLO. */
export async function helloExchange(
	peer: HandPeer,
	mode: "session" | "pair",
	name = "hand",
): Promise<MessageOf<"hello">> {
	await peer.send({ t: "hello", version: PROTOCOL_VERSION, mode, name });
	const answer = await peer.next();
	if (answer.t !== "hello") throw new Error(`expected HELLO, got ${JSON.stringify(answer)}`);
	return answer;
}

/** One line for the report: `FIGURE: …`. */
export function figure(line: string): void {
	console.log(`FIGURE: ${line}`);
}
