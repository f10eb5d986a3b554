/**
 * Abandoned part files are removed once their creation record is older than
 * PART_MAX_AGE_MS — never judged by mtime, which carries the source file's
 * time. A part file is reached the way every other file is (beneath a
 * descriptor, no symlink followed) and removed only when it is still the
 * recorded inode, so a record can never be used to delete something else.
 */
import { lstat, unlink } from "node:fs/promises";
import { basename, dirname, parse } from "node:path";
import { PEER_LIMITS } from "../protocol/limits.ts";
import { PART_MAX_AGE_MS, type PartRecord, type PartRecordStore } from "../store/part-records.ts";
import { openDir, openRootSync, sameFile } from "./beneath.ts";

/**
 * Remove part files whose records are older than `maxAgeMs`, and for each
 * peer device all but its `keep` newest; returns the paths removed.
 */
export async function sweepAbandonedParts(
	records: PartRecordStore,
	now = Date.now(),
	maxAgeMs = PART_MAX_AGE_MS,
	keep: number = PEER_LIMITS.keptPartFiles,
): Promise<string[]> {
	const removed: string[] = [];
	const young = new Map<string, PartRecord[]>();
	for (const r of await records.all()) {
		if (now - r.createdAt >= maxAgeMs) await removeRecorded(records, r, removed);
		else young.set(r.peer, [...(young.get(r.peer) ?? []), r]);
	}
	for (const mine of young.values()) {
		if (mine.length <= keep) continue;
		mine.sort((a, b) => b.createdAt - a.createdAt);
		for (const r of mine.slice(keep)) await removeRecorded(records, r, removed);
	}
	return removed;
}

/** The part file of `r`, if it is still the recorded inode, then the record itself. */
async function removeRecorded(
	records: PartRecordStore,
	r: PartRecord,
	removed: string[],
): Promise<void> {
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
