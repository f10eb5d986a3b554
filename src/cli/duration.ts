import { PairlinkError } from "../errors.ts";
import { plural } from "./format.ts";

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "10m", "1h30m", "2d"; a bare number is seconds. */
export function parseDuration(text: string): number {
	const s = text.trim().toLowerCase();
	if (/^\d+$/.test(s)) return Number(s) * 1000;
	const parts = [...s.matchAll(/(\d+)([smhd])/g)];
	if (parts.length === 0 || parts.map((p) => p[0]).join("") !== s) {
		throw new PairlinkError("usage", `"${text}" is not a duration (try 30s, 10m, 1h)`);
	}
	return parts.reduce((ms, p) => ms + Number(p[1]) * (UNIT_MS[p[2] as string] as number), 0);
}

export function describeDuration(ms: number): string {
	const minutes = Math.round(ms / 60_000);
	if (ms < 60_000) return plural(Math.max(Math.round(ms / 1000), 0), "second");
	if (minutes < 120) return plural(minutes, "minute");
	return plural(Math.round(minutes / 60), "hour");
}
