/**
 * File operations end to end over real pinned TLS on 127.0.0.1 (SPEC
 * "Security requirements", exit codes, JSON transfer events; DESIGN.md §4–§5):
 * the server confines every path to its root, never replaces a file unless
 * both sides agree, obeys its policy, moves trees byte-identically, serves
 * many clients at once and resumes from verified partial data.
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
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Connection } from "../../src/client/connect.ts";
import { type FileDone, getFiles, putFiles } from "../../src/client/transfer.ts";
import { PairlinkError } from "../../src/errors.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import type { Timeouts } from "../../src/protocol/limits.ts";
import type { ServerEvent } from "../../src/server/server.ts";
import type { ServePolicy } from "../../src/session/policy.ts";
import {
	connectTo,
	makeDevice,
	OPEN_POLICY,
	removeTempDirs,
	serve,
	type TestDevice,
	type TestServer,
	tempDir,
	trustEachOther,
} from "../helpers/devices.ts";
import {
	expectRefusal,
	keepPart,
	partFiles,
	randomBytes,
	sha256Hex,
	snapshot,
	within,
	writeTree,
} from "../helpers/files.ts";
import { HOSTILE_PATHS } from "../helpers/hostile-paths.ts";
import { makePrng, seedFromEnv } from "../helpers/prng.ts";

const TIMEOUTS: Timeouts = { handshakeMs: 5000, idleMs: 30_000 };
/** Bound on any single wait for the server or a transfer. */
const WAIT_MS = 10_000;
// Above WAIT_MS, so a hang fails with the message of the wait that hung.
setDefaultTimeout(20_000);
const SEED = seedFromEnv();
const prng = makePrng(SEED);

let serverDev: TestDevice;
let clientDev: TestDevice;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
	[serverDev, clientDev] = await Promise.all([makeDevice("desk"), makeDevice("laptop")]);
	await trustEachOther(clientDev, serverDev);
});

afterEach(() => {
	for (const c of cleanups.splice(0).reverse()) c();
});

afterAll(async () => {
	await removeTempDirs();
});

interface Setup {
	srv: TestServer;
	/** The served directory (real path). */
	dir: string;
	conn: Connection;
}

/** A server on a fresh (or given) root with `policy`, and the client connected to it. */
async function setup(policy: Partial<ServePolicy> = {}, rootDir?: string): Promise<Setup> {
	const dir = rootDir ?? (await tempDir("pairlink-served-"));
	const root = await SandboxRoot.open(dir);
	const srv = serve(serverDev, {
		root,
		policy: { ...OPEN_POLICY, ...policy },
		timeouts: TIMEOUTS,
	});
	cleanups.push(() => srv.server.stop());
	const conn = await within(
		WAIT_MS,
		connectTo(clientDev, srv.target(), { timeouts: TIMEOUTS }),
		"connect",
	);
	cleanups.push(() => conn.close());
	return { srv, dir: root.dir, conn };
}

function transferEvent(srv: TestServer, op: "get" | "put", path: string) {
	return within(
		WAIT_MS,
		srv.waitFor((e) => e.event === "transfer" && e.op === op && e.path === path),
		`${op} transfer event for ${path}`,
	) as Promise<Extract<ServerEvent, { event: "transfer" }>>;
}

/** What a person reads: the error's sentence followed by its hint (as src/cli/run.ts prints it). */
const shown = (e: PairlinkError) => `${e.message} ${e.hint}`;

// ---------------------------------------------------------------- traversal

describe("the traversal corpus, sent raw over the wire", () => {
	/** Paths the request schema accepts; longer ones are a protocol violation (tested below). */
	const corpus = HOSTILE_PATHS.filter((p) => p.length <= 4096);

	test("every path is refused on ls, stat, walk, get, put, mkdir and rm; nothing escapes", async () => {
		expect(corpus.length).toBeGreaterThan(20);
		const base = await tempDir("pairlink-corpus-");
		const [rootDir, sentinel, outside, local] = ["root", "sentinel", "outside", "local"].map((n) =>
			join(base, n),
		) as [string, string, string, string];
		for (const d of [rootDir, sentinel, outside, local, join(rootDir, "a", "b")])
			await mkdir(d, { recursive: true });
		await writeFile(join(rootDir, "inside.txt"), "inside");
		await writeFile(join(outside, "x"), "outside x");
		await writeFile(join(local, "small.txt"), "hostile upload");
		await writeFile(join(local, "big.bin"), randomBytes(prng, 1024 * 1024 + 5)); // not sent eagerly
		const before = { root: await snapshot(rootDir), outside: await snapshot(outside) };
		const localBefore = await snapshot(local);

		// The most permissive server: only the path rules stand in the way.
		const { conn } = await setup(
			{ readOnly: false, allowOverwrite: true, allowDelete: true },
			rootDir,
		);
		const s = conn.session;
		const localRoot = await SandboxRoot.open(local);
		const failures: string[] = [];
		const check = async (what: string, p: Promise<unknown>) => {
			try {
				await p;
				failures.push(`${what}: succeeded`);
			} catch (e) {
				if (!(e instanceof PairlinkError) || e.code !== "invalid-path" || e.exitCode !== 5)
					failures.push(`${what}: ${e instanceof PairlinkError ? e.code : String(e)}`);
			}
		};
		await within(
			WAIT_MS * 2,
			Promise.all(
				corpus.map((p, i) => {
					const q = JSON.stringify(p).slice(0, 30);
					return Promise.all([
						check(`ls ${q}`, s.list(p)),
						check(`stat ${q}`, s.stat(p)),
						check(`walk ${q}`, s.walk(p)),
						check(`mkdir ${q}`, s.mkdir(p, false)),
						check(`mkdir -p ${q}`, s.mkdir(p, true)),
						check(`rm ${q}`, s.rm(p, false)),
						check(`rm -r ${q}`, s.rm(p, true)),
						check(`put ${q}`, s.upload(join(local, "small.txt"), p, { overwrite: true })),
						check(`put big ${q}`, s.upload(join(local, "big.bin"), p, { overwrite: true })),
						check(`get ${q}`, s.download(p, localRoot, `dl-${i}`, { overwrite: false })),
					]);
				}),
			),
			"the corpus",
		);
		expect(failures).toEqual([]);

		// Nothing was created or changed anywhere: not outside the root, not inside it, not locally.
		expect((await readdir(base)).sort()).toEqual(["local", "outside", "root", "sentinel"]);
		expect(await readdir(sentinel)).toEqual([]);
		expect(await snapshot(outside)).toEqual(before.outside);
		expect(await snapshot(rootDir)).toEqual(before.root);
		expect(await snapshot(local)).toEqual(localBefore);
		// And the connection is still good for honest work.
		expect(typeof (await within(WAIT_MS, s.ping(), "ping"))).toBe("number");
		expect((await s.list("")).map((e) => e.name)).toEqual(["a", "inside.txt"]);
	}, 30_000);

	test("a path beyond the wire cap is refused by the client before it is sent; the connection stays up", async () => {
		const p = HOSTILE_PATHS.find((x) => x.length > 4096);
		expect(p).toBeDefined();
		const { dir, conn } = await setup({ allowDelete: true });
		const e = await expectRefusal(
			within(WAIT_MS, conn.session.mkdir(p as string, true), "mkdir"),
			"invalid-path",
		);
		expect(e.exitCode).toBe(5);
		expect(await readdir(dir)).toEqual([]);
		expect(typeof (await conn.session.ping())).toBe("number");
	});

	test("a path beyond the wire cap is refused as invalid-path (exit 5)", async () => {
		const { conn } = await setup();
		const p = HOSTILE_PATHS.find((x) => x.length > 4096) as string;
		const e = await expectRefusal(within(WAIT_MS, conn.session.list(p), "ls"), "invalid-path");
		expect(e.exitCode).toBe(5);
	});
});

// ---------------------------------------------------------------- overwrite

describe("overwriting needs --overwrite on the client and --allow-overwrite on the server", () => {
	const OLD = "OLD CONTENT, must survive\n";
	const sizes = { small: 11, large: 1024 * 1024 + 100 }; // eager and put-ready paths
	for (const allowOverwrite of [false, true]) {
		for (const overwrite of [false, true]) {
			for (const [label, size] of Object.entries(sizes)) {
				const replaces = overwrite && allowOverwrite;
				test(`put ${label}, client overwrite=${overwrite}, server allowOverwrite=${allowOverwrite}: ${replaces ? "replaced" : "refused"}`, async () => {
					const { srv, dir, conn } = await setup({ allowOverwrite });
					const local = await tempDir("pairlink-local-");
					const fresh = randomBytes(prng, size);
					await writeFile(join(local, "f.bin"), fresh);
					await writeFile(join(dir, "f.bin"), OLD);
					const run = conn.session.upload(join(local, "f.bin"), "f.bin", { overwrite });
					if (replaces) {
						const r = await within(WAIT_MS, run, "upload");
						expect(r).toMatchObject({ bytes: size, sha256: sha256Hex(fresh), resumedFrom: 0 });
						expect(sha256Hex(await readFile(join(dir, "f.bin")))).toBe(sha256Hex(fresh));
						expect((await transferEvent(srv, "put", "f.bin")).sha256).toBe(sha256Hex(fresh));
					} else {
						// Client asked but server forbids: tell them about the server flag.
						const code = overwrite ? "permission" : "exists";
						const e = await expectRefusal(within(WAIT_MS, run, "upload"), code);
						expect(e.exitCode).toBe(5);
						// Said once, in the advice: not in the message as well.
						if (overwrite) expect(e.hint).toContain("--allow-overwrite");
						else expect(e.hint).toContain("--overwrite");
						expect(e.message).not.toContain("--overwrite");
						expect(await readFile(join(dir, "f.bin"), "utf8")).toBe(OLD);
					}
					expect(await readdir(dir)).toEqual(["f.bin"]);
					// The connection survives a refusal.
					expect(typeof (await conn.session.ping())).toBe("number");
				});
			}
		}
	}

	test("get into an existing local file: refused without --overwrite, replaced with it", async () => {
		const { dir, conn } = await setup();
		const local = await tempDir("pairlink-local-");
		const fresh = randomBytes(prng, 200_000);
		await writeFile(join(dir, "remote.bin"), fresh);
		await writeFile(join(local, "remote.bin"), OLD);
		for (const dest of [local, join(local, "remote.bin")]) {
			const e = await expectRefusal(
				getFiles(conn.session, ["remote.bin"], { recursive: false, overwrite: false, dest }),
				"local-exists",
			);
			expect(e.exitCode).toBe(5);
			expect(shown(e)).toContain("--overwrite");
			expect(await readFile(join(local, "remote.bin"), "utf8")).toBe(OLD);
			expect(await readdir(local)).toEqual(["remote.bin"]);
		}
		const done: FileDone[] = [];
		const summary = await getFiles(
			conn.session,
			["remote.bin"],
			{ recursive: false, overwrite: true, dest: local },
			{ onFile: (f) => done.push(f) },
		);
		expect(summary).toMatchObject({ files: 1, bytes: fresh.length });
		expect(done).toEqual([
			{ path: "remote.bin", bytes: fresh.length, sha256: sha256Hex(fresh), resumedFrom: 0 },
		]);
		expect(sha256Hex(await readFile(join(local, "remote.bin")))).toBe(sha256Hex(fresh));
		expect(await readdir(local)).toEqual(["remote.bin"]);
	});
});

// ---------------------------------------------------------------- policy

describe("server policy", () => {
	test("a read-only server refuses put, mkdir and rm, and still serves get and ls", async () => {
		const { dir, conn } = await setup({ readOnly: true, allowOverwrite: true, allowDelete: true });
		await writeFile(join(dir, "served.txt"), "hello");
		await mkdir(join(dir, "sub"));
		const before = await snapshot(dir);
		const local = await tempDir("pairlink-local-");
		await writeFile(join(local, "up.txt"), "upload");
		await writeFile(join(local, "big.bin"), randomBytes(prng, 1024 * 1024 + 1));
		const s = conn.session;
		const attempts: (() => Promise<unknown>)[] = [
			() => s.upload(join(local, "up.txt"), "up.txt", { overwrite: false }),
			() => s.upload(join(local, "big.bin"), "big.bin", { overwrite: true }),
			() => s.upload(join(local, "up.txt"), "served.txt", { overwrite: true }),
			() => s.mkdir("newdir", false),
			() => s.mkdir("sub", true),
			() => s.rm("served.txt", false),
			() => s.rm("sub", true),
		];
		for (const attempt of attempts) {
			const e = await expectRefusal(within(WAIT_MS, attempt(), "refusal"), "permission");
			expect(e.exitCode).toBe(5);
			expect(e.message).toContain("read-only");
		}
		expect(await snapshot(dir)).toEqual(before);
		expect((await s.list("")).map((e) => [e.name, e.type])).toEqual([
			["served.txt", "file"],
			["sub", "dir"],
		]);
		const r = await s.download("served.txt", await SandboxRoot.open(local), "got.txt", {
			overwrite: false,
		});
		expect(r.sha256).toBe(sha256Hex("hello"));
		expect(await readFile(join(local, "got.txt"), "utf8")).toBe("hello");
	});

	test("rm without --allow-delete is refused and names the flag", async () => {
		const { dir, conn } = await setup({ allowDelete: false });
		await writeFile(join(dir, "keep.txt"), "keep");
		await mkdir(join(dir, "empty"));
		for (const [p, r] of [
			["keep.txt", false],
			["empty", false],
			["empty", true],
		] as const) {
			const e = await expectRefusal(conn.session.rm(p, r), "permission");
			expect(e.exitCode).toBe(5);
			expect(e.hint).toContain("--allow-delete");
		}
		expect((await readdir(dir)).sort()).toEqual(["empty", "keep.txt"]);
	});

	test("with --allow-delete: files and empty dirs go, a non-empty dir needs recursive", async () => {
		const { dir, conn } = await setup({ allowDelete: true });
		await writeFile(join(dir, "a.txt"), "a");
		await mkdir(join(dir, "empty"));
		await mkdir(join(dir, "full", "deeper"), { recursive: true });
		await writeFile(join(dir, "full", "deeper", "x"), "x");
		const s = conn.session;
		await s.rm("a.txt", false);
		await s.rm("empty", false);
		const e = await expectRefusal(s.rm("full", false), "not-empty");
		expect(e.exitCode).toBe(5);
		expect(await readFile(join(dir, "full", "deeper", "x"), "utf8")).toBe("x");
		await expectRefusal(s.rm("nope", true), "not-found");
		await s.rm("full", true);
		expect(await readdir(dir)).toEqual([]);
	});

	test("mkdir: one level, -p for parents-exist, exists and not-found otherwise", async () => {
		const { dir, conn } = await setup();
		const s = conn.session;
		await s.mkdir("new", false);
		await expectRefusal(s.mkdir("new", false), "exists");
		await s.mkdir("new", true);
		await expectRefusal(s.mkdir("missing/child", false), "not-found");
		await s.mkdir("new/child", false);
		expect((await stat(join(dir, "new", "child"))).isDirectory()).toBe(true);
	});
});

// ---------------------------------------------------------------- trees

describe("recursive transfers", () => {
	test(`a tree of 1,000 files and empty directories round-trips byte-identically (seed ${SEED})`, async () => {
		const { dir, conn } = await setup();
		const work = await tempDir("pairlink-tree-");
		const tree = join(work, "tree");
		const total = await writeTree(tree, prng, { files: 1000, maxSize: 64 * 1024, emptyDirs: 6 });
		const original = await snapshot(tree);
		expect([...original.values()].filter((v) => v.startsWith("file:"))).toHaveLength(1000);
		expect([...original.keys()].filter((k) => k.includes("empty"))).toHaveLength(9);

		const put: FileDone[] = [];
		const up = await within(
			60_000,
			putFiles(
				conn.session,
				[tree],
				{ recursive: true, overwrite: false, to: undefined },
				{ onFile: (f) => put.push(f) },
			),
			"put -r",
		);
		expect(up).toMatchObject({ files: 1000, bytes: total });
		expect(put).toHaveLength(1000);
		for (const f of put) {
			const rel = f.path.slice(tree.length + 1);
			expect(`file:${f.sha256}`).toBe(original.get(rel) as string);
		}
		expect(await snapshot(join(dir, "tree"))).toEqual(original);
		expect(await readdir(dir)).toEqual(["tree"]);

		const dest = join(work, "back");
		await mkdir(dest);
		const got: FileDone[] = [];
		const down = await within(
			60_000,
			getFiles(
				conn.session,
				["tree"],
				{ recursive: true, overwrite: false, dest },
				{ onFile: (f) => got.push(f) },
			),
			"get -r",
		);
		expect(down).toMatchObject({ files: 1000, bytes: total });
		for (const f of got) expect(`file:${f.sha256}`).toBe(original.get(f.path.slice(5)) as string);
		expect(await readdir(dest)).toEqual(["tree"]);
		expect(await snapshot(join(dest, "tree"))).toEqual(original);
		expect(await partFiles(dir)).toEqual([]);
		expect(await partFiles(dest)).toEqual([]);
	}, 120_000);

	test("20 clients at once, each putting and getting its own files", async () => {
		const { srv, dir } = await setup();
		const clients = await Promise.all(
			Array.from({ length: 20 }, (_, i) => makeDevice(`client-${i}`)),
		);
		// One at a time: the trust store is read-modify-write.
		for (const c of clients) await trustEachOther(c, serverDev);
		const results = await within(
			90_000,
			Promise.all(
				clients.map(async (dev, i) => {
					const work = await tempDir(`pairlink-c${i}-`);
					const files = Array.from({ length: 3 }, (_, j) => ({
						name: `f${j}.bin`,
						data: randomBytes(prng, j === 0 ? prng.int(1000) : prng.int(2 * 1024 * 1024 + 1)),
					}));
					await mkdir(join(work, "out"));
					await mkdir(join(work, "in"));
					for (const f of files) await writeFile(join(work, "out", f.name), f.data);
					const conn = await connectTo(dev, srv.target(), { timeouts: TIMEOUTS });
					try {
						await conn.session.mkdir(`c${i}`, false);
						const up = await putFiles(
							conn.session,
							files.map((f) => join(work, "out", f.name)),
							{ recursive: false, overwrite: false, to: `c${i}` },
						);
						const down = await getFiles(
							conn.session,
							files.map((f) => `c${i}/${f.name}`),
							{ recursive: false, overwrite: false, dest: join(work, "in") },
						);
						return { i, work, files, up, down };
					} finally {
						conn.close();
					}
				}),
			),
			"20 clients",
		);
		for (const { i, work, files, up, down } of results) {
			const bytes = files.reduce((n, f) => n + f.data.length, 0);
			expect(up).toMatchObject({ files: 3, bytes });
			expect(down).toMatchObject({ files: 3, bytes });
			for (const f of files) {
				const want = sha256Hex(f.data);
				expect(sha256Hex(await readFile(join(dir, `c${i}`, f.name)))).toBe(want);
				expect(sha256Hex(await readFile(join(work, "in", f.name)))).toBe(want);
			}
			expect((await readdir(join(work, "in"))).sort()).toEqual(["f0.bin", "f1.bin", "f2.bin"]);
		}
		expect(await partFiles(dir)).toEqual([]);
		expect((await readdir(dir)).length).toBe(20);
		// Every client was a distinct trusted device in the server's log.
		const connected = new Set(
			srv.events.filter((e) => e.event === "connected").map((e) => (e as { name: string }).name),
		);
		for (const c of clients) expect(connected.has(c.identity.name)).toBe(true);
	}, 120_000);
});

// ---------------------------------------------------------------- resume

describe("resume from verified partial data", () => {
	const SIZE = 3 * 1024 * 1024 + 17;
	const N = 1024 * 1024 + 333;

	test("download: a part file holding the real prefix is resumed from", async () => {
		const { srv, dir, conn } = await setup();
		const content = randomBytes(prng, SIZE);
		await writeFile(join(dir, "big.bin"), content);
		const local = await tempDir("pairlink-local-");
		await keepPart(local, "big.bin", content.subarray(0, N), conn.session.partOwner);
		const firstProgress: number[] = [];
		const r = await within(
			WAIT_MS,
			conn.session.download("big.bin", await SandboxRoot.open(local), "big.bin", {
				overwrite: false,
				onProgress: (done) => firstProgress.push(done),
			}),
			"download",
		);
		expect(r).toEqual({ bytes: SIZE, sha256: sha256Hex(content), resumedFrom: N });
		expect(firstProgress[0]).toBe(N);
		expect(sha256Hex(await readFile(join(local, "big.bin")))).toBe(sha256Hex(content));
		expect(await readdir(local)).toEqual(["big.bin"]);
		expect(await transferEvent(srv, "get", "big.bin")).toMatchObject({
			bytes: SIZE,
			sha256: sha256Hex(content),
			resumedFrom: N,
		});
	});

	test("download: a part file holding wrong bytes is discarded; the content is still right", async () => {
		const { dir, conn } = await setup();
		const content = randomBytes(prng, SIZE);
		await writeFile(join(dir, "big.bin"), content);
		const local = await tempDir("pairlink-local-");
		await writeFile(join(local, ".big.bin.pairlink-part"), randomBytes(prng, N));
		const progress: number[] = [];
		const r = await within(
			WAIT_MS,
			conn.session.download("big.bin", await SandboxRoot.open(local), "big.bin", {
				overwrite: false,
				onProgress: (done) => progress.push(done),
			}),
			"download",
		);
		// The server refused the prefix and sent everything from 0.
		expect(progress[0]).toBe(0);
		expect(r.sha256).toBe(sha256Hex(content));
		expect(sha256Hex(await readFile(join(local, "big.bin")))).toBe(sha256Hex(content));
		expect(await readdir(local)).toEqual(["big.bin"]);
	});

	// Regression: resumedFrom once reported the part file's length even when the
	// server refused the prefix and sent the file from 0.
	test("download with a wrong-bytes part file reports resumedFrom 0", async () => {
		const { dir, conn } = await setup();
		const content = randomBytes(prng, SIZE);
		await writeFile(join(dir, "big.bin"), content);
		const local = await tempDir("pairlink-local-");
		await writeFile(join(local, ".big.bin.pairlink-part"), randomBytes(prng, N));
		const r = await within(
			WAIT_MS,
			conn.session.download("big.bin", await SandboxRoot.open(local), "big.bin", {
				overwrite: false,
			}),
			"download",
		);
		expect(r.resumedFrom).toBe(0);
	});

	test("download: an interrupted transfer keeps its verified part and the next one resumes", async () => {
		const { srv, dir, conn } = await setup();
		const content = randomBytes(prng, 24 * 1024 * 1024);
		await writeFile(join(dir, "huge.bin"), content);
		const local = await tempDir("pairlink-local-");
		const localRoot = await SandboxRoot.open(local);
		const first = conn.session.download("huge.bin", localRoot, "huge.bin", {
			overwrite: false,
			onProgress: (done) => {
				if (done >= 2 * 1024 * 1024) conn.close();
			},
		});
		await expectRefusal(within(WAIT_MS, first, "interrupted download"), "interrupted");
		expect(await readdir(local)).toEqual([".huge.bin.pairlink-part"]);
		const kept = (await stat(join(local, ".huge.bin.pairlink-part"))).size;
		expect(kept).toBeGreaterThanOrEqual(2 * 1024 * 1024);
		expect(kept).toBeLessThan(content.length);
		expect(sha256Hex(await readFile(join(local, ".huge.bin.pairlink-part")))).toBe(
			sha256Hex(content.subarray(0, kept)),
		);

		const again = await connectTo(clientDev, srv.target(), { timeouts: TIMEOUTS });
		cleanups.push(() => again.close());
		const r = await within(
			WAIT_MS,
			again.session.download("huge.bin", localRoot, "huge.bin", { overwrite: false }),
			"resumed download",
		);
		expect(r).toEqual({ bytes: content.length, sha256: sha256Hex(content), resumedFrom: kept });
		expect(sha256Hex(await readFile(join(local, "huge.bin")))).toBe(sha256Hex(content));
		expect(await readdir(local)).toEqual(["huge.bin"]);
	}, 30_000);

	test("upload: a part file in the server root holding the real prefix is resumed from", async () => {
		const { srv, dir, conn } = await setup();
		const content = randomBytes(prng, SIZE);
		const local = await tempDir("pairlink-local-");
		await writeFile(join(local, "up.bin"), content);
		await keepPart(dir, "up.bin", content.subarray(0, N), {
			peer: clientDev.identity.fingerprint,
		});
		const progress: number[] = [];
		const r = await within(
			WAIT_MS,
			conn.session.upload(join(local, "up.bin"), "up.bin", {
				overwrite: false,
				onProgress: (d) => progress.push(d),
			}),
			"upload",
		);
		expect(r).toEqual({ bytes: SIZE, sha256: sha256Hex(content), resumedFrom: N });
		expect(progress[0]).toBe(N);
		expect(sha256Hex(await readFile(join(dir, "up.bin")))).toBe(sha256Hex(content));
		expect(await readdir(dir)).toEqual(["up.bin"]);
		expect(await transferEvent(srv, "put", "up.bin")).toMatchObject({
			bytes: SIZE,
			sha256: sha256Hex(content),
			resumedFrom: N,
		});
	});

	test("upload: a part file holding wrong bytes is started over", async () => {
		const { srv, dir, conn } = await setup();
		const content = randomBytes(prng, SIZE);
		const local = await tempDir("pairlink-local-");
		await writeFile(join(local, "up.bin"), content);
		await writeFile(join(dir, ".up.bin.pairlink-part"), randomBytes(prng, N));
		const r = await within(
			WAIT_MS,
			conn.session.upload(join(local, "up.bin"), "up.bin", { overwrite: false }),
			"upload",
		);
		expect(r).toEqual({ bytes: SIZE, sha256: sha256Hex(content), resumedFrom: 0 });
		expect(sha256Hex(await readFile(join(dir, "up.bin")))).toBe(sha256Hex(content));
		expect(await readdir(dir)).toEqual(["up.bin"]);
		expect((await transferEvent(srv, "put", "up.bin")).resumedFrom).toBe(0);
	});

	test("upload: a stale part file longer than the file, or beside a small eager upload, is replaced", async () => {
		const { dir, conn } = await setup();
		const local = await tempDir("pairlink-local-");
		const big = randomBytes(prng, 2 * 1024 * 1024);
		const small = randomBytes(prng, 5000);
		await writeFile(join(local, "big.bin"), big);
		await writeFile(join(local, "small.bin"), small);
		await writeFile(join(dir, ".big.bin.pairlink-part"), randomBytes(prng, 3 * 1024 * 1024));
		await writeFile(join(dir, ".small.bin.pairlink-part"), small.subarray(0, 4000));
		const [rb, rs] = await within(
			WAIT_MS,
			Promise.all([
				conn.session.upload(join(local, "big.bin"), "big.bin", { overwrite: false }),
				conn.session.upload(join(local, "small.bin"), "small.bin", { overwrite: false }),
			]),
			"uploads",
		);
		expect(rb).toMatchObject({ sha256: sha256Hex(big), resumedFrom: 0 });
		expect(rs).toMatchObject({ sha256: sha256Hex(small), resumedFrom: 0 });
		expect(sha256Hex(await readFile(join(dir, "big.bin")))).toBe(sha256Hex(big));
		expect(sha256Hex(await readFile(join(dir, "small.bin")))).toBe(sha256Hex(small));
		expect((await readdir(dir)).sort()).toEqual(["big.bin", "small.bin"]);
	});
});

// ---------------------------------------------------------------- events

describe("transfer events", () => {
	test("the server reports each get and put with op, path, bytes, sha256 and device", async () => {
		const { srv, dir, conn } = await setup();
		const local = await tempDir("pairlink-local-");
		const up = randomBytes(prng, 70_000);
		const down = randomBytes(prng, 1024 * 1024 + 9);
		await writeFile(join(local, "up.bin"), up);
		await mkdir(join(dir, "docs"));
		await writeFile(join(dir, "docs", "down.bin"), down);

		await conn.session.upload(join(local, "up.bin"), "docs/up.bin", { overwrite: false });
		expect(await transferEvent(srv, "put", "docs/up.bin")).toEqual({
			event: "transfer",
			op: "put",
			path: "docs/up.bin",
			bytes: up.length,
			sha256: sha256Hex(up),
			resumedFrom: 0,
			device: "laptop",
			fingerprint: clientDev.identity.fingerprint,
		});

		await getFiles(conn.session, ["docs/down.bin"], {
			recursive: false,
			overwrite: false,
			dest: local,
		});
		expect(await transferEvent(srv, "get", "docs/down.bin")).toEqual({
			event: "transfer",
			op: "get",
			path: "docs/down.bin",
			bytes: down.length,
			sha256: sha256Hex(down),
			resumedFrom: 0,
			device: "laptop",
			fingerprint: clientDev.identity.fingerprint,
		});
		// Refused operations are not transfers (the same file again would be up to date: changed here).
		await writeFile(join(local, "up.bin"), "different now");
		await expectRefusal(
			conn.session.upload(join(local, "up.bin"), "docs/up.bin", { overwrite: false }),
			"exists",
		);
		await expectRefusal(
			conn.session.download("nope.bin", await SandboxRoot.open(local), "nope.bin", {
				overwrite: false,
			}),
			"not-found",
		);
		expect(await conn.session.ping()).toBeGreaterThanOrEqual(0);
		expect(srv.events.filter((e) => e.event === "transfer")).toHaveLength(2);
	});
});
