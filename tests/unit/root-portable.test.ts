/**
 * SandboxRoot in the portable lookup mode (no /proc: macOS, Windows, a
 * container without it), forced here on Linux: each step opens the joined
 * path and then checks the parent still is the directory that was opened.
 * The same refusals hold; docs/threat-model.md says what is weaker.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { walkMode } from "../../src/fs/beneath.ts";
import { PartFile } from "../../src/fs/part-file.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { removeTempDirs, tempDir } from "../helpers/devices.ts";
import { expectRefusal, sha256Hex } from "../helpers/files.ts";

const procfs = walkMode.procfs;
beforeAll(() => {
	walkMode.procfs = false;
});
afterAll(async () => {
	walkMode.procfs = procfs;
	await removeTempDirs();
});

test("portable mode: links out are refused, links in are followed, writes land inside", async () => {
	const base = await tempDir("pairlink-portable-");
	const dir = join(base, "root");
	const outside = join(base, "outside");
	await mkdir(join(dir, "a", "b"), { recursive: true });
	await mkdir(outside);
	await writeFile(join(outside, "secret.txt"), "SECRET");
	await writeFile(join(dir, "a", "b", "deep.txt"), "deep");
	await symlink(outside, join(dir, "escape"));
	await symlink("a/b", join(dir, "dir-in"));
	await symlink("../../escape", join(dir, "a", "b", "up-and-out"));
	const root = await SandboxRoot.open(dir);
	await expectRefusal(root.openRead("escape/secret.txt"), "invalid-path");
	await expectRefusal(root.openRead("a/b/up-and-out/secret.txt"), "invalid-path");
	await expectRefusal(root.list("escape"), "invalid-path");
	await expectRefusal(PartFile.open(root, "escape/new.txt", false), "invalid-path");
	const { fh, size } = await root.openRead("dir-in/deep.txt");
	const buf = new Uint8Array(size);
	await fh.read(buf, 0, size, 0);
	await fh.close();
	expect(new TextDecoder().decode(buf)).toBe("deep");
	expect((await root.list("dir-in")).map((e) => e.name)).toEqual(["deep.txt", "up-and-out"]);
	const data = new TextEncoder().encode("written");
	const part = await PartFile.open(root, "a/new.txt", false);
	await part.write(data);
	await part.commit({ size: data.length, sha256: sha256Hex(data) }, false);
	expect(await readFile(join(dir, "a", "new.txt"), "utf8")).toBe("written");
	await root.remove("a", true);
	expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe("SECRET");
	await root.close();
});
