/**
 * CPU accounting for the bench (issue 18): what each side of a transfer
 * costs in CPU seconds (user + system), the floor measured on this machine
 * in the same run, and process pinning for the PIN=1 model — the sender on
 * CPU 0 and the receiver or daemon on CPU 1, two one-core machines.
 *
 * CPU seconds are the primary metric: wall times move with whatever else
 * the machine runs, CPU seconds per side much less.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ResourceUsage } from "bun";

/** PIN=1 in the environment (as in the shared bench harness) or `--pin`. */
export const PIN = process.env.PIN === "1" || process.argv.includes("--pin");

/** The client on CPU 0, the daemon on CPU 1 — when pinning. */
export function pinned(cmd: string[], side: "client" | "server"): string[] {
	return PIN ? ["taskset", "-c", side === "client" ? "0" : "1", ...cmd] : cmd;
}

export interface Cpu {
	user: number;
	sys: number;
}

export const total = (c: Cpu) => c.user + c.sys;

/** User and system CPU seconds a live process has used so far (/proc/PID/stat, all threads). */
export async function cpuOf(pid: number): Promise<Cpu> {
	const stat = await readFile(`/proc/${pid}/stat`, "utf8");
	// Fields after the command name (which may contain spaces): utime is the 14th, stime the 15th.
	const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
	const tick = 100; // USER_HZ on Linux
	return { user: Number(rest[11]) / tick, sys: Number(rest[12]) / tick };
}

export const cpuSince = (before: Cpu, after: Cpu): Cpu => ({
	user: after.user - before.user,
	sys: after.sys - before.sys,
});

/** An exited child's CPU from its rusage (Bun.spawn). */
export function cpuOfExited(p: { resourceUsage(): ResourceUsage | undefined }): Cpu {
	const u = p.resourceUsage();
	return { user: Number(u?.cpuTime.user ?? 0) / 1e6, sys: Number(u?.cpuTime.system ?? 0) / 1e6 };
}

export function medianCpu(xs: Cpu[]): Cpu {
	const sorted = [...xs].sort((a, b) => total(a) - total(b));
	return sorted[Math.floor(sorted.length / 2)] ?? { user: 0, sys: 0 };
}

export interface Floor {
	/** CPU seconds per GiB, one core. */
	sha256: number;
	aesGcm: number;
	copy: number;
}

/** The per-GiB floor, measured by bench/floor.ts on one core (CPU 0 when pinning). */
export async function measureFloor(): Promise<Floor> {
	const p = Bun.spawn(pinned([process.execPath, join(import.meta.dir, "floor.ts")], "client"), {
		stdout: "pipe",
		stderr: "inherit",
	});
	const out = await new Response(p.stdout).text();
	if ((await p.exited) !== 0) throw new Error("bench/floor.ts failed");
	return JSON.parse(out) as Floor;
}

export const floorWork = (f: Floor) => f.sha256 + f.aesGcm + f.copy;

const GIB = 1024 * 1024 * 1024;
/** CPU seconds per GiB moved. */
export const perGib = (c: Cpu, bytes: number): Cpu => ({
	user: (c.user * GIB) / bytes,
	sys: (c.sys * GIB) / bytes,
});

export const fmtCpu = (c: Cpu) =>
	`${total(c).toFixed(2)} (${c.user.toFixed(2)} u + ${c.sys.toFixed(2)} s)`;
