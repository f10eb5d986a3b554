/**
 * Portable mode (SPEC "Files"): a `pairlink-state` folder next to the
 * executable is the state directory, so a stick carrying both is one device
 * wherever it is mounted. Run from copies of dist/pairlink in temp folders,
 * with a HOME of their own so the ordinary fallback is visible too.
 *
 * The exFAT part mounts a real exFAT image (exfat-fuse on a loop device,
 * which needs root, losetup, mkfs.exfat and mount.exfat-fuse; skipped, saying
 * so, where any is missing): chmod there changes nothing, and pairlink must
 * say once that the key is readable by anyone with the disk.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import {
	BINARY,
	binaryExists,
	makeTempDir,
	parseNdjson,
	removeTempDirs,
	runPairlink,
} from "../helpers/cli.ts";
import { summary } from "./scenarios.ts";

const missing = !binaryExists() || process.platform === "win32";
if (missing) console.warn(`SKIPPING tests/e2e/portable.test.ts: needs ${BINARY} on a POSIX system`);

const WARNING = /without Unix permissions.*private key/;

/** A folder holding a copy of the binary, optionally with an empty pairlink-state beside it. */
async function stick(withState: boolean, under?: string): Promise<string> {
	const dir = join(under ?? (await makeTempDir("pairlink-stick-")), "stick");
	mkdirSync(dir, { recursive: true });
	copyFileSync(BINARY, join(dir, "pairlink"));
	if (withState) mkdirSync(join(dir, "pairlink-state"));
	return dir;
}

/** Runs the copy in `dir` with no PAIRLINK_HOME and a fresh HOME, from an unrelated working directory. */
async function runCopy(dir: string, args: string[], env: Record<string, string> = {}) {
	const home = await makeTempDir("pairlink-user-");
	const cwd = await makeTempDir("pairlink-cwd-");
	const r = await runPairlink(args, {
		exe: [join(dir, "pairlink")],
		cwd,
		env: { HOME: home, PAIRLINK_HOME: undefined, XDG_CONFIG_HOME: undefined, ...env },
	});
	return { r, home };
}

async function idJson(dir: string, env: Record<string, string> = {}) {
	const { r, home } = await runCopy(dir, ["id", "--json"], env);
	expect(summary(r)).toMatchObject({ exitCode: 0, stderr: "" });
	const [id] = parseNdjson(r.stdout);
	return { id: id as { name: string; fingerprint: string; stateDir: string }, home };
}

afterAll(removeTempDirs);

describe.skipIf(missing)("portable mode", () => {
	test("a pairlink-state folder next to the executable is the state directory, and id says so", async () => {
		const dir = await stick(true);
		const { id, home } = await idJson(dir);
		expect(id.stateDir).toBe(join(dir, "pairlink-state"));
		expect(readdirSync(join(dir, "pairlink-state"))).toEqual(["identity.json"]);
		// Nothing went to the user's config directory.
		expect(existsSync(join(home, ".config"))).toBe(false);

		const { r } = await runCopy(dir, ["id"]);
		expect(r.stdout).toContain(`State:       ${join(dir, "pairlink-state")}\n`);
	});

	test("the stick stays one device when it moves, and a second copy elsewhere is another", async () => {
		const dir = await stick(true);
		const before = await idJson(dir);
		const elsewhere = join(await makeTempDir("pairlink-mount-"), "moved");
		renameSync(dir, elsewhere);
		const after = await idJson(elsewhere);
		expect(after.id.fingerprint).toBe(before.id.fingerprint);
		expect(after.id.stateDir).toBe(join(elsewhere, "pairlink-state"));
		const other = await idJson(await stick(true));
		expect(other.id.fingerprint).not.toBe(before.id.fingerprint);
	});

	test("without the folder the copy uses $HOME/.config/pairlink and creates no pairlink-state", async () => {
		const dir = await stick(false);
		const { id, home } = await idJson(dir);
		expect(id.stateDir).toBe(join(home, ".config", "pairlink"));
		expect(readdirSync(dir)).toEqual(["pairlink"]);
	});

	test("PAIRLINK_HOME still wins over the folder", async () => {
		const dir = await stick(true);
		const explicit = join(await makeTempDir("pairlink-explicit-"), "state");
		const { id } = await idJson(dir, { PAIRLINK_HOME: explicit });
		expect(id.stateDir).toBe(explicit);
		expect(readdirSync(join(dir, "pairlink-state"))).toEqual([]);
	});
});

// ---------------------------------------------------------------------------
// A real exFAT stick
// ---------------------------------------------------------------------------

const tools = ["losetup", "mkfs.exfat", "mount.exfat-fuse", "umount"].filter((t) => !Bun.which(t));
const exfatSkip = missing
	? "no binary"
	: process.getuid?.() !== 0
		? "needs root to mount an image"
		: !existsSync("/dev/fuse")
			? "no /dev/fuse"
			: tools.length > 0
				? `missing ${tools.join(", ")} (Debian: apt-get install exfat-fuse exfatprogs)`
				: undefined;
if (exfatSkip && !missing)
	console.warn(`SKIPPING the exFAT test of tests/e2e/portable.test.ts: ${exfatSkip}`);

function sh(argv: string[]): string {
	const p = Bun.spawnSync(argv, { timeout: 30_000 });
	if (p.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${p.stderr.toString().trim()}`);
	return p.stdout.toString().trim();
}

describe.skipIf(exfatSkip !== undefined)("portable mode on exFAT", () => {
	let mountPoint: string | undefined;
	let loop: string | undefined;
	afterAll(() => {
		if (mountPoint) sh(["umount", mountPoint]);
		if (loop) sh(["losetup", "-d", loop]);
	});

	test("works, and says once per run that the private key is readable by anyone with the disk", async () => {
		const work = await makeTempDir("pairlink-exfat-");
		const image = join(work, "stick.img");
		// Sparse: room for the ~113 MB binary without writing 256 MB.
		sh(["truncate", "-s", "256M", image]);
		sh(["mkfs.exfat", image]);
		loop = sh(["losetup", "--find", "--show", image]);
		mountPoint = join(work, "mnt");
		mkdirSync(mountPoint);
		sh(["mount.exfat-fuse", loop, mountPoint]);

		const dir = await stick(true, mountPoint);
		const first = await runCopy(dir, ["code", "--json"]);
		expect(first.r.exitCode).toBe(0);
		// `code` touches the state directory several times; the warning comes once.
		expect(first.r.stderr.match(new RegExp(WARNING, "g"))).toHaveLength(1);
		expect(first.r.stderr).toContain(join(dir, "pairlink-state"));
		expect(readdirSync(join(dir, "pairlink-state")).sort()).toEqual([
			"identity.json",
			"pending-code.json",
		]);

		const again = await runCopy(dir, ["id", "--json"]);
		expect(again.r.exitCode).toBe(0);
		expect(again.r.stderr).toMatch(WARNING);
		expect(parseNdjson(again.r.stdout)[0]?.stateDir).toBe(join(dir, "pairlink-state"));
	}, 120_000);
});
