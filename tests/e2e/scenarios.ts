/**
 * Multi-process scenarios shared by cli.test.ts (source) and binary.test.ts
 * (compiled binary). Not a test file itself.
 */
import { expect } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
	type CliMode,
	type CliResult,
	codeWordsIn,
	drawCleanCode,
	makeHome,
	makeTempDir,
	parseNdjson,
	REPO_ROOT,
	runPairlink,
	type SpawnOptions,
	type StartedServe,
	startServe,
	tokens,
} from "../helpers/cli.ts";

export const HEX64 = /^[0-9a-f]{64}$/;

/** exit code + both streams, so a failed expectation shows everything at once. */
export function summary(r: CliResult) {
	return { exitCode: r.exitCode, timedOut: r.timedOut, stdout: r.stdout, stderr: r.stderr };
}

export function cli(mode: CliMode) {
	return (args: readonly string[], opts: SpawnOptions = {}) =>
		runPairlink(args, { mode, timeoutMs: 20_000, ...opts });
}

export async function idOf(
	mode: CliMode,
	home: string,
): Promise<{ name: string; fingerprint: string }> {
	const r = await cli(mode)(["id", "--json"], { home });
	expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
	const [id, ...rest] = parseNdjson(r.stdout);
	expect(rest).toEqual([]);
	return id as { name: string; fingerprint: string };
}

export async function newCode(
	mode: CliMode,
	home: string,
	extra: string[] = [],
): Promise<{ code: string; expiresAt: string }> {
	const r = await cli(mode)(["code", "--json", ...extra], { home });
	expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
	const lines = parseNdjson(r.stdout);
	expect(lines).toHaveLength(1);
	return lines[0] as { code: string; expiresAt: string };
}

export function readPendingCode(home: string): Record<string, unknown> {
	return JSON.parse(readFileSync(join(home, "pending-code.json"), "utf8"));
}

/**
 * SPEC "Files": the state directory is 0700 and every file in it 0600; writes
 * are atomic, so no temp file may be left behind either.
 */
export function expectPrivateStateDir(home: string, mustContain: string[] = []): void {
	expect((statSync(home).mode & 0o777).toString(8)).toBe("700");
	const names = readdirSync(home);
	for (const n of mustContain) expect(names).toContain(n);
	const modes = Object.fromEntries(
		names.map((n) => {
			const st = statSync(join(home, n));
			return [n, st.isFile() ? (st.mode & 0o777).toString(8) : "not a file"];
		}),
	);
	expect(modes).toEqual(Object.fromEntries(names.map((n) => [n, "600"])));
	expect(names.filter((n) => n.endsWith(".tmp"))).toEqual([]);
}

export interface Paired {
	serverHome: string;
	clientHome: string;
	server: { name: string; fingerprint: string };
	client: { name: string; fingerprint: string };
	code: string;
	started: StartedServe;
	pair: CliResult;
}

/**
 * `code --json` in S, `serve --json` in S, `pair` in C with the code from
 * PAIRLINK_CODE or (`via: "stdin"`) from --code-stdin. Leaves serve running
 * (the caller stops it). Asserts the happy path on the way.
 */
export async function pairDevices(
	mode: CliMode,
	opts: { via?: "env" | "stdin"; typed?: (code: string) => string; pairArgs?: string[] } = {},
): Promise<Paired> {
	const run = cli(mode);
	const serverHome = await makeHome("server");
	const clientHome = await makeHome("client");
	const { code, expiresAt } = await newCode(mode, serverHome);
	expect(code).toMatch(/^[a-z]+(-[a-z]+){3}$/);
	expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(9 * 60_000); // default 10 minutes
	const server = await idOf(mode, serverHome);
	const client = await idOf(mode, clientHome);

	const started = await startServe({ mode, home: serverHome });
	// serve takes over the pending code rather than making a new one
	expect(started.listening.code).toBe(code);
	expect(started.listening.fingerprint).toBe(server.fingerprint);

	const typed = (opts.typed ?? ((c) => c))(code);
	const pair = await run(
		[
			"pair",
			started.address,
			...(opts.via === "stdin" ? ["--code-stdin"] : []),
			...(opts.pairArgs ?? []),
		],
		opts.via === "stdin"
			? { home: clientHome, stdin: `${typed}\n` }
			: { home: clientHome, code: typed },
	);
	expect(summary(pair)).toMatchObject({ exitCode: 0, stderr: "" });
	return { serverHome, clientHome, server, client, code, started, pair };
}

/** Words pairlink may print on its own: every token of its source. */
let sourceVocabulary: Set<string> | undefined;
export function srcVocabulary(): Set<string> {
	if (sourceVocabulary) return sourceVocabulary;
	const words = new Set<string>();
	const glob = new Bun.Glob("src/**/*.ts");
	for (const file of glob.scanSync({ cwd: REPO_ROOT })) {
		for (const t of tokens(readFileSync(join(REPO_ROOT, file), "utf8"))) words.add(t);
	}
	sourceVocabulary = words;
	return words;
}

export interface WrongCodeRun {
	serverCode: string;
	wrongCode: string;
	client: CliResult;
	/** serve's stdout after the `listening` line, and all of its stderr. */
	serveAfterListening: string;
	serveStderr: string;
	refused: Record<string, unknown>;
	keyPems: string[];
}

/**
 * serve --debug in S with a code drawn clean of `vocabulary`, then pair
 * --debug in C with a different valid code (also clean): the client must exit 4
 * and serve must emit `refused`. Returns every byte both printed.
 */
export async function wrongCodeRun(mode: CliMode, vocabulary: Set<string>): Promise<WrongCodeRun> {
	const run = cli(mode);
	const serverHome = await makeHome("server");
	const clientHome = await makeHome("client");
	const scratch = await makeHome("scratch");
	const serverCode = await drawCleanCode(
		async () => (await newCode(mode, serverHome)).code,
		vocabulary,
	);
	const wrongCode = await drawCleanCode(async () => {
		const c = (await newCode(mode, scratch)).code;
		return c === serverCode ? "abandon-abandon-abandon-abandon" : c;
	}, vocabulary);

	const { serve, listening, address } = await startServe({
		mode,
		home: serverHome,
		args: ["--debug"],
	});
	expect(listening.code).toBe(serverCode);
	const client = await run(["--debug", "pair", address], { home: clientHome, code: wrongCode });
	expect(summary(client)).toMatchObject({ exitCode: 4, stdout: "" });
	expect(client.stderr).toContain("wrong code");
	const refused = await serve.waitForEvent("refused", { from: 1 });
	const stopped = await serve.stop("SIGTERM");
	expect(stopped.exitCode).toBe(0);
	const firstNl = serve.stdout.indexOf("\n");
	const keyPems = [serverHome, clientHome].map(
		(h) => JSON.parse(readFileSync(join(h, "identity.json"), "utf8")).key as string,
	);
	return {
		serverCode,
		wrongCode,
		client,
		serveAfterListening: serve.stdout.slice(firstNl + 1),
		serveStderr: serve.stderr,
		refused,
		keyPems,
	};
}

/** No word of either code, no private key in anything the processes printed. */
export function expectNoSecrets(r: WrongCodeRun): void {
	const outputs = {
		clientStdout: r.client.stdout,
		clientStderr: r.client.stderr,
		serveAfterListening: r.serveAfterListening,
		serveStderr: r.serveStderr,
	};
	for (const [where, text] of Object.entries(outputs)) {
		const found = {
			where,
			serverCodeWords: codeWordsIn(text, r.serverCode),
			wrongCodeWords: codeWordsIn(text, r.wrongCode),
			privateKeyMarker: text.includes("PRIVATE KEY"),
			keyMaterial: r.keyPems.some((pem) =>
				pem
					.split("\n")
					.filter((l) => l.length >= 16 && !l.startsWith("-----"))
					.some((l) => text.includes(l)),
			),
		};
		expect(found).toEqual({
			where,
			serverCodeWords: [],
			wrongCodeWords: [],
			privateKeyMarker: false,
			keyMaterial: false,
		});
	}
}

/** A directory whose contents are the hostile fixture of SPEC's "self-contained" promise. */
export async function hostileCwd(): Promise<{ cwd: string; evilHome: string; marker: string }> {
	const root = await makeTempDir("pairlink-hostile-");
	const cwd = join(root, "cwd");
	const evilHome = join(root, "evil-home");
	const marker = join(root, "preload-ran");
	await Bun.write(
		join(cwd, ".env"),
		`PAIRLINK_HOME=${evilHome}\nPAIRLINK_CODE=evil-evil-evil-evil\n`,
	);
	await Bun.write(
		join(cwd, "bunfig.toml"),
		`preload = ["./evil.ts"]\n\n[run]\npreload = ["./evil.ts"]\n`,
	);
	await Bun.write(
		join(cwd, "evil.ts"),
		`require("node:fs").writeFileSync(${JSON.stringify(marker)}, "preload ran\\n");\n`,
	);
	return { cwd, evilHome, marker };
}
