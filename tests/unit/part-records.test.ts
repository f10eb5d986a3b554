/**
 * Part-file records in the state directory (DESIGN §5) and the sweep of
 * abandoned part files by the record's age — never by mtime.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { lstat, readdir, rename, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PartFile } from "../../src/fs/part-file.ts";
import { sweepAbandonedParts } from "../../src/fs/part-sweep.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { FilePartRecords, PART_MAX_AGE_MS } from "../../src/store/part-records.ts";
import { removeTempDirs, tempDir } from "../helpers/devices.ts";

afterAll(removeTempDirs);

const PEER = "ab".repeat(32);
const BIG = 8 * 1024 * 1024;

async function setup() {
	const share = await tempDir("pairlink-records-share-");
	const records = new FilePartRecords(await tempDir("pairlink-records-state-"));
	const root = await SandboxRoot.open(share);
	/** An interrupted transfer of `name`: a recorded part file holding `bytes`. */
	const interrupted = async (name: string, bytes = 10) => {
		const part = await PartFile.open(root, name, false, { records, peer: PEER });
		await part.startAt(0, BIG);
		await part.write(new Uint8Array(bytes));
		await part.keep();
	};
	return { share, records, root, interrupted };
}

describe("records", () => {
	test("a recorded part file survives the process (a new store reads it) and is resumed by its peer only", async () => {
		const { share, records, root, interrupted } = await setup();
		await interrupted("f.bin", 100);
		const [rec] = await records.all();
		const part = await lstat(join(share, ".f.bin.pairlink-part"));
		expect(rec).toMatchObject({ peer: PEER, dev: part.dev, ino: part.ino });
		expect(rec?.path).toBe(join(root.dir, ".f.bin.pairlink-part"));
		const again = new FilePartRecords(join(records.dir, ".."));
		const resumed = await PartFile.open(root, "f.bin", false, { records: again, peer: PEER });
		expect(resumed.resumable).toBe(100);
		await resumed.keep();
		const other = await PartFile.open(root, "f.bin", false, {
			records: again,
			peer: "cd".repeat(32),
		});
		expect(other.resumable).toBe(0);
		await other.discard();
		// The other device's fresh start replaced the part file; its record went with it.
		expect(await records.all()).toEqual([]);
	});

	test("a committed transfer leaves no record behind", async () => {
		const { share, records, root } = await setup();
		const data = new Uint8Array(10);
		const part = await PartFile.open(root, "g.bin", false, { records, peer: PEER });
		await part.startAt(0, BIG);
		await part.write(data);
		await expect(part.commit({ size: 10, sha256: "0".repeat(64) }, false)).rejects.toBeDefined();
		expect(await records.all()).toEqual([]);
		expect(await readdir(share)).toEqual([]);
	});
});

describe("sweep by the record's age", () => {
	test("old records: their part files go; young ones stay whatever their mtime", async () => {
		const { share, records, root, interrupted } = await setup();
		await interrupted("old.bin");
		await interrupted("young.bin");
		// mtime says ancient (a source's time may be anything); the records are what count.
		const ancient = new Date("1990-01-01");
		await utimes(join(share, ".young.bin.pairlink-part"), ancient, ancient);
		const now = Date.now();
		const [oldRec] = (await records.all()).filter((r) => r.path.includes("old.bin"));
		await records.put({
			...(oldRec as NonNullable<typeof oldRec>),
			createdAt: now - PART_MAX_AGE_MS - 1,
		});
		const removed = await sweepAbandonedParts(records, now);
		expect(removed).toEqual([join(root.dir, ".old.bin.pairlink-part")]);
		expect(await readdir(share)).toEqual([".young.bin.pairlink-part"]);
		expect((await records.all()).map((r) => r.path.includes("young.bin"))).toEqual([true]);
	});

	test("a record whose path now holds another file removes nothing but the record", async () => {
		const { share, records, interrupted } = await setup();
		await interrupted("f.bin");
		const [rec] = await records.all();
		// The part file was replaced by something else under the same name.
		await writeFile(join(share, "other"), "keep me");
		await rename(join(share, "other"), join(share, ".f.bin.pairlink-part"));
		await records.put({ ...(rec as NonNullable<typeof rec>), createdAt: 0 });
		expect(await sweepAbandonedParts(records)).toEqual([]);
		expect(await readdir(share)).toEqual([".f.bin.pairlink-part"]);
		expect(await records.all()).toEqual([]);
	});
});

describe("sweep by the number a peer keeps", () => {
	test("past the cap, a peer's oldest part files go and its newest stay", async () => {
		const { share, records, interrupted } = await setup();
		for (const name of ["a.bin", "b.bin", "c.bin", "d.bin"]) await interrupted(name);
		const now = Date.now();
		// Creation order a < b < c < d, all young.
		const all = await records.all();
		for (const r of all) {
			const order = ["a.bin", "b.bin", "c.bin", "d.bin"].findIndex((n) => r.path.includes(n));
			await records.put({ ...r, createdAt: now - 1000 + order });
		}
		const removed = await sweepAbandonedParts(records, now, PART_MAX_AGE_MS, 2);
		expect(removed.map((p) => p.split("/").at(-1)).sort()).toEqual([
			".a.bin.pairlink-part",
			".b.bin.pairlink-part",
		]);
		expect((await readdir(share)).sort()).toEqual([".c.bin.pairlink-part", ".d.bin.pairlink-part"]);
		expect((await records.all()).length).toBe(2);
	});
});
