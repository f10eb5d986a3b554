/**
 * Abandoned part files are removed once their creation record is older than
 * PART_MAX_AGE_MS — never judged by mtime, which carries the source file's
 * time. A part file is reached the way every other file is (beneath a
 * descriptor, no symlink followed) and removed only when it is still the
 * recorded inode, so a record can never be used to delete something else.
 */
import { lstat, unlink } from "node:fs/promises";
import { basename, dirname, parse } from "node:path";
import { PART_MAX_AGE_MS, type PartRecordStore } from "../store/part-records.ts";
import { openDir, openRootSync, sameFile } from "./beneath.ts";

/** Remove part files whose records are older than `maxAgeMs`; returns the paths removed. */
export async function sweepAbandonedParts(
	records: PartRecordStore,
	now = Date.now(),
	maxAgeMs = PART_MAX_AGE_MS,
): Promise<string[]> {
	const removed: string[] = [];
	for (const r of await records.all()) {
		if (now - r.createdAt < maxAgeMs) continue;
		const dirPath = dirname(r.path);
		const top = parse(dirPath).root;
		try {
			const fsRoot = openRootSync(top);
			try {
				const parts = dirPath.slice(top.length).split(/[\\/]/).filter(Boolean);
				const dir = await openDir(fsRoot, parts, { follow: false });
				try {
					const name = basename(r.path);
					const there = await lstat(dir.at(name));
					if (sameFile(there, r)) {
						await unlink(dir.at(name));
						removed.push(r.path);
					}
				} finally {
					await dir.close();
				}
			} finally {
				await fsRoot.dispose();
			}
		} catch {
			// Gone already, or moved: either way the record has nothing left to protect.
		}
		await records.remove(r.dev, r.ino);
	}
	return removed;
}
