/**
 * Fault injection for the e2e fault tests: big files whose every MiB
 * differs, a waiter on a growing part file (fs.watch events, no sleeps),
 * children with a pipe for stdin or under an RLIMIT_FSIZE (prlimit), and a
 * check for stray files. Process spawning reuses cliArgv from cli.ts; only
 * what RunningCli cannot do (stdin kept open, an argv prefix) lives here.
 */
import { watch } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { PART_SUFFIX } from "../../src/fs/safe-path.ts";
import { type CliMode, cliArgv, REPO_ROOT } from "./cli.ts";

export const MIB = 1024 * 1024;

/**
 * Write `size` bytes of random data in which every MiB carries its own index
 * (so a resume at a wrong offset cannot go unnoticed); returns the SHA-256.
 */
export async function writeBigFile(path: string, size: number): Promise<string> {
	const block = crypto.getRandomValues(new Uint8Array(MIB));
	const view = new DataView(block.buffer);
	const hasher = new Bun.CryptoHasher("sha256");
	const fh = await open(path, "w");
	try {
		for (let off = 0, i = 0; off < size; off += MIB, i++) {
			view.setUint32(0, i);
			view.setUint32(MIB - 4, i ^ 0x5a5a5a5a);
			const chunk = block.subarray(0, Math.min(MIB, size - off));
			hasher.update(chunk);
			await fh.write(chunk, 0, chunk.length, off);
		}
	} finally {
		await fh.close();
	}
	return hasher.digest("hex");
}

export async function fileSha256(path: string): Promise<string> {
	const hasher = new Bun.CryptoHasher("sha256");
	for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
	return hasher.digest("hex");
}

/** `.NAME.pairlink-part`, the receiver's temporary file for NAME. */
export const partFileName = (name: string): string => `.${name}${PART_SUFFIX}`;

/**
 * Resolves with the size seen once `dir/name` holds at least `bytes` bytes,
 * checked on every fs.watch event in `dir` (no polling, no sleeps). Rejects
 * when `giveUp` settles first (e.g. the writer exited) or after `timeoutMs`.
 */
export function whenFileReaches(
	dir: string,
	name: string,
	bytes: number,
	opts: { giveUp?: Promise<unknown>; timeoutMs?: number } = {},
): Promise<number> {
	const path = join(dir, name);
	return new Promise<number>((resolve, reject) => {
		let done = false;
		const finish = (f: () => void) => {
			if (done) return;
			done = true;
			watcher.close();
			clearTimeout(timer);
			f();
		};
		const check = async () => {
			const s = await stat(path).catch(() => undefined);
			if (s && s.size >= bytes) finish(() => resolve(s.size));
		};
		const watcher = watch(dir, () => void check());
		const timer = setTimeout(
			() => finish(() => reject(new Error(`${name} did not reach ${bytes} bytes in time`))),
			opts.timeoutMs ?? 60_000,
		);
		void opts.giveUp?.then(
			() =>
				check().then(() =>
					finish(() => reject(new Error(`${name} gave up before ${bytes} bytes`))),
				),
			() => finish(() => reject(new Error(`${name} gave up before ${bytes} bytes`))),
		);
		void check();
	});
}

/** Sorted names in `dir` (every name: part files and dot files too). */
export async function listDir(dir: string): Promise<string[]> {
	return (await readdir(dir)).sort();
}

// ---------------------------------------------------------------------------
// Children that RunningCli cannot express: stdin kept open, argv prefix
// ---------------------------------------------------------------------------

export interface ChildOptions {
	mode: CliMode;
	/** PAIRLINK_HOME. */
	home: string;
	/** Run as `prefix... pairlink args...` (e.g. prlimit). */
	prefix?: string[];
	/** "pipe": keep stdin open for writeLine(); default: /dev/null. */
	stdin?: "pipe" | "ignore";
	/** Hard limit; SIGKILL when reached. Default 30 s. */
	timeoutMs?: number;
}

/** The same minimal environment cli.ts gives its children. */
function childEnv(home: string): Record<string, string> {
	const env: Record<string, string> = { NO_COLOR: "1", PAIRLINK_HOME: home };
	for (const k of ["PATH", "HOME", "TMPDIR", "LANG"]) {
		const v = process.env[k];
		if (v !== undefined) env[k] = v;
	}
	return env;
}

const live = new Set<Subprocess>();

/** SIGKILL every Child still running (afterEach/afterAll safety net). */
export async function killChildren(): Promise<void> {
	const procs = [...live];
	for (const p of procs) p.kill("SIGKILL");
	await Promise.all(procs.map((p) => p.exited));
}

/** A pairlink child whose output is collected as it arrives and can be waited on. */
export class Child {
	readonly argv: string[];
	readonly proc: Subprocess<"pipe" | "ignore", "pipe", "pipe">;
	stdout = "";
	stderr = "";
	timedOut = false;
	/** Exit code (null on a signal), once both pipes are drained too. */
	readonly exited: Promise<number | null>;
	private finished = false;
	private readonly listeners = new Set<() => void>();
	private readonly timer: ReturnType<typeof setTimeout>;

	constructor(args: readonly string[], opts: ChildOptions) {
		this.argv = [...(opts.prefix ?? []), ...cliArgv(opts.mode, args)];
		this.proc = Bun.spawn(this.argv, {
			cwd: REPO_ROOT,
			env: childEnv(opts.home),
			stdin: opts.stdin ?? "ignore",
			stdout: "pipe",
			stderr: "pipe",
		}) as Child["proc"];
		live.add(this.proc);
		void this.proc.exited.then(() => live.delete(this.proc));
		this.timer = setTimeout(() => {
			this.timedOut = true;
			this.proc.kill("SIGKILL");
		}, opts.timeoutMs ?? 30_000);
		const pumps = [
			this.pump(this.proc.stdout, (t) => {
				this.stdout += t;
			}),
			this.pump(this.proc.stderr, (t) => {
				this.stderr += t;
			}),
		];
		this.exited = Promise.all([this.proc.exited, ...pumps]).then(() => {
			clearTimeout(this.timer);
			this.finished = true;
			this.notify();
			return this.proc.exitCode;
		});
	}

	get signalCode(): string | null {
		return this.proc.signalCode === null ? null : String(this.proc.signalCode);
	}

	writeLine(line: string): void {
		const sink = this.proc.stdin;
		if (typeof sink !== "object" || sink === null) throw new Error("stdin is not a pipe");
		sink.write(`${line}\n`);
		sink.flush();
	}

	closeStdin(): void {
		const sink = this.proc.stdin;
		if (typeof sink === "object" && sink !== null) void sink.end();
	}

	/** Resolves once `stream` matches `pattern` (from character `from` on); rejects at exit or timeout. */
	waitForText(
		stream: "stdout" | "stderr",
		pattern: RegExp,
		opts: { from?: number; timeoutMs?: number } = {},
	): Promise<RegExpMatchArray> {
		return new Promise((resolve, reject) => {
			let done = false;
			const finish = (f: () => void) => {
				if (done) return;
				done = true;
				clearTimeout(timer);
				this.listeners.delete(listener);
				f();
			};
			const listener = () => {
				const m = this[stream].slice(opts.from ?? 0).match(pattern);
				if (m) finish(() => resolve(m));
				else if (this.finished)
					finish(() => reject(new Error(`${pattern} never on ${stream}\n${this.describe()}`)));
			};
			const timer = setTimeout(
				() =>
					finish(() =>
						reject(new Error(`${pattern} not on ${stream} in time\n${this.describe()}`)),
					),
				opts.timeoutMs ?? 20_000,
			);
			this.listeners.add(listener);
			listener();
		});
	}

	describe(): string {
		return [
			`$ ${this.argv.join(" ")}`,
			`exit=${this.proc.exitCode} signal=${this.proc.signalCode}${this.timedOut ? " TIMED OUT" : ""}`,
			`--- stdout ---\n${this.stdout}`,
			`--- stderr ---\n${this.stderr}`,
		].join("\n");
	}

	private notify(): void {
		for (const l of [...this.listeners]) l();
	}

	private async pump(stream: ReadableStream<Uint8Array>, onText: (t: string) => void) {
		const decoder = new TextDecoder();
		for await (const chunk of stream) {
			onText(decoder.decode(chunk, { stream: true }));
			this.notify();
		}
		onText(decoder.decode());
		this.notify();
	}
}

/** `prlimit --fsize=BYTES:` (soft limit only, so it can be lifted again without privileges). */
export function fsizePrefix(bytes: number): string[] {
	return ["prlimit", `--fsize=${bytes}:`, "--"];
}

/** Set (or with "unlimited" lift) the soft RLIMIT_FSIZE of a running process. */
export async function setFsizeLimit(pid: number, bytes: number | "unlimited"): Promise<void> {
	const p = Bun.spawn(["prlimit", "--pid", String(pid), `--fsize=${bytes}:`], {
		stdout: "ignore",
		stderr: "pipe",
	});
	const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
	if (code !== 0) throw new Error(`prlimit --pid ${pid} failed: ${err}`);
}

/** The soft RLIMIT_FSIZE of a running process, as /proc shows it ("unlimited" or bytes). */
export async function fsizeLimitOf(pid: number): Promise<string> {
	const limits = await Bun.file(`/proc/${pid}/limits`).text();
	const line = limits.split("\n").find((l) => l.startsWith("Max file size"));
	return line?.split(/\s{2,}/)[1] ?? "?";
}

export const prlimitAvailable = (): boolean =>
	process.platform === "linux" && Bun.which("prlimit") !== null;
