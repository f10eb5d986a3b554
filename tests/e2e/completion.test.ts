/**
 * The generated completion scripts, run in the real shells: bash (calling
 * the completion function as readline would), zsh (compsys's compadd and
 * _files replaced by recorders, everything else real) and fish (its own
 * `complete -C`). A shell that is not installed is skipped with a message.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BINARY, binaryExists, cliArgv, SOURCE_ENTRY } from "../helpers/cli.ts";
import { makeDevice, removeTempDirs, tempDir, trustEachOther } from "../helpers/devices.ts";

const MODE = binaryExists() ? "binary" : "source";
const has = (shell: string) => Bun.which(shell) !== null;
let home = "";
let binDir = "";

beforeAll(async () => {
	const me = await makeDevice("me");
	const desk = await makeDevice("desk");
	const laptop = await makeDevice("old laptop");
	await trustEachOther(me, desk);
	await trustEachOther(me, laptop);
	home = me.home;
	// The scripts call `pairlink devices list --json`: put a `pairlink` on PATH.
	binDir = await tempDir("pairlink-bin-");
	await mkdir(binDir, { recursive: true });
	const launcher =
		MODE === "binary"
			? `#!/bin/sh\nexec ${JSON.stringify(BINARY)} "$@"\n`
			: `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(SOURCE_ENTRY)} "$@"\n`;
	await writeFile(join(binDir, "pairlink"), launcher);
	await chmod(join(binDir, "pairlink"), 0o755);
});
afterAll(removeTempDirs);

function script(shell: string): string {
	const r = Bun.spawnSync(cliArgv(MODE, ["completion", shell]), {
		env: { PATH: process.env.PATH ?? "", PAIRLINK_HOME: home, NO_COLOR: "1" },
	});
	expect(r.exitCode).toBe(0);
	return r.stdout.toString();
}

const shellEnv = () => ({
	PATH: `${binDir}:${process.env.PATH ?? ""}`,
	PAIRLINK_HOME: home,
	HOME: home,
	SCRIPT: "",
});

const lines = (b: Buffer) => b.toString().split("\n").filter(Boolean).sort();

/** What bash offers for the words typed (the last one is being completed). */
function bashComplete(words: string[]): string[] {
	const quoted = words.map((w) => `'${w}'`).join(" ");
	const r = Bun.spawnSync(
		[
			"bash",
			"--norc",
			"-c",
			`eval "$SCRIPT"; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _pairlink; printf '%s\\n' "\${COMPREPLY[@]}"`,
		],
		{ env: { ...shellEnv(), SCRIPT: script("bash") } },
	);
	return lines(r.stdout);
}

/** What zsh's _pairlink passes to compadd (before zsh's own prefix filter) and whether it adds files. */
function zshComplete(words: string[]): string[] {
	const quoted = words.map((w) => `'${w}'`).join(" ");
	const r = Bun.spawnSync(
		[
			"zsh",
			"-f",
			"-c",
			`compdef() { :; }; compadd() { [[ $1 == -- ]] && shift; printf '%s\\n' "$@"; }; _files() { print '<files>'; }
eval "$SCRIPT"; words=(${quoted}); CURRENT=${words.length}; _pairlink`,
		],
		{ env: { ...shellEnv(), SCRIPT: script("zsh") } },
	);
	expect(r.stderr.toString()).toBe("");
	const prefix = words.at(-1) ?? "";
	return lines(r.stdout).filter((w) => w.startsWith(prefix) || w === "<files>");
}

/** fish's own answer for a command line (cursor at the end). */
function fishComplete(line: string): string[] {
	const r = Bun.spawnSync(
		["fish", "--no-config", "-c", `echo $SCRIPT | source; complete -C ${JSON.stringify(line)}`],
		{ env: { ...shellEnv(), SCRIPT: script("fish") } },
	);
	expect(r.stderr.toString()).toBe("");
	return lines(r.stdout).map((l) => l.split("\t")[0] as string);
}

describe("bash", () => {
	test.skipIf(!has("bash"))("commands, subcommands and options come from the definitions", () => {
		expect(bashComplete(["pairlink", "co"])).toEqual(["code", "completion", "connect"]);
		expect(bashComplete(["pairlink", "devices", "re"])).toEqual(["remove", "rename"]);
		expect(bashComplete(["pairlink", "get", "--o"])).toEqual(["--output", "--overwrite"]);
		expect(bashComplete(["pairlink", "--v"])).toEqual(["--version"]);
	});

	test.skipIf(!has("bash"))(
		"devices remove/rename offer device names, not the subcommands again",
		() => {
			expect(bashComplete(["pairlink", "devices", "remove", ""])).toEqual(["desk", "old\\ laptop"]);
			expect(bashComplete(["pairlink", "devices", "rename", "d"])).toEqual(["desk"]);
			// The second operand of rename is a new name: nothing is offered.
			expect(bashComplete(["pairlink", "devices", "rename", "desk", ""])).toEqual([]);
		},
	);

	test.skipIf(!has("bash"))("a HOST operand offers the trusted device names", () => {
		expect(bashComplete(["pairlink", "ls", ""])).toContain("desk");
		expect(bashComplete(["pairlink", "get", "-o", "out", "d"])).toEqual(["desk"]);
		// After HOST come remote or local paths: bash falls back to file names.
		expect(bashComplete(["pairlink", "get", "desk", "d"])).toEqual([]);
	});
});

describe("zsh", () => {
	if (!has("zsh")) console.warn("zsh is not installed: its completion tests are skipped");
	test.skipIf(!has("zsh"))("devices remove offers device names, not the subcommands again", () => {
		const offered = zshComplete(["pairlink", "devices", "remove", ""]);
		expect(offered).toContain("desk");
		expect(offered).toContain("old laptop");
		expect(offered).not.toContain("list");
		expect(offered).not.toContain("rename");
	});

	test.skipIf(!has("zsh"))("commands at the top, device names for HOST, files after it", () => {
		expect(zshComplete(["pairlink", "co"])).toEqual(["code", "completion", "connect"]);
		expect(zshComplete(["pairlink", "put", "de"])).toEqual(["<files>", "desk"]);
		expect(zshComplete(["pairlink", "put", "desk", "no"])).toEqual(["<files>"]);
	});
});

describe("fish", () => {
	if (!has("fish")) console.warn("fish is not installed: its completion tests are skipped");
	test.skipIf(!has("fish"))("devices remove offers device names, not the subcommands again", () => {
		expect(fishComplete("pairlink devices remove ")).toEqual(["desk", "old laptop"]);
		expect(fishComplete("pairlink devices ")).toEqual(["list", "remove", "rename"]);
	});

	test.skipIf(!has("fish"))("HOST offers device names; options of the command", () => {
		expect(fishComplete("pairlink ls d")).toEqual(["desk"]);
		expect(fishComplete("pairlink serve --allow-")).toEqual([
			"--allow-delete",
			"--allow-overwrite",
		]);
	});
});

test("an unknown shell is a usage error", () => {
	const bad = Bun.spawnSync(cliArgv(MODE, ["completion", "tcsh"]));
	expect(bad.exitCode).toBe(2);
	expect(bad.stdout.toString()).toBe("");
});
