/**
 * The local files a client uploads: named by the user on this device, so
 * not confined to a shared root (that is root.ts, for what a peer names).
 * Kept in fs/ so the session reaches local files only through this module.
 */
import { open, stat } from "node:fs/promises";
import { MAX_DATA_PAYLOAD } from "../protocol/limits.ts";
import { fsError } from "./root.ts";
import { readPath } from "./small-io.ts";

export const statLocal = (path: string) => stat(path);

/** Opened for reading; the caller closes it. */
export const openLocal = (path: string) => open(path, "r");

/** A file's bytes when it fits one data frame; undefined for a larger one. */
export async function readIfSmall(path: string): Promise<Uint8Array | undefined> {
	const file = Bun.file(path);
	try {
		if (file.size > MAX_DATA_PAYLOAD) return undefined;
		const data = await readPath(path, file.size);
		// Grown past one frame since the size was read: take the streaming path.
		return data.length <= MAX_DATA_PAYLOAD ? data : undefined;
	} catch (e) {
		throw fsError(e, JSON.stringify(path));
	}
}
