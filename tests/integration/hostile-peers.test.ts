/**
 * Bad peers on real sockets (issue 8, item 2), against one server with short
 * timeouts and small limits. Each bad peer must be shed within the limit
 * that applies to it, the server must log what it refused, and a
 * well-behaved trusted client must keep working while the bad peer is
 * connected and after it is gone.
 *
 * Every test prints a `FIGURE:` line: how long the bad peer lasted, and the
 * limits in force. tests/integration/channel.test.ts already covers the
 * simpler cases (no certificate, TLS 1.2, silent or garbage plain TCP,
 * garbage or a skipped HELLO right after TLS, an oversized first header,
 * an idle session).
 *
 * Waits are on events (socket closes, server events); the only timers are
 * the bounds on those waits and the pace of the slowloris sender.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import {
	cpaceInitiatorFinish,
	cpaceInitiatorStart,
	pairlinkAssociatedData,
	pairlinkChannelIdentifier,
} from "../../src/crypto/cpace.ts";
import { fingerprintBytes } from "../../src/crypto/fingerprint.ts";
import { generateCode } from "../../src/crypto/pairing-code.ts";
import { PairlinkError } from "../../src/errors.ts";
import type { SandboxRoot } from "../../src/fs/root.ts";
import { encodeFrame, FrameType } from "../../src/protocol/frame.ts";
import {
	MAX_CONTROL_PAYLOAD,
	MAX_DATA_PAYLOAD,
	PROTOCOL_VERSION,
	type Timeouts,
} from "../../src/protocol/limits.ts";
import type { Message } from "../../src/protocol/messages.ts";
import { stateDirPairingGate } from "../../src/server/pairing-gate.ts";
import type { ServerEvent } from "../../src/server/server.ts";
import { loadPendingCode, savePendingCode } from "../../src/store/pending-code.ts";
import { TrustStore } from "../../src/store/trust-store.ts";
import {
	captureClientHello,
	figure,
	type HandPeer,
	handPeer,
	helloExchange,
	type RawTcpPeer,
	randomCredentials,
	rawTcp,
} from "../helpers/bad-peers.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	type TestServer,
	tempDir,
	tempRoot,
	trustEachOther,
} from "../helpers/devices.ts";
import { partFiles, randomBytes, sha256Hex, within } from "../helpers/files.ts";
import { makePrng, seedFromEnv } from "../helpers/prng.ts";

const TIMEOUTS: Timeouts = { handshakeMs: 500, idleMs: 1500 };
const MAX_CLIENTS = 4;
/** server.ts: half-open (not yet established) connections are capped at twice maxClients. */
const HALF_OPEN_CAP = MAX_CLIENTS * 2;
/** How long past its limit a bad peer may linger before the test calls it a leak. */
const SLACK_MS = 1000;
const TEST_MS = 20_000;
/** The well-behaved client's own timeouts: generous, so that only the server's limits are measured. */
const CLIENT_TIMEOUTS: Timeouts = { handshakeMs: 5000, idleMs: 10_000 };
const LIMITS = `handshakeMs=${TIMEOUTS.handshakeMs} idleMs=${TIMEOUTS.idleMs} maxClients=${MAX_CLIENTS} half-open cap=${HALF_OPEN_CAP}`;

let desk: TestDevice;
let laptop: TestDevice;
let insider: TestDevice;
let root: SandboxRoot;
let srv: TestServer;
const seed = seedFromEnv();

beforeAll(async () => {
	[desk, laptop, insider] = await Promise.all([
		makeDevice("desk"),
		makeDevice("laptop"),
		makeDevice("insider"),
	]);
	await trustEachOther(laptop, desk);
	await trustEachOther(insider, desk);
	root = tempRoot();
	srv = serve(desk, { timeouts: TIMEOUTS, maxClients: MAX_CLIENTS, root });
});

afterAll(async () => {
	await srv.server.stop(0);
	await removeTempDirs();
});

/** Resolves with the first matching server event emitted from now on. */
function nextEvent(s: TestServer, match: (e: ServerEvent) => boolean) {
	const from = s.events.length;
	return (ms = TIMEOUTS.idleMs + SLACK_MS) =>
		within(
			ms,
			s.waitFor((e) => s.events.indexOf(e) >= from && match(e)),
			"the server event",
		);
}

/**
 * The trusted client connects, pings, lists, closes, and the server has let
 * go of it: resolves with how long the client took (up to its close).
 */
async function goodClient(s: TestServer = srv, dev: TestDevice = laptop): Promise<number> {
	const released = nextEvent(
		s,
		(e) => e.event === "disconnected" && e.fingerprint === dev.identity.fingerprint,
	);
	const started = performance.now();
	const conn = await connectTo(dev, s.target(), { timeouts: CLIENT_TIMEOUTS });
	expect(typeof (await conn.session.ping())).toBe("number");
	expect(Array.isArray(await conn.session.list(""))).toBe(true);
	conn.close();
	await conn.closed;
	const took = performance.now() - started;
	await released(SLACK_MS);
	return took;
}

/** A hand-driven trusted peer with an established session (HELLO both ways, one ping). */
async function insiderSession(): Promise<HandPeer> {
	const peer = handPeer(srv.server.port, insider.identity);
	await helloExchange(peer, "session", "insider");
	await peer.send({ t: "ping", nonce: "before" });
	expect(await peer.next()).toEqual({ t: "pong", nonce: "before" });
	return peer;
}

/** A frame header written by hand: any type, version and length. */
function header(type: number, stream: number, length: number, version = PROTOCOL_VERSION) {
	const h = new Uint8Array(12);
	const view = new DataView(h.buffer);
	h.set([0x50, 0x4c, version, type]);
	view.setUint32(4, stream);
	view.setUint32(8, length);
	return h;
}

const control = (m: unknown) =>
	encodeFrame(FrameType.control, 0, new TextEncoder().encode(JSON.stringify(m)));
const ms = (n: number) => `${n.toFixed(0)} ms`;

describe("bad peers on real sockets", () => {
	test(
		"TLS clients with freshly generated random certificates are refused at once, and logged",
		async () => {
			const rng = makePrng(seed);
			const lasted: string[] = [];
			for (let i = 0; i < 3; i++) {
				const creds = await randomCredentials(rng, i % 2 === 0 ? "ECDSA P-256" : "Ed25519");
				const refused = nextEvent(
					srv,
					(e) => e.event === "refused" && e.fingerprint === creds.fingerprint,
				);
				const peer = handPeer(srv.server.port, creds);
				const tls = await within(SLACK_MS, peer.tls, "the TLS handshake");
				expect(tls.tlsVersion).toBe("TLSv1.3");
				const closedAt = await within(TIMEOUTS.handshakeMs + SLACK_MS, peer.closed, "the refusal");
				const lifetime = closedAt - peer.openedAt;
				// Refused by the pin decision, not left to the handshake timeout.
				expect(lifetime).toBeLessThan(TIMEOUTS.handshakeMs);
				expect(peer.messages).toEqual([{ t: "error", code: "not-trusted" }]);
				const ev = await refused();
				expect(ev).toMatchObject({
					event: "refused",
					reason: "an untrusted device, and pairing is closed",
				});
				lasted.push(`${creds.kind} ${ms(lifetime)}`);
			}
			await goodClient();
			figure(
				`random-certificate TLS client: refused (not-trusted) after ${lasted.join(", ")} [${LIMITS}]`,
			);
		},
		TEST_MS,
	);

	const MID_SESSION: { name: string; bytes: () => Uint8Array }[] = [
		{
			name: "bytes that are not a frame",
			bytes: () => new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"),
		},
		{ name: "a frame of an unknown type", bytes: () => header(9, 0, 0) },
		{
			name: "a frame of the previous protocol version",
			bytes: () => header(FrameType.control, 0, 2, PROTOCOL_VERSION - 1),
		},
		{
			name: `an oversized control frame header (${MAX_CONTROL_PAYLOAD + 1} bytes announced)`,
			bytes: () => header(FrameType.control, 0, MAX_CONTROL_PAYLOAD + 1),
		},
		{
			name: `an oversized data frame header (${MAX_DATA_PAYLOAD + 1} bytes announced)`,
			bytes: () => header(FrameType.data, 1, MAX_DATA_PAYLOAD + 1),
		},
		{ name: "a 4 GiB length header", bytes: () => header(FrameType.data, 1, 0xffffffff) },
		{
			name: "a control frame that is not JSON",
			bytes: () => encodeFrame(FrameType.control, 0, new TextEncoder().encode("{{{")),
		},
		{
			name: "a control frame that is not UTF-8",
			bytes: () => encodeFrame(FrameType.control, 0, Uint8Array.from([0x7b, 0xff, 0x7d])),
		},
		{ name: "a message of an unknown type", bytes: () => control({ t: "nope" }) },
		{
			name: "a message with an extra field",
			bytes: () => control({ t: "ping", nonce: "1", x: 1 }),
		},
		{
			name: "a second HELLO",
			bytes: () => control({ t: "hello", version: PROTOCOL_VERSION, mode: "session", name: "x" }),
		},
		{ name: "an answer only a server sends", bytes: () => control({ t: "ok", id: 1 }) },
		{
			name: "data for a stream that is no upload",
			bytes: () => encodeFrame(FrameType.data, 7, new Uint8Array(100)),
		},
		{ name: "put-start without put", bytes: () => control({ t: "put-start", id: 3, offset: 0 }) },
	];

	test(
		"a trusted client sending oversized or invalid frames mid-session is closed at once; the server stays up",
		async () => {
			const insiderGone = () =>
				nextEvent(
					srv,
					(e) => e.event === "disconnected" && e.fingerprint === insider.identity.fingerprint,
				);
			// During: a bad session is open while the good client works.
			const idleGone = insiderGone();
			const idle = await insiderSession();
			await goodClient();
			idle.end();
			await idleGone();
			const lasted: number[] = [];
			for (const c of MID_SESSION) {
				const gone = insiderGone();
				const peer = await insiderSession();
				const sentAt = performance.now();
				await peer.write(c.bytes()).catch(() => undefined);
				const closedAt = await within(TIMEOUTS.handshakeMs + SLACK_MS, peer.closed, c.name);
				const lifetime = closedAt - sentAt;
				expect(lifetime).toBeLessThan(TIMEOUTS.handshakeMs);
				// Told why in a small wire code, then hung up on.
				expect({ case: c.name, last: peer.messages.at(-1) }).toEqual({
					case: c.name,
					last: { t: "error", code: "protocol" },
				});
				const ev = await gone();
				expect(ev).toMatchObject({ reason: expect.any(String) });
				lasted.push(lifetime);
			}
			await goodClient();
			figure(
				`trusted client sending bad frames mid-session (${lasted.length} kinds): each closed ${Math.min(...lasted).toFixed(1)}..${Math.max(...lasted).toFixed(1)} ms after the bad bytes, told "protocol" [${LIMITS}]`,
			);
		},
		TEST_MS,
	);

	// Regression (once a bug):
	test(
		"a message whose t is not a string is a protocol error, not an internal one",
		async () => {
			const peer = await insiderSession();
			await peer.write(control({ t: { toString: 1 } }));
			await within(TIMEOUTS.handshakeMs + SLACK_MS, peer.closed, "the close");
			expect(peer.messages.at(-1)).toEqual({ t: "error", code: "protocol" });
		},
		TEST_MS,
	);

	test(
		"slowloris: a raw TCP peer sending a real ClientHello one byte at a time is shed at the handshake timeout",
		async () => {
			const hello = await captureClientHello(laptop.identity);
			const shed = nextEvent(
				srv,
				(e) => e.event === "refused" && /handshake in time/.test(e.reason) && !e.fingerprint,
			);
			const peer = rawTcp(srv.server.port);
			await peer.connected;
			let sent = 0;
			// The slowness itself (the only timer that is not a bound on a wait): one byte per 20 ms.
			const drip = setInterval(() => {
				if (peer.isClosed || sent >= hello.length) return;
				peer.socket.write(hello.subarray(sent, sent + 1));
				sent++;
			}, 20);
			try {
				const goodMs = await goodClient();
				expect(peer.isClosed).toBe(false); // the good client was served while the slowloris held its slot
				const closedAt = await within(
					TIMEOUTS.handshakeMs + SLACK_MS,
					peer.closed,
					"the slowloris",
				);
				const lifetime = closedAt - peer.openedAt;
				expect(lifetime).toBeGreaterThanOrEqual(TIMEOUTS.handshakeMs - 50);
				expect(lifetime).toBeLessThan(TIMEOUTS.handshakeMs + SLACK_MS);
				expect(sent).toBeLessThan(hello.length);
				await shed();
				await goodClient();
				figure(
					`slowloris ClientHello (1 byte/20 ms, ${sent} of ${hello.length} bytes sent): shed after ${ms(lifetime)}; trusted client served meanwhile in ${ms(goodMs)} [${LIMITS}]`,
				);
			} finally {
				clearInterval(drip);
				peer.socket.destroy();
			}
		},
		TEST_MS,
	);

	test(
		"slowloris: a trusted peer that stalls mid-HELLO (half a frame) is told timeout and shed at the handshake timeout",
		async () => {
			const refused = nextEvent(
				srv,
				(e) => e.event === "refused" && e.fingerprint === insider.identity.fingerprint,
			);
			const peer = handPeer(srv.server.port, insider.identity);
			await peer.tls;
			const frame = control({
				t: "hello",
				version: PROTOCOL_VERSION,
				mode: "session",
				name: "insider",
			});
			await peer.write(frame.subarray(0, 12 + Math.floor((frame.length - 12) / 2)));
			const goodMs = await goodClient();
			expect(peer.isClosed).toBe(false);
			const closedAt = await within(
				TIMEOUTS.handshakeMs + SLACK_MS,
				peer.closed,
				"the stalled HELLO",
			);
			const lifetime = closedAt - peer.openedAt;
			expect(lifetime).toBeGreaterThanOrEqual(TIMEOUTS.handshakeMs - 50);
			expect(lifetime).toBeLessThan(TIMEOUTS.handshakeMs + SLACK_MS);
			expect(peer.messages).toEqual([{ t: "error", code: "timeout" }]);
			expect(await refused()).toMatchObject({ reason: expect.stringMatching(/handshake in time/) });
			await goodClient();
			figure(
				`trusted peer stalled mid-HELLO: shed after ${ms(lifetime)} with "timeout"; trusted client served meanwhile in ${ms(goodMs)} [${LIMITS}]`,
			);
		},
		TEST_MS,
	);

	test(
		"slowloris: a trusted peer that stalls mid-upload is shed after idleMs; the part file stays and resumes",
		async () => {
			const SIZE = 3 * 1024 * 1024;
			const SENT = MAX_DATA_PAYLOAD + MAX_DATA_PAYLOAD / 2;
			const content = randomBytes(makePrng(seed), SIZE);
			const local = join(await tempDir("pairlink-stall-"), "stall.bin");
			await writeFile(local, content);

			const gone = nextEvent(
				srv,
				(e) => e.event === "disconnected" && e.fingerprint === insider.identity.fingerprint,
			);
			const peer = await insiderSession();
			await peer.send({ t: "put", id: 1, path: "stall.bin", size: SIZE, overwrite: false });
			expect(await peer.next()).toEqual({ t: "put-ready", id: 1, offset: 0 });
			await peer.send({ t: "put-start", id: 1, offset: 0 });
			await peer.sendData(1, content.subarray(0, MAX_DATA_PAYLOAD));
			await peer.sendData(1, content.subarray(MAX_DATA_PAYLOAD, SENT));
			const lastByte = performance.now();
			// ...and then nothing, ever.
			const goodMs = await goodClient();
			expect(peer.isClosed).toBe(false);
			const closedAt = await within(TIMEOUTS.idleMs + SLACK_MS, peer.closed, "the stalled upload");
			const silence = closedAt - lastByte;
			expect(silence).toBeGreaterThanOrEqual(TIMEOUTS.idleMs - 100);
			expect(silence).toBeLessThan(TIMEOUTS.idleMs + SLACK_MS);
			expect(peer.messages.at(-1)).toEqual({ t: "error", code: "timeout" });
			expect(await gone()).toMatchObject({ reason: expect.stringMatching(/idle/) });
			// Kept for resume, never at the final name.
			expect(existsSync(join(root.dir, ".stall.bin.pairlink-part"))).toBe(true);
			expect(existsSync(join(root.dir, "stall.bin"))).toBe(false);

			// The same device, reconnecting, resumes from the verified part (retrying while
			// the server is still closing the stalled upload: bounded, and counted). Only
			// the device that started a part file may resume it (DESIGN §5).
			const conn = await connectTo(insider, srv.target(), { timeouts: CLIENT_TIMEOUTS });
			let busy = 0;
			let result: Awaited<ReturnType<typeof conn.session.upload>> | undefined;
			while (!result) {
				try {
					result = await conn.session.upload(local, "stall.bin", { overwrite: false });
				} catch (e) {
					if (!(e instanceof PairlinkError) || e.code !== "busy" || ++busy > 20) throw e;
					await conn.session.ping();
				}
			}
			conn.close();
			expect(result.resumedFrom).toBe(SENT);
			expect(result.sha256).toBe(sha256Hex(content));
			expect(sha256Hex(await readFile(join(root.dir, "stall.bin")))).toBe(sha256Hex(content));
			expect(await partFiles(root.dir)).toEqual([]);
			figure(
				`trusted peer stalled mid-upload (${SENT} of ${SIZE} bytes sent): shed after ${ms(silence)} of silence with "timeout"; part file kept, resumed from ${result.resumedFrom} (after ${busy} busy retries); trusted client served meanwhile in ${ms(goodMs)} [${LIMITS}]`,
			);
		},
		TEST_MS,
	);

	test(
		"a flood of 200 raw TCP connections held open is capped and shed; a trusted client still gets in",
		async () => {
			const FLOOD = 200;
			const from = srv.events.length;
			const since = () => srv.events.slice(from);
			const started = performance.now();
			const peers = Array.from({ length: FLOOD }, () => rawTcp(srv.server.port));
			await within(
				SLACK_MS * 5,
				Promise.all(peers.map((p) => p.connected)),
				"the flood to connect",
			);
			const floodUp = performance.now() - started;

			// The trusted client tries at once; if every slot is taken it waits for one to free.
			let attempts = 0;
			let goodMs = 0;
			const goodStarted = performance.now();
			for (;;) {
				attempts++;
				try {
					await goodClient();
					goodMs = performance.now() - goodStarted;
					break;
				} catch (e) {
					if (!(e instanceof PairlinkError) || attempts >= 5) throw e;
					// A slot frees when a flood connection is shed: that is an event, not a sleep.
					await within(
						TIMEOUTS.handshakeMs + SLACK_MS,
						srv.waitFor(
							(ev) =>
								srv.events.indexOf(ev) >= from &&
								ev.event === "refused" &&
								/handshake in time/.test(ev.reason),
						),
						"a free slot",
					);
				}
			}

			const closedAt = await within(
				TIMEOUTS.handshakeMs + SLACK_MS,
				Promise.all(peers.map((p) => p.closed)),
				"the flood to be shed",
			);
			const lifetimes = closedAt.map((t, i) => t - (peers[i]?.openedAt ?? 0)).sort((a, b) => a - b);
			const atCap = since().filter(
				(e) => e.event === "refused" && /^too many connections/.test(e.reason),
			);
			const timedOut = since().filter(
				(e) => e.event === "refused" && /handshake in time/.test(e.reason),
			);
			// Every flood connection was either refused at the cap or shed by the timeout;
			// at most the cap's worth were ever held.
			expect(timedOut.length).toBeLessThanOrEqual(HALF_OPEN_CAP);
			expect(atCap.length + timedOut.length).toBe(FLOOD + attempts - 1);
			expect(lifetimes.at(-1)).toBeLessThan(TIMEOUTS.handshakeMs + SLACK_MS);
			expect(peers.every((p) => p.received === 0)).toBe(true);
			expect(srv.server.activeConnections).toBe(0);
			await goodClient();
			const refusedCap = lifetimes.filter((t) => t < TIMEOUTS.handshakeMs - 50);
			figure(
				`flood of ${FLOOD} raw TCP connections (all connected in ${ms(floodUp)}): ${atCap.length - (attempts - 1)} refused at the half-open cap (closed after ${ms(refusedCap[0] ?? 0)}..${ms(refusedCap.at(-1) ?? 0)}), ${timedOut.length} held and shed by the handshake timeout (last after ${ms(lifetimes.at(-1) ?? 0)}); trusted client in after ${attempts} attempt(s), ${ms(goodMs)} [${LIMITS}]`,
			);
		},
		TEST_MS,
	);

	test(
		"a sustained flood that re-opens every connection as soon as it is shed: measured; the server recovers",
		async () => {
			// Twice the half-open cap, each re-opened the moment it closes: the cheapest
			// lock-out a single peer can attempt against a per-server (not per-peer) cap.
			const HOLD = HALF_OPEN_CAP * 2;
			const WINDOW_MS = TIMEOUTS.handshakeMs * 3;
			const from = srv.events.length;
			let flooding = true;
			let opened = 0;
			const live = new Set<RawTcpPeer>();
			const open = () => {
				if (!flooding) return;
				const p = rawTcp(srv.server.port);
				opened++;
				live.add(p);
				void p.closed.then(() => {
					live.delete(p);
					open();
				});
			};
			for (let i = 0; i < HOLD; i++) open();
			let attempts = 0;
			let served = 0;
			const latencies: number[] = [];
			const windowEnd = performance.now() + WINDOW_MS;
			try {
				while (performance.now() < windowEnd) {
					attempts++;
					const shed = nextEvent(
						srv,
						(e) => e.event === "refused" && /handshake in time/.test(e.reason),
					);
					try {
						latencies.push(await goodClient());
						served++;
					} catch (e) {
						if (!(e instanceof PairlinkError)) throw e;
						// Wait for slots to free (the held ones are shed together), then try again.
						await shed(TIMEOUTS.handshakeMs + SLACK_MS);
					}
				}
			} finally {
				flooding = false;
				for (const p of live) p.socket.destroy();
			}
			await within(
				TIMEOUTS.handshakeMs + SLACK_MS,
				Promise.all([...live].map((p) => p.closed)),
				"the flood to end",
			);
			const events = srv.events.slice(from);
			const atCap = events.filter(
				(e) => e.event === "refused" && /^too many connections/.test(e.reason),
			);
			const timedOut = events.filter(
				(e) => e.event === "refused" && /handshake in time/.test(e.reason),
			);
			// The flood happened: every connection it held was re-opened, and the server shed
			// each one, either at the cap or at the handshake timeout; only the trusted client got in.
			expect(opened).toBeGreaterThan(HOLD);
			expect(atCap.length + timedOut.length).toBeGreaterThanOrEqual(opened - HOLD);
			expect(events.filter((e) => e.event === "connected")).toHaveLength(served);
			// Once the flood stops, the server serves at once.
			const after = await goodClient();
			expect(srv.server.activeConnections).toBe(0);
			figure(
				`sustained flood (${HOLD} raw TCP connections re-opened as shed, ${ms(WINDOW_MS)}): ${opened} connections opened, ${atCap.length} refused at the cap, ${timedOut.length} shed by the timeout; trusted client served ${served} of ${attempts} attempts${latencies.length ? ` (${ms(Math.min(...latencies))}..${ms(Math.max(...latencies))})` : ""}; served in ${ms(after)} once the flood stopped [${LIMITS}]`,
			);
		},
		TEST_MS,
	);

	test(
		"a peer starting pairing runs over and over burns the code after 3 runs, is refused uncounted after, and never pairs",
		async () => {
			const pdesk = await makeDevice("pdesk");
			const code = generateCode();
			await savePendingCode(pdesk.home, { code, ttlMs: 10 * 60_000 });
			await trustEachOther(laptop, pdesk);
			const psrv = serve(pdesk, {
				timeouts: TIMEOUTS,
				maxClients: MAX_CLIENTS,
				pairing: stateDirPairingGate(pdesk.home),
			});
			try {
				const guesser = await makeDevice("guesser");
				let wrong = generateCode();
				while (wrong === code) wrong = generateCode();
				const behaviours = ["answers wrong-code", "hangs up holding Tb", "forges Ta"] as const;
				const runs: string[] = [];
				for (let run = 1; run <= 6; run++) {
					const behaviour = behaviours[(run - 1) % 3] as (typeof behaviours)[number];
					const over = nextEvent(
						psrv,
						(e) => e.event === "refused" && e.fingerprint === guesser.identity.fingerprint,
					);
					const peer = handPeer(psrv.server.port, guesser.identity);
					const tls = await peer.tls;
					await helloExchange(peer, "pair", "guesser");
					const start = cpaceInitiatorStart({
						prs: new TextEncoder().encode(wrong),
						ci: pairlinkChannelIdentifier(
							fingerprintBytes(guesser.identity.fingerprint),
							fingerprintBytes(tls.peerFingerprint as string),
						),
						sid: tls.exporter,
						ad: pairlinkAssociatedData("guesser"),
					});
					await peer.send({ t: "pake1", ya: bytesToHex(start.Ya), name: "guesser" });
					const answer: Message = await peer.next();
					let outcome: string;
					if (run <= 3) {
						if (answer.t !== "pake2")
							throw new Error(`run ${run}: expected PAKE2, got ${JSON.stringify(answer)}`);
						expect(() =>
							cpaceInitiatorFinish(start.state, {
								Yb: hexToBytes(answer.yb),
								ADb: pairlinkAssociatedData(answer.name),
								Tb: hexToBytes(answer.tb),
							}),
						).toThrow(PairlinkError);
						if (behaviour === "answers wrong-code")
							await peer.send({ t: "error", code: "wrong-code" });
						else if (behaviour === "hangs up holding Tb") peer.end();
						else {
							await peer.send({
								t: "pake3",
								ta: bytesToHex(crypto.getRandomValues(new Uint8Array(64))),
							});
							expect(await peer.next()).toEqual({ t: "error", code: "wrong-code" });
						}
						outcome = `${behaviour}: counted`;
					} else {
						expect(answer).toEqual({ t: "error", code: "code-expired" });
						outcome = "refused at PAKE1 (code-expired), not counted";
					}
					const closedAt = await within(TIMEOUTS.handshakeMs + SLACK_MS, peer.closed, `run ${run}`);
					await over();
					expect(await loadPendingCode(pdesk.home)).toMatchObject({
						attempts: Math.min(run, 3),
						state: run < 3 ? "pending" : "burned",
					});
					runs.push(`run ${run} ${outcome}, ${ms(closedAt - peer.openedAt)}`);
					await goodClient(psrv);
				}
				// The code is burned: even the right code no longer pairs anybody.
				const late = await makeDevice("late");
				const err = await connectTo(late, psrv.target(), {
					timeouts: CLIENT_TIMEOUTS,
					code: async () => code,
				}).catch((e) => e);
				expect(err).toBeInstanceOf(PairlinkError);
				expect((err as PairlinkError).code).toBe("code-expired");
				expect(psrv.events.some((e) => e.event === "paired")).toBe(false);
				expect((await TrustStore.load(pdesk.home)).list().map((d) => d.name)).toEqual(["laptop"]);
				expect(await loadPendingCode(pdesk.home)).toMatchObject({ attempts: 3, state: "burned" });
				figure(
					`repeated pairing runs by one peer: ${runs.join("; ")}; no run paired [${LIMITS}, 3 runs per code]`,
				);
			} finally {
				await psrv.server.stop(0);
			}
		},
		TEST_MS,
	);

	test("after all of it the server is up, holds no connection, and serves", async () => {
		expect(srv.server.activeConnections).toBe(0);
		await goodClient();
		expect(srv.events.some((e) => e.event === "stopped")).toBe(false);
	});
});
