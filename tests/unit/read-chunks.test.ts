/**
 * readChunks (fs/part-file.ts): every byte of [start, end) in order, in
 * chunks of at most one data frame — fresh buffers by default, two buffers
 * taking turns with `reuse` (streaming senders: no page faults per MiB).
 */
import { afterAll, expect, test } from "bun:test";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readChunks } from "../../src/fs/part-file.ts";
import { MAX_DATA_PAYLOAD } from "../../src/protocol/limits.ts";
import { removeTempDirs, tempDir } from "../helpers/devices.ts";
import { randomBytes, sha256Hex } from "../helpers/files.ts";
import { makePrng } from "../helpers/prng.ts";

afterAll(removeTempDirs);

const CONTENT = randomBytes(makePrng(0x5eed0c4), 3 * MAX_DATA_PAYLOAD + 777);

async function chunksOf(start: number, end: number, reuse: boolean) {
	const path = join(await tempDir("pairlink-read-chunks-"), "f.bin");
	await writeFile(path, CONTENT);
	const fh = await open(path, "r");
	try {
		const hasher = new Bun.CryptoHasher("sha256");
		const lengths: number[] = [];
		const buffers = new Set<ArrayBufferLike>();
		for await (const chunk of readChunks(fh, start, end, reuse)) {
			hasher.update(chunk);
			lengths.push(chunk.length);
			buffers.add(chunk.buffer);
		}
		return { sha256: hasher.digest("hex"), lengths, buffers: buffers.size };
	} finally {
		await fh.close();
	}
}

test("reusing buffers yields the same bytes as fresh ones, from two buffers however long the file", async () => {
	const fresh = await chunksOf(5, CONTENT.length, false);
	const reused = await chunksOf(5, CONTENT.length, true);
	expect(reused.sha256).toBe(sha256Hex(CONTENT.subarray(5)));
	expect(fresh.sha256).toBe(reused.sha256);
	expect(reused.lengths).toEqual([MAX_DATA_PAYLOAD, MAX_DATA_PAYLOAD, MAX_DATA_PAYLOAD, 772]);
	expect(reused.buffers).toBeLessThanOrEqual(2);
	expect(fresh.buffers).toBe(4);
});

test("an empty range yields nothing", async () => {
	expect((await chunksOf(100, 100, true)).lengths).toEqual([]);
});
