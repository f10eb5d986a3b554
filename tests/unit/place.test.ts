/**
 * fs/place.ts: "never replace" without hard links (FAT/exFAT, FUSE: link()
 * fails with EPERM and friends), shared by received files and state files;
 * and the bounded retry of a rename held by a Windows scanner. Failures are
 * injected through placeIo; the files are real.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PartFile } from "../../src/fs/part-file.ts";
import { placeIo, placeNoReplace, placeReplacing } from "../../src/fs/place.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { createFileExclusive } from "../../src/store/state-dir.ts";
import { removeTempDirs, tempDir } from "../helpers/devices.ts";
import { expectRefusal, sha256Hex } from "../helpers/files.ts";

const real = { ...placeIo };
afterEach(() => Object.assign(placeIo, real));
afterAll(removeTempDirs);

const errno = (code: string) => Object.assign(new Error(code), { code });

/** link() as on a file system without hard links; counts the calls. */
function noHardLinks(code = "EPERM") {
	const calls = { link: 0 };
	placeIo.link = async () => {
		calls.link++;
		throw errno(code);
	};
	return calls;
}

describe("without hard links (injected EPERM, ENOTSUP, EOPNOTSUPP, ENOSYS)", () => {
	test.each(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"])(
		"%s: a received file is committed anyway, and an existing one is never replaced",
		async (code) => {
			const dir = await tempDir("pairlink-place-");
			const root = await SandboxRoot.open(dir);
			const calls = noHardLinks(code);
			const data = new TextEncoder().encode("received");
			const part = await PartFile.open(root, "new.txt", false);
			await part.write(data);
			expect(await part.commit({ size: data.length, sha256: sha256Hex(data) }, false)).toBe(
				sha256Hex(data),
			);
			expect(calls.link).toBe(1);
			expect(await readFile(join(dir, "new.txt"), "utf8")).toBe("received");
			expect(await readdir(dir)).toEqual(["new.txt"]);

			// The name appears between open and commit: the commit says exists, the file stays.
			const late = await PartFile.open(root, "late.txt", false);
			await late.write(data);
			await writeFile(join(dir, "late.txt"), "SOMEONE ELSE'S");
			await expectRefusal(
				late.commit({ size: data.length, sha256: sha256Hex(data) }, false),
				"exists",
			);
			expect(await readFile(join(dir, "late.txt"), "utf8")).toBe("SOMEONE ELSE'S");
			await root.close();
		},
	);

	test("state files use the same primitive: first writer wins", async () => {
		const dir = await tempDir("pairlink-place-");
		noHardLinks();
		expect(await createFileExclusive(join(dir, "code.json"), "first")).toBe(true);
		expect(await createFileExclusive(join(dir, "code.json"), "second")).toBe(false);
		expect(await readFile(join(dir, "code.json"), "utf8")).toBe("first");
		expect(await readdir(dir)).toEqual(["code.json"]);
	});

	test("another error from link() is not taken for 'no hard links'", async () => {
		const dir = await tempDir("pairlink-place-");
		await writeFile(join(dir, "a"), "a");
		placeIo.link = async () => {
			throw errno("EIO");
		};
		await expect(placeNoReplace(join(dir, "a"), join(dir, "b"))).rejects.toMatchObject({
			code: "EIO",
		});
		expect(await readdir(dir)).toEqual(["a"]);
	});
});

describe("Windows: a file held by a scanner (injected platform and errors)", () => {
	function heldFor(failures: number, code: string) {
		const calls = { rename: 0, slept: [] as number[] };
		placeIo.platform = "win32";
		placeIo.sleep = async (ms) => {
			calls.slept.push(ms);
		};
		placeIo.rename = async (from, to) => {
			if (++calls.rename <= failures) throw errno(code);
			return real.rename(from, to);
		};
		return calls;
	}

	test.each(["EPERM", "EBUSY", "EACCES"])(
		"%s twice, then free: the overwrite commit succeeds after a short backoff",
		async (code) => {
			const dir = await tempDir("pairlink-place-");
			await writeFile(join(dir, "f.txt"), "old");
			const root = await SandboxRoot.open(dir);
			const calls = heldFor(2, code);
			const data = new TextEncoder().encode("new");
			const part = await PartFile.open(root, "f.txt", true);
			await part.write(data);
			await part.commit({ size: 3, sha256: sha256Hex(data) }, true);
			expect(await readFile(join(dir, "f.txt"), "utf8")).toBe("new");
			expect(calls.rename).toBe(3);
			expect(calls.slept).toEqual([10, 20]);
			await root.close();
		},
	);

	test("held for good: gives up after a bounded number of tries, old file intact", async () => {
		const dir = await tempDir("pairlink-place-");
		await writeFile(join(dir, "f.txt"), "old");
		const root = await SandboxRoot.open(dir);
		const calls = heldFor(1000, "EBUSY");
		const data = new TextEncoder().encode("new");
		const part = await PartFile.open(root, "f.txt", true);
		await part.write(data);
		await expect(part.commit({ size: 3, sha256: sha256Hex(data) }, true)).rejects.toBeDefined();
		expect(calls.rename).toBe(8);
		expect(calls.slept.reduce((a, b) => a + b, 0)).toBeLessThan(2000);
		expect(await readFile(join(dir, "f.txt"), "utf8")).toBe("old");
		await root.close();
	});

	test("on Linux the same errors are not retried", async () => {
		const dir = await tempDir("pairlink-place-");
		const calls = heldFor(1, "EACCES");
		placeIo.platform = "linux";
		await writeFile(join(dir, "a"), "a");
		await expect(placeReplacing(join(dir, "a"), join(dir, "b"))).rejects.toMatchObject({
			code: "EACCES",
		});
		expect(calls.rename).toBe(1);
		expect(calls.slept).toEqual([]);
	});
});
