/**
 * Stopping a server (Ctrl-C / SIGTERM in `serve`) stops accepting at once,
 * lets a running transfer finish within the grace period, and when the
 * grace period is shorter, keeps the partial file resumable.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, watch } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { PairlinkError } from "../../src/errors.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	serve,
	tempDir,
	tempRoot,
	trustEachOther,
} from "../helpers/devices.ts";

const SIZE = 96 * 1024 * 1024;

afterAll(removeTempDirs);

function whenPartGrows(dir: string, name: string, bytes: number): Promise<void> {
	return new Promise((resolve) => {
		const path = join(dir, `.${name}.pairlink-part`);
		const check = async () => {
			const s = await stat(path).catch(() => undefined);
			if (s && s.size >= bytes) {
				w.close();
				resolve();
			}
		};
		const w = watch(dir, () => void check());
		void check();
	});
}

async function setup() {
	const [server, client] = await Promise.all([makeDevice("desk"), makeDevice("laptop")]);
	await trustEachOther(client, server);
	const root = tempRoot();
	const block = crypto.getRandomValues(new Uint8Array(1024 * 1024));
	const w = Bun.file(join(root.dir, "big.bin")).writer();
	for (let i = 0; i < SIZE / block.length; i++) w.write(block);
	await w.end();
	const srv = serve(server, { root });
	const conn = await connectTo(client, srv.target());
	const dest = await tempDir("pairlink-stop-");
	return { server, srv, conn, dest, local: await SandboxRoot.open(dest) };
}

test("a transfer running when the server stops finishes within the grace period; new connections are refused", async () => {
	const { server, srv, conn, dest, local } = await setup();
	const download = conn.session.download("big.bin", local, "big.bin", { overwrite: false });
	await whenPartGrows(dest, "big.bin", 8 * 1024 * 1024);
	const stopped = srv.server.stop(10_000);
	const started = performance.now();
	const late = await makeDevice("late");
	await trustEachOther(late, server);
	const refused = await connectTo(late, srv.target()).catch((e) => e);
	expect(refused).toBeInstanceOf(PairlinkError);
	// The listener is closed at once: the TCP connection itself is refused.
	expect(refused.code).toBe("connect-failed");
	const r = await download;
	expect(r.bytes).toBe(SIZE);
	expect((await stat(join(dest, "big.bin"))).size).toBe(SIZE);
	await stopped;
	// Closed as soon as the transfer was done, not at the end of the grace period.
	expect(performance.now() - started).toBeLessThan(8000);
	expect(srv.events.at(-1)).toEqual({ event: "stopped" });
}, 30_000);

test("a transfer still running when the grace period ends is cut, and its partial file stays resumable", async () => {
	const { srv, conn, dest, local } = await setup();
	const download = conn.session
		.download("big.bin", local, "big.bin", { overwrite: false })
		.catch((e) => e);
	await whenPartGrows(dest, "big.bin", 8 * 1024 * 1024);
	await srv.server.stop(0);
	const err = await download;
	expect(err).toBeInstanceOf(PairlinkError);
	// Said as what it is: the server stopped (not "busy"), a transfer failure that resumes.
	expect({ code: err.code, exit: err.exitCode, message: err.message }).toEqual({
		code: "interrupted",
		exit: 6,
		message: expect.stringMatching(/server stopped/),
	});
	expect(err.hint).toMatch(/same command again/);
	expect(existsSync(join(dest, "big.bin"))).toBe(false);
	expect((await stat(join(dest, ".big.bin.pairlink-part"))).size).toBeGreaterThan(0);
}, 30_000);
