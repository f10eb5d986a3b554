import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import {
	checkName,
	checkReceivable,
	escapeForTerminal,
	MAX_NAME_BYTES,
	MAX_PATH_BYTES,
	parseWirePath,
	receiverNameProblem,
} from "../../src/fs/safe-path.ts";
import { HOSTILE_PATHS, WINDOWS_ONLY_PATHS } from "../helpers/hostile-paths.ts";

describe("parseWirePath", () => {
	test("accepts ordinary relative paths", () => {
		expect(parseWirePath("")).toEqual([]);
		expect(parseWirePath(".")).toEqual([]);
		expect(parseWirePath("a")).toEqual(["a"]);
		expect(parseWirePath("dir/sub/file.txt")).toEqual(["dir", "sub", "file.txt"]);
		expect(parseWirePath(".hidden/..dots/x..y")).toEqual([".hidden", "..dots", "x..y"]);
		expect(parseWirePath("ünïcødé/日本語/emoji 🎉.txt")).toEqual([
			"ünïcødé",
			"日本語",
			"emoji 🎉.txt",
		]);
		expect(parseWirePath("console/contest/nullable/com10")).toEqual([
			"console",
			"contest",
			"nullable",
			"com10",
		]);
		expect(parseWirePath("x".repeat(MAX_NAME_BYTES))).toHaveLength(1);
	});

	test.each(HOSTILE_PATHS.map((p) => [JSON.stringify(p).slice(0, 40), p]))(
		"refuses %s",
		(_label, p) => {
			let err: unknown;
			try {
				parseWirePath(p);
			} catch (e) {
				err = e;
			}
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).code).toBe("invalid-path");
			expect((err as PairlinkError).exitCode).toBe(5);
		},
	);

	test("refuses paths over the byte limit even with short names", () => {
		const long = Array.from({ length: 60 }, () => "x".repeat(80)).join("/");
		expect(new TextEncoder().encode(long).length).toBeGreaterThan(MAX_PATH_BYTES);
		expect(() => parseWirePath(long)).toThrow(PairlinkError);
	});

	test("error messages escape what they quote", () => {
		try {
			parseWirePath("\u001b[2J/x");
		} catch (e) {
			expect((e as Error).message).not.toContain("\u001b");
			return;
		}
		throw new Error("expected a refusal");
	});
});

describe("checkName", () => {
	test("applies the same rules to a single name from a server", () => {
		expect(() => checkName("ok.txt")).not.toThrow();
		for (const bad of ["..", ".", "", "a/b", "a\\b", "x\u0000", "x\u009b"])
			expect(() => checkName(bad)).toThrow(PairlinkError);
	});
});

describe("receiver rules: only a Windows receiver refuses what Windows cannot hold", () => {
	test.each(WINDOWS_ONLY_PATHS.map((p) => [JSON.stringify(p), p]))(
		"%s: a wire path, held by Linux and macOS, refused by an injected win32 receiver",
		(_label, p) => {
			expect(parseWirePath(p).length).toBeGreaterThan(0);
			for (const platform of ["linux", "darwin", "freebsd"])
				expect(() => checkReceivable(p, platform)).not.toThrow();
			let err: unknown;
			try {
				checkReceivable(p, "win32");
			} catch (e) {
				err = e;
			}
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).code).toBe("invalid-path");
			expect((err as PairlinkError).exitCode).toBe(5);
		},
	);

	test("ordinary names pass a Windows receiver too", () => {
		for (const name of [
			"console",
			"com10",
			"con-artist.txt",
			"a.b",
			".hidden",
			"日本語.txt",
			"x..y",
		])
			expect(receiverNameProblem(name, "win32")).toBeUndefined();
	});

	test("names of 255 bytes and any Unicode are wire names", () => {
		expect(parseWirePath("é".repeat(127))).toHaveLength(1); // 254 bytes
		expect(parseWirePath(`${"x".repeat(252)}✓`)).toHaveLength(1); // 255 bytes
		expect(() => parseWirePath(`${"x".repeat(253)}✓`)).toThrow(PairlinkError); // 256 bytes
		expect(parseWirePath("rtl\u202eexe.txt/line\u2028sep/\uff0e\uff0e")).toHaveLength(3);
	});
});

describe("escapeForTerminal", () => {
	test("escapes control, line-separator and bidi characters and nothing else", () => {
		expect(escapeForTerminal("\u001b[2Jred\u202e\u2028\u200fok ✓")).toBe(
			"\\x1b[2Jred\\u202e\\u2028\\u200fok ✓",
		);
	});
});
