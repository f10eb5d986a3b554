/** SPEC "Metadata", "Up to date", "--exclude": the pure rules both sides share. */
import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import { checkExcludes, excluder } from "../../src/fs/exclude.ts";
import { changed, receivedMode, sameTime, upToDate } from "../../src/fs/metadata.ts";

describe("modes", () => {
	test("the receiver's umask plus the sender's executable bits; never setuid, setgid or sticky", () => {
		expect(receivedMode(0o755, 0o022)).toBe(0o755);
		expect(receivedMode(0o644, 0o022)).toBe(0o644);
		expect(receivedMode(0o600, 0o022)).toBe(0o644); // not the sender's: the receiver's default
		expect(receivedMode(0o7777, 0o022)).toBe(0o755);
		expect(receivedMode(0o4755, 0o077)).toBe(0o700);
		expect(receivedMode(0o2711, 0o002)).toBe(0o775);
	});
});

describe("up to date", () => {
	test("equal to the millisecond", () => {
		expect(sameTime(1588327200123, 1588327200123)).toBe(true);
		expect(sameTime(1588327200123, 1588327200124)).toBe(false);
		expect(upToDate({ size: 5, mtime: 7 }, { size: 5, mtime: 7 })).toBe(true);
		expect(upToDate({ size: 5, mtime: 7 }, { size: 6, mtime: 7 })).toBe(false);
	});

	test("within a coarser receiver's granularity: whole seconds (truncated), FAT's 2 s", () => {
		expect(sameTime(1588327201123, 1588327201000)).toBe(true); // kept in whole seconds
		expect(sameTime(1588327201123, 1588327202000)).toBe(true); // FAT rounded up to 2 s
		expect(sameTime(1588327203123, 1588327202000)).toBe(true); // FAT rounded down
		expect(sameTime(1588327205123, 1588327202000)).toBe(false);
		expect(sameTime(1588327201123, 1588327201001)).toBe(false); // millisecond precision there
	});

	test("a changed source: size, mtime or identity", () => {
		const s = { size: 1, mtimeMs: 2, ino: 3, dev: 4, mode: 0o644 };
		expect(changed(s, { ...s })).toBe(false);
		expect(changed(s, { ...s, mode: 0o755 })).toBe(false);
		for (const k of ["size", "mtimeMs", "ino", "dev"] as const)
			expect(changed(s, { ...s, [k]: s[k] + 1 })).toBe(true);
	});
});

describe("--exclude", () => {
	test("a single name anywhere, or a path below the sent directory, its own name included", () => {
		const ex = excluder(["*.tmp", "node_modules", "photos/raw", "/cache/"], "photos");
		expect(ex("a.tmp")).toBe(true);
		expect(ex("deep/er/b.tmp")).toBe(true);
		expect(ex("x/node_modules")).toBe(true);
		expect(ex("raw")).toBe(true); // photos/raw
		expect(ex("cache")).toBe(true);
		expect(ex("raw2")).toBe(false);
		expect(ex("x/raw")).toBe(false);
		expect(ex("a.tmpx")).toBe(false);
		expect(excluder([], "photos")("anything")).toBe(false);
	});

	test("at most 64 patterns of 1 to 256 bytes", () => {
		expect(() => checkExcludes(Array.from({ length: 64 }, (_, i) => `p${i}`))).not.toThrow();
		expect(() => checkExcludes(Array.from({ length: 65 }, (_, i) => `p${i}`))).toThrow(
			PairlinkError,
		);
		expect(() => checkExcludes(["é".repeat(129)])).toThrow(PairlinkError); // 258 bytes
		expect(() => checkExcludes([""])).toThrow(PairlinkError);
	});
});
