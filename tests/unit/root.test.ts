/**
 * SandboxRoot on real temp dirs (DESIGN.md §5, SPEC "Security requirements"):
 * every hostile wire path is refused by every operation; symlinks never lead
 * out of the root, never get written through, and are removed as links.
 */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { lstatSync } from "node:fs";
import { mkdir, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PairlinkError } from "../../src/errors.ts";
import { PartFile } from "../../src/fs/part-file.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { removeTempDirs, tempDir } from "../helpers/devices.ts";
import { expectRefusal, snapshot } from "../helpers/files.ts";
import { HOSTILE_PATHS } from "../helpers/hostile-paths.ts";

afterAll(removeTempDirs);

/** base/root is the sandbox; base/outside holds what must stay untouched. */
interface Layout {
	base: string;
	dir: string;
	outside: string;
	root: SandboxRoot;
}

const SECRET = "outside content, never to be read or changed\n";

async function layout(): Promise<Layout> {
	const base = await tempDir("pairlink-root-test-");
	const dir = join(base, "root");
	const outside = join(base, "outside");
	await mkdir(join(dir, "a", "b"), { recursive: true });
	await mkdir(outside);
	await writeFile(join(outside, "file"), SECRET);
	await writeFile(join(outside, "secret.txt"), SECRET);
	await writeFile(join(dir, "inside.txt"), "inside\n");
	await writeFile(join(dir, "a", "b", "deep.txt"), "deep\n");
	await symlink(outside, join(dir, "escape")); // a directory that leads out
	await symlink(join(outside, "secret.txt"), join(dir, "link-out")); // a final component that leads out
	await symlink(join(outside, "not-there-yet"), join(dir, "dangling-out"));
	await symlink(join(dir, "inside.txt"), join(dir, "link-in"));
	await symlink(join(dir, "a"), join(dir, "dir-in"));
	await symlink(outside, join(dir, "a", "nested-escape"));
	return { base, dir, outside, root: await SandboxRoot.open(dir) };
}

let L: Layout;
let before: { root: Map<string, string>; outside: Map<string, string> };

beforeEach(async () => {
	L = await layout();
	before = { root: await snapshot(L.dir), outside: await snapshot(L.outside) };
});

async function expectUnchanged() {
	expect(await snapshot(L.outside)).toEqual(before.outside);
	expect(await snapshot(L.dir)).toEqual(before.root);
	expect((await readdir(L.base)).sort()).toEqual(["outside", "root"]);
}

async function drain<T>(gen: AsyncGenerator<T>): Promise<T[]> {
	const out: T[] = [];
	for await (const x of gen) out.push(x);
	return out;
}

describe("SandboxRoot refuses the traversal corpus", () => {
	test("every hostile path, every operation: invalid-path (exit 5), nothing touched", async () => {
		const { root } = L;
		const ops: [string, (p: string) => Promise<unknown>][] = [
			["parentOf", (p) => root.parentOf(p)],
			["openExisting", (p) => root.openExisting(p)],
			["stat", (p) => root.stat(p)],
			["list", (p) => root.list(p)],
			["walk", (p) => drain(root.walk(p))],
			["openRead", (p) => root.openRead(p)],
			["mkdir", (p) => root.mkdir(p, false)],
			["mkdir -p", (p) => root.mkdir(p, true)],
			["remove", (p) => root.remove(p, false)],
			["remove -r", (p) => root.remove(p, true)],
			["PartFile.open", (p) => PartFile.open(root, p, false)],
			["PartFile.open overwrite", (p) => PartFile.open(root, p, true)],
		];
		const failures: string[] = [];
		for (const p of HOSTILE_PATHS) {
			for (const [name, op] of ops) {
				try {
					await op(p);
					failures.push(`${name}(${JSON.stringify(p).slice(0, 40)}) succeeded`);
				} catch (e) {
					if (!(e instanceof PairlinkError) || e.code !== "invalid-path" || e.exitCode !== 5)
						failures.push(`${name}(${JSON.stringify(p).slice(0, 40)}) threw ${String(e)}`);
				}
			}
		}
		expect(failures).toEqual([]);
		await expectUnchanged();
	});
});

describe("a symlinked directory that leads out of the root", () => {
	test.each(["escape", "a/nested-escape"])(
		"%s/file is refused for every operation",
		async (dir) => {
			const { root } = L;
			const p = `${dir}/file`;
			await expectRefusal(root.openRead(p), "invalid-path");
			await expectRefusal(root.stat(p), "invalid-path");
			await expectRefusal(root.openExisting(p), "invalid-path");
			await expectRefusal(PartFile.open(root, p, false), "invalid-path");
			await expectRefusal(PartFile.open(root, p, true), "invalid-path");
			await expectRefusal(PartFile.open(root, `${dir}/new.txt`, false), "invalid-path");
			await expectRefusal(root.mkdir(`${dir}/sub`, false), "invalid-path");
			await expectRefusal(root.mkdir(`${dir}/sub`, true), "invalid-path");
			await expectRefusal(root.remove(p, false), "invalid-path");
			await expectRefusal(root.remove(p, true), "invalid-path");
			// Listing or walking the link itself would list the outside directory.
			await expectRefusal(root.list(dir), "invalid-path");
			await expectRefusal(drain(root.walk(dir)), "invalid-path");
			await expectUnchanged();
		},
	);

	test("the link itself is reported as a symlink and removed as a link", async () => {
		expect(await L.root.stat("escape")).toMatchObject({ name: "escape", type: "symlink", size: 0 });
		await L.root.remove("escape", true);
		expect(await readdir(L.dir)).not.toContain("escape");
		expect(await snapshot(L.outside)).toEqual(before.outside);
	});
});

describe("a final-component symlink that leads out of the root", () => {
	test("is never read", async () => {
		await expectRefusal(L.root.openRead("link-out"), "invalid-path");
		await expectRefusal(L.root.list("link-out"), "invalid-path");
		await expectRefusal(drain(L.root.walk("link-out")), "invalid-path");
	});

	test("is never written through, with or without overwrite, even when dangling", async () => {
		for (const overwrite of [false, true]) {
			await expectRefusal(PartFile.open(L.root, "link-out", overwrite), "invalid-path");
			await expectRefusal(PartFile.open(L.root, "dangling-out", overwrite), "invalid-path");
		}
		// Not even a part file was created beside it, and the targets are as they were.
		await expectUnchanged();
		expect(await readFile(join(L.outside, "secret.txt"), "utf8")).toBe(SECRET);
		expect(await readdir(L.outside)).not.toContain("not-there-yet");
	});

	test("a part file that is a symlink is never written through: it is replaced by our own", async () => {
		await symlink(join(L.outside, "secret.txt"), join(L.dir, ".victim.pairlink-part"));
		await symlink(join(L.outside, "planted"), join(L.dir, ".planted.pairlink-part"));
		for (const name of ["victim", "planted"]) {
			const part = await PartFile.open(L.root, name, false);
			expect(part.resumable).toBe(0);
			await part.startAt(0, 3);
			await part.write(new TextEncoder().encode("new"));
			await part.keep();
			expect(lstatSync(join(L.dir, `.${name}.pairlink-part`)).isFile()).toBe(true);
		}
		expect(await readFile(join(L.outside, "secret.txt"), "utf8")).toBe(SECRET);
		expect(await readdir(L.outside)).not.toContain("planted");
		expect(await readdir(L.dir)).not.toContain("victim");
	});

	test("a part file that is a directory is refused", async () => {
		await mkdir(join(L.dir, ".d.pairlink-part"));
		await expectRefusal(PartFile.open(L.root, "d", false), "invalid-path");
	});

	test("is reported as a symlink, and remove deletes only the link", async () => {
		expect(await L.root.stat("link-out")).toMatchObject({ type: "symlink", size: 0 });
		await L.root.remove("link-out", false);
		await L.root.remove("dangling-out", true);
		const names = await readdir(L.dir);
		expect(names).not.toContain("link-out");
		expect(names).not.toContain("dangling-out");
		expect(await snapshot(L.outside)).toEqual(before.outside);
	});

	test("remove -r of a directory holding an escaping link leaves the outside intact", async () => {
		await L.root.remove("a", true);
		expect(await readdir(L.dir)).not.toContain("a");
		expect(await snapshot(L.outside)).toEqual(before.outside);
	});
});

describe("symlinks that stay inside", () => {
	test("a file link is readable and resolves to its target", async () => {
		const { fh, size } = await L.root.openRead("link-in");
		try {
			expect(size).toBe(7);
			const buf = new Uint8Array(size);
			await fh.read(buf, 0, size, 0);
			expect(new TextDecoder().decode(buf)).toBe("inside\n");
		} finally {
			await fh.close();
		}
	});

	test("a directory link can be listed and read through", async () => {
		expect((await L.root.list("dir-in")).map((e) => e.name)).toEqual(["b", "nested-escape"]);
		const { fh, size } = await L.root.openRead("dir-in/b/deep.txt");
		await fh.close();
		expect(size).toBe(5);
		// ...but not onwards through a link that leads out.
		await expectRefusal(L.root.openRead("dir-in/nested-escape/file"), "invalid-path");
	});

	test("writes never go through a symlink, even one that stays inside", async () => {
		await expectRefusal(PartFile.open(L.root, "link-in", true), "invalid-path");
		expect(await readFile(join(L.dir, "inside.txt"), "utf8")).toBe("inside\n");
	});
});

describe("list", () => {
	test("hides unfinished transfers; shows unaddressable names, which cannot be fetched or walked", async () => {
		const dir = join(L.dir, "mixed");
		await mkdir(dir);
		const parts = [".x.pairlink-part", "y.pairlink-part", ".sub.pairlink-part"];
		// Names the wire rules refuse: listed so a person sees them (escaped when
		// printed), but no request can address them.
		const unaddressable = ["bad\u001bname", "tab\there", "a\\b"];
		// Names only a Windows receiver refuses: ordinary on the wire.
		const windowsOnly = [
			"CON",
			"nul.txt",
			"trailing.",
			"trailing ",
			"a:b",
			"star*",
			"rtl\u202eexe.txt",
		];
		const ordinary = [".hidden", "ok.txt", "ünïcødé.txt", "sub", ...windowsOnly];
		for (const name of [...parts, ...unaddressable]) await writeFile(join(dir, name), "x");
		for (const name of ordinary.filter((n) => n !== "sub")) await writeFile(join(dir, name), "xy");
		await mkdir(join(dir, "sub"));
		expect(await readdir(dir)).toHaveLength(parts.length + unaddressable.length + ordinary.length);

		const entries = await L.root.list("mixed");
		const names = entries.map((e) => e.name);
		expect(names).toEqual([...ordinary, ...unaddressable].sort());
		for (const part of parts) expect(names).not.toContain(part);
		expect(entries.find((e) => e.name === "ok.txt")).toMatchObject({ type: "file", size: 2 });
		expect(entries.find((e) => e.name === "sub")).toMatchObject({ type: "dir", size: 0 });
		for (const name of unaddressable)
			await expectRefusal(L.root.openRead(`mixed/${name}`), "invalid-path");
		for (const part of parts) await expectRefusal(L.root.openRead(`mixed/${part}`), "invalid-path");
		// walk feeds downloads: no unfinished transfers; unaddressable names reported as refused.
		const walked = await drain(L.root.walk("mixed"));
		expect(
			walked
				.filter((e) => !e.refused)
				.map((e) => e.path)
				.sort(),
		).toEqual([...ordinary].sort());
		expect(
			walked
				.filter((e) => e.refused)
				.map((e) => e.path)
				.sort(),
		).toEqual([...unaddressable].sort());
	});

	test("lists the root with symlinks as symlinks, sorted", async () => {
		const entries = await L.root.list("");
		expect(entries.map((e) => [e.name, e.type])).toEqual([
			["a", "dir"],
			["dangling-out", "symlink"],
			["dir-in", "symlink"],
			["escape", "symlink"],
			["inside.txt", "file"],
			["link-in", "symlink"],
			["link-out", "symlink"],
		]);
	});

	test("a missing path is not-found", async () => {
		await expectRefusal(L.root.list("nope"), "not-found");
		await expectRefusal(L.root.list("nope/deeper"), "not-found");
		await expectRefusal(L.root.openRead("nope"), "not-found");
		await expectRefusal(L.root.stat("a/nope"), "not-found");
	});
});

describe("walk", () => {
	test("lists every directory before its contents; follows a symlink only to a target inside, once", async () => {
		await mkdir(join(L.dir, "a", "b", "c"));
		await writeFile(join(L.dir, "a", "b", "c", "x"), "123");
		await writeFile(join(L.dir, "a", "z.txt"), "");
		const entries = await drain(L.root.walk(""));
		const paths = entries.map((e) => e.path);
		expect([...paths].sort()).toEqual(
			[
				"a",
				"a/b",
				"a/b/c",
				"a/b/c/x",
				"a/b/deep.txt",
				"a/nested-escape",
				"a/z.txt",
				"dangling-out",
				"dir-in",
				"escape",
				"inside.txt",
				"link-in",
				"link-out",
			].sort(),
		);
		for (const [i, p] of paths.entries()) {
			const parent = p.split("/").slice(0, -1).join("/");
			if (parent) expect(paths.indexOf(parent)).toBeGreaterThanOrEqual(0);
			if (parent) expect(paths.indexOf(parent)).toBeLessThan(i);
		}
		const byPath = new Map(entries.map((e) => [e.path, e]));
		// Leading out, dangling, or a directory walked already: reported with why, never followed.
		for (const link of ["escape", "dir-in", "link-out", "a/nested-escape", "dangling-out"]) {
			expect(byPath.get(link)?.type).toBe("symlink");
			expect(byPath.get(link)?.why).toBeString();
		}
		expect(byPath.get("escape")?.why).toContain("outside");
		expect(byPath.get("dir-in")?.why).toContain("repeat");
		// A link to a file inside the root is followed: the file is sent under the link's name.
		expect(byPath.get("link-in")).toMatchObject({ type: "file", size: 7 });
		expect(byPath.get("a/b/c/x")).toMatchObject({ name: "x", type: "file", size: 3 });
		expect(byPath.get("a/b")).toMatchObject({ name: "b", type: "dir" });
	});

	test("walking a subdirectory gives paths relative to it", async () => {
		const entries = await drain(L.root.walk("a"));
		expect(entries.map((e) => e.path).sort()).toEqual(["b", "b/deep.txt", "nested-escape"]);
	});

	test("walking a file yields that one file", async () => {
		const entries = await drain(L.root.walk("a/b/deep.txt"));
		expect(entries).toHaveLength(1);
		expect(entries[0]).toMatchObject({ path: "deep.txt", name: "deep.txt", type: "file", size: 5 });
	});
});

describe("mkdir and remove", () => {
	test("mkdir creates one level; -p tolerates an existing directory, not an existing file", async () => {
		await L.root.mkdir("new", false);
		await expectRefusal(L.root.mkdir("new", false), "exists");
		await L.root.mkdir("new", true);
		await expectRefusal(L.root.mkdir("inside.txt", true), "exists");
		await expectRefusal(L.root.mkdir("missing/child", false), "not-found");
		await expectRefusal(L.root.mkdir("", true), "exists");
		// A symlink to a directory is not a directory to create into by -p: it is named as a symlink.
		await expectRefusal(L.root.mkdir("dir-in", true), "invalid-path");
		expect(await readdir(join(L.dir, "new"))).toEqual([]);
	});

	test("remove refuses the root itself and non-empty directories without recursive", async () => {
		await expectRefusal(L.root.remove("", true), "permission");
		await expectRefusal(L.root.remove("a", false), "not-empty");
		expect(await readFile(join(L.dir, "a", "b", "deep.txt"), "utf8")).toBe("deep\n");
		await expectRefusal(L.root.remove("nope", false), "not-found");
		await L.root.mkdir("empty", false);
		await L.root.remove("empty", false);
		await L.root.remove("inside.txt", false);
		expect((await readdir(L.dir)).sort()).not.toContain("inside.txt");
		expect(await readlink(join(L.dir, "link-in"))).toBe(join(L.dir, "inside.txt"));
	});
});

describe("symlinks resolved one component at a time", () => {
	test("a loop of links is detected and refused, nothing read", async () => {
		await symlink("loop-b", join(L.dir, "loop-a"));
		await symlink("loop-a", join(L.dir, "loop-b"));
		await symlink("loop-a/x", join(L.dir, "through-loop"));
		await expectRefusal(L.root.openRead("loop-a"), "invalid-path");
		await expectRefusal(L.root.list("through-loop"), "invalid-path");
	});

	test("a relative link's .. is taken against the physical path and never rises above the root", async () => {
		// dir-in -> a; a/up -> ../inside.txt: from a, .. is the root, not the root's parent.
		await symlink("../inside.txt", join(L.dir, "a", "up"));
		const { fh, size } = await L.root.openRead("dir-in/up");
		await fh.close();
		expect(size).toBe(7);
		await symlink("../../outside/secret.txt", join(L.dir, "a", "up2"));
		await expectRefusal(L.root.openRead("a/up2"), "invalid-path");
	});
});
