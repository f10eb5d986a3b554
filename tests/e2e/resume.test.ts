/**
 * Interrupted transfers resume from verified partial data: kill -9 of the
 * client mid-get and mid-put, and a server killed mid-get. Each run waits
 * for the part file to grow (fs.watch events), kills, then runs the same
 * command again and checks resumedFrom, the SHA-256 and that nothing but
 * the final file is left.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { binaryExists, runPairlink, spawnPairlink, startServe } from "../helpers/cli.ts";
import {
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	tempDir,
	tempRoot,
	trustEachOther,
} from "../helpers/devices.ts";
import { fileSha256, whenFileReaches, writeBigFile } from "../helpers/faults.ts";

const MODE = binaryExists() ? "binary" : "source";
const SIZE = Number(process.env.PAIRLINK_RESUME_MIB ?? 512) * 1024 * 1024;
const KILL_AT = Math.min(64 * 1024 * 1024, SIZE / 4);
const TEST_MS = 120_000;

const spawnCli = (args: string[], home: string) =>
	spawnPairlink(args, { mode: MODE, home, timeoutMs: 60_000 });
const runCli = (args: string[], home: string) =>
	runPairlink(args, { mode: MODE, home, timeoutMs: 60_000 });

function lastFileLine(stdout: string) {
	const lines = stdout
		.trim()
		.split("\n")
		.map((l) => JSON.parse(l));
	return lines.find((l) => "resumedFrom" in l) as {
		path: string;
		bytes: number;
		sha256: string;
		resumedFrom: number;
	};
}

let server: TestDevice;
let client: TestDevice;
let source: string;
let sourceSha: string;

beforeAll(async () => {
	[server, client] = await Promise.all([makeDevice("desk"), makeDevice("laptop")]);
	await trustEachOther(client, server);
	const dir = await tempDir("pairlink-src-");
	source = join(dir, "big.bin");
	sourceSha = await writeBigFile(source, SIZE);
}, TEST_MS);

afterAll(removeTempDirs);

describe("resume after kill -9", () => {
	test(
		"client killed mid-get: the same get resumes, verifies, and leaves only the final file",
		async () => {
			const root = tempRoot();
			await Bun.write(join(root.dir, "big.bin"), Bun.file(source));
			const srv = serve(server, { root });
			try {
				const dest = await tempDir("pairlink-dest-");
				const args = ["get", `127.0.0.1:${srv.server.port}`, "big.bin", "-o", dest, "--json"];
				const first = spawnCli(args, client.home);
				await whenFileReaches(dest, ".big.bin.pairlink-part", KILL_AT);
				first.proc.kill(9);
				expect(await first.exited).not.toBe(0);
				expect(existsSync(join(dest, "big.bin"))).toBe(false);

				const again = await runCli(args, client.home);
				expect(again.stderr).toBe("");
				expect(again.exitCode).toBe(0);
				const done = lastFileLine(again.stdout);
				expect(done.resumedFrom).toBeGreaterThan(0);
				expect(done.sha256).toBe(sourceSha);
				expect(await fileSha256(join(dest, "big.bin"))).toBe(sourceSha);
				expect(await readdir(dest)).toEqual(["big.bin"]);
			} finally {
				await srv.server.stop(0);
			}
		},
		TEST_MS,
	);

	test(
		"client killed mid-put: the same put resumes from the server's part file",
		async () => {
			const root = tempRoot();
			const srv = serve(server, { root });
			try {
				const args = ["put", `127.0.0.1:${srv.server.port}`, source, "--json"];
				const first = spawnCli(args, client.home);
				await whenFileReaches(root.dir, ".big.bin.pairlink-part", KILL_AT);
				first.proc.kill(9);
				expect(await first.exited).not.toBe(0);
				await srv.waitFor((e) => e.event === "disconnected");

				const again = await runCli(args, client.home);
				expect(again.exitCode).toBe(0);
				const done = lastFileLine(again.stdout);
				expect(done.resumedFrom).toBeGreaterThan(0);
				expect(done.sha256).toBe(sourceSha);
				expect(await fileSha256(join(root.dir, "big.bin"))).toBe(sourceSha);
				expect(await readdir(root.dir)).toEqual(["big.bin"]);
			} finally {
				await srv.server.stop(0);
			}
		},
		TEST_MS,
	);

	test(
		"server killed mid-get: the client reports it (exit 6), and resumes against the restarted server",
		async () => {
			const root = await tempDir("pairlink-served-");
			await Bun.write(join(root, "big.bin"), Bun.file(source));
			const start = () =>
				startServe({ mode: MODE, home: server.home, dir: root, args: ["--no-pair"] });
			const dest = await tempDir("pairlink-dest-");
			await mkdir(dest, { recursive: true });
			const s1 = await start();
			const first = spawnCli(["get", s1.address, "big.bin", "-o", dest, "--json"], client.home);
			await whenFileReaches(dest, ".big.bin.pairlink-part", KILL_AT);
			s1.serve.proc.kill(9);
			await s1.serve.exited;
			expect(await first.exited).toBe(6);
			expect(first.stderr).toMatch(/again|resume/i);
			expect(existsSync(join(dest, "big.bin"))).toBe(false);

			const s2 = await start();
			try {
				const again = await runCli(
					["get", s2.address, "big.bin", "-o", dest, "--json"],
					client.home,
				);
				expect(again.exitCode).toBe(0);
				const done = lastFileLine(again.stdout);
				expect(done.resumedFrom).toBeGreaterThan(0);
				expect(await fileSha256(join(dest, "big.bin"))).toBe(sourceSha);
				expect(await readdir(dest)).toEqual(["big.bin"]);
			} finally {
				await s2.serve.stop();
			}
		},
		TEST_MS,
	);
});
