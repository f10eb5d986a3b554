import { describe, expect, test } from "bun:test";
import { cliArgv } from "../helpers/cli.ts";

async function complete(words: string[]): Promise<string[]> {
	const script = Bun.spawnSync(cliArgv("source", ["completion", "bash"]), {
		env: { ...process.env, NO_COLOR: "1" },
	});
	expect(script.exitCode).toBe(0);
	const words_ = words.map((w) => `'${w}'`).join(" ");
	const bash = Bun.spawnSync(
		[
			"bash",
			"-c",
			`eval "$SCRIPT"; COMP_WORDS=(${words_}); COMP_CWORD=${words.length - 1}; _pairlink; printf '%s\\n' "\${COMPREPLY[@]}"`,
		],
		{ env: { PATH: process.env.PATH ?? "", SCRIPT: script.stdout.toString() } },
	);
	return bash.stdout.toString().trim().split("\n").filter(Boolean);
}

describe("pairlink completion", () => {
	test("bash: commands, subcommands and options come from the definitions", async () => {
		expect(await complete(["pairlink", "co"])).toEqual(["code", "connect", "completion"]);
		expect(await complete(["pairlink", "devices", "re"])).toEqual(["remove", "rename"]);
		expect(await complete(["pairlink", "get", "--o"])).toEqual(["--output", "--overwrite"]);
		expect(await complete(["pairlink", "serve", "--allow-"])).toEqual([
			"--allow-overwrite",
			"--allow-delete",
		]);
	});

	test("zsh and fish scripts name every command; an unknown shell is a usage error", () => {
		for (const shell of ["zsh", "fish"]) {
			const r = Bun.spawnSync(cliArgv("source", ["completion", shell]));
			expect(r.exitCode).toBe(0);
			for (const cmd of ["serve", "pair", "connect", "get", "put", "devices"])
				expect(r.stdout.toString()).toContain(cmd);
		}
		const bad = Bun.spawnSync(cliArgv("source", ["completion", "tcsh"]));
		expect(bad.exitCode).toBe(2);
		expect(bad.stdout.toString()).toBe("");
	});
});
