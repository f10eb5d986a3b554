/**
 * Issue 15 through the compiled binary: re-runnable transfers (SPEC "Moving
 * files"). Metadata both ways, up to date as success, --checksum,
 * --overwrite, streams through stdin and stdout, --exclude, sources that
 * change while they are sent, symlinks in the source, --dry-run, free space.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import {
	appendFile,
	chmod,
	mkdir,
	stat,
	symlink,
	truncate,
	utimes,
	writeFile,
} from "node:fs/promises";
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
import {
	Child,
	killChildren,
	listDir,
	MIB,
	partFileName,
	whenFileReaches,
	writeBigFile,
} from "../helpers/faults.ts";
import { cli, type Paired, pairDevices } from "./scenarios.ts";

const MODE: CliMode = "binary";
const run = cli(MODE);
const missing = !binaryExists();
if (missing) console.warn(`SKIPPING tests/e2e/rerun.test.ts: ${BINARY} does not exist.`);

let paired: Paired;
let share: string;
let host: string;
const client = (args: string[], opts: { cwd?: string; umask?: number } = {}) =>
	run(args, { home: paired.clientHome, ...opts });

/** 2020-05-01T10:00:00.123Z, and a second time a year later: both with milliseconds. */
const T1 = new Date(1588327200123);
const T2 = new Date(1619863200456);

const json = (stdout: string) => parseNdjson(stdout);
const done = (stdout: string) => json(stdout).find((e) => e.event === "done");
const mode = async (p: string) => (await stat(p)).mode & 0o7777;
const mtime = async (p: string) => (await stat(p)).mtimeMs;

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

/** A photos folder: a dated file, an executable one with setuid asked for, a subfolder. */
async function photos(top: string): Promise<void> {
	await mkdir(join(top, "raw"), { recursive: true });
	await writeFile(join(top, "p1.jpg"), "photo one\n");
	await writeFile(join(top, "run.sh"), "#!/bin/sh\necho hi\n");
	await chmod(join(top, "run.sh"), 0o4755);
	await writeFile(join(top, "raw", "r1.raw"), "raw one\n");
	await utimes(join(top, "p1.jpg"), T1, T1);
	await utimes(join(top, "run.sh"), T2, T2);
	await utimes(join(top, "raw", "r1.raw"), T1, T1);
}

describe.skipIf(missing)("re-running a tree copy moves only what is new", () => {
	test("get -r twice, then with a new file: mtimes to the millisecond, executable bits, no setuid; up to date is exit 0", async () => {
		await photos(join(share, "photos"));
		const dest = await makeTempDir("pairlink-rerun-");
		const first = await client(["get", host, "photos", "-r", "-o", dest, "--json"]);
		expect(first.exitCode).toBe(0);
		expect(done(first.stdout)).toMatchObject({ files: 3, upToDate: 0, failed: 0 });
		const got = join(dest, "photos");
		expect(await mtime(join(got, "p1.jpg"))).toBe(T1.getTime());
		expect(Math.floor((await mtime(join(got, "run.sh"))) / 1000)).toBe(
			Math.floor(T2.getTime() / 1000),
		);
		expect(await mtime(join(got, "raw", "r1.raw"))).toBe(T1.getTime());
		expect(await mode(join(got, "run.sh"))).toBe(0o755); // no setuid, umask 022
		expect(await mode(join(got, "p1.jpg"))).toBe(0o644);

		const again = await client(["get", host, "photos", "-r", "-o", dest, "--json"]);
		expect(again.exitCode).toBe(0);
		const skipped = json(again.stdout).filter((e) => e.skipped === "up-to-date");
		expect(skipped.map((e) => e.path).sort()).toEqual(
			["photos/p1.jpg", "photos/raw/r1.raw", "photos/run.sh"].sort(),
		);
		expect(done(again.stdout)).toMatchObject({ files: 0, upToDate: 3, failed: 0, bytes: 0 });

		await writeFile(join(share, "photos", "p2.jpg"), "photo two\n");
		const third = await client(["get", host, "photos", "-r", "-o", dest]);
		expect(third.exitCode).toBe(0);
		expect(third.stdout).toContain("photos/p2.jpg");
		expect(third.stdout).toContain("1 file,");
		expect(third.stdout).toContain("3 up to date");
		expect(await Bun.file(join(got, "p2.jpg")).text()).toBe("photo two\n");
	});

	test("get under umask 077: the receiver's umask decides the rest of the mode", async () => {
		const dest = await makeTempDir("pairlink-rerun-");
		const r = await client(["get", host, "photos", "-r", "-o", dest], { umask: 0o077 });
		expect(r.exitCode).toBe(0);
		expect(await mode(join(dest, "photos", "run.sh"))).toBe(0o700);
		expect(await mode(join(dest, "photos", "p1.jpg"))).toBe(0o600);
	});

	test("put -r twice, then with a new file: the server keeps mtimes and executable bits; the re-run sends nothing", async () => {
		const local = await makeTempDir("pairlink-rerun-");
		await photos(join(local, "album"));
		const first = await client(["put", host, "album", "-r", "--json"], { cwd: local });
		expect(first.exitCode).toBe(0);
		expect(done(first.stdout)).toMatchObject({ files: 3, upToDate: 0 });
		const there = join(share, "album");
		expect(await mtime(join(there, "p1.jpg"))).toBe(T1.getTime());
		expect(Math.floor((await mtime(join(there, "run.sh"))) / 1000)).toBe(
			Math.floor(T2.getTime() / 1000),
		);
		expect(await mode(join(there, "run.sh"))).toBe(0o755);
		expect(await mode(join(there, "p1.jpg"))).toBe(0o644);

		const again = await client(["put", host, "album", "-r", "--json"], { cwd: local });
		expect(again.exitCode).toBe(0);
		expect(done(again.stdout)).toMatchObject({ files: 0, upToDate: 3, failed: 0, bytes: 0 });

		await writeFile(join(local, "album", "raw", "r2.raw"), "raw two\n");
		const third = await client(["put", host, "album", "-r", "--json"], { cwd: local });
		expect(third.exitCode).toBe(0);
		const moved = json(third.stdout).filter((e) => typeof e.sha256 === "string" && !e.skipped);
		expect(moved.map((e) => e.path)).toEqual(["album/raw/r2.raw"]);
		expect(done(third.stdout)).toMatchObject({ files: 1, upToDate: 3 });
	});

	test("a single file put twice: the server answers up to date in the put itself", async () => {
		const local = await makeTempDir("pairlink-rerun-");
		const big = join(local, "big.bin");
		await writeBigFile(big, 3 * MIB);
		await utimes(big, T1, T1);
		expect((await client(["put", host, big, "--to", "single/"])).exitCode).toBe(0);
		expect(await mtime(join(share, "single", "big.bin"))).toBe(T1.getTime());
		const again = await client(["put", host, big, "--to", "single/", "--json"]);
		expect(again.exitCode).toBe(0);
		expect(json(again.stdout)[0]).toMatchObject({ path: big, skipped: "up-to-date" });
	});
});

describe.skipIf(missing)("a different existing file", () => {
	test("get: refused without --overwrite (exit 5), replaced with it", async () => {
		await mkdir(join(share, "diff"), { recursive: true });
		await writeFile(join(share, "diff", "a.txt"), "new content\n");
		const dest = await makeTempDir("pairlink-rerun-");
		await writeFile(join(dest, "a.txt"), "old\n");
		const refused = await client(["get", host, "diff/a.txt", "-o", dest, "--json"]);
		expect(refused.exitCode).toBe(5);
		expect(json(refused.stdout)[0]).toMatchObject({ event: "error", reason: "exists", code: 5 });
		expect(await Bun.file(join(dest, "a.txt")).text()).toBe("old\n");
		const replaced = await client(["get", host, "diff/a.txt", "-o", dest, "--overwrite"]);
		expect(replaced.exitCode).toBe(0);
		expect(await Bun.file(join(dest, "a.txt")).text()).toBe("new content\n");
	});

	test("--checksum catches a same-size, same-time change that the quick check calls up to date", async () => {
		await writeFile(join(share, "diff", "same.txt"), "AAAA\n");
		await utimes(join(share, "diff", "same.txt"), T1, T1);
		const dest = await makeTempDir("pairlink-rerun-");
		await writeFile(join(dest, "same.txt"), "BBBB\n");
		await utimes(join(dest, "same.txt"), T1, T1);
		const quick = await client(["get", host, "diff/same.txt", "-o", dest, "--json"]);
		expect(quick.exitCode).toBe(0);
		expect(json(quick.stdout)[0]).toMatchObject({ skipped: "up-to-date" });
		const checked = await client([
			"get",
			host,
			"diff/same.txt",
			"-o",
			dest,
			"--checksum",
			"--json",
		]);
		expect(checked.exitCode).toBe(5);
		expect(json(checked.stdout)[0]).toMatchObject({ event: "error", reason: "exists" });
		const fixed = await client([
			"get",
			host,
			"diff/same.txt",
			"-o",
			dest,
			"--checksum",
			"--overwrite",
		]);
		expect(fixed.exitCode).toBe(0);
		expect(await Bun.file(join(dest, "same.txt")).text()).toBe("AAAA\n");
		const now = await client(["get", host, "diff/same.txt", "-o", dest, "--checksum", "--json"]);
		expect(json(now.stdout)[0]).toMatchObject({ skipped: "up-to-date" });

		// Uploads: the server hashes its copy on request; this one does not allow replacing.
		const local = await makeTempDir("pairlink-rerun-");
		await writeFile(join(local, "same.txt"), "CCCC\n");
		await utimes(join(local, "same.txt"), T1, T1);
		const up = join(local, "same.txt");
		const quickUp = await client(["put", host, up, "--to", "diff/", "--json"]);
		expect(json(quickUp.stdout)[0]).toMatchObject({ skipped: "up-to-date" });
		const checkedUp = await client(["put", host, up, "--to", "diff/", "--checksum", "--json"]);
		expect(checkedUp.exitCode).toBe(5);
		expect(json(checkedUp.stdout)[0]).toMatchObject({ event: "error", reason: "exists" });
		expect(await Bun.file(join(share, "diff", "same.txt")).text()).toBe("AAAA\n");
	});
});

describe.skipIf(missing)("streams", () => {
	test("3 MiB of binary through stdin to the server and back through stdout: byte-exact", async () => {
		const data = crypto.getRandomValues(new Uint8Array(3 * MIB));
		const env = { PATH: process.env.PATH ?? "", PAIRLINK_HOME: paired.clientHome, NO_COLOR: "1" };
		const up = Bun.spawn([BINARY, "put", host, "-", "--to", "streams/three.bin"], {
			env,
			stdin: new Blob([data]),
			stdout: "pipe",
			stderr: "pipe",
		});
		expect(await up.exited).toBe(0);
		expect(
			new Uint8Array(await Bun.file(join(share, "streams", "three.bin")).arrayBuffer()),
		).toEqual(data);
		expect((await listDir(join(share, "streams"))).filter((n) => n.includes("part"))).toEqual([]);

		const down = Bun.spawn([BINARY, "get", host, "streams/three.bin", "-o", "-"], {
			env,
			stdout: "pipe",
			stderr: "pipe",
		});
		const [bytes, err, code] = await Promise.all([
			new Response(down.stdout).arrayBuffer(),
			new Response(down.stderr).text(),
			down.exited,
		]);
		expect({ code, err }).toEqual({ code: 0, err: "" });
		expect(new Uint8Array(bytes)).toEqual(data);
	});

	test.each([65_537, 100_000, 200_000])(
		"%i bytes through a shell pipe into sha256sum: byte-exact (a short write to a full pipe is continued, not repeated)",
		async (size) => {
			const data = crypto.getRandomValues(new Uint8Array(size));
			const name = `pipes/${size}.bin`;
			await mkdir(join(share, "pipes"), { recursive: true });
			await writeFile(join(share, name), data);
			const proc = Bun.spawn(
				[
					"/bin/bash",
					"-c",
					`set -o pipefail; "$0" get "$1" "$2" -o - | sha256sum`,
					BINARY,
					host,
					name,
				],
				{
					env: { PATH: process.env.PATH ?? "", PAIRLINK_HOME: paired.clientHome, NO_COLOR: "1" },
					stdout: "pipe",
					stderr: "pipe",
				},
			);
			const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
			expect(code).toBe(0);
			expect(out.split(" ")[0]).toBe(new Bun.CryptoHasher("sha256").update(data).digest("hex"));
		},
	);

	test("a reader that goes away: exit 6, the output said to be incomplete", async () => {
		await writeBigFile(join(share, "streams", "big.bin"), 8 * MIB);
		const script = `"$0" get "$1" streams/big.bin -o - | head -c 10 >/dev/null; echo "rc=\${PIPESTATUS:-$?}" >&2`;
		const proc = Bun.spawn(
			["/bin/bash", "-c", `set -o pipefail; ${script.replace(/; echo.*$/, "")}`, BINARY, host],
			{
				env: { PATH: process.env.PATH ?? "", PAIRLINK_HOME: paired.clientHome, NO_COLOR: "1" },
				stdout: "pipe",
				stderr: "pipe",
			},
		);
		const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
		expect(code).toBe(6);
		expect(err).toContain("incomplete");
	});

	test("put - refuses an existing file without --overwrite and leaves nothing behind; --to is required", async () => {
		const r = await client(["put", host, "-", "--to", "streams/three.bin"]);
		expect(r.exitCode).toBe(5);
		const noTo = await client(["put", host, "-"]);
		expect(noTo.exitCode).toBe(2);
		expect((await listDir(join(share, "streams"))).sort()).toEqual(["big.bin", "three.bin"]);
	});
});

describe.skipIf(missing)("--exclude", () => {
	/** A project with build output, junk, and a name no wire carries inside what is excluded. */
	async function project(top: string): Promise<void> {
		await mkdir(join(top, "src"), { recursive: true });
		await mkdir(join(top, "node_modules", "dep"), { recursive: true });
		await mkdir(join(top, "build"), { recursive: true });
		await writeFile(join(top, "src", "main.ts"), "main\n");
		await writeFile(join(top, "src", "scratch.tmp"), "tmp\n");
		await writeFile(join(top, "node_modules", "dep", "index.js"), "dep\n");
		// Walking into these would report the name as an error: an excluded directory is never walked.
		await writeFile(join(top, "node_modules", "dep", "bad\\name.js"), "x\n");
		await writeFile(join(top, "build", "bad\\out.o"), "x\n");
		await writeFile(join(top, "README"), "readme\n");
	}
	const EXCLUDES = ["--exclude", "*.tmp", "--exclude", "node_modules", "--exclude", "proj/build"];

	test("put -r: names and paths (the sent directory's own name included) are left out", async () => {
		const local = await makeTempDir("pairlink-rerun-");
		await project(join(local, "proj"));
		const r = await client(["put", host, "proj", "-r", "--to", "up", ...EXCLUDES, "--json"], {
			cwd: local,
		});
		expect(r.exitCode).toBe(0);
		expect(json(r.stdout).filter((e) => e.event === "error")).toEqual([]);
		expect(await listDir(join(share, "up", "proj"))).toEqual(["README", "src"]);
		expect(await listDir(join(share, "up", "proj", "src"))).toEqual(["main.ts"]);
	});

	test("get -r: the server applies them while it walks", async () => {
		await project(join(share, "proj"));
		const dest = await makeTempDir("pairlink-rerun-");
		const r = await client(["get", host, "proj", "-r", "-o", dest, ...EXCLUDES, "--json"]);
		expect(r.exitCode).toBe(0);
		expect(json(r.stdout).filter((e) => e.event === "error")).toEqual([]);
		expect(await listDir(join(dest, "proj"))).toEqual(["README", "src"]);
		expect(await listDir(join(dest, "proj", "src"))).toEqual(["main.ts"]);
	});

	test("more than 64 patterns, or one over 256 bytes, is a usage error", async () => {
		const many = Array.from({ length: 65 }, (_, i) => ["--exclude", `p${i}`]).flat();
		expect((await client(["get", host, "proj", "-r", ...many])).exitCode).toBe(2);
		expect((await client(["get", host, "proj", "-r", "--exclude", "x".repeat(257)])).exitCode).toBe(
			2,
		);
	});
});

describe.skipIf(missing)("a source that changes while it is sent", () => {
	test("put: a file that grows mid-transfer is not committed; exit 6 says it changed", async () => {
		const local = await makeTempDir("pairlink-rerun-");
		const src = join(local, "growing.log");
		await writeBigFile(src, 64 * MIB);
		await mkdir(join(share, "grow"), { recursive: true });
		const child = new Child(["put", host, src, "--to", "grow/"], {
			mode: MODE,
			home: paired.clientHome,
		});
		// Hold the server still once bytes arrive, grow the file, let it go on.
		await whenFileReaches(join(share, "grow"), partFileName("growing.log"), MIB, {
			giveUp: child.exited,
		});
		paired.started.serve.proc.kill("SIGSTOP");
		try {
			await appendFile(src, "one more line\n");
		} finally {
			paired.started.serve.proc.kill("SIGCONT");
		}
		expect(await child.exited).toBe(6);
		expect(child.stderr).toContain("changed while it was being sent");
		expect(await listDir(join(share, "grow"))).toEqual([]);
	});

	test("get: a file that grows on the server mid-transfer is not committed; exit 6", async () => {
		const src = join(share, "grow", "server.log");
		await writeBigFile(src, 64 * MIB);
		const dest = await makeTempDir("pairlink-rerun-");
		const child = new Child(["get", host, "grow/server.log", "-o", `${dest}/`], {
			mode: MODE,
			home: paired.clientHome,
		});
		await whenFileReaches(dest, partFileName("server.log"), MIB, { giveUp: child.exited });
		child.proc.kill("SIGSTOP");
		try {
			await appendFile(src, "one more line\n");
		} finally {
			child.proc.kill("SIGCONT");
		}
		expect(await child.exited).toBe(6);
		expect(child.stderr).toContain("changed");
		expect(await listDir(dest)).toEqual([]);
		await truncate(src, 0);
	});
});

describe.skipIf(missing)("symlinks in the source", () => {
	test("put -r follows links that stay inside, reports the others; a named link goes under its own name", async () => {
		const local = await makeTempDir("pairlink-rerun-");
		const top = join(local, "linked");
		await mkdir(join(top, "real"), { recursive: true });
		await writeFile(join(top, "real", "f.txt"), "inside\n");
		await symlink("real/f.txt", join(top, "alias.txt"));
		await symlink("/etc/hostname", join(top, "outside"));
		await symlink("..", join(top, "real", "up"));
		const r = await client(["put", host, "linked", "-r", "--json"], { cwd: local });
		expect(r.exitCode).toBe(0);
		const skips = json(r.stdout).filter((e) => e.skipped === "symlink");
		expect(skips.map((e) => e.path).sort()).toEqual(["linked/outside", "linked/real/up"]);
		for (const s of skips) expect(typeof s.reason).toBe("string");
		expect(await Bun.file(join(share, "linked", "alias.txt")).text()).toBe("inside\n");
		expect(existsSync(join(share, "linked", "outside"))).toBe(false);

		await symlink(join(top, "real", "f.txt"), join(local, "given-name.txt"));
		const named = await client(["put", host, "given-name.txt", "--to", "linked/"], { cwd: local });
		expect(named.exitCode).toBe(0);
		expect(await Bun.file(join(share, "linked", "given-name.txt")).text()).toBe("inside\n");
	});

	test("get -r follows links inside the served root and reports the ones leading out, loops and repeats", async () => {
		const top = join(share, "served-links");
		await mkdir(join(top, "d"), { recursive: true });
		await mkdir(join(share, "elsewhere"), { recursive: true });
		await writeFile(join(share, "elsewhere", "g.txt"), "g\n");
		await symlink("../elsewhere", join(top, "dir-alias"));
		await symlink("..", join(top, "d", "loop"));
		await symlink("d", join(top, "repeat"));
		await symlink("/etc", join(top, "etc"));
		const dest = await makeTempDir("pairlink-rerun-");
		const r = await client(["get", host, "served-links", "-r", "-o", dest, "--json"]);
		expect(r.exitCode).toBe(0);
		const skips = json(r.stdout).filter((e) => e.skipped === "symlink");
		const why = Object.fromEntries(skips.map((e) => [e.path, e.reason]));
		expect(Object.keys(why).sort()).toEqual(
			["served-links/d/loop", "served-links/etc", "served-links/repeat"].sort(),
		);
		expect(why["served-links/etc"]).toContain("outside");

		// Links the user names: followed when inside (under the name given), else reported as skipped.
		await symlink("served-links/d/../../elsewhere/g.txt", join(share, "named-link.txt"));
		const named = await client([
			"get",
			host,
			"named-link.txt",
			"/served-links/etc",
			"-o",
			`${dest}/`,
			"--json",
		]);
		expect(named.exitCode).toBe(0);
		expect(await Bun.file(join(dest, "named-link.txt")).text()).toBe("g\n");
		expect(
			json(named.stdout)
				.filter((e) => e.skipped === "symlink")
				.map((e) => e.path),
		).toEqual(["served-links/etc"]);
		expect(why["served-links/d/loop"]).toContain("loop");
		expect(await Bun.file(join(dest, "served-links", "dir-alias", "g.txt")).text()).toBe("g\n");
	});
});

describe.skipIf(missing)("plan first", () => {
	test("--dry-run says per file what would happen and changes nothing", async () => {
		await mkdir(join(share, "plan"), { recursive: true });
		for (const n of ["same", "new", "other"]) await writeFile(join(share, "plan", n), `${n}\n`);
		await utimes(join(share, "plan", "same"), T1, T1);
		const dest = await makeTempDir("pairlink-rerun-");
		await mkdir(join(dest, "plan"));
		await writeFile(join(dest, "plan", "same"), "same\n");
		await utimes(join(dest, "plan", "same"), T1, T1);
		await writeFile(join(dest, "plan", "other"), "changed here\n");
		const r = await client(["get", host, "plan", "-r", "-o", dest, "--dry-run", "--json"]);
		expect(r.exitCode).toBe(0);
		const actions = Object.fromEntries(
			json(r.stdout)
				.filter((e) => e.dryRun)
				.map((e) => [e.path, e.action]),
		);
		expect(actions).toEqual({
			"plan/same": "up-to-date",
			"plan/new": "move",
			"plan/other": "refuse",
		});
		expect(await listDir(join(dest, "plan"))).toEqual(["other", "same"]);
		const over = await client(["get", host, "plan", "-r", "-o", dest, "--dry-run", "--overwrite"]);
		expect(over.stdout).toContain("would overwrite  plan/other");
		expect(await Bun.file(join(dest, "plan", "other")).text()).toBe("changed here\n");
	});

	test("files that cannot fit are refused before anything is written, with the numbers (exit 6)", async () => {
		// Sparse: a terabyte that takes no room on the sending side.
		const local = await makeTempDir("pairlink-rerun-");
		const huge = join(local, "huge.img");
		await writeFile(huge, "");
		await truncate(huge, 2 ** 40);
		const up = await client(["put", host, huge, "--to", "space/"]);
		expect(up.exitCode).toBe(6);
		expect(up.stderr).toMatch(/no space left.*bytes are free/);
		expect(existsSync(join(share, "space", "huge.img"))).toBe(false);

		await mkdir(join(share, "space"), { recursive: true });
		await writeFile(join(share, "space", "huge.img"), "");
		await truncate(join(share, "space", "huge.img"), 2 ** 40);
		const dest = await makeTempDir("pairlink-rerun-");
		const down = await client(["get", host, "space/huge.img", "-o", dest]);
		expect(down.exitCode).toBe(6);
		expect(down.stderr).toMatch(/\d+ bytes free .* need 1099511627776/);
		expect(await listDir(dest)).toEqual([]);
	});
});
