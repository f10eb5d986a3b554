/** The README's command reference and the real command definitions (what --help prints) must agree. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { commandTree } from "../../src/cli/command-tree.ts";
import { rootCommand } from "../../src/cli/commands/root.ts";

const readme = readFileSync(join(import.meta.dir, "..", "..", "README.md"), "utf8");

/** Rows of the reference table: "`pairlink CMD …`" -> the synopsis. */
function readmeSynopses(): Map<string, string> {
	const rows = new Map<string, string>();
	for (const m of readme.matchAll(/^\| `pairlink ([a-z]+)([^`]*)`\s*\|/gm))
		rows.set(m[1] as string, `${m[1]}${m[2]}`);
	return rows;
}

const optionsIn = (synopsis: string) => new Set(synopsis.match(/(?<![\w-])--?[a-z][a-z-]*/g) ?? []);

describe("README command reference", async () => {
	const tree = await commandTree(rootCommand as never);
	const synopses = readmeSynopses();
	const commands = tree.filter((c) => c.path.length === 1);

	test("lists exactly the commands that exist", () => {
		expect([...synopses.keys()].sort()).toEqual(commands.map((c) => c.path[0] as string).sort());
	});

	for (const c of commands) {
		const name = c.path[0] as string;
		test(`${name}: the same options as --help`, () => {
			const below = tree.filter((x) => x.path[0] === name);
			const groups = below.flatMap((x) => x.optionGroups);
			const documented = optionsIn(synopses.get(name) ?? "");
			// Every option is documented under at least one of its spellings…
			for (const group of groups) expect(group.filter((o) => documented.has(o))).not.toEqual([]);
			// …and nothing is documented that does not exist.
			const real = new Set(groups.flat());
			expect([...documented].filter((o) => !real.has(o))).toEqual([]);
		});
		test(`${name}: the same operands and subcommands`, () => {
			const synopsis = synopses.get(name) ?? "";
			for (const sub of c.subcommands) expect(synopsis).toContain(sub);
			for (const operand of c.operands) {
				// citty names operands after their keys; the README uses SPEC's words for them.
				expect(synopsis.length).toBeGreaterThan(name.length);
				expect(operand).toMatch(/^[A-Z_]+$/);
			}
			expect(
				synopsis.split(/\s+/).filter((w) => /^[A-Z]/.test(w.replace(/^\[/, ""))).length,
			).toBeGreaterThanOrEqual(c.operands.length - (c.subcommands.length ? 1 : 0));
		});
	}
});

describe("README and a fresh clone", () => {
	test("no path into ../shared, which a clone (and CI) does not have", () => {
		expect(readme).not.toContain("../shared");
	});

	test("npm run serve shares the folder with this machine only, as the quick start says", () => {
		const pkg = JSON.parse(readFileSync(join(import.meta.dir, "..", "..", "package.json"), "utf8"));
		expect(pkg.scripts.serve).toMatch(/pairlink serve --host 127\.0\.0\.1$/);
		expect(readme).toContain(
			"reachable from this machine only (`--host 127.0.0.1`) with pairing open",
		);
	});
});
