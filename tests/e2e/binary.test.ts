/**
 * End-to-end tests of the compiled executable, dist/pairlink, as a user runs
 * it: pairing two homes over TCP, and the self-contained promise (no bun or
 * node on PATH; a hostile .env / bunfig.toml in the working directory does
 * nothing). `npm test` builds the binary first; when it is missing, these are
 * skipped with a message saying how to build it.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { version } from "../../package.json" with { type: "json" };
import {
	ANSI_ESCAPE,
	BINARY,
	binaryExists,
	type CliMode,
	killAllChildren,
	makeHome,
	makeTempDir,
	parseNdjson,
	removeTempDirs,
	startServe,
} from "../helpers/cli.ts";
import {
	cli,
	expectNoSecrets,
	expectPrivateStateDir,
	HEX64,
	hostileCwd,
	idOf,
	newCode,
	pairDevices,
	readPendingCode,
	srcVocabulary,
	summary,
	wrongCodeRun,
} from "./scenarios.ts";

const MODE: CliMode = "binary";
const run = cli(MODE);
const missing = !binaryExists();
if (missing) {
	console.warn(
		`SKIPPING tests/e2e/binary.test.ts: ${BINARY} does not exist. Build it with \`bun scripts/build-binaries.ts --host\` (npm test does).`,
	);
}

afterEach(killAllChildren);
afterAll(async () => {
	await killAllChildren();
	await removeTempDirs();
});

describe.skipIf(missing)("dist/pairlink", () => {
	test("--version and --help", async () => {
		const home = await makeHome("version");
		const v = await run(["--version"], { home });
		expect(summary(v)).toEqual({
			exitCode: 0,
			timedOut: false,
			stdout: `pairlink ${version}\n`,
			stderr: "",
		});
		for (const path of [
			[],
			["code"],
			["serve"],
			["pair"],
			["devices"],
			["devices", "remove"],
			["id"],
		]) {
			const h = await run([...path, "--help"], { home, env: { NO_COLOR: undefined } });
			expect(summary(h)).toMatchObject({ exitCode: 0, stderr: "" });
			expect(h.stdout).toContain("USAGE");
			expect(ANSI_ESCAPE.test(h.stdout)).toBe(false);
		}
		const bad = await run(["pair", "--bogus"], { home, usageError: true });
		expect(summary(bad)).toMatchObject({ exitCode: 2, stdout: "" });
		expect(bad.stderr).toContain("pairlink pair --help");
		expect(existsSync(home)).toBe(false);
	});

	describe("pairing two homes", () => {
		test("code --json, serve --json, pair with PAIRLINK_CODE: both sides trust each other", async () => {
			const p = await pairDevices(MODE);
			const { serve } = p.started;
			try {
				expect(p.pair.stdout).toContain("Paired with");
				const paired = await serve.waitForEvent("paired", { from: 1 });
				const connected = await serve.waitForEvent("connected", { from: 1 });
				expect(paired).toMatchObject({ fingerprint: p.client.fingerprint });
				expect(typeof paired.name).toBe("string");
				expect(connected).toMatchObject({
					fingerprint: p.client.fingerprint,
					address: expect.stringContaining("127.0.0.1"),
				});
				expect(serve.events.findIndex((e) => e.event === "paired")).toBeLessThan(
					serve.events.findIndex((e) => e.event === "connected"),
				);

				const onClient = parseNdjson(
					(await run(["devices", "--json"], { home: p.clientHome })).stdout,
				);
				const onServer = parseNdjson(
					(await run(["devices", "--json"], { home: p.serverHome })).stdout,
				);
				expect(onClient).toEqual([
					expect.objectContaining({
						fingerprint: p.server.fingerprint,
						address: p.started.address,
					}),
				]);
				expect(onServer).toEqual([expect.objectContaining({ fingerprint: p.client.fingerprint })]);
				for (const d of [...onClient, ...onServer]) expect(d.fingerprint).toMatch(HEX64);

				// the code is spent, and its file stays private
				expect(readPendingCode(p.serverHome)).toMatchObject({ code: p.code, state: "used" });
				expectPrivateStateDir(p.serverHome, ["identity.json", "pending-code.json", "trusted.json"]);
				expectPrivateStateDir(p.clientHome, ["identity.json", "trusted.json"]);

				// a code works once: a third device with the same code is refused
				const again = await run(["pair", p.started.address], {
					home: await makeHome("third"),
					code: p.code,
				});
				expect(summary(again)).toMatchObject({ exitCode: 4, stdout: "" });
				expect(again.stderr.length).toBeGreaterThan(0);
				expect(readPendingCode(p.serverHome)).toMatchObject({ state: "used" });

				const stopped = await serve.stop("SIGTERM");
				expect(stopped).toEqual({ exitCode: 0, signalCode: null, killed: false });
				expect(serve.events.at(-1)).toMatchObject({ event: "stopped" });
				expect(serve.badLines).toEqual([]);
				expect(serve.stderr).toBe("");
			} finally {
				await serve.stop();
			}
		});

		test("--code-stdin, typed in upper case with spaces, and --name", async () => {
			const p = await pairDevices(MODE, {
				via: "stdin",
				typed: (c) => c.toUpperCase().replaceAll("-", " "),
				pairArgs: ["--name", "my-server"],
			});
			try {
				await p.started.serve.waitForEvent("connected", { from: 1 });
				const onClient = parseNdjson(
					(await run(["devices", "--json"], { home: p.clientHome })).stdout,
				);
				expect(onClient).toEqual([
					expect.objectContaining({ name: "my-server", fingerprint: p.server.fingerprint }),
				]);
				expect(readPendingCode(p.serverHome)).toMatchObject({ state: "used" });
			} finally {
				await p.started.serve.stop();
			}
		});

		test("wrong code: exit 4, 'wrong code' on stderr, serve emits refused; nothing secret printed", async () => {
			const r = await wrongCodeRun(MODE, srcVocabulary());
			expect(r.refused).toMatchObject({ event: "refused", address: "127.0.0.1" });
			expect(r.client.stderr).toContain("wrong code");
			expectNoSecrets(r);
		});

		test("three wrong codes burn the code: the right one is then refused", async () => {
			const serverHome = await makeHome("server");
			const { code } = await newCode(MODE, serverHome);
			const { serve, address } = await startServe({ mode: MODE, home: serverHome });
			try {
				const scratch = await makeHome("scratch");
				for (let i = 1; i <= 3; i++) {
					let wrong = (await newCode(MODE, scratch)).code;
					if (wrong === code) wrong = (await newCode(MODE, scratch)).code;
					const r = await run(["pair", address], { home: await makeHome("guess"), code: wrong });
					expect(summary(r)).toMatchObject({ exitCode: 4, stdout: "" });
					expect(readPendingCode(serverHome)).toMatchObject({ attempts: i });
				}
				expect(readPendingCode(serverHome)).toMatchObject({ state: "burned" });
				const right = await run(["pair", address], { home: await makeHome("late"), code });
				expect(summary(right)).toMatchObject({ exitCode: 4, stdout: "" });
				expect(serve.events.some((e) => e.event === "paired")).toBe(false);
			} finally {
				await serve.stop();
			}
		});
	});

	describe("self-contained: no bun/node on PATH, hostile working directory", () => {
		test("sanity: the hostile .env and bunfig.toml do take effect under `bun src/main.ts`", async () => {
			const { cwd, evilHome, marker } = await hostileCwd();
			const home = await makeTempDir("pairlink-user-");
			const r = await cli("source")(["id", "--json"], {
				cwd,
				env: { PAIRLINK_HOME: undefined, HOME: home, XDG_CONFIG_HOME: undefined },
			});
			expect(summary(r)).toMatchObject({ exitCode: 0 });
			// If this stops holding, the fixture below no longer proves anything.
			expect(existsSync(marker)).toBe(true);
			expect(existsSync(join(evilHome, "identity.json"))).toBe(true);
		});

		test("dist/pairlink --version and id --json ignore .env and bunfig.toml and need no bun", async () => {
			const { cwd, evilHome, marker } = await hostileCwd();
			const emptyPath = await makeTempDir("pairlink-empty-path-");
			expect(readdirSync(emptyPath)).toEqual([]);
			const home = await makeTempDir("pairlink-user-");
			const env = {
				PATH: emptyPath,
				HOME: home,
				PAIRLINK_HOME: undefined,
				XDG_CONFIG_HOME: undefined,
				TMPDIR: undefined,
				LANG: undefined,
			};

			const v = await run(["--version"], { cwd, env });
			expect(summary(v)).toEqual({
				exitCode: 0,
				timedOut: false,
				stdout: `pairlink ${version}\n`,
				stderr: "",
			});

			const id = await run(["id", "--json"], { cwd, env });
			expect(summary(id)).toMatchObject({ exitCode: 0, stderr: "" });
			const [identity] = parseNdjson(id.stdout);
			expect(identity?.fingerprint).toMatch(HEX64);

			// The state went to $HOME/.config/pairlink, not to .env's PAIRLINK_HOME.
			const stateDir = join(home, ".config", "pairlink");
			expectPrivateStateDir(stateDir, ["identity.json"]);
			expect((await idOf(MODE, stateDir)).fingerprint).toBe(identity?.fingerprint as string);
			expect(existsSync(evilHome)).toBe(false);
			// bunfig.toml's preload never ran.
			expect(existsSync(marker)).toBe(false);
			// And it is a native executable, not a script for an interpreter on PATH.
			const head = new Uint8Array(await Bun.file(BINARY).slice(0, 4).arrayBuffer());
			if (process.platform === "linux") expect([...head]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
			else expect(String.fromCharCode(...head.slice(0, 2))).not.toBe("#!");
		});
		test("a full pair + put + get between two binaries, each with no bun/node on PATH, in hostile directories", async () => {
			const { cwd, evilHome, marker } = await hostileCwd();
			const emptyPath = await makeTempDir("pairlink-empty-path-");
			const env = {
				PATH: emptyPath,
				XDG_CONFIG_HOME: undefined,
				TMPDIR: undefined,
				LANG: undefined,
			};
			const serverHome = await makeHome("alone-server");
			const clientHome = await makeHome("alone-client");
			const shared = await makeTempDir("pairlink-alone-share-");
			const { code } = await newCode(MODE, serverHome);
			const started = await startServe({ mode: MODE, home: serverHome, dir: shared, cwd, env });
			try {
				const pair = await run(["pair", started.address], { home: clientHome, code, cwd, env });
				expect(summary(pair)).toMatchObject({ exitCode: 0, stderr: "" });
				await Bun.write(join(cwd, "hello.txt"), "standalone\n");
				const put = await run(["put", started.address, "hello.txt", "--json"], {
					home: clientHome,
					cwd,
					env,
				});
				expect(summary(put)).toMatchObject({ exitCode: 0, stderr: "" });
				expect(await Bun.file(join(shared, "hello.txt")).text()).toBe("standalone\n");
				const dest = await makeTempDir("pairlink-alone-dest-");
				const get = await run(["get", started.address, "hello.txt", "-o", dest, "--json"], {
					home: clientHome,
					cwd,
					env,
				});
				expect(summary(get)).toMatchObject({ exitCode: 0, stderr: "" });
				const [file] = parseNdjson(get.stdout);
				expect(file).toMatchObject({ path: "hello.txt", bytes: 11, resumedFrom: 0 });
				expect(await Bun.file(join(dest, "hello.txt")).text()).toBe("standalone\n");
			} finally {
				await started.serve.stop();
			}
			expect(existsSync(evilHome)).toBe(false);
			expect(existsSync(marker)).toBe(false);
		});
	});

	describe("serve", () => {
		test("serve on a missing directory: exit 2", async () => {
			const home = await makeHome("serve");
			const dir = join(await makeTempDir(), "nope");
			const r = await run(["serve", dir, "--host", "127.0.0.1", "--port", "0", "--json"], { home });
			expect(summary(r)).toMatchObject({ exitCode: 2, stdout: "" });
			expect(r.stderr).toContain(dir);
		});
	});
});
