/**
 * Rough edges a newcomer met (notes/newcomer-1.md), each driven through the
 * binary as that person did: local failures said to be local and never "a
 * bug", pairing messages that name the device, a second chance at the code
 * prompt, device names that cannot hide an address.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { formatBytes } from "../../src/cli/format.ts";
import { generateCode } from "../../src/crypto/pairing-code.ts";
import { stateDirPairingGate } from "../../src/server/pairing-gate.ts";
import { savePendingCode } from "../../src/store/pending-code.ts";
import {
	binaryExists,
	cliArgv,
	describeResult,
	runPairlink,
	spawnPairlink,
} from "../helpers/cli.ts";
import {
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	type TestServer,
	tempDir,
	tempRoot,
	trustEachOther,
} from "../helpers/devices.ts";
import { fileSha256, MIB, partFileName, whenFileReaches, writeBigFile } from "../helpers/faults.ts";
import { drivePty } from "../helpers/pty.ts";

const MODE = binaryExists() ? "binary" : "source";
const isRoot = process.getuid?.() === 0;

let desk: TestDevice;
let srv: TestServer;
let rootDir: string;
const address = () => `127.0.0.1:${srv.server.port}`;

beforeAll(async () => {
	desk = await makeDevice("desk");
	const root = tempRoot();
	rootDir = root.dir;
	mkdirSync(join(rootDir, "docs"));
	writeFileSync(join(rootDir, "docs", "a.txt"), "alpha\n");
	writeFileSync(join(rootDir, "docs", "b.txt"), "beta\n");
	mkdirSync(join(rootDir, "one"));
	writeFileSync(join(rootDir, "one", "x.txt"), "x\n");
	srv = serve(desk, { root, pairing: stateDirPairingGate(desk.home) });
});

afterAll(async () => {
	await srv.server.stop(0);
	await removeTempDirs();
});

/** A device that desk trusts and that trusts desk, with a working directory. */
async function trustedLaptop(name = "laptop") {
	const laptop = await makeDevice(name);
	await trustEachOther(laptop, desk, address());
	return { laptop, cwd: await tempDir("pairlink-cwd-") };
}

const run = (args: string[], home: string, extra: Parameters<typeof runPairlink>[1] = {}) =>
	runPairlink(args, { mode: MODE, home, timeoutMs: 30_000, ...extra });

const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l.includes("ERROR"));

describe("local failures are this device's", () => {
	test.skipIf(!isRoot)(
		"get -r into a read-only file system: exit 5, the path, 'read-only' and 'on this device', once",
		async () => {
			const { laptop, cwd } = await trustedLaptop("ro-laptop");
			const ro = join(cwd, "ro");
			mkdirSync(ro);
			execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]);
			try {
				const r = await run(["get", address(), "docs", "-r", "-o", join(ro, "x")], laptop.home, {
					cwd,
				});
				expect(r.exitCode, describeResult(r)).toBe(5);
				expect(r.stderr).not.toContain("bug");
				expect(r.stderr).not.toContain("EROFS");
				const lines = errorLines(r.stderr);
				// The directory that could not be made is told once; the other file points to it.
				expect(
					lines.filter((l) => l.includes("read-only file system on this device")),
				).toHaveLength(1);
				expect(lines.join("\n")).toContain(JSON.stringify(join(ro, "x")));
				const one = await run(["get", address(), "docs/a.txt", "-o", `${ro}/`], laptop.home, {
					cwd,
				});
				expect(one.exitCode, describeResult(one)).toBe(5);
				expect(one.stderr).toContain("read-only file system on this device");
			} finally {
				execFileSync("umount", [ro]);
			}
		},
		60_000,
	);

	test("PAIRLINK_HOME naming a file is a usage error (exit 2), not a bug", async () => {
		const dir = await tempDir("pairlink-cwd-");
		const file = join(dir, "notadir");
		await writeFile(file, "x");
		const r = await run(["id"], file);
		expect(r.exitCode, describeResult(r)).toBe(2);
		expect(r.stderr).toContain("exists but is not a directory");
		expect(r.stderr).not.toContain("bug");
	});

	test("put of a FIFO is refused on this device, not 'by the server'", async () => {
		const { laptop, cwd } = await trustedLaptop("fifo-laptop");
		execFileSync("mkfifo", [join(cwd, "fifo1")]);
		const r = await run(["put", address(), "fifo1"], laptop.home, { cwd });
		expect(r.exitCode, describeResult(r)).toBe(5);
		expect(r.stderr).toContain('"fifo1" on this device is not a regular file or directory');
		expect(r.stderr).not.toContain("server");
	});
});

describe("pairing messages", () => {
	test("pair again with a trusted device: exit 0, its real name, nothing to do; connect --code-stdin shows the fingerprint", async () => {
		const laptop = await makeDevice("twice");
		const cwd = await tempDir("pairlink-cwd-");
		const code = generateCode();
		await savePendingCode(desk.home, { code, ttlMs: 600_000 });
		// connect pairs on the way in: the person must see whom they paired with.
		const first = await run(["connect", address(), "--code-stdin"], laptop.home, {
			cwd,
			stdin: `${code}\nls\n`,
		});
		expect(first.exitCode, describeResult(first)).toBe(0);
		const fp = desk.identity.fingerprint.slice(0, 4);
		expect(first.stderr).toMatch(new RegExp(`Paired with desk \\(${fp} `));
		const again = await run(["pair", address()], laptop.home, { code });
		expect(again.exitCode, describeResult(again)).toBe(0);
		expect(again.stdout).toContain("Already paired with desk");
		expect(again.stdout).toContain("nothing to do");
		expect(again.stdout).toContain("pairlink ls desk");
		expect(again.stdout + again.stderr).not.toContain("NAME");
	}, 60_000);

	test("the identity-changed warning names the device and says each thing once", async () => {
		const laptop = await makeDevice("wary");
		const impostor = await makeDevice("impostor");
		// laptop trusts "desk" under impostor's fingerprint: the real desk then looks changed.
		await laptop.trust.add({
			name: "desk",
			fingerprint: impostor.identity.fingerprint,
			address: address(),
		});
		const r = await run(["ls", "desk"], laptop.home);
		expect(r.exitCode, describeResult(r)).toBe(4);
		expect(r.stderr).toContain("IDENTITY OF DESK HAS CHANGED");
		expect(r.stderr).toContain("If desk was reinstalled, run pairlink devices remove desk");
		expect(r.stderr).not.toContain("NAME");
		expect(r.stderr.match(/impersonating/gi)).toHaveLength(1);
	});

	test("a malformed code at the terminal prompt is explained and asked again", async () => {
		const laptop = await makeDevice("typo");
		const cwd = await tempDir("pairlink-cwd-");
		const code = generateCode();
		await savePendingCode(desk.home, { code, ttlMs: 600_000 });
		const r = await drivePty({
			argv: cliArgv(MODE, ["pair", address()]),
			env: { PATH: process.env.PATH ?? "", HOME: laptop.home, PAIRLINK_HOME: laptop.home },
			cwd,
			timeout: 20,
			steps: [
				{ expect: "Pairing code shown by the server", send: "wrong words here now\r" },
				{ expect: "not in the word list" },
				{ expect: "Pairing code shown by the server", send: `${code}\r` },
				{ expect: "Paired with desk" },
			],
		});
		expect(r.failed_step, r.transcript).toBeNull();
		expect(r.exit).toBe(0);
		const trusted = JSON.parse(await readFile(join(laptop.home, "trusted.json"), "utf8"));
		expect(trusted.devices[0].fingerprint).toBe(desk.identity.fingerprint);
	}, 60_000);
});

describe("device names cannot hide an address", () => {
	test("devices rename refuses IP literals, HOST:PORT, [v6] and '/', and ls ::1 still means the address", async () => {
		const { laptop } = await trustedLaptop("namer");
		for (const bad of ["::1", "127.0.0.1", "printer:47070", "[::1]:5000", "bad name/x"]) {
			const r = await run(["devices", "rename", "desk", bad], laptop.home);
			expect(r.exitCode, describeResult(r)).toBe(2);
			expect(r.stderr).toMatch(/looks like an address|cannot contain \//);
		}
		const list = await run(["devices", "list", "--json"], laptop.home);
		expect(JSON.parse(list.stdout.trim()).name).toBe("desk");
		const ok = await run(["devices", "rename", "desk", "desk 2"], laptop.home);
		expect(ok.exitCode, describeResult(ok)).toBe(0);
	});

	test("pair --name refuses an address-like name before anything is sent", async () => {
		const laptop = await makeDevice("namer2");
		const r = await run(["pair", address(), "--name", "10.0.0.1"], laptop.home, {
			code: generateCode(),
		});
		expect(r.exitCode, describeResult(r)).toBe(2);
		expect(r.stderr).toContain("looks like an address");
	});
});

describe("--help", () => {
	const help = async (args: string[]) => {
		const home = await tempDir("pairlink-help-");
		const r = await run([...args, "--help"], home);
		expect(r.exitCode, describeResult(r)).toBe(0);
		return r.stdout;
	};

	test("no line padded with trailing spaces, no default said twice, a version in every header", async () => {
		for (const args of [["serve"], ["get"], ["put"], ["code"], ["devices", "remove"], ["pair"]]) {
			const text = await help(args);
			for (const line of text.split("\n")) {
				expect(line, `${args.join(" ")}: ${JSON.stringify(line)}`).toBe(line.trimEnd());
				expect(line).not.toMatch(/default.*\(Default: /i);
			}
			expect(text.split("\n")[0]).toContain(`pairlink ${args.join(" ")} v`);
		}
	});

	test("get/put show that paths repeat; --to and --words say what SPEC says", async () => {
		expect(await help(["get"])).toContain("<HOST> <REMOTE...>");
		const put = await help(["put"]);
		expect(put).toContain("<HOST> <LOCAL...>");
		expect(put).toMatch(
			/--to=<REMOTE>\s+Where on the device: a directory when it exists there, ends with \/, or several sources or -r/,
		);
		expect(put).toContain("else the file to write");
		expect(await help(["code"])).toMatch(/--words=<N>.*default: 4/);
	});
});

describe("a transfer cut short, as the server logs it and the client tells it", () => {
	const BIG = 128 * MIB;
	let big: string;
	let bigSha: string;
	beforeAll(async () => {
		big = join(await tempDir("pairlink-src-"), "big.bin");
		bigSha = await writeBigFile(big, BIG);
	}, 60_000);

	/** laptop and a `serve` of desk's home in text mode, as a person runs it. */
	async function textServe() {
		const laptop = await makeDevice("cut-laptop");
		const share = await tempDir("pairlink-share-");
		await trustEachOther(laptop, desk);
		const serveCli = spawnPairlink(
			["serve", share, "--host", "127.0.0.1", "--port", "0", "--no-announce", "--no-pair"],
			{ mode: MODE, home: desk.home, timeoutMs: 90_000 },
		);
		const [, port] = await serveCli.waitForText(/address\s+127\.0\.0\.1:(\d+)/);
		return { laptop, share, serveCli, address: `127.0.0.1:${port}` };
	}

	test("client killed mid-put: the server logs the interruption; the re-run counts only the bytes it sent; stopped is the last line", async () => {
		const { laptop, share, serveCli, address: at } = await textServe();
		const first = spawnPairlink(["put", at, big], { mode: MODE, home: laptop.home });
		await whenFileReaches(share, partFileName("big.bin"), 4 * MIB);
		first.proc.kill(9);
		await first.exited;
		await serveCli.waitForText(
			/interrupted\s+put big\.bin by cut-laptop \(.* kept to resume from\)/,
		);
		const again = await run(["put", at, big], laptop.home);
		expect(again.exitCode, describeResult(again)).toBe(0);
		const resumedAt = again.stdout.match(/big\.bin\s+\S+ MB \(resumed at ([\d.]+ [kMG]?B)\)/)?.[1];
		expect(resumedAt, again.stdout).toBeDefined();
		const summaryLine = again.stdout.trim().split("\n").at(-1) as string;
		expect(summaryLine).toContain(`resumed (${resumedAt} were already there)`);
		expect(summaryLine.startsWith(`1 file, ${formatBytes(BIG)} in`)).toBe(false);
		expect(await fileSha256(join(share, "big.bin"))).toBe(bigSha);
		const stop = await serveCli.stop("SIGTERM");
		expect(stop.exitCode).toBe(0);
		const lines = serveCli.stdout.trim().split("\n");
		const stamp = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d {2}/;
		expect(lines.find((l) => l.includes("stopping"))).toMatch(stamp);
		expect(lines.at(-1)).toMatch(new RegExp(`${stamp.source}stopped$`));
		expect(serveCli.stderr).not.toContain("Stopping");
	}, 90_000);

	test("server killed mid-put: 'the server closed the connection', as for get, never a raw ECONNRESET", async () => {
		const { laptop, share, serveCli, address: at } = await textServe();
		const put = spawnPairlink(["put", at, big], { mode: MODE, home: laptop.home });
		await whenFileReaches(share, partFileName("big.bin"), 4 * MIB);
		serveCli.proc.kill(9);
		expect(await put.exited).toBe(6);
		expect(put.stderr).toContain("the server closed the connection");
		expect(put.stderr).not.toMatch(/ECONNRESET|EPIPE/);
	}, 90_000);
});

describe("advice that fits where it is given", () => {
	test("mkdir a/b/c names the missing parent; rm / says the top cannot go, not 'no permission'", async () => {
		const { laptop } = await trustedLaptop("advised");
		const mk = await run(["mkdir", address(), "no/such/dir"], laptop.home);
		expect(mk.exitCode, describeResult(mk)).toBe(5);
		expect(mk.stderr).toContain(
			'The parent directory of "no/such/dir" does not exist on the server',
		);
		const rm = await run(["rm", address(), "/"], laptop.home);
		expect(rm.exitCode, describeResult(rm)).toBe(5);
		expect(rm.stderr).toContain("The top of the shared directory cannot be removed");
		expect(rm.stderr).not.toContain("permission");
	});

	test("--overwrite already given: the advice never asks for it again", async () => {
		const { laptop, cwd } = await trustedLaptop("overwriter");
		// A local file where get -r must make a directory: --overwrite cannot help.
		await writeFile(join(cwd, "report.pdf"), "mine");
		const get = await run(
			["get", address(), "one", "-r", "-o", "report.pdf", "--overwrite"],
			laptop.home,
			{
				cwd,
			},
		);
		expect(get.exitCode, describeResult(get)).toBe(5);
		expect(get.stderr).toContain("a file stands where a directory must be");
		expect(get.stderr).toContain("even with --overwrite");
		expect(get.stderr).not.toContain("Pass --overwrite");
		// A server without --allow-overwrite: the client passed --overwrite already.
		await writeFile(join(cwd, "a.txt"), "different");
		const put = await run(
			["put", address(), "a.txt", "--to", "docs/", "--overwrite"],
			laptop.home,
			{
				cwd,
			},
		);
		expect(put.exitCode, describeResult(put)).toBe(5);
		expect(put.stderr).toContain("--allow-overwrite");
		expect(put.stderr).not.toMatch(/pass --overwrite/i);
	});

	test("in a session: no --help, `ls` rather than `pairlink ls`, the unknown-command advice once", async () => {
		const { laptop, cwd } = await trustedLaptop("sheller");
		const say = async (line: string) =>
			(await run(["connect", address()], laptop.home, { cwd, stdin: `${line}\n` })).stderr;
		const unknown = await say("bogus");
		expect(unknown.match(/help/gi)).toHaveLength(2); // "help for the commands, or help COMMAND"
		const missing = await say("get nope");
		expect(missing).toContain("Check the path with ls.");
		expect(missing).not.toContain("pairlink ls");
		const option = await say("ls -Z");
		expect(option).not.toContain("--help");
	});

	test("pairlink code does not assume serve is not running, and says it needs pairing on", async () => {
		const home = await tempDir("pairlink-coder-");
		const r = await run(["code"], home);
		expect(r.exitCode, describeResult(r)).toBe(0);
		expect(r.stdout).toContain("must run here without --no-pair");
	});
});

describe("serve's own mistakes, said as they are", () => {
	test("--read-only with --allow-delete (or --allow-overwrite) is refused as a contradiction", async () => {
		const [home, share] = [await tempDir("pairlink-server-"), await tempDir("pairlink-share-")];
		for (const allow of ["--allow-delete", "--allow-overwrite"]) {
			const r = await run(["serve", share, "--read-only", allow, "--no-announce"], home);
			expect(r.exitCode, describeResult(r)).toBe(2);
			expect(r.stderr).toContain(`--read-only refuses every change, so ${allow} contradicts it`);
		}
	});

	test("a --host that is no address of this machine says so, not 'another program uses the port'", async () => {
		const [home, share] = [await tempDir("pairlink-server-"), await tempDir("pairlink-share-")];
		// 192.0.2.0/24 is for documentation: never assigned to this machine, and nothing is sent.
		const r = await run(
			["serve", share, "--host", "192.0.2.7", "--port", "0", "--no-announce"],
			home,
		);
		expect(r.exitCode, describeResult(r)).toBe(3);
		expect(r.stderr).toContain("this machine has no such address");
		expect(r.stderr).not.toContain("another program");
	});
});

test("asking for a part file by name says what it is, not 'use a relative path'", async () => {
	const { laptop } = await trustedLaptop("parter");
	const r = await run(["get", address(), ".partial.bin.pairlink-part"], laptop.home);
	expect(r.exitCode, describeResult(r)).toBe(5);
	expect(r.stderr).toContain("names of unfinished transfers are not allowed");
	expect(r.stderr).toContain("run that transfer again to finish it");
	expect(r.stderr).not.toContain("Use a relative path");
});
