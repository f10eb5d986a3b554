import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import {
	checkName,
	MAX_NAME_BYTES,
	MAX_PATH_BYTES,
	parseWirePath,
} from "../../src/fs/safe-path.ts";
import { HOSTILE_PATHS } from "../helpers/hostile-paths.ts";

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
		for (const bad of ["..", ".", "", "a/b", "a\\b", "CON", "x\u0000"])
			expect(() => checkName(bad)).toThrow(PairlinkError);
	});
});
