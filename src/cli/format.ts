/** Numbers, sizes, times and entries for people (exact values stay in --json). */
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

/** "1 file", "2 files": every count a person reads goes through here. */
export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const two = (n: number) => String(n).padStart(2, "0");

/**
 * Local time (the user's TZ) with its UTC offset, so a time is never
 * mistaken for another zone's: "2026-11-30 14:05 +01:00".
 */
export function formatLocalTime(when: number | string, seconds = false): string {
	const d = new Date(when);
	const offset = -d.getTimezoneOffset();
	const sign = offset < 0 ? "-" : "+";
	const abs = Math.abs(offset);
	const clock = `${two(d.getHours())}:${two(d.getMinutes())}${seconds ? `:${two(d.getSeconds())}` : ""}`;
	return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock} ${sign}${two(Math.floor(abs / 60))}:${two(abs % 60)}`;
}

export function entryJson(e: Entry) {
	return { name: e.name, type: e.type, size: e.size, mtime: new Date(e.mtime).toISOString() };
}

export function entryLine(e: Entry, long: boolean): string {
	const name = `${safe(e.name)}${e.type === "dir" ? "/" : e.type === "symlink" ? "@" : ""}`;
	if (!long) return name;
	// A directory's size says nothing to a person: shown as "-", as in many file managers.
	const size = e.type === "dir" ? "-" : formatBytes(e.size);
	return `${e.type.padEnd(7)} ${size.padStart(9)}  ${formatLocalTime(e.mtime)}  ${name}`;
}
