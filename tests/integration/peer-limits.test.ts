/**
 * Limits per peer, not only per server (issue 14, item 1). Each test is an
 * attack by one peer that exceeds one limit of PEER_LIMITS while an innocent
 * paired client keeps being served; each asserts what the attacker got (the
 * server's RSS and descriptors, part files left, bytes it could push) and
 * what the innocent client got (its listings and files, byte for byte).
 *
 * The server is a real `pairlink serve` process listening on `::` (so one
 * test can attack from 127.0.0.1 while the innocent client comes from ::1),
 * measured through /proc. The trickle test needs short timeouts and runs the
 * server in-process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Target } from "../../src/client/target.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { encodeFrame, FrameType } from "../../src/protocol/frame.ts";
import { PEER_LIMITS, type Timeouts } from "../../src/protocol/limits.ts";
import type { Message } from "../../src/protocol/messages.ts";
import { figure, handPeer, helloExchange, type RawTcpPeer, rawTcp } from "../helpers/bad-peers.ts";
import { ServeProcess } from "../helpers/cli.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	tempDir,
	trustEachOther,
} from "../helpers/devices.ts";
import { partFiles, sha256Hex, within } from "../helpers/files.ts";

const TEST_MS = 60_000;
const CLIENT_TIMEOUTS: Timeouts = { handshakeMs: 10_000, idleMs: 30_000 };
/** The innocent client's file, and how many files the share holds (big listings). */
const SMALL = new TextEncoder().encode("the innocent client's file\n".repeat(100));
const SHARED_FILES = 3000;
const BIG_MIB = 16;
/** serve's default --max-clients (32) times PEER_LIMITS.halfOpenPerSourcePerClient. */
const HALF_OPEN_PER_SOURCE = 32 * PEER_LIMITS.halfOpenPerSourcePerClient;

let desk: TestDevice;
let laptop: TestDevice;
let insider: TestDevice;
let share: string;
let srv: ServeProcess;
let port: number;
/** serve's descriptors once it listens: what every attack is measured against. */
let baselineFds: number;

function stats(pid: number): { rssMiB: number; fds: number } {
	const status = readFileSync(`/proc/${pid}/status`, "utf8");
	const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
	return { rssMiB: kb / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

const overV6: () => Target = () => ({
	display: `[::1]:${port}`,
	hostname: "::1",
	port,
	named: undefined,
});

/** One round of the innocent client: list the share and fetch one file, checked byte for byte. */
async function innocentRound(): Promise<number> {
	const started = performance.now();
	const conn = await connectTo(laptop, overV6(), { timeouts: CLIENT_TIMEOUTS });
	try {
		const entries = await conn.session.list("");
		expect(entries.length).toBe(SHARED_FILES + 3);
		const local = await tempDir("pairlink-innocent-");
		const r = await conn.session.download(
			"small.txt",
			SandboxRoot.fromRealPath(local),
			"small.txt",
			{
				overwrite: false,
			},
		);
		expect(r.sha256).toBe(sha256Hex(SMALL));
		expect(sha256Hex(readFileSync(join(local, "small.txt")))).toBe(sha256Hex(SMALL));
	} finally {
		conn.close();
		await conn.closed;
	}
	return performance.now() - started;
}

beforeAll(async () => {
	[desk, laptop, insider] = await Promise.all([
		makeDevice("desk"),
		makeDevice("laptop"),
		makeDevice("insider"),
	]);
	await trustEachOther(laptop, desk);
	await trustEachOther(insider, desk);
	share = await tempDir("pairlink-share-");
	await writeFile(join(share, "small.txt"), SMALL);
	await writeFile(join(share, "big.bin"), new Uint8Array(BIG_MIB * 1024 * 1024).fill(7));
	await mkdir(join(share, "u"));
	await Promise.all(
		Array.from({ length: SHARED_FILES }, (_, i) =>
			writeFile(join(share, `a-file-with-a-longish-name-${String(i).padStart(5, "0")}.txt`), "x"),
		),
	);
	srv = new ServeProcess(["serve", share, "--host", "::", "--port", "0", "--json", "--no-pair"], {
		home: desk.home,
		timeoutMs: 240_000,
	});
	const listening = await srv.waitForEvent("listening");
	port = listening.port as number;
	baselineFds = stats(srv.pid).fds;
});

afterAll(async () => {
	await srv.stop();
	await removeTempDirs();
});

describe("limits per peer, against a real serve process", () => {
	test(
		"a flood of raw TCP connections from 127.0.0.1, re-opened as shed, does not lock out a paired device on ::1",
		async () => {
			// The review's attack: ~66 sockets, each re-opened the moment it is shed.
			const HOLD = 66;
			const ROUNDS = 8;
			const before = stats(srv.pid);
			let flooding = true;
			let opened = 0;
			const live = new Set<RawTcpPeer>();
			const open = () => {
				if (!flooding) return;
				const p = rawTcp(port);
				opened++;
				live.add(p);
				void p.closed.then(() => {
					live.delete(p);
					open();
				});
			};
			for (let i = 0; i < HOLD; i++) open();
			const latencies: number[] = [];
			let peakFds = 0;
			try {
				for (let i = 0; i < ROUNDS; i++) {
					latencies.push(await innocentRound());
					peakFds = Math.max(peakFds, stats(srv.pid).fds);
				}
			} finally {
				flooding = false;
				for (const p of live) p.socket.destroy();
			}
			await within(10_000, Promise.all([...live].map((p) => p.closed)), "the flood to end");
			const refused = srv.events.filter(
				(e) => e.event === "refused" && /too many connections/.test(String(e.reason)),
			).length;
			// Every round served, and the flood never held more than its source's slots.
			expect(latencies.length).toBe(ROUNDS);
			expect(peakFds - baselineFds).toBeLessThan(HALF_OPEN_PER_SOURCE + 16);
			expect(refused).toBeGreaterThan(0);
			figure(
				`flood from 127.0.0.1 (${HOLD} raw sockets re-opened as shed, ${opened} opened, ${refused} refused over the source's ${HALF_OPEN_PER_SOURCE} half-open slots): innocent client on ::1 served ${latencies.length}/${ROUNDS} rounds of ls+get (${Math.min(...latencies).toFixed(0)}..${Math.max(...latencies).toFixed(0)} ms); serve descriptors ${before.fds} -> peak ${peakFds}`,
			);
		},
		TEST_MS,
	);

	test(
		"a paired peer that never reads its replies (list and ping) is throttled: serve's RSS stays flat and others are served",
		async () => {
			const before = stats(srv.pid);
			const peer = handPeer(port, insider.identity);
			await helloExchange(peer, "session", "insider");
			peer.pause();
			let pushed = 0;
			let stop = false;
			const pusher = (async () => {
				for (let id = 1; id <= 200_000 && !stop && !peer.isClosed; id++) {
					await peer.send({ t: "list", id, path: "" });
					await peer.send({ t: "ping", nonce: String(id) });
					pushed++;
				}
			})().catch(() => undefined);
			const samples: number[] = [];
			const rounds: number[] = [];
			const end = performance.now() + 8000;
			while (performance.now() < end) {
				rounds.push(await innocentRound());
				samples.push(stats(srv.pid).rssMiB);
			}
			const pushedWhileServed = pushed;
			stop = true;
			peer.terminate();
			await within(5000, peer.closed, "the slow reader to close");
			await pusher;
			const peak = Math.max(...samples);
			// The old server grew by ~1 GiB in 12 s; one peer may now cost its reply queue and its requests in flight.
			expect(peak - before.rssMiB).toBeLessThan(150);
			// Flat over time: the second half of the attack costs no more than the first.
			const half = Math.floor(samples.length / 2);
			expect(Math.max(...samples.slice(half)) - Math.max(...samples.slice(0, half))).toBeLessThan(
				32,
			);
			expect(rounds.length).toBeGreaterThan(0);
			figure(
				`slow reader (list of ${SHARED_FILES} entries + ping, never reading): ${pushedWhileServed} request pairs accepted by the socket in 8 s; serve RSS ${before.rssMiB.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB (samples ${samples.map((s) => s.toFixed(0)).join(",")}); innocent client served ${rounds.length} rounds`,
			);
		},
		TEST_MS,
	);

	test(
		"peers that ask for big downloads and never read pin at most the reply cap each: serve's RSS stays flat",
		async () => {
			const PEERS = 4;
			const GETS = 64;
			const before = stats(srv.pid);
			const peers = await Promise.all(
				Array.from({ length: PEERS }, async () => {
					const peer = handPeer(port, insider.identity);
					await helloExchange(peer, "session", "insider");
					peer.pause();
					for (let id = 1; id <= GETS; id++)
						await peer.send({ t: "get", id, path: "big.bin", offset: 0 });
					return peer;
				}),
			);
			const samples: number[] = [];
			const rounds: number[] = [];
			const end = performance.now() + 5000;
			while (performance.now() < end) {
				rounds.push(await innocentRound());
				samples.push(stats(srv.pid).rssMiB);
			}
			for (const p of peers) p.terminate();
			await within(5000, Promise.all(peers.map((p) => p.closed)), "the readers to close");
			const peak = Math.max(...samples);
			// Before the cap each of them pinned 32 downloads x 1 MiB (32 concurrent gets).
			expect(peak - before.rssMiB).toBeLessThan(80);
			expect(rounds.length).toBeGreaterThan(0);
			figure(
				`${PEERS} peers x ${GETS} gets of a ${BIG_MIB} MiB file, never reading: serve RSS ${before.rssMiB.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB (cap ${PEER_LIMITS.queuedReplyBytes / 1024 / 1024} MiB of replies per connection); innocent client served ${rounds.length} rounds`,
			);
		},
		TEST_MS,
	);

	test(
		"a paired peer opening 20,000 uploads holds at most the per-connection cap of part files and descriptors, and leaves none",
		async () => {
			const UPLOADS = 20_000;
			const before = stats(srv.pid);
			const peer = handPeer(port, insider.identity);
			await helloExchange(peer, "session", "insider");
			const sent = (async () => {
				for (let id = 1; id <= UPLOADS; id++) {
					await peer.send({ t: "put", id, path: `u/${id}.bin`, size: 10, overwrite: false });
				}
			})();
			const answers: Message[] = [];
			while (answers.length < UPLOADS) answers.push(await peer.next());
			await sent;
			const during = stats(srv.pid);
			const partsDuring = (await partFiles(share)).length;
			const innocent = await innocentRound();
			const ready = answers.filter((m) => m.t === "put-ready").length;
			const busy = answers.filter((m) => m.t === "error" && m.code === "busy").length;
			const gone = srv.waitFor(
				(e) => e.event === "disconnected" && e.fingerprint === insider.identity.fingerprint,
				{ from: srv.events.length },
			);
			peer.end();
			await gone;
			const partsAfter = (await partFiles(share)).length;
			expect(ready).toBe(PEER_LIMITS.openUploads);
			expect(busy).toBe(UPLOADS - PEER_LIMITS.openUploads);
			expect(partsDuring).toBe(PEER_LIMITS.openUploads);
			expect(during.fds - baselineFds).toBeLessThan(PEER_LIMITS.openUploads + 16);
			// Empty part files resume nothing: none is left behind.
			expect(partsAfter).toBe(0);
			figure(
				`${UPLOADS} uploads opened by one peer: ${ready} admitted, ${busy} refused busy; part files ${partsDuring} while connected, ${partsAfter} after; serve descriptors ${baselineFds} (listening) -> ${during.fds}, RSS ${before.rssMiB.toFixed(0)} -> ${during.rssMiB.toFixed(0)} MiB; innocent ls+get in ${innocent.toFixed(0)} ms`,
			);
		},
		TEST_MS,
	);
});

describe("idle time is measured in whole frames", () => {
	test(
		"two peers trickling one byte per half idle period are shed at the idle timeout, and the slots they held serve others",
		async () => {
			const TIMEOUTS: Timeouts = { handshakeMs: 2000, idleMs: 800 };
			const local = serve(desk, { timeouts: TIMEOUTS, maxClients: 2 });
			try {
				const ping = encodeFrame(
					FrameType.control,
					0,
					new TextEncoder().encode(JSON.stringify({ t: "ping", nonce: "x".repeat(64) })),
				);
				const trickle = async (dev: TestDevice) => {
					const peer = handPeer(local.server.port, dev.identity);
					await helloExchange(peer, "session", dev.identity.name);
					let sent = 0;
					while (!peer.isClosed && sent < ping.length) {
						await peer.write(ping.subarray(sent, sent + 1)).catch(() => undefined);
						sent++;
						await Promise.race([peer.closed, Bun.sleep(TIMEOUTS.idleMs / 2)]);
					}
					return { sent, lived: (await peer.closed) - peer.openedAt, got: peer.messages };
				};
				const [a, b] = await within(
					TIMEOUTS.idleMs * 4,
					Promise.all([trickle(laptop), trickle(insider)]),
					"both tricklers to be shed",
				);
				// Each got a couple of bytes in and nothing back but the timeout.
				for (const t of [a, b]) {
					expect(t.sent).toBeLessThan(5);
					expect(t.got.slice(1)).toEqual([{ t: "error", code: "timeout" }]);
				}
				const third = await makeDevice("third");
				await trustEachOther(third, desk);
				const conn = await connectTo(third, local.target(), { timeouts: CLIENT_TIMEOUTS });
				expect(typeof (await conn.session.ping())).toBe("number");
				conn.close();
				figure(
					`two tricklers (1 byte per ${TIMEOUTS.idleMs / 2} ms, idleMs=${TIMEOUTS.idleMs}, maxClients=2): shed after ${a.lived.toFixed(0)} / ${b.lived.toFixed(0)} ms having sent ${a.sent} / ${b.sent} bytes of a ${ping.length}-byte frame; a third device served afterwards`,
				);
			} finally {
				await local.server.stop(0);
			}
		},
		TEST_MS,
	);
});
