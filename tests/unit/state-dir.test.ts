import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PairlinkError } from "../../src/errors";
import { portableStateDir, resolveStateDir } from "../../src/store/state-dir";

type Env = Record<string, string | undefined>;

describe("resolveStateDir", () => {
	const cases: [string, Env, string, string, string][] = [
		// [what, env, platform, homedir, expected]
		[
			"PAIRLINK_HOME wins on linux",
			{ PAIRLINK_HOME: "/p", XDG_CONFIG_HOME: "/x" },
			"linux",
			"/home/u",
			"/p",
		],
		[
			"PAIRLINK_HOME wins on win32",
			{ PAIRLINK_HOME: "D:\\p", APPDATA: "C:\\A" },
			"win32",
			"C:\\Users\\u",
			"D:\\p",
		],
		[
			"PAIRLINK_HOME relative kept as given",
			{ PAIRLINK_HOME: "state" },
			"linux",
			"/home/u",
			"state",
		],
		[
			"empty PAIRLINK_HOME is unset",
			{ PAIRLINK_HOME: "", XDG_CONFIG_HOME: "/x" },
			"linux",
			"/home/u",
			"/x/pairlink",
		],
		["XDG_CONFIG_HOME", { XDG_CONFIG_HOME: "/x" }, "linux", "/home/u", "/x/pairlink"],
		[
			"XDG_CONFIG_HOME trailing slash",
			{ XDG_CONFIG_HOME: "/x/" },
			"linux",
			"/home/u",
			"/x/pairlink",
		],
		[
			"relative XDG_CONFIG_HOME ignored",
			{ XDG_CONFIG_HOME: "x" },
			"linux",
			"/home/u",
			"/home/u/.config/pairlink",
		],
		[
			"empty XDG_CONFIG_HOME ignored",
			{ XDG_CONFIG_HOME: "" },
			"linux",
			"/home/u",
			"/home/u/.config/pairlink",
		],
		["default on linux", {}, "linux", "/home/u", "/home/u/.config/pairlink"],
		["default on darwin", {}, "darwin", "/Users/u", "/Users/u/.config/pairlink"],
		["XDG on darwin", { XDG_CONFIG_HOME: "/x" }, "darwin", "/Users/u", "/x/pairlink"],
		[
			"APPDATA on win32",
			{ APPDATA: "C:\\Users\\u\\AppData\\Roaming" },
			"win32",
			"C:\\Users\\u",
			"C:\\Users\\u\\AppData\\Roaming\\pairlink",
		],
		[
			"XDG ignored on win32",
			{ XDG_CONFIG_HOME: "/x", APPDATA: "C:\\A" },
			"win32",
			"C:\\Users\\u",
			"C:\\A\\pairlink",
		],
		[
			"win32 without APPDATA",
			{},
			"win32",
			"C:\\Users\\u",
			"C:\\Users\\u\\AppData\\Roaming\\pairlink",
		],
		[
			"APPDATA ignored off win32",
			{ APPDATA: "C:\\A" },
			"linux",
			"/home/u",
			"/home/u/.config/pairlink",
		],
	];

	test.each(cases)("%s", (_, env, platform, homedir, expected) => {
		expect(resolveStateDir(env, platform, homedir)).toBe(expected);
	});

	test("is pure: does not read process.env", () => {
		const saved = process.env.PAIRLINK_HOME;
		process.env.PAIRLINK_HOME = "/from/process/env";
		try {
			expect(resolveStateDir({}, "linux", "/home/u")).toBe("/home/u/.config/pairlink");
		} finally {
			if (saved === undefined) delete process.env.PAIRLINK_HOME;
			else process.env.PAIRLINK_HOME = saved;
		}
	});

	test.each([
		["linux", {}],
		["win32", {}],
		["linux", { XDG_CONFIG_HOME: "relative" }],
	] as [string, Env][])(
		"no home at all on %s is a usage error naming PAIRLINK_HOME",
		(platform, env) => {
			let caught: unknown;
			try {
				resolveStateDir(env, platform, "");
			} catch (e) {
				caught = e;
			}
			expect(caught).toBeInstanceOf(PairlinkError);
			expect((caught as PairlinkError).code).toBe("usage");
			expect((caught as PairlinkError).message).toContain("PAIRLINK_HOME");
		},
	);
});

describe("portable mode", () => {
	test.each([
		["linux", { XDG_CONFIG_HOME: "/x" }, "/home/u"],
		["win32", { APPDATA: "C:\\A" }, "C:\\Users\\u"],
	] as [string, Env, string][])(
		"the folder next to the executable beats the OS config dir on %s",
		(platform, env, homedir) => {
			expect(resolveStateDir(env, platform, homedir, "/media/stick/pairlink-state")).toBe(
				"/media/stick/pairlink-state",
			);
		},
	);

	test("PAIRLINK_HOME beats it; an empty PAIRLINK_HOME does not", () => {
		expect(resolveStateDir({ PAIRLINK_HOME: "/p" }, "linux", "/home/u", "/m/pairlink-state")).toBe(
			"/p",
		);
		expect(resolveStateDir({ PAIRLINK_HOME: "" }, "linux", "/home/u", "/m/pairlink-state")).toBe(
			"/m/pairlink-state",
		);
	});

	test("it needs no home directory", () => {
		expect(resolveStateDir({}, "linux", "", "/m/pairlink-state")).toBe("/m/pairlink-state");
	});

	test("portableStateDir: only an existing directory named pairlink-state next to the executable", () => {
		const dir = mkdtempSync(join(tmpdir(), "pairlink-portable-"));
		try {
			const exe = join(dir, "pairlink");
			expect(portableStateDir(exe)).toBeUndefined();
			writeFileSync(join(dir, "pairlink-state"), "a file, not a folder");
			expect(portableStateDir(exe)).toBeUndefined();
			rmSync(join(dir, "pairlink-state"));
			mkdirSync(join(dir, "pairlink-state"));
			expect(portableStateDir(exe)).toBe(join(dir, "pairlink-state"));
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});
