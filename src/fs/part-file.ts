/**
 * Receiving a file: bytes go to a part file beside the target (part-name.ts),
 * are hashed as they arrive, and reach the final name only after size and
 * SHA-256 match the sender's — by an atomic rename (overwrite) or a move
 * that never replaces (fs/place.ts). Everything happens through the
 * descriptor of the target's directory, opened beneath the root.
 *
 * A part file is created exclusively (O_EXCL, 0600) and is only ever
 * written, adopted for a resume or committed when it is still ours: a
 * regular file with one link, owned by this user, whose device/inode
 * matches the record written when it was created, for the same peer device
 * (store/part-records.ts). Anything else standing at the part name is
 * removed as a name (never written through) and a fresh one is created.
 */
import { constants, type Stats } from "node:fs";
import { type FileHandle, lstat, open, statfs, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PairlinkError } from "../errors.ts";
import { MAX_DATA_PAYLOAD } from "../protocol/limits.ts";
import { MemoryPartRecords, type PartRecordStore } from "../store/part-records.ts";
import { type Dir, type Identity, STEP_FLAGS, sameFile } from "./beneath.ts";
import { applyMeta, type FileMeta } from "./metadata.ts";
import { partName } from "./part-name.ts";
import { placeNoReplace, placeReplacing } from "./place.ts";
import { display, errno, fsError, type SandboxRoot } from "./root.ts";
import { ON_THREAD_BELOW, readSmallSync } from "./small-io.ts";

/** Who a part file belongs to: the record store, and the peer device whose transfer it holds. */
export interface PartOwner {
	records: PartRecordStore;
	/** The peer's certificate fingerprint. */
	peer: string;
}

/** Without a state directory: records last as long as the process. */
const processRecords = new MemoryPartRecords();

/**
 * Part files being written by this process. Two receivers of one name would
 * share the part file (one truncating what the other verified), so the
 * second is refused until the first is done.
 */
const claimed = new Set<string>();

export class PartFile {
	private offset: number;
	private closed = false;
	private recorded: boolean;

	private constructor(
		private readonly fh: FileHandle,
		private readonly root: SandboxRoot,
		private readonly wirePath: string,
		/** The target's directory: looked up again at the end, it must still be this one. */
		private readonly dirId: Identity,
		private readonly partName: string,
		private readonly finalName: string,
		private readonly claim: string,
		private readonly label: string,
		private readonly id: Stats,
		private readonly owner: PartOwner,
		/** The absolute path of the part file, for its record. */
		private readonly path: string,
		/** Bytes already in the part file from an earlier attempt. */
		readonly resumable: number,
		/** SHA-256 (hex) of those bytes; undefined when there are none. */
		readonly prefixSha256: string | undefined,
		private hasher: Bun.CryptoHasher,
	) {
		this.offset = resumable;
		this.recorded = resumable > 0;
	}

	/**
	 * Prepare to receive `wirePath` inside `root` for the peer `owner.peer`.
	 * Refuses when the final name exists and `overwrite` is false, is a
	 * directory, or is a symlink.
	 */
	static async open(
		root: SandboxRoot,
		wirePath: string,
		overwrite: boolean,
		who: Partial<PartOwner> = {},
	): Promise<PartFile> {
		const owner = { records: who.records ?? processRecords, peer: who.peer ?? "" };
		const { dir, name, parts } = await root.parentOf(wirePath);
		const label = display(parts);
		const part = partName(name);
		const claim = `${dir.id.dev}:${dir.id.ino}/${part}`;
		try {
			await checkTarget(root, dir, name, label, overwrite);
			if (claimed.has(claim))
				throw new PairlinkError("busy", `${label} is being received by another transfer right now`);
			claimed.add(claim);
		} catch (e) {
			await dir.close();
			throw e;
		}
		try {
			const path = join(root.dir, ...dir.stack, part);
			const { fh, id, size } = await openPart(dir, part, label, owner);
			try {
				// Hash what an earlier attempt left, so the sender can check it against its own prefix.
				const hasher = new Bun.CryptoHasher("sha256");
				for await (const chunk of readChunks(fh, 0, size, true)) hasher.update(chunk);
				const prefix = size > 0 ? hasher.copy().digest("hex") : undefined;
				return new PartFile(
					fh,
					root,
					wirePath,
					{ dev: dir.id.dev, ino: dir.id.ino },
					part,
					name,
					claim,
					label,
					id,
					owner,
					path,
					size,
					prefix,
					hasher,
				);
			} catch (e) {
				await fh.close();
				throw e;
			}
		} catch (e) {
			claimed.delete(claim);
			throw fsError(e, label);
		} finally {
			// A descriptor per transfer is its part file's; the directory is looked up again at the end.
			await dir.close();
		}
	}

	/** Run `use` on the target's directory, looked up again beneath the root: it must be the same one. */
	private async inDir<T>(use: (dir: Dir) => Promise<T>): Promise<T> {
		const { dir } = await this.root.parentOf(this.wirePath);
		try {
			if (!sameFile(dir.id, this.dirId))
				throw new PairlinkError(
					"refused",
					`${this.label}: its directory was replaced during the transfer; nothing was written`,
				);
			return await use(dir);
		} finally {
			await dir.close();
		}
	}

	/**
	 * Continue after the kept prefix (`resumable`), or start over from 0.
	 * `size` is the whole file's: one that takes more than one chunk is
	 * recorded first, so a crash mid-way leaves a part file we may resume.
	 */
	async startAt(offset: number, size: number): Promise<void> {
		if (!this.recorded && size > MAX_DATA_PAYLOAD) {
			this.recorded = true;
			await this.owner.records.put({
				peer: this.owner.peer,
				path: this.path,
				dev: this.id.dev,
				ino: this.id.ino,
				createdAt: Date.now(),
			});
		}
		if (offset === this.resumable) return;
		if (offset !== 0) throw new PairlinkError("protocol", `cannot resume at ${offset}`);
		await this.fh.truncate(0);
		this.hasher = new Bun.CryptoHasher("sha256");
		this.offset = 0;
	}

	/** Bytes free for unprivileged use where the file will stand (SPEC: refuse early, not at 90%). */
	async freeBytes(): Promise<number> {
		const s = await statfs(dirname(this.path));
		return Number(s.bavail) * Number(s.bsize);
	}

	get received(): number {
		return this.offset;
	}

	/** Append the pieces of one chunk (as they arrived from the socket): hashed, then one writev. */
	async write(data: Uint8Array | readonly Uint8Array[]): Promise<void> {
		const parts = data instanceof Uint8Array ? [data] : data;
		let length = 0;
		for (const p of parts) {
			this.hasher.update(p);
			length += p.length;
		}
		let pieces = parts;
		let done = 0;
		try {
			while (done < length) {
				const { bytesWritten } = await this.fh.writev(pieces as Uint8Array[], this.offset + done);
				done += bytesWritten;
				if (done < length) pieces = remaining(parts, done);
			}
		} catch (e) {
			throw fsError(e, this.label);
		} finally {
			this.offset += done;
		}
	}

	/**
	 * Verify and move into place. On a mismatch the part file is deleted (its
	 * content is known bad) and nothing appears at the final name.
	 */
	async commit(
		expected: { size: number; sha256: string },
		overwrite: boolean,
		meta?: FileMeta,
	): Promise<string> {
		const actual = this.hasher.digest("hex");
		if (this.offset !== expected.size || actual !== expected.sha256) {
			await this.discard();
			throw new PairlinkError(
				"integrity",
				this.offset !== expected.size
					? `${this.label}: received ${this.offset} bytes, the sender announced ${expected.size}`
					: `${this.label}: SHA-256 mismatch, the data was corrupted in transit`,
			);
		}
		try {
			// Private while unverified; now the mode any new file of this user gets, plus the
			// sender's executable bits and its mtime, set before the name appears.
			if (meta) await applyMeta(this.fh, meta, process.platform);
			else if (uid !== undefined) await this.fh.chmod(FINAL_MODE);
			await this.fh.sync();
			await this.close();
			await this.inDir(async (dir) => {
				await this.stillOurs(dir);
				const from = dir.at(this.partName);
				const to = dir.at(this.finalName);
				if (overwrite) {
					await checkTarget(this.root, dir, this.finalName, this.label, true);
					await placeReplacing(from, to);
				} else if (!(await placeNoReplace(from, to))) {
					throw new PairlinkError("exists", `${this.label} already exists`);
				}
			});
			await this.forget();
		} catch (e) {
			throw fsError(e, this.label);
		} finally {
			await this.release();
		}
		return actual;
	}

	/** Close and keep the part file: the next attempt resumes from it. */
	async keep(): Promise<void> {
		await this.close();
		await this.release();
	}

	async discard(): Promise<void> {
		await this.close();
		// Only our own file goes: the name may have been replaced meanwhile.
		await this.inDir(async (dir) => {
			const now = await lstat(dir.at(this.partName));
			if (sameFile(now, this.id)) await unlink(dir.at(this.partName));
		}).catch(() => undefined);
		await this.forget();
		await this.release();
	}

	/**
	 * Right before the commit: still one link (nobody holds another name for
	 * our bytes), and the part name still leads to our file.
	 */
	private async stillOurs(dir: Dir): Promise<void> {
		// One lstat answers both: the inode at the name, and how many names it has.
		const named = await lstat(dir.at(this.partName)).catch(() => undefined);
		if (!named || !sameFile(named, this.id) || named.nlink !== 1)
			throw new PairlinkError(
				"refused",
				`${this.label}: the unfinished transfer was tampered with; nothing was written`,
			);
	}

	private async forget(): Promise<void> {
		if (this.recorded) await this.owner.records.remove(this.id.dev, this.id.ino);
	}

	/** Until now nobody else in this process may open the part file. */
	private async release(): Promise<void> {
		claimed.delete(this.claim);
	}

	private async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		await this.fh.close().catch(() => undefined);
	}
}

/** What is left of `parts` after the first `skip` bytes (after a short writev). */
function remaining(parts: readonly Uint8Array[], skip: number): Uint8Array[] {
	const out: Uint8Array[] = [];
	let left = skip;
	for (const p of parts) {
		if (left >= p.length) {
			left -= p.length;
			continue;
		}
		out.push(left > 0 ? p.subarray(left) : p);
		left = 0;
	}
	return out;
}

const notRegular = (label: string) =>
	new PairlinkError(
		"invalid-path",
		`${label} has an unfinished transfer that is not a regular file`,
	);

async function checkTarget(
	root: SandboxRoot,
	dir: Dir,
	name: string,
	label: string,
	overwrite: boolean,
) {
	const s = await lstat(dir.at(name)).catch((e) =>
		errno(e) === "ENOENT" ? undefined : Promise.reject(fsError(e, label)),
	);
	if (!s) return;
	// Not even "it is a directory": what the root hides does not exist for a peer.
	if (root.isHidden(s)) throw new PairlinkError("not-found", `${label} does not exist`);
	if (s.isSymbolicLink())
		throw new PairlinkError(
			"invalid-path",
			`${label} is a symbolic link; pairlink never writes through one`,
		);
	if (s.isDirectory()) throw new PairlinkError("is-directory", `${label} is a directory`);
	if (!overwrite) throw new PairlinkError("exists", `${label} already exists`);
}

const CREATE = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | STEP_FLAGS;

/**
 * Our part file for this transfer: the recorded one if it is still ours and
 * was started by the same peer, else a fresh one created exclusively.
 */
async function openPart(
	dir: Dir,
	name: string,
	label: string,
	owner: PartOwner,
): Promise<{ fh: FileHandle; id: Stats; size: number }> {
	const at = dir.at(name);
	for (let attempt = 0; attempt < 2; attempt++) {
		try {
			const fh = await open(at, CREATE, 0o600);
			const id = await fh.stat();
			if (ours(id)) return { fh, id, size: 0 };
			await fh.close();
			throw notRegular(label);
		} catch (e) {
			if (errno(e) !== "EEXIST" || attempt > 0) throw e;
			const kept = await adoptable(at, owner);
			if (kept) return kept;
			// Not ours to adopt (planted, another device's, or unrecorded): remove the name only.
			const there = await lstat(at);
			if (there.isDirectory()) throw notRegular(label);
			await owner.records.remove(there.dev, there.ino);
			await unlink(at);
		}
	}
	throw new PairlinkError("busy", `${label} is being received by another transfer right now`);
}

/** The existing part file at `at`, if its record says this peer started it and it is still ours. */
async function adoptable(
	at: string,
	owner: PartOwner,
): Promise<{ fh: FileHandle; id: Stats; size: number } | undefined> {
	const there = await lstat(at).catch(() => undefined);
	if (!there || !ours(there)) return undefined;
	const record = await owner.records.get(there.dev, there.ino);
	if (record?.peer !== owner.peer) return undefined;
	const fh = await open(at, constants.O_RDWR | STEP_FLAGS).catch(() => undefined);
	if (!fh) return undefined;
	const id = await fh.stat();
	if (ours(id) && sameFile(id, there)) return { fh, id, size: id.size };
	await fh.close();
	return undefined;
}

const uid = process.getuid?.();
/** 0666 less the umask, as for any file this user creates (read once: umask() is process-wide). */
const FINAL_MODE = 0o666 & ~process.umask();

/** A regular file with one link, created by this user, readable by nobody else. */
function ours(s: Stats): boolean {
	return (
		s.isFile() && s.nlink === 1 && (uid === undefined || (s.uid === uid && (s.mode & 0o077) === 0))
	);
}

/**
 * Read [start, end) in chunks of at most MAX_DATA_PAYLOAD. The next read is
 * already in flight while the caller hashes and sends the current chunk, and
 * buffers are not zero-filled first (every byte is overwritten by the read).
 *
 * By default each chunk is a fresh buffer the caller may keep. With `reuse`,
 * two buffers take turns: a chunk is valid only until the caller asks for
 * the next one. A streaming sender is done with a chunk by then (hashed, and
 * taken by the socket), and a fresh 1 MiB buffer per chunk costs the kernel
 * a page fault and a zeroed page per 4 KiB — a quarter of a million per GiB.
 */
export async function* readChunks(
	fh: FileHandle,
	start: number,
	end: number,
	reuse = false,
): AsyncGenerator<Uint8Array> {
	const ring = reuse
		? [Buffer.allocUnsafe(MAX_DATA_PAYLOAD), Buffer.allocUnsafe(MAX_DATA_PAYLOAD)]
		: [];
	let turn = 0;
	const readAt = async (pos: number): Promise<Uint8Array | undefined> => {
		if (pos >= end) return undefined;
		const want = Math.min(MAX_DATA_PAYLOAD, end - pos);
		const buf = reuse ? (ring[turn++ % 2] as Buffer).subarray(0, want) : Buffer.allocUnsafe(want);
		let got = 0;
		while (got < want) {
			const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
			if (bytesRead === 0)
				throw new PairlinkError("interrupted", "the file shrank while it was being read");
			got += bytesRead;
		}
		return buf;
	};
	let pos = start;
	let next = readAt(pos);
	for (;;) {
		const chunk = await next;
		if (!chunk) return;
		pos += chunk.length;
		next = readAt(pos);
		// A read that fails while the caller is busy must not become an unhandled rejection.
		next.catch(() => undefined);
		yield chunk;
	}
}

/** All `size` bytes of an open file (at most one data frame), in one buffer the caller may keep. */
export async function readWhole(fh: FileHandle, size: number): Promise<Uint8Array> {
	if (size < ON_THREAD_BELOW) return readSmallSync(fh, size);
	let whole: Uint8Array = new Uint8Array(0);
	for await (const chunk of readChunks(fh, 0, size)) whole = chunk;
	return whole;
}
