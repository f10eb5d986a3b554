/**
 * The real linux-arm64 release binary, under user-mode QEMU, against the
 * native x64 binary: pairing in both roles, `put -r` and `get -r` of a tree
 * holding a file over 64 MiB, and a transfer killed with SIGKILL and resumed.
 * Every arrival is compared byte for byte (SHA-256 of every file, and the
 * exact set of names) with the source.
 *
 * Needs qemu-user-static and libc6:arm64 (`.ci/run` installs them when it
 * can); skipped, saying why, where they or dist/pairlink are missing.
 * Emulation is slow, so the big file is only just over 64 MiB.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { version } from "../../package.json" with { type: "json" };
import {
	BINARY,
	binaryExists,
	killAllChildren,
	makeHome,
	makeTempDir,
	parseNdjson,
	runPairlink,
	type ServeProcess,
	type StartedServe,
	spawnPairlink,
	startServe,
} from "../helpers/cli.ts";
import { arm64Pairlink } from "../helpers/emulation.ts";
import { fileSha256, whenFileReaches, writeBigFile } from "../helpers/faults.ts";
import { type Snapshot, snapshot } from "../helpers/files.ts";
import { summary } from "./scenarios.ts";

const runner = await arm64Pairlink();
const skip = "skip" in runner ? runner.skip : binaryExists() ? undefined : `${BINARY} is missing`;
if (skip) console.warn(`SKIPPING tests/e2e/qemu.test.ts: ${skip}`);

const ARM = "argv" in runner ? runner.argv : [];
const X64 = [BINARY];
/** Just over 64 MiB, and not a whole number of any chunk size. */
const BIG = 65 * 1024 * 1024 + 7;
/** Kill a transfer once this much has arrived: well inside the big file. */
const KILL_AT = 16 * 1024 * 1024;
const TRANSFER_MS = 120_000;
const TEST_MS = 240_000;

let source: string;
let sourceTree: Snapshot;
let bigSha: string;

beforeAll(async () => {
	if (skip) return;
	source = join(await makeTempDir("pairlink-qemu-src-"), "tree");
	await mkdir(join(source, "sub", "deeper"), { recursive: true });
	bigSha = await writeBigFile(join(source, "big.bin"), BIG);
	await writeFile(join(source, "notes.txt"), "from one CPU to another\n");
	await writeFile(join(source, "sub", "empty.txt"), "");
	await writeFile(join(source, "sub", "deeper", "ünïcödé name.bin"), randomBytes(300_001));
	sourceTree = await snapshot(source);
}, TEST_MS);

afterAll(killAllChildren);

function randomBytes(n: number): Uint8Array {
	const out = new Uint8Array(n);
	for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
	return out;
}

const cli = (exe: string[], home: string, args: string[], code?: string) =>
	runPairlink(args, { exe, home, timeoutMs: TRANSFER_MS, ...(code ? { code } : {}) });

async function idOf(exe: string[], home: string): Promise<{ name: string; fingerprint: string }> {
	const r = await cli(exe, home, ["id", "--json"]);
	expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
	return parseNdjson(r.stdout)[0] as { name: string; fingerprint: string };
}

/** The `{path, bytes, sha256, resumedFrom}` lines of a get/put --json, by path. */
function filesDone(
	stdout: string,
): Map<string, { bytes: number; sha256: string; resumedFrom: number }> {
	const lines = parseNdjson(stdout).filter((l) => "resumedFrom" in l);
	return new Map(lines.map((l) => [String(l.path).split("/").pop() as string, l as never]));
}

/**
 * One role: `serverExe` serves a fresh share, `clientExe` pairs with it,
 * puts the tree, gets it back, and then a transfer in `killed` direction is
 * killed and resumed.
 */
function roleSuite(title: string, serverExe: string[], clientExe: string[], killed: "put" | "get") {
	describe.skipIf(skip !== undefined)(title, () => {
		let serverHome: string;
		let clientHome: string;
		let share: string;
		let started: StartedServe;
		let serve: ServeProcess;

		beforeAll(async () => {
			serverHome = await makeHome("qemu-server");
			clientHome = await makeHome("qemu-client");
			share = await makeTempDir("pairlink-qemu-share-");
		});
		afterAll(async () => {
			if (serve?.running) expect((await serve.stop("SIGTERM")).exitCode).toBe(0);
		});

		test(
			"pair: each side trusts the other's fingerprint",
			async () => {
				const server = await idOf(serverExe, serverHome);
				const client = await idOf(clientExe, clientHome);
				started = await startServe({
					exe: serverExe,
					home: serverHome,
					dir: share,
					timeoutMs: TEST_MS * 3,
					listenTimeoutMs: 60_000,
				});
				serve = started.serve;
				expect(started.listening.fingerprint).toBe(server.fingerprint);
				const code = started.listening.code as string;
				const pair = await cli(clientExe, clientHome, ["pair", started.address], code);
				expect(summary(pair)).toMatchObject({ exitCode: 0, stderr: "" });
				expect(await serve.waitForEvent("paired", { from: 1 })).toMatchObject({
					fingerprint: client.fingerprint,
				});
				const devices = await cli(clientExe, clientHome, ["devices", "--json"]);
				expect(parseNdjson(devices.stdout)).toEqual([
					expect.objectContaining({ fingerprint: server.fingerprint }),
				]);
			},
			TEST_MS,
		);

		test(
			"put -r: the tree with a 65 MiB file arrives byte-exact",
			async () => {
				const r = await cli(clientExe, clientHome, [
					"put",
					started.address,
					source,
					"-r",
					"--json",
				]);
				expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
				expect(filesDone(r.stdout).get("big.bin")).toMatchObject({
					bytes: BIG,
					sha256: bigSha,
					resumedFrom: 0,
				});
				expect(await snapshot(join(share, "tree"))).toEqual(sourceTree);
			},
			TEST_MS,
		);

		test(
			"get -r: the tree comes back byte-exact",
			async () => {
				const dest = await makeTempDir("pairlink-qemu-get-");
				const r = await cli(clientExe, clientHome, [
					"get",
					started.address,
					"tree",
					"-r",
					"-o",
					dest,
					"--json",
				]);
				expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
				expect(filesDone(r.stdout).get("big.bin")?.sha256).toBe(bigSha);
				expect(await readdir(dest)).toEqual(["tree"]);
				expect(await snapshot(join(dest, "tree"))).toEqual(sourceTree);
			},
			TEST_MS,
		);

		test(
			`${killed}: killed with SIGKILL mid-file, the same ${killed} resumes from the verified part`,
			async () => {
				const local = await makeTempDir("pairlink-qemu-resume-");
				// get: a fresh local copy of the big file; put: one into a fresh server directory.
				const partDir = killed === "get" ? local : join(share, "again");
				await mkdir(partDir, { recursive: true });
				const args =
					killed === "get"
						? ["get", started.address, "tree/big.bin", "-o", local, "--json"]
						: ["put", started.address, join(source, "big.bin"), "--to", "again", "--json"];
				const part = ".big.bin.pairlink-part";
				const final = join(partDir, "big.bin");
				const from = serve.events.length;
				const first = spawnPairlink(args, {
					exe: clientExe,
					home: clientHome,
					timeoutMs: TRANSFER_MS,
				});
				// A transfer that fails outright fails the test now, with its output.
				await whenFileReaches(partDir, part, KILL_AT, { giveUp: first.exited }).catch((e) => {
					throw new Error(`${e.message}\n${first.describe()}`);
				});
				first.proc.kill("SIGKILL");
				expect(await first.exited).toBeNull();
				await serve.waitFor((e) => e.event === "disconnected", { from, timeoutMs: 30_000 });

				const again = await cli(clientExe, clientHome, args);
				expect(summary(again)).toMatchObject({ exitCode: 0, stderr: "" });
				const done = filesDone(again.stdout).get("big.bin");
				expect(done?.resumedFrom).toBeGreaterThan(0);
				expect(done?.resumedFrom).toBeLessThan(BIG);
				expect(done?.sha256).toBe(bigSha);
				expect(await fileSha256(final)).toBe(bigSha);
				expect((await readdir(partDir)).filter((n) => n.includes("pairlink-part"))).toEqual([]);
			},
			TEST_MS,
		);
	});
}

describe.skipIf(skip !== undefined)("linux-arm64 under QEMU", () => {
	test("--version is package.json's version", async () => {
		const home = await makeHome("qemu-version");
		const r = await cli(ARM, home, ["--version"]);
		expect(summary(r)).toEqual({
			exitCode: 0,
			timedOut: false,
			stdout: `pairlink ${version}\n`,
			stderr: "",
		});
	});
});

roleSuite("arm64 serves, x64 is the client", ARM, X64, "put");
roleSuite("x64 serves, arm64 is the client", X64, ARM, "get");
