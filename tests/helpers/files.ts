/** File-tree helpers for the file-operation tests: generate, snapshot, compare, expect refusals. */
import { expect } from "bun:test";
import { lstat, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type ErrorCode, PairlinkError } from "../../src/errors.ts";
import { PartFile, type PartOwner } from "../../src/fs/part-file.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import { PART_SUFFIX } from "../../src/fs/safe-path.ts";
import { FilePartRecords } from "../../src/store/part-records.ts";
import type { TrustStore } from "../../src/store/trust-store.ts";
import type { Prng } from "./prng.ts";

export function sha256Hex(bytes: Uint8Array | string): string {
	return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** Random bytes from the seeded PRNG, quickly (whole 32-bit words). */
export function randomBytes(prng: Prng, n: number): Uint8Array {
	const out = new Uint8Array(n);
	const view = new DataView(out.buffer);
	let i = 0;
	for (; i + 4 <= n; i += 4) view.setUint32(i, prng.u32());
	for (; i < n; i++) out[i] = prng.u32() & 0xff;
	return out;
}

export interface TreeSpec {
	/** Regular files to create, spread over nested directories. */
	files: number;
	maxSize: number;
	/** Extra directories with nothing in them. */
	emptyDirs: number;
}

/**
 * A tree of `spec.files` files in nested directories (up to three levels),
 * sizes 0..maxSize with random content, plus empty directories. Returns the
 * total number of file bytes.
 */
export async function writeTree(top: string, prng: Prng, spec: TreeSpec): Promise<number> {
	let bytes = 0;
	await mkdir(top, { recursive: true });
	const jobs: Promise<void>[] = [];
	for (let i = 0; i < spec.files; i++) {
		const depth = i % 4;
		const dirs = [`d${i % 7}`, `s${i % 5}`, `t${i % 3}`].slice(0, depth);
		// Some sizes on the edges: empty, one byte, exactly the max.
		const size =
			i % 97 === 0
				? 0
				: i % 89 === 0
					? 1
					: i % 83 === 0
						? spec.maxSize
						: prng.int(spec.maxSize + 1);
		const data = randomBytes(prng, size);
		bytes += size;
		const dir = join(top, ...dirs);
		jobs.push(
			mkdir(dir, { recursive: true }).then(() => writeFile(join(dir, `f${i}-${size}.bin`), data)),
		);
		if (jobs.length >= 64) await Promise.all(jobs.splice(0));
	}
	await Promise.all(jobs);
	for (let i = 0; i < spec.emptyDirs; i++) {
		const dirs = i % 2 === 0 ? [`empty${i}`] : [`d${i % 7}`, `empty${i}`, "deeper"];
		await mkdir(join(top, ...dirs), { recursive: true });
	}
	return bytes;
}

export type Snapshot = Map<string, string>;

/**
 * Everything below `top` without following symlinks: relative path ->
 * "dir", "symlink" or "file:<sha256>". Every name is included, part files too.
 */
export async function snapshot(top: string): Promise<Snapshot> {
	const out: Snapshot = new Map();
	const visit = async (abs: string, rel: string) => {
		for (const name of (await readdir(abs)).sort()) {
			const childAbs = join(abs, name);
			const childRel = rel ? `${rel}/${name}` : name;
			const s = await lstat(childAbs);
			if (s.isSymbolicLink()) out.set(childRel, "symlink");
			else if (s.isDirectory()) {
				out.set(childRel, "dir");
				await visit(childAbs, childRel);
			} else out.set(childRel, `file:${sha256Hex(await readFile(childAbs))}`);
		}
	};
	await visit(top, "");
	return out;
}

/** Paths of unfinished-transfer files anywhere below `top`. */
export async function partFiles(top: string): Promise<string[]> {
	return [...(await snapshot(top)).keys()].filter((p) => p.endsWith(PART_SUFFIX));
}

/**
 * Awaits `p`, expecting a PairlinkError with `code`; returns it. A transfer
 * (getFiles/putFiles) reports a failed file in its summary instead of
 * throwing: its only failure counts as the error.
 */
export async function expectRefusal(p: Promise<unknown>, code: ErrorCode): Promise<PairlinkError> {
	let error: unknown;
	try {
		const result = await p;
		const failed = (result as { failed?: { error: PairlinkError }[] } | undefined)?.failed;
		if (failed && failed.length > 0) {
			expect(failed).toHaveLength(1);
			error = failed[0]?.error;
		}
	} catch (e) {
		error = e;
	}
	if (!(error instanceof PairlinkError)) {
		throw new Error(`expected a PairlinkError "${code}", got ${String(error ?? "success")}`);
	}
	expect({ code: error.code, message: error.message }).toMatchObject({ code });
	return error;
}

/** Rejects if `p` does not settle within `ms`: a hang fails fast with a clear message. */
export function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
	let timer: ReturnType<typeof setTimeout> | undefined;
	return Promise.race([
		p,
		new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

/**
 * A part file an interrupted transfer kept, made the way a transfer makes
 * it (created exclusively and recorded for `owner`), so it may be resumed
 * by that peer only.
 */
export async function keepPart(
	dir: string,
	name: string,
	data: Uint8Array,
	owner: Partial<PartOwner> = {},
): Promise<void> {
	const root = await SandboxRoot.open(dir);
	try {
		const part = await PartFile.open(root, name, false, owner);
		// Announced as larger than one chunk: such a part file is recorded before its first byte.
		await part.startAt(0, Number.MAX_SAFE_INTEGER);
		await part.write(data);
		await part.keep();
	} finally {
		await root.close();
	}
}

/** What a client's downloads from `server` record their part files under. */
export function clientPartOwner(client: { trust: TrustStore }, server: { fingerprint: string }) {
	return {
		records: new FilePartRecords(dirname(client.trust.file)),
		peer: server.fingerprint,
	};
}
