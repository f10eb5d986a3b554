/**
 * End-to-end tests of the CLI run from source (`bun src/main.ts`), each
 * device a PAIRLINK_HOME of its own. binary.test.ts does the same against
 * the compiled dist/pairlink.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { version } from "../../package.json" with { type: "json" };
import { ERROR_TABLE } from "../../src/errors.ts";
import {
	ANSI_ESCAPE,
	type CliMode,
	codeWordsIn,
	drawCleanCode,
	killAllChildren,
	makeHome,
	makeTempDir,
	parseNdjson,
	removeTempDirs,
	spawnPairlink,
	startServe,
	tokens,
} from "../helpers/cli.ts";
import {
	cli,
	expectNoSecrets,
	expectPrivateStateDir,
	HEX64,
	idOf,
	newCode,
	pairDevices,
	readPendingCode,
	srcVocabulary,
	summary,
	wrongCodeRun,
} from "./scenarios.ts";

const MODE: CliMode = "source";
const run = cli(MODE);

afterEach(killAllChildren);
afterAll(async () => {
	await killAllChildren();
	await removeTempDirs();
});

/** Every command path with its own --help, and options its usage must list. */
const HELP_PAGES: [string[], string[]][] = [
	[[], ["code", "serve", "pair", "devices", "id", "--debug"]],
	[["code"], ["--words", "--ttl", "--json"]],
	[
		["serve"],
		["DIR", "--host", "--port", "--name", "--no-pair", "--no-announce", "--max-clients", "--json"],
	],
	[["pair"], ["HOST", "--name", "--code-stdin"]],
	[["find"], ["--timeout", "--json"]],
	[["devices"], ["list", "remove", "rename", "--json"]],
	[["devices", "list"], ["--json"]],
	[
		["devices", "remove"],
		["DEVICE", "--json"],
	],
	[
		["devices", "rename"],
		["OLD", "NEW", "--json"],
	],
	[["id"], ["--json"]],
];

describe("version and help", () => {
	test("--version prints `pairlink <package.json version>`", async () => {
		const home = await makeHome("version");
		for (const flag of ["--version", "-v"]) {
			const r = await run([flag], { home });
			expect(summary(r)).toEqual({
				exitCode: 0,
				timedOut: false,
				stdout: `pairlink ${version}\n`,
				stderr: "",
			});
		}
		expect(existsSync(home)).toBe(false); // touches no state
	});

	for (const [path, mentions] of HELP_PAGES) {
		const label = ["pairlink", ...path, "--help"].join(" ");
		test(`${label}: usage on stdout, nothing on stderr, no ANSI`, async () => {
			const home = await makeHome("help");
			// Not a TTY: no colours even without NO_COLOR; and with NO_COLOR too.
			for (const env of [{ NO_COLOR: undefined }, { NO_COLOR: "1" }]) {
				for (const flag of ["--help", "-h"]) {
					const r = await run([...path, flag], { home, env });
					expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
					expect(r.stdout).toContain("USAGE");
					if (path.length > 0) expect(r.stdout).toContain(path.join(" "));
					for (const m of mentions) expect(r.stdout).toContain(m);
					expect(ANSI_ESCAPE.test(r.stdout)).toBe(false);
				}
			}
			expect(existsSync(home)).toBe(false);
		});
	}
});

describe("usage errors: exit 2, the error and a pointer to --help on stderr, nothing on stdout", () => {
	// [label, args, stderr mentions, state may be created (the command got as far as running)]
	const CASES: [string, string[], string, boolean?][] = [
		["no command", [], "No command"],
		["unknown command", ["bogus"], 'Unknown command "bogus"'],
		["unknown global flag", ["--bogus"], '"--bogus"'],
		["unknown flag of a command", ["code", "--bogus"], '"--bogus"'],
		["unknown flag of a subcommand", ["devices", "list", "--all"], '"--all"'],
		["--version mixed with a command", ["id", "--version"], '"--version"'],
		["find with a zero timeout", ["find", "--timeout", "0"], "--timeout"],
		["find with a timeout above a minute", ["find", "--timeout", "2m"], "--timeout"],
		["devices remove without a device", ["devices", "remove"], "DEVICE"],
		["devices rename with one argument", ["devices", "rename", "a"], "NEW"],
		["too many arguments: id", ["id", "extra"], "Too many arguments"],
		["too many arguments: pair", ["pair", "127.0.0.1", "127.0.0.2"], "Too many arguments"],
		["too many arguments: devices list", ["devices", "list", "x"], "Too many arguments"],
		["too many arguments: devices remove", ["devices", "remove", "a", "b"], "Too many arguments"],
		[
			"too many arguments: devices rename",
			["devices", "rename", "a", "b", "c"],
			"Too many arguments",
		],
		["--port out of range", ["serve", "--port", "65536"], "--port"],
		["--port not a number", ["serve", "--port", "http"], "--port"],
		["--port negative", ["serve", "--port=-1"], "--port"],
		["--port without a value", ["serve", "--port"], "--port"],
		["--max-clients 0", ["serve", "--max-clients", "0"], "--max-clients"],
		["--words too few (33 bits)", ["code", "--words", "3"], "--words"],
		["--words too many", ["code", "--words", "9"], "--words"],
		["--words not a number", ["code", "--words", "four"], "--words"],
		["--words fractional", ["code", "--words", "4.5"], "--words"],
		["--ttl zero", ["code", "--ttl", "0"], "--ttl"],
		["--ttl garbage", ["code", "--ttl", "5x"], "5x"],
		["--ttl negative", ["code", "--ttl=-1m"], "-1m"],
		["--ttl above 7 days", ["code", "--ttl", "8d"], "--ttl"],
		// `pair` loads (creating if needed) the identity before it parses HOST.
		["pair with a bad HOST", ["pair", "not a host!"], "not a host!", true],
		["pair with port 0", ["pair", "127.0.0.1:0"], "port", true],
	];
	for (const [label, args, mentions, mayCreateState] of CASES) {
		test(`${label}: pairlink ${args.join(" ")}`, async () => {
			const home = await makeHome("usage");
			const r = await run(args, { home, env: { NO_COLOR: undefined }, usageError: true });
			expect(summary(r)).toMatchObject({ exitCode: 2, stdout: "" });
			expect(r.stderr).not.toContain("USAGE");
			expect(r.stderr).toContain(mentions);
			expect(r.stderr).toMatch(/pairlink( [a-z]+)* --help/);
			expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace without --debug
			expect(ANSI_ESCAPE.test(r.stderr)).toBe(false);
			// A rejected command line changes nothing: no identity, no pending code.
			if (!mayCreateState) expect(existsSync(home)).toBe(false);
		});
	}
});

describe("id and the state directory", () => {
	test("id --json: stable per home, different across homes, 64 lowercase hex", async () => {
		const a = await makeHome("a");
		const b = await makeHome("b");
		const first = await idOf(MODE, a);
		const second = await idOf(MODE, a);
		const other = await idOf(MODE, b);
		expect(Object.keys(first).sort()).toEqual(["fingerprint", "name", "stateDir"]);
		expect((first as { stateDir?: string }).stateDir).toBe(a);
		expect(first.fingerprint).toMatch(HEX64);
		expect(other.fingerprint).toMatch(HEX64);
		expect(second).toEqual(first);
		expect(other.fingerprint).not.toBe(first.fingerprint);
		expectPrivateStateDir(a, ["identity.json"]);
		expectPrivateStateDir(b, ["identity.json"]);

		// For people: the same fingerprint, grouped.
		const text = await run(["id"], { home: a });
		expect(summary(text)).toMatchObject({ exitCode: 0, stderr: "" });
		const line = text.stdout.split("\n").find((l) => l.startsWith("Fingerprint:")) ?? "";
		expect(line.replace("Fingerprint:", "").replace(/[\s:]/g, "")).toBe(first.fingerprint);
	});

	test("state dir 0700 and files 0600 after id, code and pairing, even with umask 000", async () => {
		// A loose pre-existing directory is tightened to 0700.
		const home = await makeHome("loose");
		mkdirSync(home, { mode: 0o755 });
		const wide = await run(["id", "--json"], { home, umask: 0 });
		expect(summary(wide)).toMatchObject({ exitCode: 0, stderr: "" });
		expectPrivateStateDir(home, ["identity.json"]);

		const codeHome = await makeHome("umask");
		const c = await run(["code", "--json"], { home: codeHome, umask: 0 });
		expect(summary(c)).toMatchObject({ exitCode: 0, stderr: "" });
		expectPrivateStateDir(codeHome, ["identity.json", "pending-code.json"]);

		const p = await pairDevices(MODE);
		try {
			expectPrivateStateDir(p.serverHome, ["identity.json", "pending-code.json", "trusted.json"]);
			expectPrivateStateDir(p.clientHome, ["identity.json", "trusted.json"]);
		} finally {
			await p.started.serve.stop();
		}
	});
});

describe("devices", () => {
	test("a fresh home has no devices: --json prints nothing", async () => {
		const home = await makeHome("fresh");
		for (const args of [
			["devices", "--json"],
			["devices", "list", "--json"],
		]) {
			const r = await run(args, { home });
			expect(summary(r)).toEqual({ exitCode: 0, timedOut: false, stdout: "", stderr: "" });
		}
		const text = await run(["devices"], { home });
		expect(summary(text)).toMatchObject({ exitCode: 0, stderr: "" });
		expect(text.stdout).toContain("No trusted devices");
	});

	test("after pairing: list, rename and remove (by unique fingerprint prefix) with --json", async () => {
		const p = await pairDevices(MODE);
		await p.started.serve.stop();

		const list = async (home: string) => {
			const r = await run(["devices", "list", "--json"], { home });
			expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
			return parseNdjson(r.stdout);
		};
		const [onClient, ...moreC] = await list(p.clientHome);
		expect(moreC).toEqual([]);
		expect(Object.keys(onClient ?? {}).sort()).toEqual([
			"address",
			"fingerprint",
			"lastSeen",
			"name",
			"pairedAt",
		]);
		expect(onClient).toMatchObject({
			fingerprint: p.server.fingerprint,
			address: p.started.address,
		});
		const [onServer, ...moreS] = await list(p.serverHome);
		expect(moreS).toEqual([]);
		expect(onServer?.fingerprint).toBe(p.client.fingerprint);

		// rename by name
		const oldName = onClient?.name as string;
		const renamed = await run(["devices", "rename", oldName, "the-server", "--json"], {
			home: p.clientHome,
		});
		expect(summary(renamed)).toMatchObject({ exitCode: 0, stderr: "" });
		expect(parseNdjson(renamed.stdout)).toEqual([
			expect.objectContaining({
				event: "renamed",
				name: "the-server",
				fingerprint: p.server.fingerprint,
			}),
		]);
		expect((await list(p.clientHome))[0]?.name).toBe("the-server");

		// rename by fingerprint prefix
		const byPrefix = await run(
			["devices", "rename", p.server.fingerprint.slice(0, 10), "srv", "--json"],
			{ home: p.clientHome },
		);
		expect(summary(byPrefix)).toMatchObject({ exitCode: 0, stderr: "" });
		expect((await list(p.clientHome))[0]?.name).toBe("srv");

		// remove by a unique fingerprint prefix
		const removed = await run(["devices", "remove", p.server.fingerprint.slice(0, 8), "--json"], {
			home: p.clientHome,
		});
		expect(summary(removed)).toMatchObject({ exitCode: 0, stderr: "" });
		expect(parseNdjson(removed.stdout)).toEqual([
			expect.objectContaining({ event: "removed", name: "srv", fingerprint: p.server.fingerprint }),
		]);
		expect(await list(p.clientHome)).toEqual([]);

		// and on the server side, by full fingerprint, text output
		const removedS = await run(["devices", "remove", p.client.fingerprint], {
			home: p.serverHome,
		});
		expect(summary(removedS)).toMatchObject({ exitCode: 0, stderr: "" });
		expect(removedS.stdout).toContain("Removed");
		expect(await list(p.serverHome)).toEqual([]);
		expectPrivateStateDir(p.clientHome, ["trusted.json"]);
	});

	test("removing an unknown device: the unknown-device exit code and a clear message", async () => {
		const home = await makeHome("unknown");
		await idOf(MODE, home);
		for (const args of [
			["devices", "remove", "no-such-device"],
			["devices", "remove", "no-such-device", "--json"],
			["devices", "rename", "no-such-device", "x"],
		]) {
			const r = await run(args, { home });
			expect(summary(r)).toMatchObject({
				exitCode: ERROR_TABLE["unknown-device"].exit,
				stdout: "",
			});
			expect(ERROR_TABLE["unknown-device"].exit).toBe(2);
			expect(r.stderr).toContain('No trusted device matches "no-such-device"');
			expect(r.stderr).toContain("pairlink devices list");
			expect(r.stderr).not.toMatch(/^\s+at /m);
		}
	});
});

describe("no code or key material leaks", () => {
	test("wrong code with --debug: outputs hold no code word and no private key", async () => {
		// A first run learns every word pairlink prints by itself (BIP39 has
		// "wrong", "error", "session"...); the second run uses codes that share
		// no word with that vocabulary, so any code word in its output is a leak.
		const vocabulary = new Set(srcVocabulary());
		const control = await wrongCodeRun(MODE, vocabulary);
		expectNoSecrets(control);
		for (const text of [
			control.client.stdout,
			control.client.stderr,
			control.serveAfterListening,
			control.serveStderr,
		]) {
			for (const t of tokens(text)) vocabulary.add(t);
		}
		const r = await wrongCodeRun(MODE, vocabulary);
		expectNoSecrets(r);
		expect(r.client.stderr).toMatch(/^\s+at /m); // --debug did print a stack trace
		expect(r.refused).toMatchObject({ event: "refused", address: "127.0.0.1" });
		expect(typeof r.refused.reason).toBe("string");
	}, 30_000);

	test.skipIf(process.platform !== "linux")(
		"a running `pair` shows no code in /proc/<pid>/cmdline; a silent server times it out (exit 3)",
		async () => {
			const vocabulary = srcVocabulary();
			const home = await makeHome("cmdline");
			const code = await drawCleanCode(async () => (await newCode(MODE, home)).code, vocabulary);
			// A TCP server that accepts and never says a word: pair hangs in the TLS handshake.
			const sockets: Socket[] = [];
			let accepted!: () => void;
			const connected = new Promise<void>((r) => {
				accepted = r;
			});
			const silent: Server = createServer((s) => {
				sockets.push(s);
				accepted();
			});
			await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
			const port = (silent.address() as { port: number }).port;
			try {
				const pair = spawnPairlink(["--debug", "pair", `127.0.0.1:${port}`], {
					mode: MODE,
					home: await makeHome("cmdline-client"),
					code,
					timeoutMs: 25_000,
				});
				await connected;
				expect(pair.running).toBe(true);
				const cmdline = readFileSync(`/proc/${pair.pid}/cmdline`, "utf8").split("\0").join(" ");
				expect(cmdline).toContain(`pair 127.0.0.1:${port}`);
				expect(codeWordsIn(cmdline, code)).toEqual([]);

				// The handshake timeout (10 s) bounds it: exit 3, still no code.
				const exit = await pair.exited;
				expect({ exit, timedOut: pair.timedOut, stdout: pair.stdout }).toEqual({
					exit: 3,
					timedOut: false,
					stdout: "",
				});
				expect(pair.stderr).toMatch(/no answer|did not answer|timed? ?out/i);
				expect(codeWordsIn(pair.stderr, code)).toEqual([]);
			} finally {
				for (const s of sockets) s.destroy();
				silent.close();
			}
		},
		30_000,
	);
});

describe("pair without a code", () => {
	test("no PAIRLINK_CODE, no --code-stdin, stdin not a TTY: exit 2 and how to give the code", async () => {
		const serverHome = await makeHome("server");
		const { serve, address } = await startServe({ mode: MODE, home: serverHome });
		try {
			const r = await run(["pair", address], { home: await makeHome("client") });
			expect(summary(r)).toMatchObject({ exitCode: 2, stdout: "" });
			expect(r.stderr).toContain("PAIRLINK_CODE");
			expect(r.stderr).toContain("--code-stdin");
			// No attempt was spent on the server's code.
			expect(readPendingCode(serverHome)).toMatchObject({ attempts: 0, state: "pending" });

			// --code-stdin with nothing on stdin: the same exit code, and says so.
			const empty = await run(["pair", address, "--code-stdin"], {
				home: await makeHome("client2"),
				stdin: "",
			});
			expect(summary(empty)).toMatchObject({ exitCode: 2, stdout: "" });
			expect(empty.stderr).toContain("--code-stdin");
		} finally {
			await serve.stop();
		}
	});
});

describe("serve", () => {
	for (const signal of ["SIGTERM", "SIGINT"] as const) {
		test(`${signal}: emits {"event":"stopped"} last and exits 0`, async () => {
			const home = await makeHome("serve");
			const dir = await makeTempDir("pairlink-share-");
			const { serve, listening } = await startServe({ mode: MODE, home, dir });
			expect(Object.keys(listening).sort()).toEqual([
				"code",
				"event",
				"fingerprint",
				"host",
				"policy",
				"port",
				"root",
				"time",
			]);
			expect(listening).toMatchObject({ host: "127.0.0.1", root: dir });
			expect(listening.port).toBeGreaterThan(0);
			expect(listening.fingerprint).toBe((await idOf(MODE, home)).fingerprint);
			// no code was pending: serve made one (4 words) and stored it 0600
			expect(listening.code).toMatch(/^[a-z]+(-[a-z]+){3}$/);
			expect(readPendingCode(home)).toMatchObject({ code: listening.code, state: "pending" });
			expectPrivateStateDir(home, ["pending-code.json"]);

			const stopped = await serve.stop(signal);
			expect(stopped).toEqual({ exitCode: 0, signalCode: null, killed: false });
			expect(serve.events.at(-1)).toMatchObject({ event: "stopped" });
			expect(serve.badLines).toEqual([]);
			expect(serve.stderr).toBe("");
			// the async iterator replays every event in order, then ends with the process
			const seen: string[] = [];
			for await (const e of serve) seen.push(e.event);
			expect(seen).toEqual(serve.events.map((e) => e.event));
			expect(seen[0]).toBe("listening");
		});
	}

	test("serve on a missing directory or a file: exit 2, saying which", async () => {
		const home = await makeHome("serve");
		const missing = join(await makeTempDir(), "does-not-exist");
		const file = join(await makeTempDir(), "a-file");
		await Bun.write(file, "x");
		for (const [dir, why] of [
			[missing, "does not exist"],
			[file, "is not a directory"],
		] as const) {
			const r = await run(["serve", dir, "--host", "127.0.0.1", "--port", "0", "--json"], { home });
			expect(summary(r)).toMatchObject({ exitCode: 2, stdout: "", timedOut: false });
			expect(r.stderr).toContain(`${dir} ${why}`);
		}
	});

	// Regression: citty parses `--no-pair` as `pair: false`; pairing once stayed on.
	test("--no-pair: no code in `listening`, and a client with a code is refused (exit 4)", async () => {
		const home = await makeHome("nopair");
		const { code } = await newCode(MODE, home); // even with a pending code
		const { serve, listening, address } = await startServe({
			mode: MODE,
			home,
			args: ["--no-pair"],
		});
		try {
			expect(listening.code).toBeUndefined();
			const r = await run(["pair", address], { home: await makeHome("client"), code });
			expect(summary(r)).toMatchObject({ exitCode: 4, stdout: "" });
			await serve.waitForEvent("refused", { from: 1, timeoutMs: 5_000 });
			expect(serve.events.some((e) => e.event === "paired")).toBe(false);
			expect(readPendingCode(home)).toMatchObject({ state: "pending", attempts: 0 });
		} finally {
			await serve.stop();
		}
	});
});
