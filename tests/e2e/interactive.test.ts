/**
 * `pairlink connect` as a person uses it, in a real pseudo-terminal (driven
 * by tests/helpers/pty-drive.py), and as a script on a pipe (batch mode).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import { generateCode } from "../../src/crypto/pairing-code.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { stateDirPairingGate } from "../../src/server/pairing-gate.ts";
import { savePendingCode } from "../../src/store/pending-code.ts";
import { binaryExists, cliArgv, runPairlink } from "../helpers/cli.ts";
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
import { partFileName, whenFileReaches } from "../helpers/faults.ts";
import { drivePty, type PtyResult } from "../helpers/pty.ts";

const MODE = binaryExists() ? "binary" : "source";
const argv = (args: string[]) => cliArgv(MODE, args);
function drive(
	args: string[],
	home: string,
	cwd: string,
	steps: { expect?: string; send?: string }[],
	cols = 120,
): Promise<PtyResult> {
	return drivePty({
		argv: argv(args),
		env: { PATH: process.env.PATH ?? "", HOME: home, PAIRLINK_HOME: home },
		cwd,
		timeout: 20,
		cols,
		steps,
	});
}

async function batch(args: string[], home: string, cwd: string, input: string) {
	const r = await runPairlink(args, { mode: MODE, home, cwd, stdin: input, timeoutMs: 30_000 });
	return { stdout: r.stdout, stderr: r.stderr, code: r.exitCode };
}

let server: TestDevice;
let srv: TestServer;
let rootDir: string;
let code: string;

beforeAll(async () => {
	server = await makeDevice("desk");
	code = generateCode();
	await savePendingCode(server.home, { code, ttlMs: 600_000 });
	const root = tempRoot();
	rootDir = root.dir;
	await mkdir(join(rootDir, "docs"));
	await writeFile(join(rootDir, "docs", "a.txt"), "alpha\n");
	await writeFile(join(rootDir, "docs", "b report.pdf"), "pdf-b");
	await writeFile(join(rootDir, "docs", "c.pdf"), "pdf-c");
	await writeFile(join(rootDir, "\u001b[31mred"), "escape");
	srv = serve(server, { root, pairing: stateDirPairingGate(server.home) });
});

afterAll(async () => {
	await srv.server.stop(0);
	await removeTempDirs();
});

describe("interactive session in a terminal", () => {
	test("pair by typing the code, then ls, cd, get, put, a failing command, a working one, exit", async () => {
		const client = await makeDevice("laptop");
		const cwd = await tempDir("pairlink-cwd-");
		await writeFile(join(cwd, "up.txt"), "uploaded\n");
		const r = await drive(["connect", `127.0.0.1:${srv.server.port}`], client.home, cwd, [
			{ expect: "[Pp]airing code", send: `${code.toUpperCase().replaceAll("-", " ")}\r` },
			{ expect: "desk:/> ", send: "ls\r" },
			{ expect: "docs/" },
			// Tab completes a remote directory name from the listing.
			{ expect: "desk:/> ", send: "cd do\t" },
			{ expect: "cd docs/", send: "\r" },
			{ expect: "desk:/docs> ", send: "get a.txt\r" },
			{ expect: "1 file" },
			{ expect: "desk:/docs> ", send: "put up.txt\r" },
			{ expect: "1 file" },
			{ expect: "desk:/docs> ", send: "get no-such-file\r" },
			{ expect: "does not exist on the server" },
			{ expect: "desk:/docs> ", send: "pwd\r" },
			{ expect: "/docs" },
			{ expect: "desk:/docs> ", send: "exit\r" },
		]);
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(0);
		expect(await readFile(join(cwd, "a.txt"), "utf8")).toBe("alpha\n");
		expect(await readFile(join(rootDir, "docs", "up.txt"), "utf8")).toBe("uploaded\n");
		// Paired for good: the client now trusts the server.
		const trusted = JSON.parse(await readFile(join(client.home, "trusted.json"), "utf8"));
		expect(trusted.devices[0].fingerprint).toBe(server.identity.fingerprint);
		// History is kept, private.
		expect(((await stat(join(client.home, "history"))).mode & 0o777).toString(8)).toBe("600");
		expect(await readFile(join(client.home, "history"), "utf8")).toContain("cd docs");
	}, 60_000);
});

describe("shell details", () => {
	/** A device that trusts desk (and is trusted by it), and a working directory of its own. */
	async function shellUser(name: string) {
		const client = await makeDevice(name);
		await trustEachOther(client, server);
		return { client, cwd: await tempDir("pairlink-cwd-") };
	}

	test("tab completion shows a remote name's escape sequence escaped, never raw", async () => {
		const { client, cwd } = await shellUser("tabber");
		const r = await drive(["connect", `127.0.0.1:${srv.server.port}`], client.home, cwd, [
			{ expect: "desk:/> ", send: "get \t\t" },
			{ expect: "docs/", send: "\u0015exit\r" },
		]);
		expect(r.failed_step).toBeNull();
		expect(r.transcript).not.toContain("\u001b[31m");
		expect(r.transcript).toContain("\\x1b[31mred");
	}, 60_000);

	test("a warning while the prompt waits is followed by the prompt again", async () => {
		const { client, cwd } = await shellUser("waiter");
		const other = serve(server, { root: tempRoot() });
		const driven = drive(["connect", `127.0.0.1:${other.server.port}`], client.home, cwd, [
			{ expect: "desk:/> ", send: "ls nope\r" },
			// The server goes away while nobody types (below): a warning, then the prompt.
			{ expect: "was lost" },
			{ expect: "desk:/> ", send: "exit\r" },
		]);
		// The refused `ls nope` says the session is at its prompt.
		await other.waitFor((e) => e.event === "operation");
		await other.server.stop(0);
		const r = await driven;
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(0);
	}, 60_000);

	test("CMD --help, help within 120 columns, lcd advice, history kept, Ctrl-D ends the line", async () => {
		const { client, cwd } = await shellUser("helper");
		const r = await drive(["connect", `127.0.0.1:${srv.server.port}`], client.home, cwd, [
			{ expect: "desk:/> ", send: "ls --help\r" },
			{ expect: "ls \\[-l\\] \\[PATH\\]", send: "help\r" },
			{ expect: "quit", send: "lcd /no/such/dir\r" },
			{ expect: "local path", send: "pwd\r" },
			{ expect: "(G|\\n)/\\r\\n", send: "\u0004" },
		]);
		if (r.exit !== 0) console.error(r.transcript);
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(0);
		const lines = r.transcript.split(/\r?\n/);
		// What shows on screen: without terminal control sequences and consola's padding.
		// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control sequences
		const visible = (l: string) => l.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "").trimEnd();
		for (const line of lines) expect(visible(line).length).toBeLessThanOrEqual(120);
		expect(r.transcript).not.toContain("unknown option --help");
		const lcd = lines.find((l) => l.includes('"/no/such/dir"')) ?? "";
		expect(lcd).toContain("lls");
		expect(lcd).not.toContain("pairlink ls");
		// Ctrl-D: the last thing printed ends its line.
		expect(r.transcript).toMatch(/\n$/);
		expect(await readFile(join(client.home, "history"), "utf8")).toContain("lcd /no/such/dir");
	}, 60_000);
});

describe("batch mode (commands on stdin)", () => {
	let client: TestDevice;
	beforeAll(async () => {
		client = await makeDevice("script");
		await trustEachOther(client, server);
	});

	test("runs each line, prints results, exits 0", async () => {
		const cwd = await tempDir("pairlink-cwd-");
		const r = await batch(
			["connect", `127.0.0.1:${srv.server.port}`],
			client.home,
			cwd,
			"cd docs\npwd\nget *.pdf\nls\n",
		);
		// Each command is echoed on stderr as it runs (as sftp -b does); results alone on stdout.
		expect(r.stderr).toBe("pairlink> cd docs\npairlink> pwd\npairlink> get *.pdf\npairlink> ls\n");
		expect(r.code).toBe(0);
		expect(r.stdout).toContain("/docs\n");
		expect(r.stdout).toContain("a.txt\n");
		expect(await readFile(join(cwd, "b report.pdf"), "utf8")).toBe("pdf-b");
		expect(await readFile(join(cwd, "c.pdf"), "utf8")).toBe("pdf-c");
		expect(existsSync(join(cwd, "a.txt"))).toBe(false);
	}, 30_000);

	test("quoting: a name with a space", async () => {
		const cwd = await tempDir("pairlink-cwd-");
		const r = await batch(
			["connect", `127.0.0.1:${srv.server.port}`],
			client.home,
			cwd,
			'get "docs/b report.pdf" mine.pdf\n',
		);
		expect(r.code).toBe(0);
		expect(await readFile(join(cwd, "mine.pdf"), "utf8")).toBe("pdf-b");
	}, 30_000);

	test("stops at the first failing command and exits with its code", async () => {
		const cwd = await tempDir("pairlink-cwd-");
		const r = await batch(
			["connect", `127.0.0.1:${srv.server.port}`],
			client.home,
			cwd,
			"pwd\nget missing.txt\npwd\n",
		);
		expect(r.code).toBe(5);
		expect(r.stdout).toBe("/\n");
		expect(r.stderr).toMatch(/"missing.txt" does not exist on the server/);
		const bad = await batch(
			["connect", `127.0.0.1:${srv.server.port}`],
			client.home,
			cwd,
			"frobnicate\n",
		);
		expect(bad.code).toBe(2);
		expect(bad.stderr).toMatch(/unknown command/);
	}, 30_000);

	test("a file named with an ANSI escape sequence is shown escaped", async () => {
		const cwd = await tempDir("pairlink-cwd-");
		const r = await batch(["connect", `127.0.0.1:${srv.server.port}`], client.home, cwd, "ls\n");
		expect(r.code).toBe(0);
		expect(r.stdout).not.toContain("\u001b");
		expect(r.stdout).toContain("\\x1b[31mred");
	}, 30_000);

	test("an untrusted server with no code: exit 4 and how to pair", async () => {
		const stranger = await makeDevice("stranger");
		const cwd = await tempDir("pairlink-cwd-");
		const other = serve(await makeDevice("other"), {});
		try {
			const r = await batch(
				["connect", `127.0.0.1:${other.server.port}`],
				stranger.home,
				cwd,
				"ls\n",
			);
			expect(r.code).toBe(4);
			expect(r.stdout).toBe("");
			expect(r.stderr).toMatch(/pairlink pair/);
		} finally {
			await other.server.stop(0);
		}
	}, 30_000);
});

describe("progress and cancel", () => {
	let client: TestDevice;
	const BIG = 384 * 1024 * 1024;
	beforeAll(async () => {
		client = await makeDevice("viewer");
		await trustEachOther(client, server);
		const block = crypto.getRandomValues(new Uint8Array(1024 * 1024));
		const w = Bun.file(join(rootDir, "big.bin")).writer();
		for (let i = 0; i < BIG / block.length; i++) {
			new DataView(block.buffer).setUint32(0, i);
			w.write(block);
		}
		await w.end();
	}, 60_000);

	test("a long get shows live progress; at 80 columns one bar for one file, within the line, wrap left on", async () => {
		const dest = await tempDir("pairlink-dest-");
		const r = await drive(
			["get", `127.0.0.1:${srv.server.port}`, "big.bin", "-o", dest],
			client.home,
			dest,
			[{ expect: "ETA" }, { expect: "1 file" }],
			80,
		);
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(0);
		expect(r.transcript).toMatch(/\d+%/);
		expect(r.transcript).not.toContain("\u001b[?7l");
		// Every redraw of the bar, as the terminal shows it.
		const draws = r.transcript
			// biome-ignore lint/suspicious/noControlCharactersInRegex: splitting at control sequences
			.split(/\r|\n|\u001b\[[0-9;?]*[A-Za-z]/)
			.filter((piece) => piece.includes("ETA"));
		expect(draws.length).toBeGreaterThan(0);
		for (const d of draws) {
			expect(d.length).toBeLessThan(80);
			// One file: its own bar, named; no separate "total" bar.
			expect(d).toContain("big.bin");
			expect(d).not.toContain("total");
		}
		// The result line is whole.
		expect(r.transcript).toMatch(/\nbig\.bin {2}403 MB\r\n|Kbig\.bin {2}403 MB\r\n/);
	}, 60_000);

	test("get -r of 2,000 files: a total bar, and result lines free of bar fragments", async () => {
		const many = join(rootDir, "many");
		await mkdir(many, { recursive: true });
		const body = new Uint8Array(20_000);
		for (let i = 0; i < 2000; i++) await writeFile(join(many, `f${i}.bin`), body);
		const dest = await tempDir("pairlink-dest-");
		const r = await drive(
			["get", `127.0.0.1:${srv.server.port}`, "many", "-r", "-o", dest],
			client.home,
			dest,
			[{ expect: "2000 files" }],
			80,
		);
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(0);
		// What a line shows in the end: the text after its last return to column 1
		// (each redraw clears the rest of the line), without control sequences.
		const shown = (l: string) =>
			(l.replaceAll("\u001b[1G", "\r").split("\r").at(-1) ?? "")
				// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control sequences
				.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "");
		const lines = r.transcript.split("\r\n").map(shown);
		const results = lines.filter((l) => /many\/f\d+\.bin/.test(l));
		expect(results.length).toBe(2000);
		// Each result line is the result alone: no bar, no ETA, no leftovers of a redraw.
		for (const l of results) expect(l).toMatch(/^many\/f\d+\.bin {2}20\.0 kB$/);
		expect(r.transcript).not.toMatch(/ETA (LL|NF|NULL|INF)/);
		expect(r.transcript).not.toContain("\u001b[?7l");
	}, 60_000);

	test("no progress when output goes to pipes, nor with --json on a terminal", async () => {
		const dest = await tempDir("pairlink-dest-");
		const piped = await batch(
			["get", `127.0.0.1:${srv.server.port}`, "big.bin", "-o", dest],
			client.home,
			dest,
			"",
		);
		expect(piped.code).toBe(0);
		expect(piped.stderr).toBe("");
		expect(piped.stdout).toMatch(/^big\.bin {2}.*\n1 file, .* in .* s \(.*\/s\)\n$/);
		const dest2 = await tempDir("pairlink-dest-");
		const json = await drive(
			["get", `127.0.0.1:${srv.server.port}`, "big.bin", "-o", dest2, "--json"],
			client.home,
			dest2,
			[{ expect: '"event":"done"' }],
		);
		expect(json.exit).toBe(0);
		expect(json.transcript).not.toContain("ETA");
		for (const line of json.transcript.trim().split(/\r?\n/))
			expect(() => JSON.parse(line)).not.toThrow();
	}, 60_000);

	test("the server stopping mid-get: the bar is gone, the whole error says the server stopped and resuming", async () => {
		const other = serve(server, { root: await SandboxRoot.open(rootDir) });
		const dest = await tempDir("pairlink-dest-");
		const driven = drive(
			["get", `127.0.0.1:${other.server.port}`, "big.bin", "-o", dest],
			client.home,
			dest,
			[{ expect: "server stopped" }],
			80,
		);
		// Past the bar's first draw (300 ms at these speeds is tens of MB).
		await whenFileReaches(dest, partFileName("big.bin"), 64 * 1024 * 1024);
		await other.server.stop(0);
		const r = await driven;
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(6);
		const tail = r.transcript.slice(r.transcript.lastIndexOf("\u001b[?25h"));
		// After the cursor comes back: no bar, and the error in one piece with its advice.
		expect(tail).not.toContain("ETA");
		expect(tail).toMatch(/The server stopped[^\n]*same command again/);
		expect(r.transcript).not.toContain("\u001b[?7l");
	}, 60_000);

	test("Ctrl-C in a one-shot get restores the terminal and says that running it again resumes", async () => {
		const dest = await tempDir("pairlink-dest-");
		const r = await drive(
			["get", `127.0.0.1:${srv.server.port}`, "big.bin", "-o", dest],
			client.home,
			dest,
			[{ expect: "ETA", send: "\u0003" }, { expect: "resumes" }],
		);
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(6);
		// Line wrap was never switched off; the cursor is shown again at the end.
		expect(r.transcript).not.toContain("\u001b[?7l");
		const cut = r.transcript.lastIndexOf("\u001b[?25l");
		expect(r.transcript.indexOf("\u001b[?25h", cut)).toBeGreaterThan(cut);
		expect(r.transcript).toContain("Run the same command again");
	}, 60_000);

	test("Ctrl-C cancels a running transfer, the prompt returns, and the next get resumes", async () => {
		const cwd = await tempDir("pairlink-cwd-");
		const r = await drive(["connect", `127.0.0.1:${srv.server.port}`], client.home, cwd, [
			{ expect: "desk:/> ", send: "get big.bin\r" },
			{ expect: "ETA", send: "\u0003" },
			// The user's own Ctrl-C is said as such, not as the server closing the connection.
			{ expect: "Cancelled by Ctrl-C" },
			{ expect: "desk:/> ", send: "get big.bin\r" },
			{ expect: "resumed at" },
			{ expect: "desk:/> ", send: "exit\r" },
		]);
		if (r.failed_step !== null) console.error(r.transcript.slice(-3000));
		expect(r.failed_step).toBeNull();
		expect(r.exit).toBe(0);
		expect((await stat(join(cwd, "big.bin"))).size).toBe(BIG);
		expect(existsSync(join(cwd, ".big.bin.pairlink-part"))).toBe(false);
	}, 60_000);
});

describe("inside connect, a changed device gets the warning, never a pairing prompt (issue 14)", () => {
	test("another certificate at the same address after a drop: identity-changed warning, typed text not run twice, exit works", async () => {
		const first = await makeDevice("desk");
		const impostor = await makeDevice("desk");
		const client = await makeDevice("laptop");
		await trustEachOther(client, first);
		const a = serve(first);
		const b = serve(impostor);
		// A plain TCP forwarder at one address. It points at the first server;
		// once the client's first command (after the session started) has been
		// answered, it points at the impostor and drops the open connection.
		let upstream = a.server.port;
		let armed = false;
		const live = new Set<Socket>();
		const proxy = createServer((inbound) => {
			const outbound = netConnect({ host: "127.0.0.1", port: upstream });
			let asked = false;
			for (const s of [inbound, outbound]) {
				live.add(s);
				s.on("error", () => undefined);
				s.on("close", () => live.delete(s));
			}
			inbound.on("data", (d) => {
				if (armed) asked = true;
				outbound.write(d);
			});
			outbound.on("data", (d) => {
				inbound.write(d, () => {
					if (!asked) return;
					armed = false;
					upstream = b.server.port;
					for (const s of live) s.destroy();
				});
			});
		});
		await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
		const port = (proxy.address() as { port: number }).port;
		void a
			.waitFor((e) => e.event === "connected")
			.then(() => {
				armed = true;
			});
		try {
			const cwd = await tempDir("pairlink-cwd-");
			const r = await drive(["connect", `127.0.0.1:${port}`], client.home, cwd, [
				{ expect: "desk:/> ", send: "ls\r" },
				{ expect: "was lost", send: "ls\r" },
				{ expect: "HAS CHANGED", send: "secret words\r" },
				{ expect: "unknown command", send: "exit\r" },
			]);
			if (r.failed_step !== null) console.error(r.transcript.slice(-3000));
			expect(r.failed_step).toBeNull();
			expect(r.exit).toBe(0);
			expect(r.transcript).not.toMatch(/[Pp]airing code/);
			// Typed once, echoed once, run once (as the shell's own unknown command).
			expect(r.transcript.split("secret words").length - 1).toBe(1);
			expect(r.transcript.split("unknown command").length - 1).toBe(1);
			expect(b.events.some((e) => e.event === "paired" || e.event === "connected")).toBe(false);
		} finally {
			proxy.close();
			await a.server.stop(0);
			await b.server.stop(0);
		}
	}, 60_000);
});
