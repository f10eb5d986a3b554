/**
 * PartFile on real temp dirs (DESIGN.md §5): bytes go to
 * `.<name>.pairlink-part`, reach the final name only when size and SHA-256
 * match, never replace an existing file unless asked, and a kept part is the
 * resume point of the next attempt.
 */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { lstat, mkdir, open, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PartFile } from "../../src/fs/part-file.ts";
import { isPartName, partName } from "../../src/fs/part-name.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { removeTempDirs, tempDir } from "../helpers/devices.ts";
import { expectRefusal, randomBytes, sha256Hex } from "../helpers/files.ts";
import { makePrng } from "../helpers/prng.ts";

afterAll(removeTempDirs);

const prng = makePrng(0x9a57f11e);
/** Larger than one read chunk (1 MiB), so prefix hashing spans chunks. */
const CONTENT = randomBytes(prng, 2 * 1024 * 1024 + 4321);
const SHA = sha256Hex(CONTENT);

let dir: string;
let root: SandboxRoot;

beforeEach(async () => {
	dir = await tempDir("pairlink-part-test-");
	root = await SandboxRoot.open(dir);
});

async function writeAll(part: PartFile, data: Uint8Array, chunk = 300_000): Promise<void> {
	for (let i = 0; i < data.length; i += chunk) await part.write(data.subarray(i, i + chunk));
}

const names = async () => (await readdir(dir)).sort();

/** A part file an earlier attempt kept (created and recorded the way a transfer does). */
async function keptPart(name: string, data: Uint8Array, size: number): Promise<void> {
	const part = await PartFile.open(root, name, false);
	await part.startAt(0, size);
	await part.write(data);
	await part.keep();
}

describe("PartFile", () => {
	test("a fresh write goes to .<name>.pairlink-part and is committed by name", async () => {
		const part = await PartFile.open(root, "f.bin", false);
		expect(part.resumable).toBe(0);
		expect(part.prefixSha256).toBeUndefined();
		await writeAll(part, CONTENT);
		expect(part.received).toBe(CONTENT.length);
		// Nothing at the final name before the commit.
		expect(await names()).toEqual([".f.bin.pairlink-part"]);
		expect(await part.commit({ size: CONTENT.length, sha256: SHA }, false)).toBe(SHA);
		expect(await names()).toEqual(["f.bin"]);
		expect(sha256Hex(await readFile(join(dir, "f.bin")))).toBe(SHA);
	});

	test("an empty file commits", async () => {
		const part = await PartFile.open(root, "empty", false);
		expect(await part.commit({ size: 0, sha256: sha256Hex("") }, false)).toBe(sha256Hex(""));
		expect((await stat(join(dir, "empty"))).size).toBe(0);
		expect(await names()).toEqual(["empty"]);
	});

	test("works in a subdirectory", async () => {
		await mkdir(join(dir, "sub"));
		const part = await PartFile.open(root, "sub/x", false);
		await part.write(new Uint8Array([1, 2, 3]));
		await part.commit({ size: 3, sha256: sha256Hex(new Uint8Array([1, 2, 3])) }, false);
		expect([...(await readFile(join(dir, "sub", "x")))]).toEqual([1, 2, 3]);
		expect(await readdir(join(dir, "sub"))).toEqual(["x"]);
	});

	test("a wrong hash is an integrity error: no final file, part removed", async () => {
		const part = await PartFile.open(root, "f.bin", false);
		await writeAll(part, CONTENT);
		const e = await expectRefusal(
			part.commit({ size: CONTENT.length, sha256: sha256Hex("something else") }, false),
			"integrity",
		);
		expect(e.exitCode).toBe(6);
		expect(await names()).toEqual([]);
	});

	test("a wrong size is an integrity error even with the right hash", async () => {
		const part = await PartFile.open(root, "f.bin", true);
		await writeAll(part, CONTENT);
		await expectRefusal(part.commit({ size: CONTENT.length + 1, sha256: SHA }, true), "integrity");
		expect(await names()).toEqual([]);
	});

	test("an existing target without overwrite is refused before anything is written", async () => {
		await writeFile(join(dir, "f.bin"), "OLD");
		const e = await expectRefusal(PartFile.open(root, "f.bin", false), "exists");
		expect(e.exitCode).toBe(5);
		expect(await names()).toEqual(["f.bin"]);
		expect(await readFile(join(dir, "f.bin"), "utf8")).toBe("OLD");
	});

	test("a directory at the target is refused either way", async () => {
		await mkdir(join(dir, "d"));
		await expectRefusal(PartFile.open(root, "d", false), "is-directory");
		await expectRefusal(PartFile.open(root, "d", true), "is-directory");
		await expectRefusal(PartFile.open(root, "", true), "refused");
		expect(await names()).toEqual(["d"]);
	});

	test("overwrite replaces by rename: the old file stays whole until the commit", async () => {
		const target = join(dir, "f.bin");
		await writeFile(target, "OLD CONTENT");
		const oldInode = (await stat(target)).ino;
		const reader = await open(target, "r"); // someone reading the old file meanwhile
		try {
			const part = await PartFile.open(root, "f.bin", true);
			await writeAll(part, CONTENT);
			expect(await readFile(target, "utf8")).toBe("OLD CONTENT");
			await part.commit({ size: CONTENT.length, sha256: SHA }, true);
			expect(sha256Hex(await readFile(target))).toBe(SHA);
			expect((await stat(target)).ino).not.toBe(oldInode);
			// The old inode was never truncated or rewritten in place.
			const buf = Buffer.alloc(64);
			const { bytesRead } = await reader.read(buf, 0, 64, 0);
			expect(buf.subarray(0, bytesRead).toString()).toBe("OLD CONTENT");
		} finally {
			await reader.close();
		}
		expect(await names()).toEqual(["f.bin"]);
	});

	test("a kept part is offered for resume with the SHA-256 of its prefix", async () => {
		const n = 1024 * 1024 + 777;
		const first = await PartFile.open(root, "f.bin", false);
		await first.startAt(0, CONTENT.length);
		await writeAll(first, CONTENT.subarray(0, n));
		await first.keep();
		expect(await names()).toEqual([".f.bin.pairlink-part"]);

		const again = await PartFile.open(root, "f.bin", false);
		expect(again.resumable).toBe(n);
		expect(again.prefixSha256).toBe(sha256Hex(CONTENT.subarray(0, n)));
		await again.startAt(n, CONTENT.length);
		expect(again.received).toBe(n);
		await writeAll(again, CONTENT.subarray(n));
		// The whole-file hash covers the kept prefix too.
		expect(await again.commit({ size: CONTENT.length, sha256: SHA }, false)).toBe(SHA);
		expect(sha256Hex(await readFile(join(dir, "f.bin")))).toBe(SHA);
		expect(await names()).toEqual(["f.bin"]);
	});

	test("a resumed part whose prefix was wrong fails the whole-file check", async () => {
		await keptPart("f.bin", randomBytes(prng, 1000), CONTENT.length);
		const part = await PartFile.open(root, "f.bin", false);
		expect(part.resumable).toBe(1000);
		await part.startAt(1000, CONTENT.length);
		await writeAll(part, CONTENT.subarray(1000));
		await expectRefusal(part.commit({ size: CONTENT.length, sha256: SHA }, false), "integrity");
		expect(await names()).toEqual([]);
	});

	test("startAt(0) truncates the kept part and starts the hash over", async () => {
		const stale = randomBytes(prng, 5000);
		await keptPart("f.bin", stale, CONTENT.length);
		const part = await PartFile.open(root, "f.bin", false);
		expect(part.resumable).toBe(5000);
		expect(part.prefixSha256).toBe(sha256Hex(stale));
		await part.startAt(0, 100);
		expect(part.received).toBe(0);
		expect((await stat(join(dir, ".f.bin.pairlink-part"))).size).toBe(0);
		const small = CONTENT.subarray(0, 100); // shorter than the stale part
		await part.write(small);
		await part.commit({ size: 100, sha256: sha256Hex(small) }, false);
		expect(sha256Hex(await readFile(join(dir, "f.bin")))).toBe(sha256Hex(small));
		expect(await names()).toEqual(["f.bin"]);
	});

	test("startAt refuses an offset it did not offer", async () => {
		await keptPart("f.bin", new Uint8Array(10), CONTENT.length);
		const part = await PartFile.open(root, "f.bin", false);
		await expectRefusal(part.startAt(5, CONTENT.length), "protocol");
		await expectRefusal(part.startAt(11, CONTENT.length), "protocol");
		await part.discard();
		expect(await names()).toEqual([]);
	});

	test("no-overwrite commit when the final name appeared meanwhile: exists, existing file untouched", async () => {
		const part = await PartFile.open(root, "f.bin", false);
		await writeAll(part, CONTENT);
		await writeFile(join(dir, "f.bin"), "SOMEONE ELSE'S");
		const e = await expectRefusal(
			part.commit({ size: CONTENT.length, sha256: SHA }, false),
			"exists",
		);
		expect(e.exitCode).toBe(5);
		expect(await readFile(join(dir, "f.bin"), "utf8")).toBe("SOMEONE ELSE'S");
	});

	test("overwrite commit when a symlink appeared at the final name: refused, target untouched", async () => {
		const outside = await tempDir("pairlink-part-outside-");
		await writeFile(join(outside, "victim"), "VICTIM");
		const part = await PartFile.open(root, "f.bin", true);
		await writeAll(part, CONTENT);
		await symlink(join(outside, "victim"), join(dir, "f.bin"));
		await expectRefusal(part.commit({ size: CONTENT.length, sha256: SHA }, true), "invalid-path");
		expect(await readFile(join(outside, "victim"), "utf8")).toBe("VICTIM");
		expect((await lstat(join(dir, "f.bin"))).isSymbolicLink()).toBe(true);
	});

	// Regression: two receivers of the same name at once (two clients putting the
	// same path, or `get x/a.bin y/a.bin -o dir`) once opened the very same part
	// file; after the first committed, the second kept writing into the final
	// file. Part files are now claimed for the length of a transfer.
	test("a second receiver of the same name never changes the first one's committed file", async () => {
		const x = CONTENT.subarray(0, 100_000);
		const y = randomBytes(prng, 100_000);
		const a = await PartFile.open(root, "f.bin", false);
		await a.write(x);
		let b: PartFile | undefined;
		try {
			b = await PartFile.open(root, "f.bin", false); // should be refused, or get a file of its own
		} catch {
			// refusing the second receiver is fine
		}
		expect(await a.commit({ size: x.length, sha256: sha256Hex(x) }, false)).toBe(sha256Hex(x));
		if (b) {
			await b.startAt(0, y.length).catch(() => undefined);
			await b.write(y).catch(() => undefined);
			await b.commit({ size: y.length, sha256: sha256Hex(y) }, false).catch(() => undefined);
		}
		// What was verified is what stands at the name.
		expect(sha256Hex(await readFile(join(dir, "f.bin")))).toBe(sha256Hex(x));
	});

	test("discard removes the part file; keep leaves it", async () => {
		const a = await PartFile.open(root, "a", false);
		await a.write(new Uint8Array([1]));
		await a.discard();
		const b = await PartFile.open(root, "b", false);
		await b.write(new Uint8Array([2]));
		await b.keep();
		expect(await names()).toEqual([".b.pairlink-part"]);
	});
});

describe("a part-file name planted by someone else", () => {
	test("a FIFO is never opened for writing: it is replaced by a part file of our own", async () => {
		const r = Bun.spawnSync(["mkfifo", join(dir, ".pipe.bin.pairlink-part")]);
		expect(r.exitCode).toBe(0);
		const part = await PartFile.open(root, "pipe.bin", false);
		expect(part.resumable).toBe(0);
		await part.write(new Uint8Array([7]));
		await part.keep();
		const s = await lstat(join(dir, ".pipe.bin.pairlink-part"));
		expect(s.isFile()).toBe(true);
		expect(s.size).toBe(1);
	});
});

describe("part-file names", () => {
	const bytes = (s: string) => new TextEncoder().encode(s).length;

	test("never exceed 255 bytes, and two long names with one beginning stay apart", () => {
		const a = `${"é".repeat(120)}a.bin`; // 245 bytes: `.NAME.pairlink-part` would be 260
		const b = `${"é".repeat(120)}b.bin`;
		for (const name of [a, b, "x".repeat(255), "short.txt"]) {
			const part = partName(name);
			expect(bytes(part)).toBeLessThanOrEqual(255);
			expect(isPartName(part)).toBe(true);
			expect(part.isWellFormed()).toBe(true);
		}
		expect(partName(a)).not.toBe(partName(b));
		expect(partName("short.txt")).toBe(".short.txt.pairlink-part");
	});

	test("are recognised in any letter case", () => {
		expect(isPartName(".x.PAIRLINK-PART")).toBe(true);
		expect(isPartName(".x.Pairlink-Part")).toBe(true);
		expect(isPartName("x.pairlink-partial")).toBe(false);
	});

	test("a 255-byte name is received through a short part file", async () => {
		const name = "y".repeat(255);
		const data = CONTENT.subarray(0, 1000);
		const part = await PartFile.open(root, name, false);
		await part.write(data);
		expect((await names())[0]?.length).toBeLessThanOrEqual(255);
		await part.commit({ size: data.length, sha256: sha256Hex(data) }, false);
		expect(await names()).toEqual([name]);
	});
});
