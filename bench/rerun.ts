/**
 * Re-running a tree copy that has nothing to do (issue 15): pairlink's
 * second `get -r` / `put -r` of an unchanged 10,000-file tree, against
 * `rsync -a` over ssh doing the same no-change run. The rsync row needs
 * /usr/sbin/sshd, ssh and rsync on this machine; it starts its own sshd on
 * 127.0.0.1 with throwaway keys under the bench's temp dir and stops it by
 * PID. Without them the row says why it was skipped.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface Daemon {
	port: number;
	stop(): Promise<void>;
}

export interface RerunRow {
	scenario: "get tree again" | "put tree again";
	tool: "pairlink" | "rsync -a over ssh";
	runs: number[];
	median: number;
}

export interface RerunContext {
	runs: number;
	files: number;
	base: string;
	/** The served directory and its `tree`; the local source tree. */
	served: string;
	treeSrc: string;
	serve(): Promise<Daemon>;
	/** Wall seconds of one run of `cmd` (throws unless it exits 0). */
	timed(cmd: string[], env?: Record<string, string>): Promise<{ seconds: number }>;
	pl(args: string[]): string[];
	asClient: Record<string, string>;
	median(xs: number[]): number;
}

/** Populate once (not timed), then time `runs` runs that find everything up to date. */
async function again(
	ctx: RerunContext,
	scenario: RerunRow["scenario"],
	tool: RerunRow["tool"],
	cmd: string[],
	env: Record<string, string> = {},
): Promise<RerunRow> {
	await ctx.timed(cmd, env);
	const runs: number[] = [];
	for (let i = 0; i < ctx.runs; i++) runs.push((await ctx.timed(cmd, env)).seconds);
	return { scenario, tool, runs, median: ctx.median(runs) };
}

export async function pairlinkRerunRows(ctx: RerunContext): Promise<RerunRow[]> {
	const d = await ctx.serve();
	try {
		const host = `127.0.0.1:${d.port}`;
		const dest = join(ctx.base, "rerun-dest");
		const get = ctx.pl(["get", host, "tree", "-r", "-o", dest]);
		const put = ctx.pl(["put", host, ctx.treeSrc, "-r", "--to", "rerun-up"]);
		const rows = [
			await again(ctx, "get tree again", "pairlink", get, ctx.asClient),
			await again(ctx, "put tree again", "pairlink", put, ctx.asClient),
		];
		// A no-change run must really move nothing and find every file up to date.
		for (const cmd of [get, put]) {
			const p = Bun.spawn([...cmd, "--json"], {
				env: { ...process.env, ...ctx.asClient },
				stdout: "pipe",
			});
			const last = (await new Response(p.stdout).text()).trim().split("\n").at(-1) ?? "";
			const done = JSON.parse(last) as { files: number; upToDate: number; failed: number };
			if (done.files !== 0 || done.upToDate !== ctx.files || done.failed !== 0)
				throw new Error(`no-change re-run moved something: ${last}`);
		}
		return rows;
	} finally {
		await d.stop();
	}
}

const SSHD = "/usr/sbin/sshd";

/** The rsync rows, or why they cannot run here. */
export async function rsyncRerunRows(ctx: RerunContext): Promise<RerunRow[] | string> {
	for (const tool of ["rsync", "ssh", "ssh-keygen"])
		if (!Bun.which(tool)) return `${tool} is not installed`;
	if (!existsSync(SSHD)) return `${SSHD} is not installed (openssh-server)`;
	const sshd = await startSshd(join(ctx.base, "ssh"));
	if (typeof sshd === "string") return sshd;
	try {
		const e = ["-e", `ssh -F ${sshd.config}`];
		const dest = join(ctx.base, "rsync-dest");
		return [
			await again(ctx, "get tree again", "rsync -a over ssh", [
				"rsync",
				"-a",
				...e,
				`bench:${join(ctx.served, "tree")}/`,
				`${dest}/`,
			]),
			await again(ctx, "put tree again", "rsync -a over ssh", [
				"rsync",
				"-a",
				...e,
				`${ctx.treeSrc}/`,
				`bench:${join(ctx.served, "rsync-up")}/`,
			]),
		];
	} finally {
		await sshd.stop();
	}
}

/** A throwaway sshd on 127.0.0.1 (key login only), and an ssh config naming it `bench`. */
async function startSshd(dir: string): Promise<(Daemon & { config: string }) | string> {
	await mkdir(join(dir, "home"), { recursive: true });
	await chmod(dir, 0o700);
	for (const key of ["host", "client"]) {
		const k = Bun.spawnSync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, key)]);
		if (k.exitCode !== 0) return `ssh-keygen failed: ${k.stderr.toString()}`;
	}
	await Bun.write(join(dir, "authorized_keys"), Bun.file(join(dir, "client.pub")));
	const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
	const port = probe.port;
	probe.stop(true);
	await writeFile(
		join(dir, "sshd_config"),
		[
			`ListenAddress 127.0.0.1:${port}`,
			`HostKey ${join(dir, "host")}`,
			"PidFile none",
			`AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
			"PermitRootLogin prohibit-password",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"UsePAM no",
			"StrictModes no",
			"UseDNS no",
			// The remote shell starts in an empty HOME: no rc files timed with every run.
			`SetEnv HOME=${join(dir, "home")}`,
			"",
		].join("\n"),
	);
	const hostKey = (await Bun.file(join(dir, "host.pub")).text()).split(" ").slice(0, 2).join(" ");
	await writeFile(join(dir, "known_hosts"), `[127.0.0.1]:${port} ${hostKey}\n`);
	const config = join(dir, "ssh_config");
	await writeFile(
		config,
		[
			"Host bench",
			"  HostName 127.0.0.1",
			`  Port ${port}`,
			"  User root",
			`  IdentityFile ${join(dir, "client")}`,
			"  IdentitiesOnly yes",
			`  UserKnownHostsFile ${join(dir, "known_hosts")}`,
			"  StrictHostKeyChecking yes",
			"  BatchMode yes",
			"  LogLevel ERROR",
			"",
		].join("\n"),
	);
	if (!existsSync("/run/sshd"))
		await mkdir("/run/sshd", { recursive: true }).catch(() => undefined);
	const p = Bun.spawn([SSHD, "-D", "-e", "-f", join(dir, "sshd_config")], {
		stdout: "ignore",
		stderr: "pipe",
	});
	const stop = async () => {
		p.kill("SIGTERM");
		await p.exited;
	};
	// Bounded: sshd listens within a few seconds or the row is skipped.
	for (let i = 0; i < 50; i++) {
		const ok = Bun.spawnSync(["ssh", "-F", config, "bench", "true"]).exitCode === 0;
		if (ok) return { port, stop, config };
		if (p.exitCode !== null) break;
		await Bun.sleep(100);
	}
	await stop();
	return `sshd did not accept a key login: ${(await new Response(p.stderr).text()).slice(0, 300)}`;
}
