/**
 * Containment attacks (issue 12) over real pinned TLS on 127.0.0.1, on real
 * files: each test performs the attack and asserts what the attacker got —
 * bytes read, files written where, the owner of the final file.
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
import { spawnSync } from "node:child_process";
import { chmodSync } from "node:fs";
import { link, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Connection } from "../../src/client/connect.ts";
import { getFiles } from "../../src/client/transfer.ts";
import { PairlinkError } from "../../src/errors.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import type { Timeouts } from "../../src/protocol/limits.ts";
import {
	connectTo,
	makeDevice,
	OPEN_POLICY,
	removeTempDirs,
	serve,
	type TestDevice,
	tempDir,
	trustEachOther,
} from "../helpers/devices.ts";
import {
	expectRefusal,
	keepPart,
	randomBytes,
	sha256Hex,
	snapshot,
	within,
} from "../helpers/files.ts";
import { makePrng } from "../helpers/prng.ts";

const TIMEOUTS: Timeouts = { handshakeMs: 5000, idleMs: 30_000 };
const WAIT_MS = 15_000;
setDefaultTimeout(60_000);
const prng = makePrng(0xc0a7a1);
/** Over one data frame: such uploads are resumable and their part files recorded. */
const BIG = 3 * 1024 * 1024 + 11;
const SECRET = "the server's secret, never to leave the machine\n";

let serverDev: TestDevice;
let clientDev: TestDevice;
let otherDev: TestDevice;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
	[serverDev, clientDev, otherDev] = await Promise.all([
		makeDevice("desk"),
		makeDevice("laptop"),
		makeDevice("phone"),
	]);
	await trustEachOther(clientDev, serverDev);
	await trustEachOther(otherDev, serverDev);
});
afterEach(async () => {
	for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(removeTempDirs);

/** A server on `root` and a connection from `dev` (default: the laptop). */
async function served(
	root: SandboxRoot,
	policy = OPEN_POLICY,
	dev: TestDevice = clientDev,
): Promise<Connection> {
	const srv = serve(serverDev, { root, policy, timeouts: TIMEOUTS });
	cleanups.push(() => srv.server.stop());
	return connect(srv.target(), dev);
}

async function connect(target: Parameters<typeof connectTo>[1], dev: TestDevice = clientDev) {
	const conn = await within(WAIT_MS, connectTo(dev, target, { timeouts: TIMEOUTS }), "connect");
	cleanups.push(() => conn.close());
	return conn;
}

/** base/share is served; base/outside must never be read or changed. */
async function layout() {
	const base = await tempDir("pairlink-contain-");
	const share = join(base, "share");
	const outside = join(base, "outside");
	await mkdir(share);
	await mkdir(outside);
	await writeFile(join(outside, "secret.txt"), SECRET);
	await writeFile(join(outside, "outside-only.txt"), SECRET);
	return { base, share, outside };
}

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** Upload `data` (from a fresh local file) to `remote`; the result says where it resumed from. */
async function putBytes(conn: Connection, data: Uint8Array, remote: string) {
	const local = join(await tempDir("pairlink-contain-up-"), "src.bin");
	await writeFile(local, data);
	return within(WAIT_MS, conn.session.upload(local, remote, { overwrite: false }), "put");
}

async function fetchBytes(conn: Connection, path: string): Promise<string> {
	const local = await tempDir("pairlink-contain-get-");
	const root = await SandboxRoot.open(local);
	try {
		await conn.session.download(path, root, "got", { overwrite: false });
		return decode(await readFile(join(local, "got")));
	} finally {
		await root.close();
	}
}

describe("(1) the server never shares its own state directory", () => {
	async function homeShare() {
		const { base, outside } = await layout();
		const home = join(base, "home");
		const state = join(home, ".config", "pairlink");
		await mkdir(state, { recursive: true });
		await writeFile(join(state, "identity.json"), SECRET);
		await writeFile(join(state, "pending-code.json"), "{}");
		await symlink(state, join(home, "state-link"));
		const root = await SandboxRoot.openShare(home, state);
		return { home, state, outside, root };
	}

	test("a share of $HOME: identity.json is unreachable by name, by symlink, by listing, by walk", async () => {
		const { state, root } = await homeShare();
		const conn = await served(root, { ...OPEN_POLICY, allowOverwrite: true, allowDelete: true });
		const got: string[] = [];
		for (const p of [".config/pairlink/identity.json", "state-link/identity.json"]) {
			await fetchBytes(conn, p).then(
				(b) => got.push(b),
				() => undefined,
			);
		}
		expect(got).toEqual([]);
		expect((await conn.session.list(".config")).map((e) => e.name)).toEqual([]);
		await expectRefusal(conn.session.list(".config/pairlink"), "not-found");
		await expectRefusal(conn.session.list("state-link"), "not-found");
		const walked = (await conn.session.walk("")).entries.map((e) => e.path);
		expect(walked.filter((p) => p.includes("identity"))).toEqual([]);
		// Writing there: replacing the pending code, creating files, removing the directory.
		const local = await tempDir("pairlink-contain-up-");
		await writeFile(join(local, "pending-code.json"), '{"code":"mine","expiresAt":"2099"}');
		await expectRefusal(
			conn.session.upload(join(local, "pending-code.json"), ".config/pairlink/pending-code.json", {
				overwrite: true,
			}),
			"not-found",
		);
		// Writing at the state directory's own name says no more than that nothing is there.
		await expectRefusal(putBytes(conn, new Uint8Array(3), ".config/pairlink"), "not-found");
		expect(await readdir(join(state, ".."))).toEqual(["pairlink"]);
		await expectRefusal(conn.session.mkdir("state-link/x"), "not-found");
		await expectRefusal(conn.session.mkdir(".config/pairlink", true), "not-found");
		await expectRefusal(conn.session.rm(".config/pairlink", true), "not-found");
		await expectRefusal(conn.session.rm(".config", true), "permission");
		expect(await readFile(join(state, "pending-code.json"), "utf8")).toBe("{}");
		expect((await readdir(state)).sort()).toEqual(["identity.json", "pending-code.json"]);
	});

	test("a bind mount of the state directory inside the share is hidden too (device and inode)", async () => {
		const { home, state, root } = await homeShare();
		const mountPoint = join(home, "bound");
		await mkdir(mountPoint);
		if (spawnSync("mount", ["--bind", state, mountPoint]).status !== 0) {
			console.warn("skipped: mount --bind needs root (CI runs as root)");
			return;
		}
		cleanups.push(() => spawnSync("umount", [mountPoint]));
		const conn = await served(root);
		await expectRefusal(fetchBytes(conn, "bound/identity.json"), "not-found");
		expect((await conn.session.list("")).map((e) => e.name)).not.toContain("bound");
	});

	test("serve refuses a root inside the state directory, and says why", async () => {
		const { state } = await homeShare();
		await mkdir(join(state, "sub"));
		for (const dir of [state, join(state, "sub")]) {
			const e = await expectRefusal(SandboxRoot.openShare(dir, state), "usage");
			expect(e.message).toContain("private key");
		}
	});
});

describe("(2) a directory swapped for a symlink between check and open", () => {
	/** Runs the swapper (its own process) while `attack` runs; returns its rounds. */
	async function racing(name: string, altA: string, altB: string, attack: () => Promise<void>) {
		const stop = `${name}.stop`;
		const swapper = Bun.spawn(
			[
				process.execPath,
				join(import.meta.dir, "../helpers/swapper.ts"),
				name,
				altA,
				altB,
				stop,
				"2000000",
			],
			{ stdout: "pipe" },
		);
		try {
			await attack();
		} finally {
			await writeFile(stop, "");
		}
		const rounds = Number((await new Response(swapper.stdout).text()).trim());
		await swapper.exited;
		return rounds;
	}

	test("gets, puts, mkdirs, lists and rms through the swapped directory never reach outside", async () => {
		const { share, outside } = await layout();
		await mkdir(join(share, "d"));
		await writeFile(join(share, "d", "secret.txt"), "inside\n");
		await symlink(outside, join(share, "link"));
		const root = await SandboxRoot.open(share);
		const conn = await served(root, { ...OPEN_POLICY, allowOverwrite: true, allowDelete: true });
		const local = await tempDir("pairlink-contain-up-");
		await writeFile(join(local, "planted.txt"), "PLANTED");
		const outsideBefore = await snapshot(outside);
		const readBack: string[] = [];
		const listed: string[] = [];
		const rounds = await racing(
			join(share, "d"),
			join(share, "d.real"),
			join(share, "link"),
			async () => {
				for (let i = 0; i < 150; i++) {
					await fetchBytes(conn, "d/secret.txt").then(
						(b) => readBack.push(b),
						() => undefined,
					);
					await conn.session
						.upload(join(local, "planted.txt"), "d/secret.txt", { overwrite: true })
						.catch(() => undefined);
					await conn.session.mkdir(`d/new${i}`).catch(() => undefined);
					await conn.session.list("d").then(
						(es) => listed.push(...es.map((e) => e.name)),
						() => undefined,
					);
					await conn.session.rm(`d/new${i}`, false).catch(() => undefined);
				}
			},
		);
		expect(rounds).toBeGreaterThan(0);
		// What the attacker got: never the outside file's bytes, never its name in a listing.
		expect(readBack.filter((b) => b === SECRET)).toEqual([]);
		expect(listed).not.toContain("outside-only.txt");
		expect(await snapshot(outside)).toEqual(outsideBefore);
		expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe(SECRET);
	});
});

describe("(3) part files are never trusted", () => {
	test("a part file hard-linked to a file outside the root: a remote put never writes into it", async () => {
		const { share, outside } = await layout();
		await link(join(outside, "secret.txt"), join(share, ".victim.bin.pairlink-part"));
		const conn = await served(await SandboxRoot.open(share));
		const data = randomBytes(prng, BIG);
		const r = await putBytes(conn, data, "victim.bin");
		expect(r.resumedFrom).toBe(0);
		expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe(SECRET);
		expect(sha256Hex(await readFile(join(share, "victim.bin")))).toBe(sha256Hex(data));
		expect((await stat(join(share, "victim.bin"))).nlink).toBe(1);
	});

	test("a part file hard-linked to a file outside the destination: a get never writes into it", async () => {
		const { share, outside } = await layout();
		const data = randomBytes(prng, BIG);
		await writeFile(join(share, "f.bin"), data);
		const conn = await served(await SandboxRoot.open(share));
		const dest = await tempDir("pairlink-contain-dest-");
		await link(join(outside, "secret.txt"), join(dest, ".f.bin.pairlink-part"));
		const summary = await within(
			WAIT_MS,
			getFiles(conn.session, ["f.bin"], { recursive: false, overwrite: false, dest }),
			"get",
		);
		expect(summary.files).toBe(1);
		expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe(SECRET);
		expect(sha256Hex(await readFile(join(dest, "f.bin")))).toBe(sha256Hex(data));
	});

	test("one device never adopts (or learns the hash of) another device's unfinished upload", async () => {
		const { share } = await layout();
		const data = randomBytes(prng, BIG);
		// The laptop's interrupted upload: recorded for the laptop.
		await keepPart(share, "doc.bin", data.subarray(0, 2 * 1024 * 1024), {
			peer: clientDev.identity.fingerprint,
		});
		const phone = await served(await SandboxRoot.open(share), OPEN_POLICY, otherDev);
		// Even holding the same bytes, the phone must not continue the laptop's part file.
		const r = await putBytes(phone, data, "doc.bin");
		expect(r.resumedFrom).toBe(0);
		expect(sha256Hex(await readFile(join(share, "doc.bin")))).toBe(sha256Hex(data));
	});

	test("the same device resumes its own recorded part file", async () => {
		const { share } = await layout();
		const data = randomBytes(prng, BIG);
		const n = 2 * 1024 * 1024;
		await keepPart(share, "doc.bin", data.subarray(0, n), { peer: clientDev.identity.fingerprint });
		const conn = await served(await SandboxRoot.open(share));
		const r = await putBytes(conn, data, "doc.bin");
		expect(r.resumedFrom).toBe(n);
		expect(sha256Hex(await readFile(join(share, "doc.bin")))).toBe(sha256Hex(data));
	});

	test("a part file planted by another local account never becomes the final file (owner stays ours)", async () => {
		if (process.getuid?.() !== 0) {
			console.warn("skipped: dropping to a second account needs root (CI runs as root)");
			return;
		}
		const { base, share } = await layout();
		chmodSync(base, 0o755);
		chmodSync(share, 0o777);
		const data = randomBytes(prng, BIG);
		const prefix = join(base, "prefix.bin");
		await writeFile(prefix, data.subarray(0, 2 * 1024 * 1024));
		chmodSync(prefix, 0o644);
		const planted = join(share, ".doc.bin.pairlink-part");
		const r = spawnSync("setpriv", [
			"--reuid=65534",
			"--regid=65534",
			"--clear-groups",
			"sh",
			"-c",
			`cat "$1" > "$2" && chmod 600 "$2"`,
			"sh",
			prefix,
			planted,
		]);
		expect(r.status).toBe(0);
		expect((await lstat(planted)).uid).toBe(65534);
		const conn = await served(await SandboxRoot.open(share));
		const put = await putBytes(conn, data, "doc.bin");
		expect(put.resumedFrom).toBe(0);
		const final = await stat(join(share, "doc.bin"));
		expect(final.uid).toBe(0);
		// The mode of any new file of ours, not the planted file's.
		expect(final.mode & 0o777).toBe(0o666 & ~process.umask());
		expect(sha256Hex(await readFile(join(share, "doc.bin")))).toBe(sha256Hex(data));
	});

	test("part names in any letter case are hidden and never addressed", async () => {
		const { share } = await layout();
		await writeFile(join(share, ".x.PAIRLINK-PART"), SECRET);
		await writeFile(join(share, "ok.txt"), "ok");
		const conn = await served(await SandboxRoot.open(share));
		expect((await conn.session.list("")).map((e) => e.name)).toEqual(["ok.txt"]);
		await expectRefusal(fetchBytes(conn, ".x.PAIRLINK-PART"), "invalid-path");
	});
});

describe("(4) a file that is not a file", () => {
	test("a regular file swapped for a FIFO never blocks the server: other clients are still served", async () => {
		const { share } = await layout();
		await writeFile(join(share, "f.txt"), "regular\n");
		const fifo = join(share, "f.fifo");
		expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
		const srv = serve(serverDev, {
			root: await SandboxRoot.open(share),
			policy: OPEN_POLICY,
			timeouts: TIMEOUTS,
		});
		cleanups.push(() => srv.server.stop());
		const conn = await connect(srv.target());
		const outcomes = new Map<string, number>();
		const stop = join(share, "stop");
		const swapper = Bun.spawn(
			[
				process.execPath,
				join(import.meta.dir, "../helpers/swapper.ts"),
				join(share, "f.txt"),
				join(share, "f.file"),
				fifo,
				stop,
				"2000000",
			],
			{ stdout: "pipe" },
		);
		try {
			// Many gets at once: each one that met the FIFO would hold a file-pool thread for good.
			for (let round = 0; round < 10; round++) {
				await Promise.all(
					Array.from({ length: 20 }, () =>
						fetchBytes(conn, "f.txt").then(
							(b) => outcomes.set(b, (outcomes.get(b) ?? 0) + 1),
							(e: unknown) => {
								const code = e instanceof PairlinkError ? e.code : String(e);
								outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
							},
						),
					),
				);
			}
		} finally {
			await writeFile(stop, "");
			await swapper.exited;
		}
		// Only the file's bytes or a refusal, or "changed" (swapped while it was read); never a hang.
		for (const k of outcomes.keys())
			expect(["regular\n", "refused", "not-found", "changed"]).toContain(k);
		// A new client still completes the handshake and is served.
		const late = await connect(srv.target(), otherDev);
		expect((await within(WAIT_MS, late.session.list(""), "list")).length).toBeGreaterThan(0);
	});
});

describe("(5) the client's destination", () => {
	test("a symlink standing at DEST/DIR (or deeper) is never followed by get -r", async () => {
		const { share, outside } = await layout();
		await mkdir(join(share, "dir", "sub"), { recursive: true });
		await writeFile(join(share, "dir", "a.txt"), "A");
		await writeFile(join(share, "dir", "sub", "b.txt"), "B");
		const conn = await served(await SandboxRoot.open(share));
		const before = await snapshot(outside);
		for (const at of ["dir", "dir/sub"]) {
			const dest = await tempDir("pairlink-contain-dest-");
			if (at === "dir/sub") await mkdir(join(dest, "dir"));
			await symlink(outside, join(dest, at));
			await getFiles(conn.session, ["dir"], { recursive: true, overwrite: false, dest }).then(
				() => undefined,
				() => undefined,
			);
			expect((await lstat(join(dest, at))).isSymbolicLink()).toBe(true);
		}
		expect(await snapshot(outside)).toEqual(before);
	});

	test("-o naming a symlink to a directory is the user's choice: followed", async () => {
		const { base, share } = await layout();
		await writeFile(join(share, "a.txt"), "A");
		const conn = await served(await SandboxRoot.open(share));
		const real = join(base, "real-dest");
		await mkdir(real);
		await symlink(real, join(base, "dest-link"));
		await getFiles(conn.session, ["a.txt"], {
			recursive: false,
			overwrite: false,
			dest: join(base, "dest-link"),
		});
		expect(await readFile(join(real, "a.txt"), "utf8")).toBe("A");
	});
});

describe("names the old checks misjudged", () => {
	test("a real subdirectory named ..notes is inside the share", async () => {
		const { share } = await layout();
		await mkdir(join(share, "..notes"));
		await writeFile(join(share, "..notes", "n.txt"), "note");
		const conn = await served(await SandboxRoot.open(share));
		expect(await fetchBytes(conn, "..notes/n.txt")).toBe("note");
		expect((await conn.session.list("..notes")).map((e) => e.name)).toEqual(["n.txt"]);
	});

	test("a 250-byte name is received: its part file name stays within 255 bytes", async () => {
		const { share } = await layout();
		const conn = await served(await SandboxRoot.open(share));
		const name = `${"n".repeat(246)}.bin`;
		const data = randomBytes(prng, BIG);
		await putBytes(conn, data, name);
		expect(sha256Hex(await readFile(join(share, name)))).toBe(sha256Hex(data));
		expect(await readdir(share)).toEqual([name]);
	});
});
