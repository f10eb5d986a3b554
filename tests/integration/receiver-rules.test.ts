/**
 * SPEC "Names": the wire rules are the same everywhere; what an OS cannot
 * hold is refused by the receiver only, file by file, and only when the
 * receiver runs that OS. The platform is injected, so a win32 receiver's
 * rules are tested here on Linux: as the server of a put, and as the client
 * of a get. Real sockets, real files, the rest of the transfer still moves.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { getFiles, putFiles } from "../../src/client/transfer.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
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
import { within } from "../helpers/files.ts";

const WAIT_MS = 10_000;
let serverDev: TestDevice;
let clientDev: TestDevice;
const cleanups: (() => void)[] = [];

beforeAll(async () => {
	[serverDev, clientDev] = await Promise.all([makeDevice("desk"), makeDevice("laptop")]);
	await trustEachOther(serverDev, clientDev);
});
afterEach(() => {
	for (const c of cleanups.splice(0).reverse()) c();
});
afterAll(removeTempDirs);

/** Names Windows cannot hold, and where each lands in the tree. */
const WINDOWS_ONLY = ["notes: 1.txt", "CON", "trail.", "q?.txt", "a?b/x.txt", "a?b/y.txt"];

async function tree(top: string): Promise<void> {
	await mkdir(join(top, "a?b"), { recursive: true });
	for (const rel of ["ok.txt", ...WINDOWS_ONLY]) await writeFile(join(top, rel), `${rel}\n`);
}

async function setup(platform: string) {
	const dir = await tempDir("pairlink-served-");
	const srv = serve(serverDev, {
		root: await SandboxRoot.open(dir),
		policy: OPEN_POLICY,
		platform,
	});
	cleanups.push(() => srv.server.stop());
	const conn = await within(WAIT_MS, connectTo(clientDev, srv.target()), "connect");
	cleanups.push(() => conn.close());
	return { dir, session: conn.session };
}

describe("a win32 receiver refuses, file by file, what Windows cannot hold", () => {
	test("put -r to a win32 server: ok.txt moves; each Windows-only name fails with invalid-path, named", async () => {
		const { dir, session } = await setup("win32");
		const local = await tempDir("pairlink-local-");
		await tree(join(local, "t"));
		const summary = await within(
			WAIT_MS,
			putFiles(session, [join(local, "t")], { recursive: true, overwrite: false, to: undefined }),
			"put -r",
		);
		expect(summary.files).toBe(1);
		const failed = new Map(summary.failed.map((f) => [f.path, f.error]));
		expect([...failed.keys()].sort()).toEqual(WINDOWS_ONLY.map((r) => join(local, "t", r)).sort());
		for (const e of failed.values()) {
			expect(e.code).toBe("invalid-path");
			expect(e.exitCode).toBe(5);
			expect(e.message).toContain("The server refused");
		}
		expect(await readdir(join(dir, "t"))).toEqual(["ok.txt"]);
	});

	test("the same put to a linux server moves every file", async () => {
		const { dir, session } = await setup("linux");
		const local = await tempDir("pairlink-local-");
		await tree(join(local, "t"));
		const summary = await putFiles(session, [join(local, "t")], {
			recursive: true,
			overwrite: false,
			to: undefined,
		});
		expect(summary.failed).toEqual([]);
		expect(summary.files).toBe(WINDOWS_ONLY.length + 1);
		for (const rel of ["ok.txt", ...WINDOWS_ONLY])
			expect(await Bun.file(join(dir, "t", rel)).text()).toBe(`${rel}\n`);
	});

	test("get -r into a win32 client from a linux server: ok.txt moves, each Windows-only name fails here", async () => {
		const { dir, session } = await setup("linux");
		await tree(join(dir, "t"));
		const dest = await tempDir("pairlink-dest-");
		const summary = await getFiles(session, ["t"], {
			recursive: true,
			overwrite: false,
			dest,
			platform: "win32",
		});
		expect(summary.files).toBe(1);
		const failed = new Map(summary.failed.map((f) => [f.path, f.error]));
		expect([...failed.keys()].sort()).toEqual(WINDOWS_ONLY.map((r) => `t/${r}`).sort());
		for (const e of failed.values()) {
			expect(e.code).toBe("invalid-name");
			expect(e.message).toContain("on this device");
		}
		expect(await readdir(join(dest, "t"))).toEqual(["ok.txt"]);
	});
});
