/**
 * The CPU table of `bun run bench`: each side's CPU seconds (user + system)
 * next to its floor — SHA-256 + AES-GCM + one copy of the bytes on one core
 * (bench/floor.ts), plus what the raw-TCP transfer itself cost that side in
 * the same run (socket copies, file I/O, page faults). For the file rows it
 * is per GiB; for the tree rows per run.
 */
import { type Cpu, type Floor, floorWork, fmtCpu, perGib, total } from "./cpu.ts";

interface CpuRow {
	scenario: string;
	tool: "raw-tcp" | "pairlink";
	clientCpu: Cpu;
	serverCpu: Cpu;
}

export function cpuReport(
	rows: CpuRow[],
	floor: Floor,
	fileBytes: number,
	treeBytes: number,
): string[] {
	const work = floorWork(floor);
	const lines = [
		`floor on one core, per GiB: SHA-256 ${floor.sha256.toFixed(2)} s + AES-128-GCM ${floor.aesGcm.toFixed(2)} s + one copy ${floor.copy.toFixed(2)} s = ${work.toFixed(2)} s`,
		"",
		"| scenario | side | pairlink CPU s (user + sys) | raw TCP CPU s | floor (work + raw TCP) | pairlink / floor |",
		"| --- | --- | --- | --- | --- | --- |",
	];
	for (const scenario of ["get file", "put file", "get tree", "put tree"]) {
		const raw = rows.find((r) => r.scenario === scenario && r.tool === "raw-tcp");
		const p = rows.find((r) => r.scenario === scenario && r.tool === "pairlink");
		if (!raw || !p) continue;
		const file = scenario.endsWith("file");
		const scale = (c: Cpu) => (file ? perGib(c, fileBytes) : c);
		for (const side of ["client", "server"] as const) {
			const mine = scale(side === "client" ? p.clientCpu : p.serverCpu);
			const base = scale(side === "client" ? raw.clientCpu : raw.serverCpu);
			// The hash/AEAD/copy floor is per byte: for the tree, scaled to the tree's bytes.
			const floor = total(base) + (file ? work : (work * treeBytes) / 2 ** 30);
			const role =
				side === (scenario.startsWith("get") ? "server" : "client") ? "sender" : "receiver";
			lines.push(
				`| ${scenario}${file ? " (per GiB)" : ""} | ${side} (${role}) | ${fmtCpu(mine)} | ${fmtCpu(base)} | ${floor.toFixed(2)} | ${(total(mine) / floor).toFixed(2)}x |`,
			);
		}
	}
	return lines;
}
