/**
 * A state directory the system will not let us use is not "a bug in
 * pairlink" (issue 14, item 5): EACCES, ENAMETOOLONG, EIO and EMFILE map to
 * SPEC exit codes with a sentence that says what to do. EACCES is provoked
 * for real by dropping privileges (CI runs as root), ENAMETOOLONG by a real
 * path; EIO and EMFILE cannot be provoked reliably on a healthy machine (a
 * descriptor limit low enough starves Bun's own module loader first), so
 * they are injected into the mapping the store applies to every error.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { ERROR_TABLE, EXIT, PairlinkError } from "../../src/errors.ts";
import { stateError } from "../../src/store/state-dir.ts";
import { makeTempDir, removeTempDirs, runPairlink } from "../helpers/cli.ts";
import { Child } from "../helpers/faults.ts";

afterAll(removeTempDirs);

const NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
/** Root with setpriv, and a Bun that nobody may run (source mode runs the tests' own Bun). */
const canDropPrivileges =
	process.getuid?.() === 0 &&
	Bun.which("setpriv") !== null &&
	Bun.spawnSync([...NOBODY, process.execPath, "--version"]).exitCode === 0;

function noBug(stderr: string): void {
	expect(stderr).not.toContain("bug in pairlink");
	expect(stderr).not.toContain("Unexpected error");
}

describe("the state directory refuses us", () => {
	test.skipIf(!canDropPrivileges)(
		"EACCES (a root-owned 0700 parent, run as nobody): exit 5, says how to fix it",
		async () => {
			const parent = await makeTempDir("pairlink-eacces-");
			await chmod(parent, 0o700);
			const home = join(parent, "state");
			const r = new Child(["id"], { mode: "source", home, prefix: NOBODY });
			expect(await r.exited).toBe(EXIT.refused);
			expect(r.stderr).toContain("permission denied");
			expect(r.stderr).toContain("PAIRLINK_HOME");
			noBug(r.stderr);
		},
	);

	test("ENAMETOOLONG (PAIRLINK_HOME with a 300-byte component): exit 2, says to use a shorter path", async () => {
		const base = await makeTempDir("pairlink-long-");
		const r = await runPairlink(["id"], { env: { PAIRLINK_HOME: join(base, "x".repeat(300)) } });
		expect(r.exitCode).toBe(EXIT.usage);
		expect(r.stderr).toContain("too long");
		expect(r.stderr).toContain("shorter path");
		noBug(r.stderr);
	});
});

describe("errors injected into the store's mapping", () => {
	test.each([
		["EACCES", "state-permission", EXIT.refused],
		["EPERM", "state-permission", EXIT.refused],
		["EROFS", "state-permission", EXIT.refused],
		["ENAMETOOLONG", "path-too-long", EXIT.usage],
		["EIO", "io-error", EXIT.transfer],
		["EMFILE", "out-of-descriptors", EXIT.transfer],
		["ENFILE", "out-of-descriptors", EXIT.transfer],
		["ENOSPC", "disk-full", EXIT.transfer],
	] as const)("%s -> %s (exit %d), with a hint that is not 'a bug'", (errno, code, exit) => {
		const e = stateError(Object.assign(new Error(`${errno}: injected`), { code: errno }), "/s/x");
		expect(e).toBeInstanceOf(PairlinkError);
		expect(e?.code).toBe(code);
		expect(e?.exitCode).toBe(exit);
		expect(e?.message).toContain("/s/x");
		expect(ERROR_TABLE[code].hint).not.toContain("bug");
	});

	test("anything else is left for the caller to judge", () => {
		expect(stateError(new Error("no errno"), "/s/x")).toBeUndefined();
		expect(stateError(Object.assign(new Error("x"), { code: "ENOENT" }), "/s/x")).toBeUndefined();
	});
});
