/**
 * Drive the pairlink CLI as a user would: a separate process per command,
 * each device a PAIRLINK_HOME of its own, stdout / stderr / exit code
 * captured separately, and every process bounded by a hard timeout.
 *
 *   mode "source": [bun, src/main.ts, ...args]   (process.execPath is bun under `bun test`)
 *   mode "binary": [dist/pairlink, ...args]      (built by `npm test` / scripts/build-binaries.ts)
 *
 * Nothing here sleeps to synchronise: long-running children (`serve`) are
 * followed through their NDJSON output, and waiters resolve on events.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export type CliMode = "source" | "binary";

export const REPO_ROOT = resolve(import.meta.dir, "..", "..");
export const SOURCE_ENTRY = join(REPO_ROOT, "src", "main.ts");
export const BINARY = join(
	REPO_ROOT,
	"dist",
	process.platform === "win32" ? "pairlink.exe" : "pairlink",
);

export const binaryExists = (): boolean => existsSync(BINARY);

/** The argv that runs pairlink with `args`. */
export function cliArgv(mode: CliMode, args: readonly string[]): string[] {
	return mode === "binary" ? [BINARY, ...args] : [process.execPath, SOURCE_ENTRY, ...args];
}

export interface SpawnOptions {
	/** Default "source". */
	mode?: CliMode;
	/** PAIRLINK_HOME: the device this command runs as. */
	home?: string;
	/** PAIRLINK_CODE. */
	code?: string;
	/**
	 * Added to (or, with undefined, removed from) the base environment, which is
	 * deliberately minimal: PATH, HOME, TMPDIR, LANG and NO_COLOR=1 only, so a
	 * PAIRLINK_* or FORCE_COLOR of the developer's shell cannot leak in.
	 */
	env?: Record<string, string | undefined>;
	/** Text written to stdin, then EOF. Without it stdin is /dev/null: never a TTY. */
	stdin?: string;
	/** Default: the repository root. */
	cwd?: string;
	/** Hard limit; the process is SIGKILLed when it is reached. Default 20 s. */
	timeoutMs?: number;
	/** Run under this umask (POSIX; via /bin/sh, which then execs pairlink). */
	umask?: number;
	/** The command that runs pairlink instead of `mode`'s, e.g. another CPU's binary under QEMU. */
	exe?: readonly string[];
	/** Run inside this network namespace (`ip netns exec`; root only). */
	netns?: string;
	/** The command line is expected to be refused before anything runs. */
	usageError?: boolean;
}

export interface CliResult {
	argv: string[];
	/** null when the process died of a signal. */
	exitCode: number | null;
	signalCode: string | null;
	stdout: string;
	stderr: string;
	/** The hard timeout killed it. */
	timedOut: boolean;
	durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 20_000;

function buildEnv(opts: SpawnOptions): Record<string, string> {
	const env: Record<string, string | undefined> = {
		PATH: process.env.PATH,
		HOME: process.env.HOME,
		TMPDIR: process.env.TMPDIR,
		LANG: process.env.LANG,
		NO_COLOR: "1",
	};
	if (opts.home !== undefined) env.PAIRLINK_HOME = opts.home;
	if (opts.code !== undefined) env.PAIRLINK_CODE = opts.code;
	for (const [k, v] of Object.entries(opts.env ?? {})) env[k] = v;
	if (env.PAIRLINK_HOME === undefined && !(opts.env && "HOME" in opts.env)) {
		// Without either, the CLI would use the developer's real ~/.config/pairlink.
		throw new Error("cli helper: pass `home` (PAIRLINK_HOME) or an explicit HOME");
	}
	const out: Record<string, string> = {};
	for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
	return out;
}

const signalName = (s: string | number | null): string | null => (s === null ? null : String(s));

// Every child we start, so a failing test cannot leave one running.
const live = new Set<Subprocess>();

/**
 * `find`, and `pair` without HOST, ask every interface of the machine: on the
 * host that would be the real network. Tests run them only inside a network
 * namespace of their own, or as a usage error that stops before any packet.
 */
function refuseRealNetwork(args: readonly string[], opts: SpawnOptions): void {
	if (opts.netns !== undefined || opts.usageError || args.includes("--help") || args.includes("-h"))
		return;
	const [command, ...rest] = args;
	const operands = rest.filter((a) => !a.startsWith("-"));
	if (command === "find" || (command === "pair" && operands.length === 0)) {
		throw new Error(
			`cli helper: \`pairlink ${args.join(" ")}\` would query the real network; pass netns`,
		);
	}
}

function spawnRaw(args: readonly string[], opts: SpawnOptions) {
	refuseRealNetwork(args, opts);
	const argv = opts.exe ? [...opts.exe, ...args] : cliArgv(opts.mode ?? "source", args);
	const spawnArgv =
		opts.umask === undefined
			? argv
			: [
					"/bin/sh",
					"-c",
					`umask ${opts.umask.toString(8).padStart(3, "0")} && exec "$@"`,
					"sh",
					...argv,
				];
	const inNetns = opts.netns === undefined ? [] : ["ip", "netns", "exec", opts.netns];
	const proc = Bun.spawn([...inNetns, ...spawnArgv], {
		cwd: opts.cwd ?? REPO_ROOT,
		env: buildEnv(opts),
		stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
		stdout: "pipe",
		stderr: "pipe",
	});
	live.add(proc);
	void proc.exited.then(() => live.delete(proc));
	return { argv, proc };
}

/** SIGKILL every child still running (afterEach/afterAll safety net). */
export async function killAllChildren(): Promise<void> {
	const procs = [...live];
	for (const p of procs) p.kill("SIGKILL");
	await Promise.all(procs.map((p) => p.exited));
}

/** Run one pairlink command to completion (or to its hard timeout). */
export async function runPairlink(
	args: readonly string[],
	opts: SpawnOptions = {},
): Promise<CliResult> {
	const started = performance.now();
	const { argv, proc } = spawnRaw(args, opts);
	let timedOut = false;
	const timer = setTimeout(() => {
		timedOut = true;
		proc.kill("SIGKILL");
	}, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
	try {
		const [stdout, stderr] = await Promise.all([
			new Response(proc.stdout).text(),
			new Response(proc.stderr).text(),
			proc.exited,
		]);
		return {
			argv,
			exitCode: proc.exitCode,
			signalCode: signalName(proc.signalCode),
			stdout,
			stderr,
			timedOut,
			durationMs: performance.now() - started,
		};
	} finally {
		clearTimeout(timer);
	}
}

/** For failure messages: everything about a finished run. */
export function describeResult(r: CliResult): string {
	return [
		`$ ${r.argv.join(" ")}`,
		`exit ${r.exitCode}${r.signalCode ? ` (signal ${r.signalCode})` : ""}${r.timedOut ? " TIMED OUT" : ""} in ${r.durationMs.toFixed(0)} ms`,
		`--- stdout ---\n${r.stdout}`,
		`--- stderr ---\n${r.stderr}`,
	].join("\n");
}

// ---------------------------------------------------------------------------
// Long-running children
// ---------------------------------------------------------------------------

/** A child whose stdout and stderr are collected as they arrive. */
export class RunningCli {
	readonly argv: string[];
	readonly proc: Subprocess<"ignore" | Blob, "pipe", "pipe">;
	stdout = "";
	stderr = "";
	/** Resolves with the exit code (null on a signal) once both pipes are drained too. */
	readonly exited: Promise<number | null>;
	private readonly listeners = new Set<() => void>();
	private readonly timer: ReturnType<typeof setTimeout>;
	/** Exited, and both pipes read to the end. */
	protected finished = false;
	timedOut = false;

	constructor(args: readonly string[], opts: SpawnOptions) {
		const { argv, proc } = spawnRaw(args, opts);
		this.argv = argv;
		this.proc = proc as RunningCli["proc"];
		this.timer = setTimeout(() => {
			this.timedOut = true;
			proc.kill("SIGKILL");
		}, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
		const pumps = [
			this.pump(this.proc.stdout, (t) => this.onStdout(t)),
			this.pump(this.proc.stderr, (t) => {
				this.stderr += t;
				this.notify();
			}),
		];
		this.exited = Promise.all([proc.exited, ...pumps]).then(() => {
			clearTimeout(this.timer);
			this.finished = true;
			this.notify();
			return proc.exitCode;
		});
	}

	get pid(): number {
		return this.proc.pid;
	}

	get exitCode(): number | null {
		return this.proc.exitCode;
	}

	get signalCode(): string | null {
		return signalName(this.proc.signalCode);
	}

	get running(): boolean {
		return this.proc.exitCode === null && this.proc.signalCode === null;
	}

	/** Subclasses parse stdout; the base class only accumulates it. */
	protected onStdout(text: string): void {
		this.stdout += text;
		this.notify();
	}

	protected notify(): void {
		for (const l of [...this.listeners]) l();
	}

	/**
	 * Resolves with the first non-undefined value of `check`, evaluated now and
	 * after every bit of output and at exit; rejects at the timeout or when the
	 * process has exited without `check` succeeding.
	 */
	protected until<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
		return new Promise<T>((resolvePromise, reject) => {
			let done = false;
			const finish = (f: () => void) => {
				if (done) return;
				done = true;
				clearTimeout(timer);
				this.listeners.delete(listener);
				f();
			};
			const listener = () => {
				let v: T | undefined;
				try {
					v = check();
				} catch (e) {
					finish(() => reject(e));
					return;
				}
				if (v !== undefined) {
					const value = v;
					finish(() => resolvePromise(value));
				} else if (this.finished) {
					finish(() => reject(new Error(`${what}: process exited first\n${this.describe()}`)));
				}
			};
			const timer = setTimeout(
				() =>
					finish(() =>
						reject(new Error(`${what}: not within ${timeoutMs} ms\n${this.describe()}`)),
					),
				timeoutMs,
			);
			this.listeners.add(listener);
			listener();
		});
	}

	private async pump(
		stream: ReadableStream<Uint8Array>,
		onText: (text: string) => void,
	): Promise<void> {
		const decoder = new TextDecoder();
		const reader = stream.getReader();
		try {
			for (;;) {
				const { done, value } = await reader.read();
				if (done) break;
				onText(decoder.decode(value, { stream: true }));
			}
			const rest = decoder.decode();
			if (rest) onText(rest);
		} finally {
			reader.releaseLock();
		}
	}

	/** Resolves with the first match of `pattern` in stdout (a text-mode log line), now or later. */
	waitForText(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> {
		return this.until(
			() => pattern.exec(this.stdout) ?? undefined,
			`stdout matching ${pattern}`,
			timeoutMs,
		);
	}

	/** Send a signal and wait for the exit (SIGKILL after `timeoutMs`). */
	async stop(
		signal: NodeJS.Signals = "SIGTERM",
		timeoutMs = 10_000,
	): Promise<{ exitCode: number | null; signalCode: string | null; killed: boolean }> {
		if (this.running) this.proc.kill(signal);
		let killed = false;
		const guard = setTimeout(() => {
			killed = true;
			this.proc.kill("SIGKILL");
		}, timeoutMs);
		try {
			await this.exited;
		} finally {
			clearTimeout(guard);
		}
		return { exitCode: this.proc.exitCode, signalCode: this.signalCode, killed };
	}

	describe(): string {
		return [
			`$ ${this.argv.join(" ")}`,
			`running=${this.running} exit=${this.proc.exitCode} signal=${this.proc.signalCode}${this.timedOut ? " TIMED OUT" : ""}`,
			`--- stdout ---\n${this.stdout}`,
			`--- stderr ---\n${this.stderr}`,
		].join("\n");
	}
}

/** Start any pairlink command and keep it running (e.g. a `pair` that will hang). */
export function spawnPairlink(args: readonly string[], opts: SpawnOptions = {}): RunningCli {
	return new RunningCli(args, opts);
}

export interface ServeEvent {
	event: string;
	[key: string]: unknown;
}

export interface ListeningEvent extends ServeEvent {
	event: "listening";
	host: string;
	port: number;
	root: string;
	fingerprint: string;
	code?: string;
}

/** `pairlink serve --json`, followed event by event through its NDJSON stdout. */
export class ServeProcess extends RunningCli {
	/** Every event so far, in order (the first is `listening`). */
	readonly events: ServeEvent[] = [];
	/** Complete stdout lines that were not a JSON object: must stay empty with --json. */
	readonly badLines: string[] = [];
	private partial = "";

	protected override onStdout(text: string): void {
		this.stdout += text;
		this.partial += text;
		let nl = this.partial.indexOf("\n");
		while (nl !== -1) {
			const line = this.partial.slice(0, nl);
			this.partial = this.partial.slice(nl + 1);
			this.parseLine(line);
			nl = this.partial.indexOf("\n");
		}
		this.notify();
	}

	private parseLine(line: string): void {
		try {
			const v: unknown = JSON.parse(line);
			if (typeof v === "object" && v !== null && !Array.isArray(v) && "event" in v) {
				this.events.push(v as ServeEvent);
				return;
			}
		} catch {
			// falls through
		}
		this.badLines.push(line);
	}

	/** The first event (from index `from` on) that satisfies `predicate`, waiting for it if needed. */
	waitFor(
		predicate: (e: ServeEvent) => boolean,
		opts: { timeoutMs?: number; from?: number; what?: string } = {},
	): Promise<ServeEvent> {
		const from = opts.from ?? 0;
		return this.until(
			() => this.events.slice(from).find(predicate),
			opts.what ?? "waitFor(event)",
			opts.timeoutMs ?? 15_000,
		);
	}

	/** Shorthand: the first event named `name`. */
	waitForEvent(
		name: string,
		opts: { timeoutMs?: number; from?: number } = {},
	): Promise<ServeEvent> {
		return this.waitFor((e) => e.event === name, { ...opts, what: `waitFor("${name}")` });
	}

	/** Events as they come, in order, from the first; ends when serve's stdout ends. */
	async *[Symbol.asyncIterator](): AsyncIterator<ServeEvent> {
		let i = 0;
		for (;;) {
			if (i < this.events.length) {
				yield this.events[i++] as ServeEvent;
				continue;
			}
			const more = await this.until(
				() => (i < this.events.length ? true : this.finished ? false : undefined),
				"next event",
				60_000,
			).catch(() => false);
			if (!more && i >= this.events.length) return;
		}
	}
}

export interface ServeOptions extends SpawnOptions {
	/** The directory to share; default: a fresh temp dir. */
	dir?: string;
	/** Extra serve arguments (e.g. --no-pair). */
	args?: string[];
	/** --host; default 127.0.0.1. */
	host?: string;
	/** Time allowed for the `listening` event. Default 15 s. */
	listenTimeoutMs?: number;
}

export interface StartedServe {
	serve: ServeProcess;
	listening: ListeningEvent;
	/** "127.0.0.1:PORT", what a client passes to `pair`. */
	address: string;
	port: number;
}

/**
 * Start `pairlink serve DIR --host 127.0.0.1 --port 0 --json [args]` and wait
 * for its `listening` event. The hard timeout defaults to 60 s: stop it
 * (SIGTERM) well before that.
 */
export async function startServe(opts: ServeOptions): Promise<StartedServe> {
	const dir = opts.dir ?? (await makeTempDir("pairlink-share-"));
	const serve = new ServeProcess(
		[
			"serve",
			dir,
			"--host",
			opts.host ?? "127.0.0.1",
			"--port",
			"0",
			"--json",
			...(opts.args ?? []),
		],
		{ timeoutMs: 60_000, ...opts },
	);
	const first = await serve.waitFor(() => true, {
		timeoutMs: opts.listenTimeoutMs ?? 15_000,
		what: "serve's first event",
	});
	if (first.event !== "listening" || typeof first.port !== "number") {
		await serve.stop("SIGKILL");
		throw new Error(`serve's first event is not "listening"\n${serve.describe()}`);
	}
	const listening = first as ListeningEvent;
	const host = opts.host ?? "127.0.0.1";
	return { serve, listening, port: listening.port, address: `${host}:${listening.port}` };
}

// ---------------------------------------------------------------------------
// Temp dirs (each device is one), parsing, and leak checks
// ---------------------------------------------------------------------------

// One list for every helper (devices.ts too), so either removeTempDirs leaves nothing behind.
const tempDirs: string[] = [];

/** `dir` is removed by the next removeTempDirs. */
export function trackTempDir(dir: string): string {
	tempDirs.push(dir);
	return dir;
}

export async function makeTempDir(prefix = "pairlink-e2e-"): Promise<string> {
	return trackTempDir(await mkdtemp(join(tmpdir(), prefix)));
}

/** A path for a device's state dir that does not exist yet (pairlink must create it 0700). */
export async function makeHome(name: string): Promise<string> {
	return join(await makeTempDir(`pairlink-${name}-`), "state");
}

export async function removeTempDirs(): Promise<void> {
	await Promise.all(tempDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** stdout of a --json command: one object per non-empty line; throws on anything else. */
export function parseNdjson(stdout: string): Record<string, unknown>[] {
	if (stdout === "") return [];
	if (!stdout.endsWith("\n"))
		throw new Error(`NDJSON output does not end with a newline: ${stdout}`);
	return stdout
		.slice(0, -1)
		.split("\n")
		.map((line) => {
			const v: unknown = JSON.parse(line);
			if (typeof v !== "object" || v === null || Array.isArray(v)) {
				throw new Error(`NDJSON line is not an object: ${line}`);
			}
			return v as Record<string, unknown>;
		});
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for exactly these
export const ANSI_ESCAPE = /\u001b\[|\u001b\]|\u009b/;

/** Tokens of `text` as a tokenizer that keeps hex fingerprints and paths whole would see them. */
export function tokens(text: string): Set<string> {
	return new Set(text.toLowerCase().match(/[a-z0-9]+/g) ?? []);
}

/**
 * Which words of `code` (any separator, any case) occur in `text` as whole
 * tokens. A word counts only when it is delimited by non-alphanumerics, so a
 * fingerprint or a path does not produce false hits.
 */
export function codeWordsIn(text: string, code: string): string[] {
	const seen = tokens(text);
	return codeWords(code).filter((w) => seen.has(w));
}

export function codeWords(code: string): string[] {
	return code
		.toLowerCase()
		.split(/[\s-]+/)
		.filter(Boolean);
}

/**
 * Draw codes with `draw` until one has no word in `vocabulary` (words the CLI
 * prints on its own, e.g. "wrong" is itself a BIP39 word), so that a word
 * found in the output can only have come from the code.
 */
export async function drawCleanCode(
	draw: () => Promise<string>,
	vocabulary: Set<string>,
	tries = 50,
): Promise<string> {
	for (let i = 0; i < tries; i++) {
		const code = await draw();
		if (codeWords(code).every((w) => !vocabulary.has(w))) return code;
	}
	throw new Error(`no code without a common word in ${tries} draws`);
}
