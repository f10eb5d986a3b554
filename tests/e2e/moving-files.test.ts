/**
 * SPEC "Moving files", driven through the compiled dist/pairlink between two
 * PAIRLINK_HOMEs on this (Linux) machine: every file asked for is moved or
 * reported with its path and reason; ordinary names (colons, question marks,
 * trailing dots, device names, any Unicode) move between two Linux
 * machines; destinations are directories or files as SPEC's "Destinations"
 * says; and failures say which side and which file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
	BINARY,
	binaryExists,
	type CliMode,
	killAllChildren,
	makeTempDir,
	parseNdjson,
	removeTempDirs,
} from "../helpers/cli.ts";
import { Child, fsizePrefix, killChildren, prlimitAvailable } from "../helpers/faults.ts";
import { cli, type Paired, pairDevices } from "./scenarios.ts";

const MODE: CliMode = "binary";
const run = cli(MODE);
const missing = !binaryExists();
if (missing) {
	console.warn(
		`SKIPPING tests/e2e/moving-files.test.ts: ${BINARY} does not exist. Build it with \`bun scripts/build-binaries.ts --host\`.`,
	);
}

/** Names a Windows receiver refuses but two Linux machines hold: they must move. */
const ORDINARY = [
	"Meeting notes: 2026.txt",
	"a?b",
	'say "hi" <now> |pipe| *star*',
	"trailing dot.",
	"trailing space ",
	"con.txt",
	"CON",
	"lpt1.log",
	"日本語 ✓ café.txt",
	"\u202etxt.exe", // a bidi override: escaped when printed, moved all the same
	"x".repeat(240),
];
/** Names no wire may carry: the sender reports each, the rest still move. */
const BACKSLASH = "back\\slash.txt";
const CONTROL = "bell\u0007.txt";
const NOT_UTF8 = Buffer.from([0x62, 0x61, 0x64, 0xff, 0x2e, 0x74, 0x78, 0x74]); // "bad\xff.txt"

let paired: Paired;
let share: string;
let host: string;
const client = (args: string[], cwd?: string) =>
	run(args, { home: paired.clientHome, ...(cwd ? { cwd } : {}) });

/** A directory holding every ordinary name, and every name the wire refuses. */
async function tricky(dir: string): Promise<void> {
	await mkdir(join(dir, "sub: dir?"), { recursive: true });
	for (const name of ORDINARY) await writeFile(join(dir, name), `content of ${name}\n`);
	await writeFile(join(dir, "sub: dir?", "inner."), "inner\n");
	await writeFile(join(dir, BACKSLASH), "backslash\n");
	await writeFile(join(dir, CONTROL), "control\n");
	await writeFile(Buffer.concat([Buffer.from(`${dir}/`), NOT_UTF8]), "not utf-8\n");
}

async function expectTrickyCopy(dir: string): Promise<void> {
	for (const name of ORDINARY)
		expect(await Bun.file(join(dir, name)).text()).toBe(`content of ${name}\n`);
	expect(await Bun.file(join(dir, "sub: dir?", "inner.")).text()).toBe("inner\n");
	expect(existsSync(join(dir, BACKSLASH))).toBe(false);
	expect(existsSync(join(dir, CONTROL))).toBe(false);
	expect(readdirSync(dir).sort()).toEqual([...ORDINARY, "sub: dir?"].sort());
}

const events = (stdout: string, kind: string) =>
	parseNdjson(stdout).filter((e) => (kind === "file" ? "sha256" in e : e.event === kind));

beforeAll(async () => {
	if (missing) return;
	paired = await pairDevices(MODE);
	share = paired.started.listening.root as string;
	host = paired.started.address;
});

afterAll(async () => {
	await killChildren();
	await killAllChildren();
	await removeTempDirs();
});

describe.skipIf(missing)("every file accounted for", () => {
	test("get -r: ordinary names move; names the wire forbids are errors with path and reason; exit 5", async () => {
		await tricky(join(share, "mixed"));
		const dest = await makeTempDir("pairlink-dest-");
		const r = await client(["get", host, "mixed", "-r", "-o", dest, "--json"]);
		expect(r.exitCode).toBe(5);
		await expectTrickyCopy(join(dest, "mixed"));
		const errors = events(r.stdout, "error");
		expect(errors.map((e) => e.path).sort()).toEqual(
			[`mixed/${BACKSLASH}`, `mixed/${CONTROL}`, "mixed/bad\uFFFD.txt"].sort(),
		);
		for (const e of errors) expect(e).toMatchObject({ code: 5, reason: "invalid-name" });
		expect(events(r.stdout, "done")).toEqual([
			expect.objectContaining({ files: ORDINARY.length + 1, upToDate: 0, failed: 3 }),
		]);
		expect(r.stderr).toContain("3 of");
	});

	test("put -r: the same tree; each refused name is reported, not skipped in silence; exit 5", async () => {
		const local = await makeTempDir("pairlink-local-");
		await tricky(join(local, "upmixed"));
		const r = await client(["put", host, "upmixed", "-r", "--json"], local);
		expect(r.exitCode).toBe(5);
		await expectTrickyCopy(join(share, "upmixed"));
		const errors = events(r.stdout, "error");
		expect(errors.map((e) => e.path).sort()).toEqual(
			[`upmixed/${BACKSLASH}`, `upmixed/${CONTROL}`, "upmixed/bad\uFFFD.txt"].sort(),
		);
		for (const e of errors) expect(e).toMatchObject({ code: 5, reason: "invalid-name" });
		expect(events(r.stdout, "done")[0]).toMatchObject({
			files: ORDINARY.length + 1,
			failed: 3,
		});
	});

	test("put of a file named in bytes that are not UTF-8 (as a shell glob passes it): reported, the rest go", async () => {
		const cwd = await makeTempDir("pairlink-local-");
		await writeFile(Buffer.concat([Buffer.from(`${cwd}/`), NOT_UTF8]), "not utf-8\n");
		await writeFile(join(cwd, "fine.txt"), "fine\n");
		// Through a shell: an argument of raw bytes cannot be given as a JavaScript string.
		const script = `exec "$0" put "$1" bad* fine.txt --to bytes/ --json`;
		const proc = Bun.spawn(["/bin/sh", "-c", script, BINARY, host], {
			cwd,
			env: { PATH: process.env.PATH ?? "", PAIRLINK_HOME: paired.clientHome, NO_COLOR: "1" },
			stdout: "pipe",
			stderr: "pipe",
		});
		const [code, stdout] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
		expect(code).toBe(5);
		expect(await Bun.file(join(share, "bytes", "fine.txt")).text()).toBe("fine\n");
		expect(events(stdout, "error")).toEqual([
			expect.objectContaining({ path: "bad\uFFFD.txt", code: 5, reason: "invalid-name" }),
		]);
	});

	test("without --json each failed file is named on stderr, and the moved ones on stdout", async () => {
		await mkdir(join(share, "two-bad"), { recursive: true });
		await writeFile(join(share, "two-bad", "ok.txt"), "ok\n");
		await writeFile(join(share, "two-bad", "x\\1"), "1\n");
		await writeFile(join(share, "two-bad", "x\\2"), "2\n");
		const dest = await makeTempDir("pairlink-dest-");
		const r = await client(["get", host, "two-bad", "-r", "-o", dest]);
		expect(r.exitCode).toBe(5);
		expect(r.stdout).toContain("two-bad/ok.txt");
		expect(r.stderr).toContain('"two-bad/x\\\\1"');
		expect(r.stderr).toContain('"two-bad/x\\\\2"');
		expect(r.stderr).toContain("2 of 3 files failed");
		expect(r.stderr).toContain("the others were moved or up to date");
		// The closing line's advice fits every failure, not just the first one's.
		expect(r.stderr).toContain("run the same command again: it moves only what is missing");
	});

	test("when every file failed, the closing line does not claim the others moved", async () => {
		await mkdir(join(share, "all-bad"), { recursive: true });
		await writeFile(join(share, "all-bad", "y\\1"), "1\n");
		await writeFile(join(share, "all-bad", "y\\2"), "2\n");
		const dest = await makeTempDir("pairlink-dest-");
		const r = await client(["get", host, "all-bad", "-r", "-o", dest]);
		expect(r.exitCode).toBe(5);
		expect(r.stderr).toContain("2 of 2 files failed");
		expect(r.stderr).not.toContain("the others were moved");
	});
});

describe.skipIf(missing || !prlimitAvailable())("a transfer failure among refusals", () => {
	test("a file too big for this device's file-size limit and a missing one: the rest move, exit 6", async () => {
		await mkdir(join(share, "mix6"), { recursive: true });
		await writeFile(join(share, "mix6", "small.txt"), "small\n");
		await writeFile(join(share, "mix6", "big.bin"), Buffer.alloc(2 * 1024 * 1024, 7));
		const dest = await makeTempDir("pairlink-dest-");
		const args = ["get", host, "mix6/small.txt", "mix6/big.bin", "mix6/gone.txt", "-o", dest];
		const limited = new Child([...args, "--json"], {
			mode: MODE,
			home: paired.clientHome,
			prefix: fsizePrefix(64 * 1024),
		});
		expect(await limited.exited, limited.describe()).toBe(6);
		expect(await Bun.file(join(dest, "small.txt")).text()).toBe("small\n");
		expect(existsSync(join(dest, "big.bin"))).toBe(false);
		const errors = events(limited.stdout, "error");
		expect(errors.map((e) => [e.path, e.code, e.reason]).sort()).toEqual([
			["mix6/big.bin", 6, "disk-full"],
			["mix6/gone.txt", 5, "not-found"],
		]);
		expect(events(limited.stdout, "done")[0]).toMatchObject({ files: 1, failed: 2 });
	});
});

describe.skipIf(missing)("names: ordinary names move between two Linux machines", () => {
	test("a single file with a colon, got to an -o path with a colon and put back under it", async () => {
		await writeFile(join(share, "Meeting notes: 2026.txt"), "minutes\n");
		const local = await makeTempDir("pairlink-local-");
		const got = await client(
			["get", host, "Meeting notes: 2026.txt", "-o", "notes: v2.txt"],
			local,
		);
		expect(got.exitCode).toBe(0);
		expect(await Bun.file(join(local, "notes: v2.txt")).text()).toBe("minutes\n");
		const put = await client(["put", host, "notes: v2.txt", "--to", "/docs?/"], local);
		expect(put.exitCode).toBe(0);
		expect(await Bun.file(join(share, "docs?", "notes: v2.txt")).text()).toBe("minutes\n");
	});
});

describe.skipIf(missing)("destinations", () => {
	test("get -r -o backup gives backup/pics/…, whether or not backup existed", async () => {
		await mkdir(join(share, "pics", "2026"), { recursive: true });
		await writeFile(join(share, "pics", "2026", "a.jpg"), "jpeg\n");
		for (const existed of [false, true]) {
			const cwd = await makeTempDir("pairlink-local-");
			if (existed) await mkdir(join(cwd, "backup"));
			const r = await client(["get", host, "pics", "-r", "-o", "backup"], cwd);
			expect(r.exitCode).toBe(0);
			expect(await Bun.file(join(cwd, "backup", "pics", "2026", "a.jpg")).text()).toBe("jpeg\n");
		}
	});

	test("-o newdir/ is a directory (created with its parents); -o a/b/x is the file to write", async () => {
		await writeFile(join(share, "one.txt"), "one\n");
		const cwd = await makeTempDir("pairlink-local-");
		const dir = await client(["get", host, "one.txt", "-o", "new/dir/"], cwd);
		expect(dir.exitCode).toBe(0);
		expect(await Bun.file(join(cwd, "new", "dir", "one.txt")).text()).toBe("one\n");
		const file = await client(["get", host, "/one.txt", "-o", "deep/er/x.txt"], cwd);
		expect(file.exitCode).toBe(0);
		expect(await Bun.file(join(cwd, "deep", "er", "x.txt")).text()).toBe("one\n");
	});

	test("README: put ~/photos -r --to photos works when photos does not exist on the server", async () => {
		const cwd = await makeTempDir("pairlink-local-");
		await mkdir(join(cwd, "photos", "trip"), { recursive: true });
		await writeFile(join(cwd, "photos", "trip", "b.jpg"), "b\n");
		expect(existsSync(join(share, "photos"))).toBe(false);
		const r = await client(["put", host, join(cwd, "photos"), "-r", "--to", "photos"], cwd);
		expect(r.exitCode).toBe(0);
		expect(await Bun.file(join(share, "photos", "photos", "trip", "b.jpg")).text()).toBe("b\n");
		// And without --to: photos/ at the top of the share.
		const top = await client(["put", host, "photos", "-r"], cwd);
		expect(top.exitCode).toBe(0);
		expect(await Bun.file(join(share, "photos", "trip", "b.jpg")).text()).toBe("b\n");
	});

	test("put --to names a new directory for several files, or the file to write for one", async () => {
		const cwd = await makeTempDir("pairlink-local-");
		await writeFile(join(cwd, "p.txt"), "p\n");
		await writeFile(join(cwd, "q.txt"), "q\n");
		const many = await client(["put", host, "p.txt", "q.txt", "--to", "inbox/new"], cwd);
		expect(many.exitCode).toBe(0);
		expect(await Bun.file(join(share, "inbox", "new", "q.txt")).text()).toBe("q\n");
		const one = await client(["put", host, "p.txt", "--to", "renamed/p-copy.txt"], cwd);
		expect(one.exitCode).toBe(0);
		expect(await Bun.file(join(share, "renamed", "p-copy.txt")).text()).toBe("p\n");
		// README: `put notes.txt --to docs` puts it inside docs when docs is a directory there.
		await mkdir(join(share, "docs"), { recursive: true });
		const into = await client(["put", host, "p.txt", "--to", "docs"], cwd);
		expect(into.exitCode).toBe(0);
		expect(await Bun.file(join(share, "docs", "p.txt")).text()).toBe("p\n");
	});
});

describe.skipIf(missing)("local versus remote: which side, which file", () => {
	test("put of a missing local file: named as missing on this device; the others still go", async () => {
		const cwd = await makeTempDir("pairlink-local-");
		await writeFile(join(cwd, "here.txt"), "here\n");
		const r = await client(["put", host, "missing.txt", "here.txt", "--to", "local-vs/"], cwd);
		expect(r.exitCode).toBe(5);
		expect(await Bun.file(join(share, "local-vs", "here.txt")).text()).toBe("here\n");
		expect(r.stderr).toContain('"missing.txt" does not exist on this device');
		expect(r.stderr).not.toContain("pairlink ls");
		expect(r.stderr).not.toContain("server");
	});

	test("get of a missing remote file names it and the server", async () => {
		const cwd = await makeTempDir("pairlink-local-");
		const r = await client(["get", host, "nope.txt"], cwd);
		expect(r.exitCode).toBe(5);
		expect(r.stderr).toContain('"nope.txt" does not exist on the server');
	});

	test("get of several files: the rest move, the missing one is named", async () => {
		await writeFile(join(share, "s1.txt"), "s1\n");
		await writeFile(join(share, "s2.txt"), "s2\n");
		const cwd = await makeTempDir("pairlink-local-");
		const r = await client(
			["get", host, "s1.txt", "gone.txt", "s2.txt", "-o", "out", "--json"],
			cwd,
		);
		expect(r.exitCode).toBe(5);
		expect(await Bun.file(join(cwd, "out", "s1.txt")).text()).toBe("s1\n");
		expect(await Bun.file(join(cwd, "out", "s2.txt")).text()).toBe("s2\n");
		expect(events(r.stdout, "error")).toEqual([
			{
				event: "error",
				path: "gone.txt",
				code: 5,
				reason: "not-found",
				message: '"gone.txt" does not exist on the server.',
			},
		]);
		expect(events(r.stdout, "done")[0]).toMatchObject({ files: 2, failed: 1 });
	});

	test("a local file in the way of -o's directory: said to be on this device", async () => {
		await writeFile(join(share, "w.txt"), "w\n");
		const cwd = await makeTempDir("pairlink-local-");
		await writeFile(join(cwd, "blocker"), "a file, not a directory\n");
		const r = await client(["get", host, "w.txt", "-o", "blocker/sub/w.txt"], cwd);
		expect(r.exitCode).toBe(5);
		expect(r.stderr).toContain("on this device");
		expect(r.stderr).toContain("blocker");
		expect(r.stderr).not.toContain("server");
	});

	test("two gets of one name into one folder: the second is named, on this device", async () => {
		await mkdir(join(share, "d1"), { recursive: true });
		await mkdir(join(share, "d2"), { recursive: true });
		await writeFile(join(share, "d1", "same.txt"), "first\n");
		await writeFile(join(share, "d2", "same.txt"), "second\n");
		const cwd = await makeTempDir("pairlink-local-");
		const r = await client(["get", host, "d1/same.txt", "d2/same.txt", "-o", "here"], cwd);
		expect(r.exitCode).toBe(5);
		expect(await Bun.file(join(cwd, "here", "same.txt")).text()).toBe("first\n");
		expect(r.stderr).toContain('"d2/same.txt"');
		expect(r.stderr).toContain("on this device");
		// The same on the other side: two local files of one name put into one remote folder.
		await mkdir(join(cwd, "d2"));
		await writeFile(join(cwd, "d2", "same.txt"), "second\n");
		const put = await client(["put", host, "here/same.txt", "d2/same.txt", "--to", "dup"], cwd);
		expect(put.exitCode).toBe(5);
		expect(await Bun.file(join(share, "dup", "same.txt")).text()).toBe("first\n");
		expect(put.stderr).toContain('"d2/same.txt" would land on "dup/same.txt" on the server');
		const again = await client(["get", host, "d2/same.txt", "-o", "here"], cwd);
		expect(again.exitCode).toBe(5);
		expect(again.stderr).toContain("already exists on this device");
		expect(await Bun.file(join(cwd, "here", "same.txt")).text()).toBe("first\n");
	});
});
