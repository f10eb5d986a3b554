/**
 * `bun run bench`: pairlink against a raw-TCP upper bound (bench/raw-tcp.ts,
 * the same Bun socket API with no TLS, hashing or framing), in one run, on
 * loopback. Every result is verified against its source. Prints a table of
 * medians, ratios and peak RSS and writes bench/results/<time>.json.
 *
 *   bun run bench                       1 GiB file, 10,000 x 4 KiB tree, 5 runs,
 *                                       and a no-change re-run of the tree (vs rsync -a over ssh)
 *   bun run bench -- --quick            64 MiB, 1,000 files, 2 runs (CI smoke: correctness only)
 *   bun run bench -- --file-mib 256 --files 2000 --runs 3 --big-rss
 *   PIN=1 bun run bench                 pin clients to CPU 0, serve to CPU 1 (bench/cpu.ts)
 *
 * Besides wall time it reports each side's CPU seconds (user + system) next
 * to the floor measured in the same run, and four clients at once.
 *
 * Needs dist/pairlink (npm run build). Data and destinations live under
 * /dev/shm when it exists (RAM-backed, as in ../shared/bench), else $TMPDIR.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { loadOrCreateIdentity } from "../src/store/identity.ts";
import { TrustStore } from "../src/store/trust-store.ts";
import {
	type Cpu,
	cpuOf,
	cpuOfExited,
	cpuSince,
	measureFloor,
	medianCpu,
	PIN,
	pinned,
} from "./cpu.ts";
import { cpuReport } from "./cpu-report.ts";
import { type HostileRow, hostileRows } from "./hostile.ts";
import { manyClients } from "./many-clients.ts";
import { pairlinkRerunRows, type RerunRow, rsyncRerunRows } from "./rerun.ts";

const ROOT = join(import.meta.dir, "..");
const BIN = join(ROOT, "dist", "pairlink");
const RAW = [process.execPath, join(ROOT, "bench", "raw-tcp.ts")];

const { values: opt } = parseArgs({
	args: process.argv.slice(2),
	options: {
		quick: { type: "boolean", default: false },
		"file-mib": { type: "string" },
		files: { type: "string" },
		runs: { type: "string" },
		"big-rss": { type: "boolean", default: false },
		"latency-runs": { type: "string" },
		pin: { type: "boolean", default: false },
	},
});
const QUICK = opt.quick === true;
const FILE_MIB = Number(opt["file-mib"] ?? (QUICK ? 64 : 1024));
const TREE_FILES = Number(opt.files ?? (QUICK ? 1000 : 10_000));
const RUNS = Number(opt.runs ?? (QUICK ? 2 : 5));
const LAT_RUNS = Number(opt["latency-runs"] ?? (QUICK ? 5 : 30));

if (!existsSync(BIN)) {
	console.error("dist/pairlink is missing: run `npm run build` first");
	process.exit(2);
}

const base = await mkdtemp(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pairlink-bench-"));
const srcDir = join(base, "src");
const served = join(base, "served");
const dest = join(base, "dest");

// ---------------------------------------------------------------- data

async function makeFile(path: string, mib: number): Promise<void> {
	const block = crypto.getRandomValues(new Uint8Array(1 << 20));
	const w = Bun.file(path).writer({ highWaterMark: 1 << 20 });
	for (let i = 0; i < mib; i++) {
		new DataView(block.buffer).setUint32(0, i); // every MiB differs
		w.write(block);
		await w.flush();
	}
	await w.end();
}

async function makeTree(dir: string, files: number): Promise<void> {
	const dirs = 100;
	for (let d = 0; d < dirs; d++)
		await mkdir(join(dir, `d${String(d).padStart(3, "0")}`), { recursive: true });
	for (let f = 0; f < files; f++) {
		const d = `d${String(f % dirs).padStart(3, "0")}`;
		await Bun.write(
			join(dir, d, `f${String(f).padStart(5, "0")}.bin`),
			crypto.getRandomValues(new Uint8Array(4096)),
		);
	}
}

async function sha256(path: string): Promise<string> {
	const h = new Bun.CryptoHasher("sha256");
	for await (const chunk of Bun.file(path).stream()) h.update(chunk);
	return h.digest("hex");
}

async function treeDigest(dir: string): Promise<string> {
	const h = new Bun.CryptoHasher("sha256");
	const walk = async (d: string): Promise<void> => {
		for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) =>
			a.name.localeCompare(b.name),
		)) {
			const p = join(d, e.name);
			if (e.isDirectory()) await walk(p);
			else
				h.update(
					`${relative(dir, p)}\0${await readFile(p).then((b) => new Bun.CryptoHasher("sha256").update(b).digest("hex"))}\n`,
				);
		}
	};
	await walk(dir);
	return h.digest("hex");
}

// ---------------------------------------------------------------- processes

interface Run {
	seconds: number;
	peakRssKb: number;
	cpu: Cpu;
}

/** Run a command to completion; wall time and peak RSS (VmHWM, sampled until exit). */
async function timed(cmd: string[], env: Record<string, string> = {}): Promise<Run> {
	const started = performance.now();
	const p = Bun.spawn(pinned(cmd, "client"), {
		env: { ...process.env, ...env, NO_COLOR: "1" },
		stdout: "ignore",
		stderr: "pipe",
	});
	let peak = 0;
	const sample = async () => {
		const s = await readFile(`/proc/${p.pid}/status`, "utf8").catch(() => "");
		const m = /VmHWM:\s+(\d+)/.exec(s);
		if (m) peak = Math.max(peak, Number(m[1]));
	};
	const timer = setInterval(() => void sample(), 20);
	const code = await p.exited;
	clearInterval(timer);
	const seconds = (performance.now() - started) / 1000;
	if (code !== 0)
		throw new Error(`${cmd.join(" ")} failed (${code}): ${await new Response(p.stderr).text()}`);
	return { seconds, peakRssKb: peak, cpu: cpuOfExited(p) };
}

interface Daemon {
	port: number;
	pid: number;
	peakRssKb(): Promise<number>;
	rssKb(): Promise<number>;
	cpu(): Promise<Cpu>;
	stop(): Promise<void>;
}

async function startDaemon(
	cmd: string[],
	env: Record<string, string>,
	portOf: (line: string) => number | undefined,
): Promise<Daemon> {
	const p = Bun.spawn(pinned(cmd, "server"), {
		env: { ...process.env, ...env, NO_COLOR: "1" },
		stdout: "pipe",
		stderr: "inherit",
	});
	const reader = p.stdout.getReader();
	let text = "";
	let port: number | undefined;
	while (port === undefined) {
		const { value, done } = await reader.read();
		if (done) throw new Error(`${cmd.join(" ")} exited before listening`);
		text += new TextDecoder().decode(value);
		for (const line of text.split("\n")) port ??= portOf(line);
	}
	reader.releaseLock();
	void p.stdout.pipeTo(new WritableStream());
	return {
		port,
		pid: p.pid,
		async peakRssKb() {
			const m = /VmHWM:\s+(\d+)/.exec(await readFile(`/proc/${p.pid}/status`, "utf8"));
			return Number(m?.[1] ?? 0);
		},
		async rssKb() {
			const m = /VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${p.pid}/status`, "utf8"));
			return Number(m?.[1] ?? 0);
		},
		cpu: () => cpuOf(p.pid),
		async stop() {
			p.kill("SIGTERM");
			await p.exited;
		},
	};
}

const serveHome = join(base, "home-server");
const clientHome = join(base, "home-client");

async function pairHomes(): Promise<void> {
	const s = await loadOrCreateIdentity(serveHome, { defaultName: "bench-server" });
	const c = await loadOrCreateIdentity(clientHome, { defaultName: "bench-client" });
	await (await TrustStore.load(serveHome)).add({
		name: c.name,
		fingerprint: c.fingerprint,
		address: "127.0.0.1",
	});
	await (await TrustStore.load(clientHome)).add({
		name: s.name,
		fingerprint: s.fingerprint,
		address: "127.0.0.1:1",
	});
}

const pairlinkServe = () =>
	startDaemon(
		[
			BIN,
			"serve",
			served,
			"--host",
			"127.0.0.1",
			"--port",
			"0",
			"--no-pair",
			"--allow-overwrite",
			"--json",
		],
		{ PAIRLINK_HOME: serveHome },
		(l) => {
			try {
				return (JSON.parse(l) as { event?: string; port?: number }).event === "listening"
					? (JSON.parse(l).port as number)
					: undefined;
			} catch {
				return undefined;
			}
		},
	);
const rawServe = () =>
	startDaemon([...RAW, "serve", served], {}, (l) =>
		/^\d+$/.test(l.trim()) ? Number(l) : undefined,
	);
const pl = (args: string[]) => [BIN, ...args];
const asClient = { PAIRLINK_HOME: clientHome };

// ---------------------------------------------------------------- scenarios

interface Row {
	scenario: string;
	tool: "raw-tcp" | "pairlink";
	runs: number[];
	median: number;
	clientPeakRssKb: number;
	serverPeakRssKb: number;
	/** Medians of CPU seconds per run, each side. */
	clientCpu: Cpu;
	serverCpu: Cpu;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Empty destinations before every run: dest/ locally, served/up/ remotely. */
async function clean(): Promise<void> {
	for (const dir of [dest, join(served, "up")]) {
		await rm(dir, { recursive: true, force: true });
		await mkdir(dir, { recursive: true });
	}
}

async function measure(
	scenario: string,
	tool: Row["tool"],
	start: () => Promise<Daemon>,
	once: (port: number) => Promise<Run>,
	verify: () => Promise<void>,
): Promise<Row> {
	const daemon = await start();
	const runs: Run[] = [];
	const serverCpu: Cpu[] = [];
	try {
		for (let i = 0; i < RUNS; i++) {
			await clean();
			const before = await daemon.cpu();
			runs.push(await once(daemon.port));
			serverCpu.push(cpuSince(before, await daemon.cpu()));
			await verify();
		}
		return {
			scenario,
			tool,
			runs: runs.map((r) => r.seconds),
			median: median(runs.map((r) => r.seconds)),
			clientPeakRssKb: Math.max(...runs.map((r) => r.peakRssKb)),
			serverPeakRssKb: await daemon.peakRssKb(),
			clientCpu: medianCpu(runs.map((r) => r.cpu)),
			serverCpu: medianCpu(serverCpu),
		};
	} finally {
		await daemon.stop();
	}
}

async function expectSame(a: string, b: string, what: string): Promise<void> {
	if ((await sha256(a)) !== (await sha256(b))) throw new Error(`${what}: content differs`);
}
async function expectSameTree(a: string, b: string, what: string): Promise<void> {
	if ((await treeDigest(a)) !== (await treeDigest(b))) throw new Error(`${what}: tree differs`);
}

console.error(
	`data: ${FILE_MIB} MiB file, ${TREE_FILES} x 4 KiB files, ${RUNS} runs each, under ${base}`,
);
await mkdir(srcDir, { recursive: true });
await mkdir(served, { recursive: true });
await makeFile(join(served, "big.bin"), FILE_MIB);
await Bun.write(join(srcDir, "big.bin"), Bun.file(join(served, "big.bin")));
await makeTree(join(served, "tree"), TREE_FILES);
await makeTree(join(srcDir, "tree"), TREE_FILES);
await pairHomes();

const rows: Row[] = [];
const bigServed = join(served, "big.bin");
const bigSrc = join(srcDir, "big.bin");
const treeServed = join(served, "tree");
const treeSrc = join(srcDir, "tree");

for (const [tool, start] of [
	["raw-tcp", rawServe],
	["pairlink", pairlinkServe],
] as const) {
	const raw = tool === "raw-tcp";
	rows.push(
		await measure(
			"get file",
			tool,
			start,
			(port) =>
				timed(
					raw
						? [...RAW, "get", String(port), "big.bin", dest]
						: pl(["get", `127.0.0.1:${port}`, "big.bin", "-o", dest]),
					asClient,
				),
			() => expectSame(bigServed, join(dest, "big.bin"), "get file"),
		),
	);
	rows.push(
		await measure(
			"put file",
			tool,
			start,
			(port) =>
				timed(
					raw
						? [...RAW, "put", String(port), bigSrc, "up"]
						: pl(["put", `127.0.0.1:${port}`, bigSrc, "--to", "up"]),
					asClient,
				),
			() => expectSame(bigSrc, join(served, "up", "big.bin"), "put file"),
		),
	);
	rows.push(
		await measure(
			"get tree",
			tool,
			start,
			(port) =>
				timed(
					raw
						? [...RAW, "get", String(port), "tree", join(dest, "tree")]
						: pl(["get", `127.0.0.1:${port}`, "tree", "-r", "-o", dest]),
					asClient,
				),
			() => expectSameTree(treeServed, join(dest, "tree"), "get tree"),
		),
	);
	rows.push(
		await measure(
			"put tree",
			tool,
			start,
			(port) =>
				timed(
					raw
						? [...RAW, "put", String(port), treeSrc, "up/tree"]
						: pl(["put", `127.0.0.1:${port}`, treeSrc, "-r", "--to", "up"]),
					asClient,
				),
			() => expectSameTree(treeSrc, join(served, "up", "tree"), "put tree"),
		),
	);
}

// ---------------------------------------------------------------- four clients at once, and the CPU floor

const floor = await measureFloor();
const EACH_MIB = QUICK ? 16 : 256;
const many = await (async () => {
	const names = [0, 1, 2, 3].map((i) => `many-${i}.bin`);
	for (const name of names) await makeFile(join(served, name), EACH_MIB);
	try {
		return await manyClients({
			runs: Math.min(RUNS, 3),
			mibEach: EACH_MIB,
			names,
			median,
			serve: pairlinkServe,
			async get(port, name, i) {
				const into = join(dest, `many-${i}`);
				await rm(into, { recursive: true, force: true });
				await mkdir(into, { recursive: true });
				return (await timed(pl(["get", `127.0.0.1:${port}`, name, "-o", into]), asClient)).seconds;
			},
			verify: (name, i) =>
				expectSame(join(served, name), join(dest, `many-${i}`, name), `${name} (four clients)`),
		});
	} finally {
		for (const name of names) await rm(join(served, name), { force: true });
	}
})();

// ---------------------------------------------------------------- re-run of an unchanged tree, against rsync -a over ssh

const rerunCtx = {
	runs: RUNS,
	files: TREE_FILES,
	base,
	served,
	treeSrc,
	serve: pairlinkServe,
	timed,
	pl,
	asClient,
	median,
};
const rerun: RerunRow[] = await pairlinkRerunRows(rerunCtx);
const rsync = await rsyncRerunRows(rerunCtx);
if (typeof rsync === "string") console.error(`rsync rows skipped: ${rsync}`);
else rerun.push(...rsync);

// ---------------------------------------------------------------- latency: a warm `ls` against a trusted server

const latency: number[] = [];
{
	const d = await pairlinkServe();
	try {
		for (let i = 0; i < LAT_RUNS + 1; i++) {
			const r = await timed(pl(["ls", `127.0.0.1:${d.port}`]), asClient);
			if (i > 0) latency.push(r.seconds); // the first run warms the page cache
		}
	} finally {
		await d.stop();
	}
}

// ---------------------------------------------------------------- serve under hostile peers: flat over time

let hostile: HostileRow[] = [];
{
	const d = await pairlinkServe();
	try {
		const identity = await loadOrCreateIdentity(clientHome, { defaultName: "bench-client" });
		hostile = await hostileRows(d, identity, QUICK ? 3 : 10);
	} finally {
		await d.stop();
	}
}

// ---------------------------------------------------------------- flat memory: 1 GiB and 4 GiB (--big-rss)

const flat: {
	mib: number;
	op: string;
	clientPeakRssKb: number;
	serverPeakRssKb: number;
	seconds: number;
}[] = [];
if (opt["big-rss"]) {
	for (const mib of [1024, 4096]) {
		const file = join(served, `rss-${mib}.bin`);
		await makeFile(file, mib);
		for (const op of ["get", "put"] as const) {
			const d = await pairlinkServe();
			try {
				await clean();
				const r =
					op === "get"
						? await timed(
								pl(["get", `127.0.0.1:${d.port}`, `rss-${mib}.bin`, "-o", dest]),
								asClient,
							)
						: await timed(pl(["put", `127.0.0.1:${d.port}`, file, "--to", "up"]), asClient);
				await expectSame(
					file,
					op === "get" ? join(dest, `rss-${mib}.bin`) : join(served, "up", `rss-${mib}.bin`),
					`${op} ${mib} MiB`,
				);
				flat.push({
					mib,
					op,
					clientPeakRssKb: r.peakRssKb,
					serverPeakRssKb: await d.peakRssKb(),
					seconds: r.seconds,
				});
			} finally {
				await d.stop();
			}
		}
		await rm(file, { force: true });
		await clean();
	}
}

// ---------------------------------------------------------------- report

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
const lines = [
	`| scenario | raw TCP (s) | pairlink (s) | pairlink / raw | pairlink client RSS | pairlink server RSS |`,
	`| --- | --- | --- | --- | --- | --- |`,
];
for (const scenario of ["get file", "put file", "get tree", "put tree"]) {
	const raw = rows.find((r) => r.scenario === scenario && r.tool === "raw-tcp") as Row;
	const p = rows.find((r) => r.scenario === scenario && r.tool === "pairlink") as Row;
	lines.push(
		`| ${scenario} | ${raw.median.toFixed(3)} | ${p.median.toFixed(3)} | ${(p.median / raw.median).toFixed(2)}x | ${mb(p.clientPeakRssKb)} | ${mb(p.serverPeakRssKb)} |`,
	);
}
lines.push(
	"",
	`| no-change re-run of the tree | pairlink (s) | rsync -a over ssh (s) | pairlink / rsync |`,
	`| --- | --- | --- | --- |`,
);
for (const scenario of ["get tree again", "put tree again"]) {
	const p = rerun.find((r) => r.scenario === scenario && r.tool === "pairlink") as RerunRow;
	const r = rerun.find((x) => x.scenario === scenario && x.tool !== "pairlink");
	lines.push(
		`| ${scenario} | ${p.median.toFixed(3)} | ${r ? r.median.toFixed(3) : "skipped"} | ${r ? `${(p.median / r.median).toFixed(2)}x` : "-"} |`,
	);
}
const latMs = median(latency) * 1000;
console.log(
	`\npairlink bench${PIN ? " (PIN=1)" : ""}: ${FILE_MIB} MiB file, ${TREE_FILES} x 4 KiB files in 100 dirs, medians of ${RUNS} runs, loopback, ${base.startsWith("/dev/shm") ? "RAM-backed" : "disk"} files\n`,
);
console.log(lines.join("\n"));
console.log(
	`\nCPU seconds per side (medians; ${PIN ? "PIN=1: client on CPU 0, serve on CPU 1" : "unpinned"}):\n`,
);
console.log(cpuReport(rows, floor, FILE_MIB * 2 ** 20, TREE_FILES * 4096).join("\n"));
console.log(
	`\n${many.clients} clients at once, each getting a different ${many.mibEach} MiB file: ${many.allSeconds.toFixed(2)} s for all vs ${many.singleSeconds.toFixed(2)} s for one alone — total throughput ${many.throughputRatio.toFixed(2)}x one client's; serve RSS ${mb(many.serveRssKb.afterSingle)} after single runs, ${mb(many.serveRssKb.afterMany)} after the four (peak ${mb(many.serveRssKb.peak)})`,
);
console.log(
	`\nwarm \`pairlink ls\` against a trusted server (whole process): median ${latMs.toFixed(1)} ms of ${latency.length}`,
);
for (const f of flat) {
	console.log(
		`${f.op} ${f.mib} MiB: ${f.seconds.toFixed(2)} s, client peak RSS ${mb(f.clientPeakRssKb)}, server peak RSS ${mb(f.serverPeakRssKb)}`,
	);
}
console.log("\n`serve` under one hostile paired peer, sampled once a second:\n");
console.log("| peer | requests pushed | serve RSS (MiB) | serve descriptors |");
console.log("| --- | --- | --- | --- |");
for (const h of hostile) {
	console.log(`| ${h.peer} | ${h.requests} | ${h.rssMiB.join(", ")} | ${h.fds.join(", ")} |`);
}
console.log("all results verified against their sources");

const results = {
	date: new Date().toISOString(),
	quick: QUICK,
	fileMib: FILE_MIB,
	treeFiles: TREE_FILES,
	runs: RUNS,
	pinned: PIN,
	rows,
	floor,
	manyClients: many,
	rerun,
	latencyMs: latency.map((s) => s * 1000),
	flatMemory: flat,
	hostile,
};
const resultsDir = join(ROOT, "bench", "results");
await mkdir(resultsDir, { recursive: true });
const out = join(resultsDir, `${results.date.replace(/[:.]/g, "-")}${QUICK ? "-quick" : ""}.json`);
await Bun.write(out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`results: ${relative(process.cwd(), out)}`);
await rm(base, { recursive: true, force: true });
