/**
 * A server that speaks the protocol but lies (SPEC "Security requirements":
 * the client applies the server's rules to every name it gets back; nothing
 * partial ever stands at a final name). Built from the real transport
 * (listenTls + FrameSocket) with an identity the client trusts; the HELLO
 * and every answer are written by hand.
 */
import {
	afterAll,
	afterEach,
	beforeAll,
	describe,
	expect,
	setDefaultTimeout,
	test,
} from "bun:test";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { entryLine } from "../../src/cli/format.ts";
import type { Connection } from "../../src/client/connect.ts";
import type { Target } from "../../src/client/target.ts";
import { getFiles } from "../../src/client/transfer.ts";
import { PairlinkError } from "../../src/errors.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { encodeFrame, FrameType, frameBytes } from "../../src/protocol/frame.ts";
import { PEER_LIMITS, PROTOCOL_VERSION, type Timeouts } from "../../src/protocol/limits.ts";
import { decodeMessage, type Message, type MessageOf } from "../../src/protocol/messages.ts";
import type { FrameSocket } from "../../src/transport/frame-socket.ts";
import { listenTls } from "../../src/transport/listen.ts";
import { binaryExists, describeResult, runPairlink } from "../helpers/cli.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	type TestDevice,
	tempDir,
} from "../helpers/devices.ts";
import {
	clientPartOwner,
	expectRefusal,
	keepPart,
	partFiles,
	randomBytes,
	sha256Hex,
	snapshot,
	within,
} from "../helpers/files.ts";
import { makePrng } from "../helpers/prng.ts";

const TIMEOUTS: Timeouts = { handshakeMs: 5000, idleMs: 30_000 };
const WAIT_MS = 10_000;
// Above WAIT_MS, so a hang fails with the message of the wait that hung.
setDefaultTimeout(20_000);
const prng = makePrng(0x0badf00d);
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: what a terminal must never receive raw
const TERMINAL_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

let evil: TestDevice;
let client: TestDevice;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
	[evil, client] = await Promise.all([makeDevice("desk"), makeDevice("laptop")]);
	// The client trusts the lying server: it paired with it once.
	await client.trust.add({
		name: "desk",
		fingerprint: evil.identity.fingerprint,
		address: "127.0.0.1:1",
	});
});

afterEach(() => {
	for (const c of cleanups.splice(0).reverse()) c();
});

afterAll(removeTempDirs);

// ---------------------------------------------------------------- the liar

type Handler = (m: Message, fs: FrameSocket) => void | Promise<void>;

interface Fake {
	target: Target;
	/** Control messages the client sent after its HELLO, in order. */
	received: Message[];
	/** Every frame the client sent, HELLO included. */
	frames: number;
	/** Resolves when the (first) client connection is gone. */
	closed: Promise<PairlinkError | undefined>;
}

function fakeServer(
	identity: TestDevice["identity"],
	handle: Handler,
	opts: { answerPings?: boolean } = {},
): Fake {
	let resolveClosed!: (e: PairlinkError | undefined) => void;
	const fake: Fake = {
		target: { display: "", hostname: "127.0.0.1", port: 0, named: undefined },
		received: [],
		frames: 0,
		closed: new Promise((r) => {
			resolveClosed = r;
		}),
	};
	const listener = listenTls({
		hostname: "127.0.0.1",
		port: 0,
		credentials: identity,
		timeouts: TIMEOUTS,
		onConnection(fs) {
			fs.attach({
				onHandshake() {},
				onClose: (e) => resolveClosed(e),
				onFrame(frame) {
					fake.frames++;
					if (frame.type !== FrameType.control) return;
					const m = decodeMessage(frameBytes(frame));
					if (m.t === "hello") {
						void fs
							.send({ t: "hello", version: PROTOCOL_VERSION, mode: "session", name: "desk" })
							.catch(() => undefined);
						fs.markEstablished();
						return;
					}
					fake.received.push(m);
					if (m.t === "ping" && opts.answerPings !== false) {
						void send(fs, { t: "pong", nonce: m.nonce });
						return;
					}
					void Promise.resolve(handle(m, fs)).catch(() => undefined);
				},
			});
		},
	});
	cleanups.push(() => listener.stop(true));
	fake.target = {
		display: `127.0.0.1:${listener.port}`,
		hostname: "127.0.0.1",
		port: listener.port,
		named: undefined,
	};
	return fake;
}

const send = (fs: FrameSocket, m: Message) => fs.send(m).catch(() => undefined);

/** Answers `stat` for the given entries; everything else goes to `rest`. */
function withStat(
	entries: Record<string, MessageOf<"stat-ok">["entry"]>,
	rest: Handler = () => undefined,
): Handler {
	return (m, fs) => {
		if (m.t === "stat") {
			const entry = entries[m.path];
			return void (entry
				? send(fs, { t: "stat-ok", id: m.id, entry })
				: send(fs, { t: "error", id: m.id, code: "not-found" }));
		}
		return rest(m, fs);
	};
}

const fileEntry = (name: string, size: number) => ({ name, type: "file" as const, size, mtime: 0 });

async function connectToFake(fake: Fake): Promise<Connection> {
	const conn = await within(
		WAIT_MS,
		connectTo(client, fake.target, { timeouts: TIMEOUTS }),
		"connect to the fake",
	);
	cleanups.push(() => conn.close());
	return conn;
}

/** base/dest receives; base/sentinel must stay empty; nothing else may appear in base. */
async function workspace() {
	const base = await tempDir("pairlink-liar-");
	const dest = join(base, "dest");
	await mkdir(dest);
	await mkdir(join(base, "sentinel"));
	return {
		base,
		dest,
		async expectNothingOutside() {
			expect((await readdir(base)).sort()).toEqual(["dest", "sentinel"]);
			expect(await readdir(join(base, "sentinel"))).toEqual([]);
		},
	};
}

// ---------------------------------------------------------------- (1) names

describe("(1) walk-entries with names that lead out of the destination", () => {
	const HOSTILE: { path: string; name: string; type?: "file" | "dir" }[] = [
		{ path: "../evil", name: "evil" },
		{ path: "../evil", name: "evil", type: "dir" },
		{ path: "/abs", name: "abs" },
		{ path: "a/../../x", name: "x" },
		{ path: "..\\x", name: "..\\x" },
		{ path: "ctl\u0007x", name: "ctl\u0007x" },
		{ path: "\u001b[31mred", name: "\u001b[31mred" },
		{ path: "ok.txt", name: "../evil" }, // an innocent path with a lying name
		{ path: ".x.pairlink-part", name: ".x.pairlink-part" },
	];

	/** A directory "d" whose walk returns one honest file and then `bad`. */
	const liar = (bad: (typeof HOSTILE)[number]) =>
		withStat({ d: { name: "d", type: "dir", size: 0, mtime: 0 } }, (m, fs) => {
			if (m.t === "walk")
				void send(fs, {
					t: "walk-entries",
					id: m.id,
					entries: [
						{ ...fileEntry("honest.txt", 5), path: "honest.txt" },
						{ ...fileEntry(bad.name, 5), type: bad.type ?? "file", path: bad.path },
					],
					done: true,
				});
			else if (m.t === "get")
				// Never reached if the client refuses the listing first.
				void send(fs, { t: "error", id: m.id, code: "not-found" });
		});

	test.each(HOSTILE.map((h) => [JSON.stringify(h), h] as const))(
		"get -r refuses %s and writes nothing",
		async (_label, bad) => {
			const ws = await workspace();
			const fake = fakeServer(evil.identity, liar(bad));
			const conn = await connectToFake(fake);
			const run = getFiles(conn.session, ["d"], {
				recursive: true,
				overwrite: false,
				dest: ws.dest,
			});
			let error: unknown;
			await within(WAIT_MS, run, "get -r").catch((e) => {
				error = e;
			});
			expect(error).toBeInstanceOf(PairlinkError);
			expect((error as PairlinkError).message).toContain("Refused path");
			// Refused before a single file was requested: not even the honest one was fetched.
			expect(fake.received.map((m) => m.t)).toEqual(["stat", "walk"]);
			await ws.expectNothingOutside();
			// getFiles walks (and checks every name) before it creates anything.
			expect(await snapshot(ws.dest)).toEqual(new Map());
		},
	);

	test("names only Windows refuses: a Linux receiver asks for each, a win32 receiver refuses each and gets the rest", async () => {
		const names = ["CON", "aux.txt", "C:x", "notes: 2026?.txt"];
		const handler = withStat({ d: { name: "d", type: "dir", size: 0, mtime: 0 } }, (m, fs) => {
			if (m.t === "walk")
				void send(fs, {
					t: "walk-entries",
					id: m.id,
					entries: ["honest.txt", ...names].map((n) => ({ ...fileEntry(n, 5), path: n })),
					done: true,
				});
			else if (m.t === "get") void send(fs, { t: "error", id: m.id, code: "not-found" });
		});
		for (const platform of ["linux", "win32"]) {
			const ws = await workspace();
			const fake = fakeServer(evil.identity, handler);
			const conn = await connectToFake(fake);
			const summary = await within(
				WAIT_MS,
				getFiles(conn.session, ["d"], {
					recursive: true,
					overwrite: false,
					dest: ws.dest,
					platform,
				}),
				"get -r",
			);
			const asked = fake.received.flatMap((m) => (m.t === "get" ? [m.path] : []));
			const failed = new Map(summary.failed.map((f) => [f.path, f.error.code]));
			if (platform === "linux") {
				expect(asked.sort()).toEqual(["d/honest.txt", ...names.map((n) => `d/${n}`)].sort());
				for (const n of names) expect(failed.get(`d/${n}`)).toBe("not-found");
			} else {
				expect(asked).toEqual(["d/honest.txt"]);
				for (const n of names) expect(failed.get(`d/${n}`)).toBe("invalid-name");
			}
			expect(failed.get("d/honest.txt")).toBe("not-found");
			await ws.expectNothingOutside();
		}
	});

	test.skipIf(!binaryExists())(
		"dist/pairlink get -r from a server that sends a forbidden name: exit 5 at once, nothing written",
		async () => {
			const ws = await workspace();
			const fake = fakeServer(evil.identity, liar({ path: "sub/..\\evil", name: "..\\evil" }));
			const args = ["get", fake.target.display, "d", "-r", "-o", ws.dest, "--json"];
			const r = await runPairlink(args, { mode: "binary", home: client.home });
			expect(r.exitCode, describeResult(r)).toBe(5);
			expect(r.stderr).toContain("Refused path");
			// Stopped at the listing: not even the honest file was asked for, nothing was written.
			expect(fake.received.map((m) => m.t)).toEqual(["stat", "walk"]);
			expect(r.stdout).not.toContain("honest.txt");
			expect(await snapshot(ws.dest)).toEqual(new Map());
			await ws.expectNothingOutside();
		},
	);

	// Found while writing these tests: the refusal used to escape the socket's data
	// callback and came out as "interrupted" (exit 6) on a torn-down connection.
	test("get -r of a lying listing fails with invalid-path, exit 5, and the connection stays usable", async () => {
		const ws = await workspace();
		const fake = fakeServer(evil.identity, liar({ path: "../evil", name: "evil" }));
		const conn = await connectToFake(fake);
		const e = await expectRefusal(
			within(
				WAIT_MS,
				getFiles(conn.session, ["d"], { recursive: true, overwrite: false, dest: ws.dest }),
				"get -r",
			),
			"invalid-path",
		);
		expect(e.exitCode).toBe(5);
		expect(e.message).toContain("../evil");
		expect(conn.session.closed).toBe(false);
		expect(await within(WAIT_MS, conn.session.ping(), "ping")).toBeGreaterThanOrEqual(0);
		await ws.expectNothingOutside();
	});
});

// ---------------------------------------------------------------- (2)-(4) data

describe("downloads that do not match what the server announced", () => {
	const N = 1000;
	const content = randomBytes(prng, N);

	/** A single file "f.bin" of N bytes; `body` sends whatever follows the get. */
	const lyingFile = (
		body: (fs: FrameSocket, get: MessageOf<"get">) => Promise<void>,
		announced = N,
	): Handler =>
		withStat({ "f.bin": fileEntry("f.bin", announced) }, (m, fs) => {
			if (m.t === "get") return body(fs, m);
		});

	async function getOne(fake: Fake, dest: string) {
		const conn = await connectToFake(fake);
		return getFiles(conn.session, ["f.bin"], { recursive: false, overwrite: false, dest });
	}

	const fileMsg = (id: number, size = N): Message => ({ t: "file", id, size, mtime: 0, offset: 0 });

	test.each([
		[
			"(2) more bytes than announced, in one frame",
			async (fs: FrameSocket, id: number) => {
				await send(fs, fileMsg(id));
				await fs.sendData(id, randomBytes(prng, N + 500));
				await send(fs, { t: "file-end", id, sha256: sha256Hex(content) });
			},
		],
		[
			"(2) more bytes than announced, one byte too many in a second frame",
			async (fs: FrameSocket, id: number) => {
				await send(fs, fileMsg(id));
				await fs.sendData(id, content);
				await fs.sendData(id, new Uint8Array([0]));
				await send(fs, { t: "file-end", id, sha256: sha256Hex(content) });
			},
		],
		[
			"(2) data before the file header",
			async (fs: FrameSocket, id: number) => {
				await fs.sendData(id, content);
				await send(fs, fileMsg(id));
				await send(fs, { t: "file-end", id, sha256: sha256Hex(content) });
			},
		],
		[
			"(2) fewer bytes than announced",
			async (fs: FrameSocket, id: number) => {
				await send(fs, fileMsg(id));
				await fs.sendData(id, content.subarray(0, N - 1));
				await send(fs, { t: "file-end", id, sha256: sha256Hex(content.subarray(0, N - 1)) });
			},
		],
		[
			"(3) a wrong sha256 in file-end",
			async (fs: FrameSocket, id: number) => {
				await send(fs, fileMsg(id));
				await fs.sendData(id, content);
				await send(fs, { t: "file-end", id, sha256: sha256Hex("not the content") });
			},
		],
		[
			"(3) a sha256 of other bytes than were sent",
			async (fs: FrameSocket, id: number) => {
				const other = content.slice();
				other[500] = (other[500] as number) ^ 1;
				await send(fs, fileMsg(id));
				await fs.sendData(id, other);
				await send(fs, { t: "file-end", id, sha256: sha256Hex(content) });
			},
		],
	] as const)("%s: integrity (exit 6), no final file, no part file", async (_label, body) => {
		const ws = await workspace();
		const fake = fakeServer(
			evil.identity,
			lyingFile((fs, get) => body(fs, get.id)),
		);
		const e = await expectRefusal(within(WAIT_MS, getOne(fake, ws.dest), "get"), "integrity");
		expect(e.exitCode).toBe(6);
		expect(await readdir(ws.dest)).toEqual([]);
		await ws.expectNothingOutside();
		// The client never acknowledged a download it refused.
		expect(fake.received.some((m) => m.t === "ack")).toBe(false);
	});

	test("a file header bigger than the size stat gave: protocol error (exit 3), nothing written, no part file", async () => {
		// Attack 1, finding 5: stat says 10 bytes (the free-space check passes), the header 400 MiB.
		const ws = await workspace();
		const LIE = 400 * 1024 * 1024;
		let sent = 0;
		const chunk = new Uint8Array(1024 * 1024);
		const fake = fakeServer(
			evil.identity,
			lyingFile(async (fs, get) => {
				await send(fs, { t: "file", id: get.id, size: LIE, mtime: 0, offset: 0 });
				try {
					while (sent < LIE) {
						await fs.sendData(get.id, chunk);
						sent += chunk.length;
					}
				} catch {
					// the client hung up
				}
			}, 10),
		);
		const e = await expectRefusal(within(WAIT_MS, getOne(fake, ws.dest), "get"), "protocol");
		expect(e.exitCode).toBe(3);
		expect(e.message).toContain("listed with 10");
		await within(WAIT_MS, fake.closed, "the liar's connection to close");
		expect(await readdir(ws.dest)).toEqual([]);
		expect(sent).toBeLessThan(LIE);
		await ws.expectNothingOutside();
	});

	test("a file header bigger than the free space: disk-full before a byte is written, no part file", async () => {
		const ws = await workspace();
		const HUGE = 2 ** 50; // no test machine has a PiB free
		const fake = fakeServer(
			evil.identity,
			lyingFile(async (fs, get) => {
				await send(fs, { t: "file", id: get.id, size: HUGE, mtime: 0, offset: 0 });
				await fs.sendData(get.id, content).catch(() => undefined);
			}, HUGE),
		);
		const conn = await connectToFake(fake);
		// The session's own check, whatever the caller planned: the size told by the header counts.
		const e = await expectRefusal(
			within(
				WAIT_MS,
				conn.session.download("f.bin", SandboxRoot.fromRealPath(ws.dest), "f.bin", {
					overwrite: false,
				}),
				"get",
			),
			"disk-full",
		);
		expect(e.exitCode).toBe(6);
		expect(await readdir(ws.dest)).toEqual([]);
		await ws.expectNothingOutside();
	});

	test("(4) an endless stream is cut off at the announced size", async () => {
		const ws = await workspace();
		const announced = 1024 * 1024;
		const CAP = 512 * 1024 * 1024; // the liar gives up here; the client must stop it long before
		let sent = 0;
		let stoppedBy: "close" | "cap" | undefined;
		const chunk = randomBytes(prng, 256 * 1024);
		const fake = fakeServer(
			evil.identity,
			lyingFile(async (fs, get) => {
				await send(fs, fileMsg(get.id, announced));
				try {
					while (sent < CAP) {
						await fs.sendData(get.id, chunk);
						sent += chunk.length;
					}
					stoppedBy = "cap";
				} catch {
					stoppedBy = "close";
				}
			}, announced),
		);
		const e = await expectRefusal(within(WAIT_MS, getOne(fake, ws.dest), "get"), "integrity");
		expect(e.exitCode).toBe(6);
		expect(e.message).toContain("more data than it announced");
		// The client hangs up on data for a download it already refused.
		await within(WAIT_MS, fake.closed, "the liar's connection to close");
		expect(stoppedBy).toBe("close");
		expect(sent).toBeLessThan(CAP);
		expect(await readdir(ws.dest)).toEqual([]);
		await ws.expectNothingOutside();
	});

	test("a resume offset the client never offered: protocol error, its own part file kept, nothing final", async () => {
		const ws = await workspace();
		const kept = content.subarray(0, 300);
		await keepPart(ws.dest, "f.bin", kept, clientPartOwner(client, evil.identity));
		const fake = fakeServer(
			evil.identity,
			lyingFile(async (fs, get) => {
				expect(get.offset).toBe(300);
				await send(fs, { t: "file", id: get.id, size: N, mtime: 0, offset: 200 });
				await fs.sendData(get.id, content.subarray(200));
				await send(fs, { t: "file-end", id: get.id, sha256: sha256Hex(content) });
			}),
		);
		const e = await expectRefusal(within(WAIT_MS, getOne(fake, ws.dest), "get"), "protocol");
		expect(e.message).toContain("did not offer");
		expect(await readdir(ws.dest)).toEqual([".f.bin.pairlink-part"]);
		expect((await snapshot(ws.dest)).get(".f.bin.pairlink-part")).toBe(`file:${sha256Hex(kept)}`);
		await ws.expectNothingOutside();
	});

	test("an honest answer from the same fake is accepted (the harness itself works)", async () => {
		const ws = await workspace();
		const fake = fakeServer(
			evil.identity,
			lyingFile(async (fs, get) => {
				await send(fs, fileMsg(get.id));
				await fs.sendData(get.id, content);
				await send(fs, { t: "file-end", id: get.id, sha256: sha256Hex(content) });
			}),
		);
		const summary = await within(WAIT_MS, getOne(fake, ws.dest), "get");
		expect(summary).toMatchObject({ files: 1, bytes: N });
		expect(await snapshot(ws.dest)).toEqual(new Map([["f.bin", `file:${sha256Hex(content)}`]]));
		expect(await partFiles(ws.dest)).toEqual([]);
	});
});

// ---------------------------------------------------------------- (5) list

describe("(5) entries with names no pairlink server could send", () => {
	const NAMES = [
		"\u001b[31mred",
		"\u001b]0;owned\u0007",
		"../evil",
		"a/b",
		"CON",
		"x.pairlink-part",
		"rtl\u202eexe.txt",
		"line\u2028sep",
	];

	const lyingList = (name: string) => (m: Message, fs: FrameSocket) => {
		if (m.t === "list")
			void send(fs, {
				t: "entries",
				id: m.id,
				entries: [fileEntry("fine.txt", 1), fileEntry(name, 1)],
				done: true,
			});
	};

	// What happens (src/session/client-session.ts list(): "names are for display
	// only"): a listing is not refused; the name reaches the caller unchanged and
	// is escaped where it is printed. Nothing is written: ls never touches the disk.
	test.each(NAMES.map((n) => [JSON.stringify(n), n] as const))(
		"list() passes %s through for display; the printed line is escaped",
		async (_label, name) => {
			const fake = fakeServer(evil.identity, lyingList(name));
			const conn = await connectToFake(fake);
			const entries = await within(WAIT_MS, conn.session.list(""), "list");
			expect(entries.map((e) => e.name)).toEqual(["fine.txt", name]);
			for (const long of [false, true]) {
				const line = entryLine(entries[1] as (typeof entries)[number], long);
				expect(line).not.toMatch(TERMINAL_UNSAFE);
				expect(line.length).toBeGreaterThan(0);
			}
			// The session carries on.
			expect(await within(WAIT_MS, conn.session.ping(), "ping")).toBeGreaterThanOrEqual(0);
		},
	);

	test("a listed name that fails the rules can never become a download target", async () => {
		const ws = await workspace();
		const bad = "\u001b[31mred";
		const fake = fakeServer(
			evil.identity,
			withStat({ [bad]: fileEntry(bad, 5) }, (m, fs) => {
				if (m.t === "get") void send(fs, { t: "error", id: m.id, code: "not-found" });
			}),
		);
		const conn = await connectToFake(fake);
		const summary = await getFiles(conn.session, [bad], {
			recursive: false,
			overwrite: false,
			dest: ws.dest,
		});
		expect(summary.failed.map((f) => [f.path, f.error.code])).toEqual([[bad, "invalid-path"]]);
		expect(summary.failed[0]?.error.message).not.toMatch(CONTROL);
		// Refused locally: the request never left the client.
		expect(fake.received).toEqual([]);
		expect(await readdir(ws.dest)).toEqual([]);
		await ws.expectNothingOutside();
	});
});

// ---------------------------------------------------------------- (6) identity

describe("(6) a known name with another certificate", () => {
	test("fingerprint-changed (exit 4) before the client sends a single frame", async () => {
		const [real, impostor, victim] = await Promise.all([
			makeDevice("desk"),
			makeDevice("impostor"),
			makeDevice("laptop"),
		]);
		const fake = fakeServer(impostor.identity, () => undefined);
		// The victim paired with the real desk, last seen at the address the impostor now holds.
		const desk = await victim.trust.add({
			name: "desk",
			fingerprint: real.identity.fingerprint,
			address: `127.0.0.1:${fake.target.port}`,
		});
		for (const target of [fake.target, { ...fake.target, display: "desk", named: desk }]) {
			const e = await expectRefusal(
				within(WAIT_MS, connectTo(victim, target, { timeouts: TIMEOUTS }), "connect"),
				"fingerprint-changed",
			);
			expect(e.exitCode).toBe(4);
			expect(e.message).toContain("DESK");
		}
		expect(fake.frames).toBe(0);
		// The pin stands: nothing about the impostor was saved.
		expect(victim.trust.list().map((d) => [d.name, d.fingerprint])).toEqual([
			["desk", real.identity.fingerprint],
		]);
		expect(victim.trust.findByFingerprint(impostor.identity.fingerprint)).toBeUndefined();
	});
});

// ---------------------------------------------------------------- (7) streams

describe("(7) frames for requests that were never made", () => {
	test.each([
		["data for a stream id never used", (fs: FrameSocket) => fs.sendData(4242, new Uint8Array(10))],
		["data on stream 0", (fs: FrameSocket) => fs.sendData(0, new Uint8Array(10))],
		["an answer for an id never used", (fs: FrameSocket) => fs.send({ t: "ok", id: 4242 })],
	] as const)("%s: the client closes the connection with a protocol error", async (_l, lie) => {
		const fake = fakeServer(
			evil.identity,
			(m, fs) => {
				if (m.t === "ping") void lie(fs).catch(() => undefined);
			},
			{ answerPings: false },
		);
		const conn = await connectToFake(fake);
		const e = await expectRefusal(within(WAIT_MS, conn.session.ping(), "ping"), "protocol");
		expect(e.exitCode).toBe(3);
		expect(await within(WAIT_MS, conn.closed, "client close")).toMatchObject({ code: "protocol" });
		await within(WAIT_MS, fake.closed, "fake close");
		// The client told the liar why, with a bare wire code.
		expect(fake.received.at(-1)).toEqual({ t: "error", code: "protocol" });
		expect(conn.session.closed).toBe(true);
		await expectRefusal(conn.session.list(""), "protocol");
	});

	test("data on the id of a listing (not a download): protocol error", async () => {
		const fake = fakeServer(evil.identity, (m, fs) => {
			if (m.t === "list") void fs.sendData(m.id, new Uint8Array(3)).catch(() => undefined);
		});
		const conn = await connectToFake(fake);
		await expectRefusal(within(WAIT_MS, conn.session.list(""), "list"), "protocol");
		await within(WAIT_MS, fake.closed, "fake close");
	});

	test("data for a download after it was refused as corrupt ends the connection", async () => {
		const ws = await workspace();
		let lastGet = 0;
		const fake = fakeServer(
			evil.identity,
			withStat({ "f.bin": fileEntry("f.bin", 10) }, async (m, fs) => {
				if (m.t === "get") {
					lastGet = m.id;
					await send(fs, { t: "file", id: m.id, size: 10, mtime: 0, offset: 0 });
					await fs.sendData(m.id, new Uint8Array(10));
					await send(fs, { t: "file-end", id: m.id, sha256: sha256Hex("wrong") });
				} else if (m.t === "ping") {
					// More bytes for the download the client has already refused.
					await fs.sendData(lastGet, new Uint8Array(10));
				}
			}),
			{ answerPings: false },
		);
		const conn = await connectToFake(fake);
		const localRoot = await SandboxRoot.open(ws.dest);
		await expectRefusal(
			within(
				WAIT_MS,
				conn.session.download("f.bin", localRoot, "f.bin", { overwrite: false }),
				"get",
			),
			"integrity",
		);
		expect(await readdir(ws.dest)).toEqual([]);
		await expectRefusal(within(WAIT_MS, conn.session.ping(), "ping"), "protocol");
		expect(await within(WAIT_MS, conn.closed, "client close")).toMatchObject({ code: "protocol" });
		expect(await readdir(ws.dest)).toEqual([]);
	});
});

// ---------------------------------------------------------------- (8) exhausting the client

describe("(8) a server that tries to exhaust the client", () => {
	const rssMiB = () => process.memoryUsage.rss() / (1024 * 1024);

	/** Answers a listing request with batches that never say done, until the client hangs up. */
	function endless(kind: "entries" | "walk-entries", counter: { entries: number }): Handler {
		const names = Array.from({ length: 128 }, (_, i) => `${"n".repeat(200)}-${i}`);
		return async (m, fs) => {
			if (m.t === "stat") {
				return void send(fs, {
					t: "stat-ok",
					id: m.id,
					entry: { name: "d", type: "dir", size: 0, mtime: 0 },
				});
			}
			if (m.t !== "list" && m.t !== "walk") return;
			for (let batch = 0; batch < 1_000_000; batch++) {
				const entries = names.map((n) => ({
					name: `${batch}-${n}`,
					type: "file" as const,
					size: 1,
					mtime: 0,
					...(kind === "walk-entries" ? { path: `d/${batch}-${n}` } : {}),
				}));
				try {
					await fs.send({ t: kind, id: m.id, entries, done: false } as Message);
				} catch {
					return;
				}
				counter.entries += entries.length;
			}
		};
	}

	test("a listing that never ends: ls fails (exit 3) at the listing cap, the client's memory bounded", async () => {
		const counter = { entries: 0 };
		const fake = fakeServer(evil.identity, endless("entries", counter));
		const conn = await connectToFake(fake);
		const before = rssMiB();
		const e = await expectRefusal(within(WAIT_MS * 2, conn.session.list("d"), "ls"), "protocol");
		await within(WAIT_MS, fake.closed, "the liar's connection to close");
		const grew = rssMiB() - before;
		expect(e.message).toContain("listing larger than");
		expect(e.exitCode).toBe(3);
		// The liar got the cap's worth in, plus what was in flight when the client hung up.
		expect(counter.entries).toBeLessThan(PEER_LIMITS.listingEntries * 1.5);
		expect(grew).toBeLessThan(400);
		console.log(
			`FIGURE: endless ls: ${counter.entries} entries sent before the client hung up; client RSS +${grew.toFixed(0)} MiB`,
		);
	});

	test("a walk that never ends: get -r fails at the listing cap and writes nothing", async () => {
		const ws = await workspace();
		const counter = { entries: 0 };
		const fake = fakeServer(evil.identity, endless("walk-entries", counter));
		const conn = await connectToFake(fake);
		const err = await within(
			WAIT_MS * 2,
			getFiles(conn.session, ["d"], { recursive: true, overwrite: false, dest: ws.dest }).catch(
				(x) => x,
			),
			"get -r",
		);
		expect(err).toBeInstanceOf(PairlinkError);
		expect((err as PairlinkError).code).toBe("protocol");
		expect(counter.entries).toBeLessThan(PEER_LIMITS.listingEntries * 1.5);
		expect(await readdir(ws.dest)).toEqual([]);
		await ws.expectNothingOutside();
	});

	test("repeated file headers: protocol error, and nothing that came with them is kept", async () => {
		const ws = await workspace();
		const announced = 1024 * 1024;
		const chunk = randomBytes(prng, announced);
		let headers = 0;
		const fake = fakeServer(
			evil.identity,
			withStat({ "f.bin": fileEntry("f.bin", announced) }, async (m, fs) => {
				if (m.t !== "get") return;
				try {
					for (; headers < 48; headers++) {
						await fs.send({ t: "file", id: m.id, size: announced, mtime: 0, offset: 0 });
						await fs.sendData(m.id, chunk);
					}
				} catch {
					// the client hung up
				}
			}),
		);
		const conn = await connectToFake(fake);
		const err = await within(
			WAIT_MS,
			getFiles(conn.session, ["f.bin"], {
				recursive: false,
				overwrite: false,
				dest: ws.dest,
			}).catch((x) => x),
			"get",
		);
		expect(err).toBeInstanceOf(PairlinkError);
		expect((err as PairlinkError).code).toBe("protocol");
		// What came with a protocol violation is not kept for resume (attack 1, finding 5).
		expect(await readdir(ws.dest)).toEqual([]);
		expect(headers).toBeLessThan(48);
		await ws.expectNothingOutside();
	});

	test("empty batches of a listing that goes on are no progress: ls fails at once (protocol), not at the idle limit", async () => {
		// Attack 1, finding 8: an empty batch every so often kept ls waiting forever.
		let batches = 0;
		const fake = fakeServer(evil.identity, async (m, fs) => {
			if (m.t !== "list") return;
			for (; batches < 1000; batches++) {
				try {
					await fs.send({ t: "entries", id: m.id, entries: [], done: false });
				} catch {
					return;
				}
			}
		});
		const conn = await connectToFake(fake);
		const e = await expectRefusal(within(WAIT_MS, conn.session.list(""), "ls"), "protocol");
		expect(e.exitCode).toBe(3);
		expect(e.message).toContain("empty batch");
		await within(WAIT_MS, fake.closed, "the liar's connection to close");
		expect(batches).toBeLessThan(1000);
	});

	test("a silent server: ls fails with a timeout after the client's idle limit, not never", async () => {
		const fake = fakeServer(evil.identity, () => undefined, { answerPings: false });
		const conn = await within(
			WAIT_MS,
			connectTo(client, fake.target, { timeouts: { handshakeMs: 5000, idleMs: 600 } }),
			"connect",
		);
		cleanups.push(() => conn.close());
		const started = performance.now();
		const e = await expectRefusal(within(WAIT_MS, conn.session.list(""), "ls"), "timeout");
		expect(e.exitCode).toBe(3);
		expect(performance.now() - started).toBeGreaterThanOrEqual(500);
		// The client asked once and then told the server why it hung up.
		expect(fake.received).toEqual([
			{ t: "list", id: 1, path: "" },
			{ t: "error", code: "timeout" },
		]);
	});
});

describe("(9) a server that trickles", () => {
	test("one byte per half idle period is no progress: ls fails with a timeout having received no whole frame", async () => {
		const IDLE_MS = 600;
		let trickled = 0;
		const fake = fakeServer(evil.identity, async (m, fs) => {
			if (m.t !== "list") return;
			const frame = encodeFrame(
				FrameType.control,
				0,
				new TextEncoder().encode(
					JSON.stringify({ t: "entries", id: m.id, entries: [], done: true }),
				),
			);
			// Below the frame layer on purpose: a byte at a time, each well inside the idle limit.
			const raw = (fs as unknown as { raw: { write(b: Uint8Array): number } }).raw;
			while (trickled < frame.length && !fs.closed) {
				raw.write(frame.subarray(trickled, trickled + 1));
				trickled++;
				await Bun.sleep(IDLE_MS / 2); // the trickler's pace
			}
		});
		const conn = await within(
			WAIT_MS,
			connectTo(client, fake.target, { timeouts: { handshakeMs: 5000, idleMs: IDLE_MS } }),
			"connect",
		);
		cleanups.push(() => conn.close());
		const e = await expectRefusal(within(WAIT_MS, conn.session.list(""), "ls"), "timeout");
		expect(e.exitCode).toBe(3);
		// The whole answer is a few dozen bytes; the client hung up after a handful.
		expect(trickled).toBeLessThan(5);
	});
});
