/**
 * The layer rules of README "How it is built" are enforced by Biome
 * (biome.json, noRestrictedImports / noRestrictedGlobals). This test lints
 * probe files with forbidden and allowed imports under the repository's own
 * configuration, in a temporary copy of the folder layout, so a rule that
 * stops biting fails here.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const repo = join(import.meta.dir, "..", "..");
const work = mkdtempSync(join(tmpdir(), "pairlink-layers-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Each probe: a file, one line of source, and whether the rules must refuse it. */
const PROBES: { file: string; line: string; refused: boolean }[] = [
	// Sideways among fs/, store/, transport/, discovery/.
	{ file: "src/fs/p1.ts", line: 'import { a } from "../transport/dial.ts";', refused: true },
	{ file: "src/fs/p2.ts", line: 'import { a } from "../store/trust-store.ts";', refused: true },
	{ file: "src/store/p3.ts", line: 'import { a } from "../fs/root.ts";', refused: true },
	{ file: "src/transport/p4.ts", line: 'import { a } from "../fs/root.ts";', refused: true },
	{ file: "src/discovery/p5.ts", line: 'import { a } from "../store/identity.ts";', refused: true },
	// Upward.
	{ file: "src/fs/p6.ts", line: 'import { a } from "../session/pairing.ts";', refused: true },
	{ file: "src/protocol/p7.ts", line: 'import { a } from "../fs/root.ts";', refused: true },
	{ file: "src/client/p8.ts", line: 'import { a } from "../cli/run.ts";', refused: true },
	// safe-path.ts stays pure.
	{ file: "src/fs/safe-path.ts", line: 'import { a } from "node:fs";', refused: true },
	{ file: "src/fs/safe-path.ts", line: 'import { a } from "./root.ts";', refused: true },
	// session/: no sockets, no node:fs, no Bun global.
	{ file: "src/session/p9.ts", line: 'import { a } from "node:fs/promises";', refused: true },
	{ file: "src/session/p10.ts", line: 'import { a } from "../transport/dial.ts";', refused: true },
	{ file: "src/session/p11.ts", line: 'export const a = Bun.file("x");', refused: true },
	// Allowed: downward imports.
	{ file: "src/session/p12.ts", line: 'import { a } from "../fs/root.ts";', refused: false },
	{ file: "src/fs/p13.ts", line: 'import { a } from "../protocol/limits.ts";', refused: false },
	{ file: "src/server/p14.ts", line: 'import { a } from "../session/pairing.ts";', refused: false },
	{ file: "src/fs/safe-path.ts", line: 'import { a } from "../errors.ts";', refused: false },
];

function lint(files: string[]): string {
	const run = Bun.spawnSync([join(repo, "node_modules", ".bin", "biome"), "lint", ...files], {
		cwd: work,
		stdout: "pipe",
		stderr: "pipe",
	});
	return run.stdout.toString() + run.stderr.toString();
}

describe("layer rules bite (biome.json)", () => {
	const config = JSON.parse(readFileSync(join(repo, "biome.json"), "utf8"));
	// The copy has no git repository and no node_modules: only the rules matter here.
	delete config.vcs;
	delete config.$schema;
	writeFileSync(join(work, "biome.json"), JSON.stringify(config));

	for (const [i, probe] of PROBES.entries()) {
		test(`${probe.file}: \`${probe.line}\` is ${probe.refused ? "refused" : "allowed"}`, () => {
			const dir = join(work, `case${i}`);
			const file = join(dir, probe.file);
			mkdirSync(dirname(file), { recursive: true });
			// The override globs are anchored at src/, so each case gets its own copy of the config root.
			writeFileSync(join(dir, "biome.json"), JSON.stringify({ ...config, root: false }));
			writeFileSync(file, `${probe.line}\n\nexport const used = typeof a;\n`);
			const out = lint([join(`case${i}`, probe.file)]);
			const flagged = /lint\/style\/noRestricted(Imports|Globals)/.test(out);
			expect({ flagged, out: flagged === probe.refused ? "" : out }).toEqual({
				flagged: probe.refused,
				out: "",
			});
		});
	}
});
