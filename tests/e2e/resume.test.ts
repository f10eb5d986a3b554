/**
 * Interrupted transfers resume from verified partial data: kill -9 of the
 * client mid-get and mid-put, and a server killed mid-get. Each run waits
 * for the part file to grow (fs.watch events), kills, then runs the same
 * command again and checks resumedFrom, the SHA-256 and that nothing but
 * the final file is left.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, watch } from "node:fs";
import { mkdir, open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { makeDevice, removeTempDirs, serve, type TestDevice, tempDir, tempRoot, trustEachOther } from "../helpers/devices.ts";

const REPO = join(import.meta.dir, "..", "..");
const BINARY = join(REPO, "dist", "pairlink");
const SIZE = Number(process.env.PAIRLINK_RESUME_MIB ?? 512) * 1024 * 1024;
const KILL_AT = Math.min(64 * 1024 * 1024, SIZE / 4);
const TEST_MS = 120_000;

function cli(args: string[], home: string): string[] {
	return existsSync(BINARY) ? [BINARY, ...args] : [process.execPath, join(REPO, "src", "main.ts"), ...args];
}

function spawnCli(args: string[], home: string) {
	return Bun.spawn(cli(args, home), {
		env: { PATH: process.env.PATH ?? "", HOME: home, PAIRLINK_HOME: home, NO_COLOR: "1" },
		stdin: "ignore",
		stdout: "pipe",
		stderr: "pipe",
	});
}

async function runCli(args: string[], home: string) {
	const p = spawnCli(args, home);
	const timer = setTimeout(() => p.kill(9), 60_000);
	const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
	clearTimeout(timer);
	return { stdout, stderr, code };
}

/** A file whose every MiB differs, so a wrong resume offset cannot go unnoticed. */
async function makeBigFile(path: string, size: number): Promise<string> {
	const block = crypto.getRandomValues(new Uint8Array(1024 * 1024));
	const fh = await open(path, "w");
	const h = new Bun.CryptoHasher("sha256");
	for (let off = 0, i = 0; off < size; off += block.length, i++) {
		new DataView(block.buffer).setUint32(0, i);
		const chunk = block.subarray(0, Math.min(block.length, size - off));
		h.update(chunk);
		await fh.write(chunk, 0, chunk.length, off);
	}
	await fh.close();
	return h.digest("hex");
}

async function sha256File(path: string): Promise<string> {
	const h = new Bun.CryptoHasher("sha256");
	for await (const chunk of Bun.file(path).stream()) h.update(chunk);
	return h.digest("hex");
}

/** Resolves once `dir/name` holds at least `bytes` bytes; driven by fs.watch events. */
function whenFileReaches(dir: string, name: string, bytes: number): Promise<void> {
	return new Promise((resolve, reject) => {
		const path = join(dir, name);
		const check = async () => {
			const s = await stat(path).catch(() => undefined);
			if (s && s.size >= bytes) {
				watcher.close();
				clearTimeout(timer);
				resolve();
			}
		};
		const watcher = watch(dir, () => void check());
		const timer = setTimeout(() => {
			watcher.close();
			reject(new Error(`${name} never reached ${bytes} bytes`));
		}, 60_000);
		void check();
	});
}

function lastFileLine(stdout: string) {
	const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
	return lines.find((l) => "resumedFrom" in l) as { path: string; bytes: number; sha256: string; resumedFrom: number };
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
	sourceSha = await makeBigFile(source, SIZE);
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
				first.kill(9);
				expect(await first.exited).not.toBe(0);
				expect(existsSync(join(dest, "big.bin"))).toBe(false);

				const again = await runCli(args, client.home);
				expect(again.stderr).toBe("");
				expect(again.code).toBe(0);
				const done = lastFileLine(again.stdout);
				expect(done.resumedFrom).toBeGreaterThan(0);
				expect(done.sha256).toBe(sourceSha);
				expect(await sha256File(join(dest, "big.bin"))).toBe(sourceSha);
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
				first.kill(9);
				expect(await first.exited).not.toBe(0);
				await srv.waitFor((e) => e.event === "disconnected");

				const again = await runCli(args, client.home);
				expect(again.code).toBe(0);
				const done = lastFileLine(again.stdout);
				expect(done.resumedFrom).toBeGreaterThan(0);
				expect(done.sha256).toBe(sourceSha);
				expect(await sha256File(join(root.dir, "big.bin"))).toBe(sourceSha);
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
			const startServe = async () => {
				const p = spawnCli(["serve", root, "--host", "127.0.0.1", "--port", "0", "--no-pair", "--json"], server.home);
				const reader = p.stdout.getReader();
				const { value } = await reader.read();
				reader.releaseLock();
				const listening = JSON.parse(new TextDecoder().decode(value).split("\n")[0] as string) as { port: number };
				return { p, port: listening.port };
			};
			const dest = await tempDir("pairlink-dest-");
			await mkdir(dest, { recursive: true });
			const s1 = await startServe();
			const first = spawnCli(["get", `127.0.0.1:${s1.port}`, "big.bin", "-o", dest, "--json"], client.home);
			await whenFileReaches(dest, ".big.bin.pairlink-part", KILL_AT);
			s1.p.kill(9);
			await s1.p.exited;
			const firstCode = await first.exited;
			expect(firstCode).toBe(6);
			expect(await new Response(first.stderr).text()).toMatch(/again|resume/i);
			expect(existsSync(join(dest, "big.bin"))).toBe(false);

			const s2 = await startServe();
			try {
				const again = await runCli(["get", `127.0.0.1:${s2.port}`, "big.bin", "-o", dest, "--json"], client.home);
				expect(again.code).toBe(0);
				const done = lastFileLine(again.stdout);
				expect(done.resumedFrom).toBeGreaterThan(0);
				expect(await sha256File(join(dest, "big.bin"))).toBe(sourceSha);
				expect(await readdir(dest)).toEqual(["big.bin"]);
			} finally {
				s2.p.kill("SIGTERM");
				await s2.p.exited;
			}
		},
		TEST_MS,
	);
});
