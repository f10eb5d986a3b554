/** Numbers and entries for people. */
import type { Entry } from "../fs/root.ts";
import { safe } from "./terminal.ts";

export function formatBytes(n: number): string {
	if (n < 1000) return `${Math.round(n)} B`;
	const units = ["kB", "MB", "GB", "TB"];
	let v = n;
	let i = -1;
	while (v >= 1000 && i < units.length - 1) {
		v /= 1000;
		i++;
	}
	return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

export function formatRate(bytes: number, seconds: number): string {
	return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : "-";
}

export function entryJson(e: Entry) {
	return { name: e.name, type: e.type, size: e.size, mtime: new Date(e.mtime).toISOString() };
}

export function entryLine(e: Entry, long: boolean): string {
	const name = `${safe(e.name)}${e.type === "dir" ? "/" : e.type === "symlink" ? "@" : ""}`;
	if (!long) return name;
	const when = new Date(e.mtime).toISOString().replace("T", " ").slice(0, 16);
	return `${e.type.padEnd(7)} ${String(e.size).padStart(12)}  ${when}  ${name}`;
}
