/**
 * The terminal, the messages and the server's log as a person meets them
 * (issue 16), driving the compiled binary when it is built (the source
 * otherwise): each device a PAIRLINK_HOME of its own, real sockets on
 * loopback, real files in temp dirs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { savePendingCode } from "../../src/store/pending-code.ts";
import { handPeer, helloExchange } from "../helpers/bad-peers.ts";
import {
	binaryExists,
	type CliMode,
	killAllChildren,
	makeTempDir,
	parseNdjson,
	removeTempDirs,
	runPairlink,
	ServeProcess,
	type StartedServe,
	startServe,
} from "../helpers/cli.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs as removeDeviceDirs,
	type TestDevice,
	trustEachOther,
} from "../helpers/devices.ts";

const MODE: CliMode = binaryExists() ? "binary" : "source";
const run = (args: string[], home: string, opts: Parameters<typeof runPairlink>[1] = {}) =>
	runPairlink(args, { mode: MODE, home, timeoutMs: 20_000, ...opts });

let server: TestDevice;
let client: TestDevice;
let share: string;

beforeAll(async () => {
	server = await makeDevice("desk");
	client = await makeDevice("laptop");
	await trustEachOther(client, server);
	share = await makeTempDir("pairlink-share-");
	await mkdir(join(share, "docs"));
	await writeFile(join(share, "docs", "a.txt"), "alpha\n");
	await writeFile(join(share, "big.bin"), new Uint8Array(1_234_567));
	// 2024-01-15 12:00 UTC: 13:00 in Paris (UTC+1 in winter), 17:30 in Kolkata.
	const when = new Date("2024-01-15T12:00:00Z");
	await utimes(join(share, "big.bin"), when, when);
});
afterEach(killAllChildren);
afterAll(async () => {
	await killAllChildren();
	await removeTempDirs();
	await removeDeviceDirs();
});

async function serveShare(args: string[] = []): Promise<StartedServe> {
	return startServe({ mode: MODE, home: server.home, dir: share, args: ["--no-pair", ...args] });
}

describe("usage errors and help", () => {
	test("a usage error prints the error first and a pointer to --help, not the whole help", async () => {
		const r = await run(["get", "--bogus"], client.home);
		expect(r.exitCode).toBe(2);
		expect(r.stdout).toBe("");
		expect(r.stderr).not.toContain("USAGE");
		expect(r.stderr.trim().split("\n")).toHaveLength(1);
		expect(r.stderr).toContain('Unknown option "--bogus"');
		expect(r.stderr).toContain("pairlink get --help");
	});

	test("`pairlink help get` is get's help; the root help lists --version", async () => {
		const help = await run(["help", "get"], client.home);
		expect(help.exitCode).toBe(0);
		expect(help.stdout).toContain("USAGE pairlink get");
		const root = await run(["help"], client.home);
		expect(root.exitCode).toBe(0);
		expect(root.stdout).toContain("--version");
	});
});

describe("people's units", () => {
	test("ls -l: local time with its offset (TZ), human sizes, '-' for a directory", async () => {
		const s = await serveShare();
		for (const [tz, clock] of [
			["Europe/Paris", "2024-01-15 13:00 +01:00"],
			["Asia/Kolkata", "2024-01-15 17:30 +05:30"],
		] as const) {
			const r = await run(["ls", s.address, "-l"], client.home, { env: { TZ: tz } });
			expect(r.exitCode).toBe(0);
			const big = r.stdout.split("\n").find((l) => l.endsWith("big.bin")) ?? "";
			expect(big).toContain(clock);
			expect(big).toContain("1.23 MB");
			const docs = r.stdout.split("\n").find((l) => l.endsWith("docs/")) ?? "";
			expect(docs).toMatch(/^dir\s+-\s/);
		}
		// Exact bytes stay in --json.
		const json = await run(["ls", s.address, "--json"], client.home);
		expect(parseNdjson(json.stdout).find((e) => e.name === "big.bin")?.size).toBe(1_234_567);
		await s.serve.stop();
	});

	test("code: '1 second', a local time without milliseconds; devices: no milliseconds", async () => {
		const home = (await makeDevice("coder")).home;
		const code = await run(["code", "--ttl", "1s"], home, { env: { TZ: "UTC" } });
		expect(code.stdout).toContain("expires in 1 second ");
		expect(code.stdout).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+00:00/);
		expect(code.stdout).not.toMatch(/\.\d{3}Z/);
		const devices = await run(["devices"], client.home, { env: { TZ: "UTC" } });
		expect(devices.stdout).toMatch(/paired at {4}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+00:00/);
		expect(devices.stdout).not.toMatch(/\.\d{3}Z/);
	});
});

describe("IPv6", () => {
	test("serve listens on IPv4 and IPv6 by default: [::1]:PORT and 127.0.0.1:PORT both list", async () => {
		const serve = new ServeProcess(["serve", share, "--port", "0", "--no-pair", "--json"], {
			mode: MODE,
			home: server.home,
			timeoutMs: 30_000,
		});
		const listening = await serve.waitForEvent("listening");
		expect(listening.host).toBe("::");
		for (const address of [`[::1]:${listening.port}`, `127.0.0.1:${listening.port}`]) {
			const r = await run(["ls", address], client.home);
			expect({ address, exit: r.exitCode, out: r.stdout }).toEqual({
				address,
				exit: 0,
				out: "big.bin\ndocs/\n",
			});
		}
		// The IPv4 client is logged as people know it, not as ::ffff:127.0.0.1.
		const connected = await serve.waitFor(
			(e) => e.event === "connected" && String(e.address).includes("127.0.0.1"),
		);
		expect(connected.address).toBe("127.0.0.1");
		await serve.stop();
	});

	test("the banner prints no link-local address (it would need the peer's zone)", async () => {
		const serve = new TextServe(["serve", share, "--host", "::", "--port", "0", "--no-pair"], {
			mode: MODE,
			home: server.home,
			timeoutMs: 30_000,
		});
		const banner = (await serve.waitForText(/[\s\S]*Press Ctrl-C/))[0];
		const address = banner.split("\n").find((l) => l.trim().startsWith("address")) ?? "";
		expect(address).not.toMatch(/fe[89ab][0-9a-f]?:/i);
		expect(address).toMatch(/\d+\.\d+\.\d+\.\d+:\d+|\[[0-9a-f:]+\]:\d+/);
		await serve.stop();
	});
});

describe("the server's side", () => {
	test("--json events carry a time; mkdir, rm and refusals are logged; the policy is stated", async () => {
		const s = await serveShare(["--read-only"]);
		expect(s.listening.policy).toEqual({
			readOnly: true,
			allowOverwrite: false,
			allowDelete: false,
		});
		expect(Date.parse(String(s.listening.time))).toBeGreaterThan(Date.now() - 60_000);
		const mk = await run(["mkdir", s.address, "new"], client.home);
		expect(mk.exitCode).toBe(5);
		const get = await run(["get", s.address, "nope.md"], client.home, {
			cwd: await makeTempDir(),
		});
		expect(get.exitCode).toBe(5);
		const refusals = [
			await s.serve.waitFor((e) => e.event === "operation" && e.op === "mkdir"),
			// `get` asks what the path is before it asks for the bytes.
			await s.serve.waitFor((e) => e.event === "operation" && e.path === "nope.md"),
		];
		expect(refusals.map((e) => [e.path, e.refused, e.device])).toEqual([
			["new", "read-only", "laptop"],
			["nope.md", "not-found", "laptop"],
		]);
		for (const e of s.serve.events) expect(typeof e.time).toBe("string");
		await s.serve.stop();
	});

	test("human log: timestamped lines, the policy in the banner, mkdir and rm logged", async () => {
		const serve = new TextServe(
			["serve", share, "--host", "127.0.0.1", "--port", "0", "--no-pair", "--allow-delete"],
			{ mode: MODE, home: server.home, timeoutMs: 30_000, env: { TZ: "UTC" } },
		);
		const port = await waitForPort(serve);
		expect(serve.stdout).toContain("allows       downloads, uploads, mkdir; no replacing files");
		expect(serve.stdout).toContain("; rm");
		expect((await run(["mkdir", `127.0.0.1:${port}`, "made"], client.home)).exitCode).toBe(0);
		expect((await run(["rm", `127.0.0.1:${port}`, "made"], client.home)).exitCode).toBe(0);
		await serve.stop("SIGTERM");
		const log = serve.stdout.split("\n");
		const stamp = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+00:00 {2}/;
		expect(log.find((l) => /mkdir\s+made by laptop/.test(l))).toMatch(stamp);
		expect(log.find((l) => /rm\s+made by laptop/.test(l))).toMatch(stamp);
		expect(log.find((l) => l.endsWith("stopped"))).toMatch(stamp);
		expect(serve.stderr).not.toContain("Ctrl-C again");
	});

	test("SIGHUP stops serve gracefully with a stopped event and exit 0", async () => {
		const s = await serveShare();
		await s.serve.stop("SIGHUP");
		expect(s.serve.exitCode).toBe(0);
		expect(s.serve.events.at(-1)?.event).toBe("stopped");
	});

	test("a second Ctrl-C during the grace period stops at once, still with a stopped event", async () => {
		const s = await serveShare();
		// An upload announced and never sent: the server has a transfer in flight.
		const peer = handPeer(s.port, client.identity);
		await helloExchange(peer, "session", "laptop");
		await peer.send({ t: "put", id: 1, path: "slow.bin", size: 1_000_000, overwrite: false });
		expect((await peer.next()).t).toBe("put-ready");
		s.serve.proc.kill("SIGINT");
		expect(await s.serve.waitForEvent("stopping")).toMatchObject({ signal: "SIGINT" });
		expect(s.serve.running).toBe(true); // waiting for the upload
		const second = await s.serve.stop("SIGINT");
		expect(second).toEqual({ exitCode: 0, signalCode: null, killed: false });
		expect(s.serve.events.at(-1)).toMatchObject({ event: "stopped", forced: true });
		peer.end();
	});

	test("a code replaced by `pairlink code` while serving is announced", async () => {
		const home = (await makeDevice("pairer")).home;
		const s = await startServe({ mode: MODE, home, dir: share });
		const first = s.listening.code;
		expect(first).toBeString();
		await savePendingCode(home, { code: "able-baby-cable-dable", ttlMs: 600_000 });
		const announced = await s.serve.waitForEvent("code");
		expect(announced.code).toBe("able-baby-cable-dable");
		await s.serve.stop();
	});
});

describe("exit codes of one-shot commands", () => {
	test("exit 3 when nothing listens at the address", async () => {
		const port = await closedPort();
		const r = await run(["ls", `127.0.0.1:${port}`], client.home);
		expect(r.exitCode).toBe(3);
		expect(r.stderr).toContain(`127.0.0.1:${port}`);
	});

	test("exit 5 from get, put, rm and mkdir refused by the server", async () => {
		const s = await serveShare(["--read-only"]);
		const cwd = await makeTempDir();
		await writeFile(join(cwd, "up.txt"), "x");
		const cases: [string[], RegExp][] = [
			[["get", s.address, "missing.txt"], /does not exist on the server/],
			[["put", s.address, "up.txt"], /read-only/],
			[["rm", s.address, "big.bin"], /read-only|does not allow deleting/],
			[["mkdir", s.address, "x"], /read-only/],
		];
		for (const [args, says] of cases) {
			const r = await run(args, client.home, { cwd });
			expect({ args, exit: r.exitCode }).toEqual({ args, exit: 5 });
			expect(r.stderr).toMatch(says);
		}
		await s.serve.stop();
	});

	test("exit 1 for an unexpected failure (a damaged state file)", async () => {
		const home = (await makeDevice("damaged")).home;
		await writeFile(join(home, "trusted.json"), "{ not json");
		const r = await run(["devices"], home);
		expect(r.exitCode).toBe(1);
		expect(r.stderr).toContain("trusted.json");
	});
});

describe("messages: what happened and the one piece of advice that fits", () => {
	test("read-only server: no 'check the file permissions'; mkdir of an existing folder: no --overwrite", async () => {
		const ro = await serveShare(["--read-only"]);
		const put = await run(["mkdir", ro.address, "x"], client.home);
		expect(put.stderr).toContain("read-only");
		expect(put.stderr).not.toContain("permissions");
		await ro.serve.stop();
		const rw = await serveShare();
		const mk = await run(["mkdir", rw.address, "docs"], client.home);
		expect(mk.exitCode).toBe(5);
		expect(mk.stderr).not.toContain("--overwrite");
		const cwd = await makeTempDir();
		await writeFile(join(cwd, "big.bin"), "other");
		const put2 = await run(["put", rw.address, "big.bin"], client.home, { cwd });
		expect(put2.exitCode).toBe(5);
		// The advice about --overwrite is given once, not twice.
		expect(put2.stderr.match(/--overwrite/g)?.length ?? 0).toBeLessThanOrEqual(1);
		await rw.serve.stop();
	});

	test("--max-clients 1: the next clients are told the server is busy, with advice that fits, exit 3", async () => {
		const s = await serveShare(["--max-clients", "1"]);
		const holder = await connectTo(client, {
			display: s.address,
			hostname: "127.0.0.1",
			port: s.port,
			named: undefined,
		});
		await holder.session.ping();
		for (let i = 0; i < 3; i++) {
			const r = await run(["ls", s.address], client.home);
			expect(r.exitCode).toBe(3);
			expect(r.stderr).toContain("The server is busy");
			expect(r.stderr).toContain("--max-clients");
			// Not the advice for an address that is wrong.
			expect(r.stderr).not.toContain("Check the address");
		}
		holder.close();
		await s.serve.stop();
	});

	test("pair with a --no-pair server: not 'pair first'; pair again when paired: 'already paired', exit 0", async () => {
		const s = await serveShare();
		const stranger = await makeDevice("stranger");
		const code = "abandon-ability-able-about";
		const refused = await run(["pair", s.address], stranger.home, { code });
		expect(refused.exitCode).toBe(4);
		expect(refused.stderr).toContain("not accepting pairing");
		expect(refused.stderr).not.toContain("Pair first");
		// laptop trusts desk at this address, and desk trusts laptop.
		await trustEachOther(client, server, s.address);
		const again = await run(["pair", s.address], client.home, { code });
		// Nothing to do is success (exit 0), said on stdout with the device's own name.
		expect(again.exitCode).toBe(0);
		expect(again.stdout).toContain("Already paired with desk");
		await s.serve.stop();
	});

	test("an unknown device name says so instead of getaddrinfo ENOTFOUND", async () => {
		const r = await run(["ls", "no-such-device-here"], client.home);
		expect(r.exitCode).toBe(3);
		expect(r.stderr).not.toMatch(/ENOTFOUND|getaddrinfo/);
		expect(r.stderr).toContain('no host named "no-such-device-here"');
	});

	test("a saved device that moved: the message names its last known address", async () => {
		const me = await makeDevice("mover");
		const port = await closedPort();
		await trustEachOther(me, server, `127.0.0.1:${port}`);
		const r = await run(["ls", "desk"], me.home);
		expect(r.exitCode).toBe(3);
		expect(r.stderr).toContain(`last known address 127.0.0.1:${port}`);
	});
});

describe("the state directory and device arguments", () => {
	test("an unusable PAIRLINK_HOME says how to fix it, not that a file is damaged", async () => {
		const dir = await makeTempDir();
		await writeFile(join(dir, "a-file"), "x");
		const r = await run(["id"], join(dir, "a-file", "state"));
		expect(r.exitCode).not.toBe(0);
		expect(r.stderr).toContain("PAIRLINK_HOME");
		expect(r.stderr).not.toMatch(/damaged|a bug/);
	});

	test("a fingerprint prefix shorter than 4 digits says so, instead of 'no match'", async () => {
		const me = await makeDevice("prefixer");
		await trustEachOther(me, server);
		const prefix = server.identity.fingerprint.slice(0, 3);
		const r = await run(["devices", "remove", prefix], me.home);
		expect(r.exitCode).toBe(2);
		expect(r.stderr).toContain("too short a fingerprint prefix (4 digits at least)");
		expect(r.stderr).not.toContain("No trusted device matches");
	});
});

describe("batch mode", () => {
	test("comments and blank lines are skipped; commands echoed; a failure names its line", async () => {
		const s = await serveShare();
		const cwd = await makeTempDir();
		const script =
			"# fetch the notes\n\ncd docs\n  # indented comment\nget a.txt\nget nope.md\nls\n";
		const r = await run(["connect", s.address], client.home, { cwd, stdin: script });
		expect(r.exitCode).toBe(5);
		expect(await readFile(join(cwd, "a.txt"), "utf8")).toBe("alpha\n");
		expect(r.stderr).toContain("pairlink> cd docs");
		expect(r.stderr).toContain("pairlink> get a.txt");
		expect(r.stderr).toContain('line 6: get nope.md: "docs/nope.md" does not exist on the server');
		// It stopped at the failure: `ls` never ran.
		expect(r.stderr).not.toContain("pairlink> ls");
		await s.serve.stop();
	});
});

test("put FILE NAME in the shell: a NAME that exists nowhere is the remote destination, not a local file", async () => {
	const s = await serveShare();
	const cwd = await makeTempDir();
	await writeFile(join(cwd, "up.txt"), "x");
	const r = await run(["connect", s.address], client.home, { cwd, stdin: "put up.txt upl\n" });
	expect(r.exitCode).toBe(0);
	expect(await readFile(join(share, "upl"), "utf8")).toBe("x");
	await rm(join(share, "upl"));
	await s.serve.stop();
});

/** `serve` without --json, followed through its text output (RunningCli.waitForText). */
const TextServe = ServeProcess;
type TextServe = ServeProcess;

async function waitForPort(serve: TextServe): Promise<number> {
	const m = await serve.waitForText(/address\s+127\.0\.0\.1:(\d+)[\s\S]*Press Ctrl-C/);
	return Number(m[1]);
}

/** A port that was free a moment ago and has no listener now. */
async function closedPort(): Promise<number> {
	const srv = createServer();
	await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
	const port = (srv.address() as { port: number }).port;
	await new Promise((r) => srv.close(r));
	return port;
}
