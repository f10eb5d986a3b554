/**
 * fs/small-io.ts: a small file read on the calling thread and a larger one
 * read through the pool give the same bytes, and a file that shrank under
 * the reader is an interruption, not a short file.
 */
import { afterAll, expect, test } from "bun:test";
import { open, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readWhole } from "../../src/fs/part-file.ts";
import { ON_THREAD_BELOW, readPath } from "../../src/fs/small-io.ts";
import { removeTempDirs, tempDir } from "../helpers/devices.ts";
import { randomBytes, sha256Hex } from "../helpers/files.ts";
import { makePrng } from "../helpers/prng.ts";

afterAll(removeTempDirs);
const prng = makePrng(0x5a11);

for (const size of [0, 4096, ON_THREAD_BELOW - 1, ON_THREAD_BELOW, 300_000]) {
	test(`a ${size}-byte file reads whole, by descriptor and by path`, async () => {
		const content = randomBytes(prng, size);
		const path = join(await tempDir("pairlink-small-io-"), "f.bin");
		await writeFile(path, content);
		const fh = await open(path, "r");
		try {
			expect(sha256Hex(await readWhole(fh, size))).toBe(sha256Hex(content));
		} finally {
			await fh.close();
		}
		expect(sha256Hex(await readPath(path, size))).toBe(sha256Hex(content));
	});
}

test("a small file that shrank after its size was taken is an interruption", async () => {
	const path = join(await tempDir("pairlink-small-io-"), "f.bin");
	await writeFile(path, randomBytes(prng, 4096));
	const fh = await open(path, "r");
	try {
		await truncate(path, 100);
		await expect(readWhole(fh, 4096)).rejects.toMatchObject({ code: "interrupted" });
	} finally {
		await fh.close();
	}
});
