/**
 * Load (issue 8, item 5): 50 trusted clients at once, each on its own pinned
 * TLS connection, putting and getting files of mixed sizes (0 B..4 MiB,
 * seeded) against one in-process server for a bounded time. Every file is
 * checked by SHA-256 on both sides: nothing corrupted, nothing lost, no part
 * file left. Peak RSS and open file descriptors are sampled while it runs;
 * the descriptors must return to their baseline once the clients are gone.
 *
 * The server runs in the test process, so the RSS figure is the test
 * process's (server + 50 clients + the test's own buffers), an upper bound
 * for a server alone.
 *
 * CI: ~8 s of load. PAIRLINK_HEAVY=1: 60 s. FUZZ_SEED=N replays the sizes.
 */
import { afterAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { mkdir, readdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Target } from "../../src/client/target.ts";
import { getFiles, putFiles } from "../../src/client/transfer.ts";
import { PART_SUFFIX } from "../../src/fs/safe-path.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	tempDir,
	tempRoot,
	trustEachOther,
} from "../helpers/devices.ts";
import { partFiles, randomBytes, sha256Hex, within } from "../helpers/files.ts";
import { makePrng, type Prng, seedFromEnv } from "../helpers/prng.ts";

const HEAVY = process.env.PAIRLINK_HEAVY === "1";
const CLIENTS = 50;
const LOAD_MS = HEAVY ? 60_000 : 8_000;
const MIB = 1024 * 1024;
const MAX_SIZE = 4 * MIB;
/** Files each client keeps on the server at most (older ones are checked, then removed). */
const KEEP_PER_CLIENT = 6;
const SHARED_FILES = 6;
const SEED = seedFromEnv();

afterAll(removeTempDirs);

/** Mostly small, some large, now and then empty or exactly the maximum. */
function drawSize(prng: Prng): number {
	const r = prng.int(100);
	if (r < 5) return 0;
	if (r < 7) return MAX_SIZE;
	if (r < 30) return prng.int(1024) + 1;
	if (r < 65) return 1024 + prng.int(255 * 1024);
	if (r < 90) return 256 * 1024 + prng.int(768 * 1024);
	return MIB + prng.int(MAX_SIZE - MIB);
}

const openFds = (): number => readdirSync("/proc/self/fd").length;
const rssMib = (): number => process.memoryUsage().rss / MIB;

interface Stored {
	name: string;
	sha256: string;
	size: number;
}

interface ClientTally {
	puts: number;
	gets: number;
	bytesUp: number;
	bytesDown: number;
	/** Files this client still has on the server, each verified when it was stored. */
	stored: Stored[];
}

test.skipIf(process.platform !== "linux")(
	`${CLIENTS} clients put and get mixed sizes for ${LOAD_MS / 1000} s: nothing corrupted or lost, descriptors back to baseline`,
	async () => {
		const setupStarted = performance.now();
		const serverDev = await makeDevice("hub");
		const clients: TestDevice[] = await Promise.all(
			Array.from({ length: CLIENTS }, (_, i) => makeDevice(`load-${i}`)),
		);
		// One at a time: the trust store is read-modify-write.
		for (const c of clients) await trustEachOther(c, serverDev);

		const root = tempRoot();
		const prng = makePrng(SEED);
		// Files every client downloads, many of them at the same time.
		await mkdir(join(root.dir, "shared"));
		const shared: Stored[] = [];
		for (let k = 0; k < SHARED_FILES; k++) {
			const data = randomBytes(prng, k === 0 ? MAX_SIZE : drawSize(prng));
			await writeFile(join(root.dir, "shared", `s${k}.bin`), data);
			shared.push({ name: `s${k}.bin`, sha256: sha256Hex(data), size: data.length });
		}

		const srv = serve(serverDev, { root, maxClients: 64 });
		const fdBaseline = openFds();
		const rssBaseline = rssMib();
		let peakFds = fdBaseline;
		let peakRss = rssBaseline;
		const sample = () => {
			peakFds = Math.max(peakFds, openFds());
			peakRss = Math.max(peakRss, rssMib());
		};
		const sampler = setInterval(sample, 25);
		const setupSeconds = (performance.now() - setupStarted) / 1000;

		const started = performance.now();
		const deadline = started + LOAD_MS;
		let tallies: ClientTally[];
		try {
			tallies = await within(
				LOAD_MS + 60_000,
				Promise.all(
					clients.map((dev, i) =>
						runClient(dev, i, makePrng((SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0), {
							target: srv.target(),
							served: root.dir,
							shared,
							deadline,
						}),
					),
				),
				`${CLIENTS} clients`,
			);
		} finally {
			clearInterval(sampler);
		}
		const seconds = (performance.now() - started) / 1000;
		sample();

		// Every client is gone: the server saw each one leave.
		let left = 0;
		await within(
			10_000,
			srv.waitFor((e) => e.event === "disconnected" && ++left >= CLIENTS),
			"all disconnected",
		);
		expect(srv.server.activeConnections).toBe(0);
		const fdAfter = openFds();

		// Nothing lost, nothing corrupted, nothing partial: the server's tree is exactly what the clients stored.
		const files = tallies.reduce((n, t) => n + t.puts + t.gets, 0);
		const bytes = tallies.reduce((n, t) => n + t.bytesUp + t.bytesDown, 0);
		expect(await partFiles(root.dir)).toEqual([]);
		expect((await readdir(root.dir)).sort()).toEqual(
			["shared", ...clients.map((_, i) => `c${i}`)].sort(),
		);
		for (const [i, t] of tallies.entries()) {
			const dir = join(root.dir, `c${i}`);
			expect((await readdir(dir)).sort()).toEqual(t.stored.map((s) => s.name).sort());
			for (const s of t.stored) {
				expect(sha256Hex(await readFile(join(dir, s.name))), `c${i}/${s.name}`).toBe(s.sha256);
			}
		}
		for (const s of shared) {
			expect(sha256Hex(await readFile(join(root.dir, "shared", s.name)))).toBe(s.sha256);
		}
		// Every client did real work in both directions.
		for (const t of tallies) {
			expect(t.puts).toBeGreaterThan(0);
			expect(t.gets).toBeGreaterThan(0);
		}
		const events = srv.events.filter((e) => e.event === "transfer").length;
		expect(events).toBe(files);

		console.log(
			[
				`FIGURE load: clients=${CLIENTS} seed=${SEED} load_seconds=${seconds.toFixed(1)} setup_seconds=${setupSeconds.toFixed(1)}`,
				`FIGURE load: files_moved=${files} (puts=${tallies.reduce((n, t) => n + t.puts, 0)}, gets=${tallies.reduce((n, t) => n + t.gets, 0)}) bytes=${bytes} (${(bytes / MIB).toFixed(0)} MiB, ${(bytes / MIB / seconds).toFixed(1)} MiB/s through TLS, both ends in one process)`,
				`FIGURE load: peak test-process RSS=${peakRss.toFixed(0)} MiB (baseline ${rssBaseline.toFixed(0)} MiB; server and all ${CLIENTS} clients share this process)`,
				`FIGURE load: peak open fds=${peakFds} (baseline ${fdBaseline}, after all clients closed ${fdAfter})`,
				"FIGURE load: corrupted=0 lost=0 part_files_left=0",
			].join("\n"),
		);

		// Descriptors return to where they were before the clients came.
		expect(Math.abs(fdAfter - fdBaseline)).toBeLessThanOrEqual(5);
		// Bounded while running: two sockets per client (both ends are here) plus the files in flight
		// (at most 8 per connection per side), with room to spare.
		expect(peakFds - fdBaseline).toBeLessThan(CLIENTS * (2 + 2 * 8) + 50);
		// Memory: the flow-control windows are 16 MiB per connection per direction; stay far below that bound.
		expect(peakRss).toBeLessThan(rssBaseline + 2048);

		await srv.server.stop(0);
	},
	LOAD_MS + 120_000,
);

interface Run {
	target: Target;
	/** The server's shared directory, to check what it holds. */
	served: string;
	shared: Stored[];
	/** Stop starting new rounds after this (performance.now()). */
	deadline: number;
}

/** One client: rounds of put 1–3 new files, get 1–3 files, each checked by SHA-256 on both sides. */
async function runClient(dev: TestDevice, i: number, prng: Prng, run: Run): Promise<ClientTally> {
	const tally: ClientTally = { puts: 0, gets: 0, bytesUp: 0, bytesDown: 0, stored: [] };
	const work = await tempDir(`pairlink-load-c${i}-`);
	const out = join(work, "out");
	const inbox = join(work, "in");
	await Promise.all([mkdir(out), mkdir(inbox)]);
	const conn = await connectTo(dev, run.target);
	const remoteDir = `c${i}`;
	let n = 0;
	try {
		await conn.session.mkdir(remoteDir, false);
		while (performance.now() < run.deadline || tally.gets === 0) {
			// Put 1–3 new files.
			const batch: Stored[] = [];
			for (let k = 1 + prng.int(3); k > 0; k--) {
				const data = randomBytes(prng, drawSize(prng));
				const name = `f${n++}.bin`;
				await writeFile(join(out, name), data);
				batch.push({ name, sha256: sha256Hex(data), size: data.length });
			}
			const reported = new Map<string, string>();
			const up = await putFiles(
				conn.session,
				batch.map((f) => join(out, f.name)),
				{ recursive: false, overwrite: false, to: remoteDir },
				{ onFile: (f) => reported.set(f.path, f.sha256) },
			);
			expect(up.files).toBe(batch.length);
			for (const f of batch) {
				// What the server acknowledged, and what it holds on disk.
				expect(reported.get(join(out, f.name))).toBe(f.sha256);
				const held = await readFile(join(run.served, remoteDir, f.name));
				expect(sha256Hex(held), `${remoteDir}/${f.name}`).toBe(f.sha256);
				tally.puts++;
				tally.bytesUp += f.size;
				await unlink(join(out, f.name));
			}
			tally.stored.push(...batch);

			// Get 1–3 distinct files: this client's own, or the shared ones everybody reads.
			const candidates = [
				...tally.stored.map((s) => ({ remote: `${remoteDir}/${s.name}`, file: s })),
				...run.shared.map((s) => ({ remote: `shared/${s.name}`, file: s })),
			];
			const picks = new Map<string, (typeof candidates)[number]>();
			for (let k = 1 + prng.int(3); k > 0; k--) {
				const c = prng.pick(candidates);
				picks.set(c.file.name, c);
			}
			const got = new Map<string, string>();
			const down = await getFiles(
				conn.session,
				[...picks.values()].map((p) => p.remote),
				{ recursive: false, overwrite: false, dest: inbox },
				{ onFile: (f) => got.set(f.path, f.sha256) },
			);
			expect(down.files).toBe(picks.size);
			for (const p of picks.values()) {
				expect(got.get(p.remote)).toBe(p.file.sha256);
				const local = join(inbox, p.file.name);
				expect(sha256Hex(await readFile(local)), `${p.remote} → client ${i}`).toBe(p.file.sha256);
				tally.gets++;
				tally.bytesDown += p.file.size;
				await unlink(local);
			}
			expect((await readdir(inbox)).filter((x) => x.endsWith(PART_SUFFIX))).toEqual([]);

			// Bound the disk: drop the oldest stored files (verified when stored, again at the end if kept).
			while (tally.stored.length > KEEP_PER_CLIENT) {
				const old = tally.stored.shift() as Stored;
				await rm(join(run.served, remoteDir, old.name));
			}
		}
	} finally {
		conn.close();
		await conn.closed;
	}
	return tally;
}
