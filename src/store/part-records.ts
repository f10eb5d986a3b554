/**
 * Records of the part files this device created (DESIGN §5): which peer
 * device started each one, where it is, its device/inode, and when it was
 * created. A part file is resumed only when its record says the same peer
 * started it and its inode still matches; abandoned ones are swept by the
 * record's age, never by mtime. One small file per record in
 * `<state>/parts/`, so concurrent transfers never rewrite a shared file,
 * and a record written before the first byte survives a kill -9.
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import { ensureStateDir, readJsonFile, removeFile, writeFileAtomic } from "./state-dir.ts";

export interface PartRecord {
	/** Fingerprint of the peer device whose transfer this part file holds. */
	peer: string;
	/** Absolute path of the part file when it was created. */
	path: string;
	dev: number;
	ino: number;
	/** Milliseconds since the epoch. */
	createdAt: number;
}

/**
 * How long an abandoned part file is kept for a resume: a week from its
 * creation record (README "The state directory"). Long enough for a laptop that was
 * closed over a weekend, short enough that an 80 MB leftover does not stay
 * forever.
 */
export const PART_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export interface PartRecordStore {
	get(dev: number, ino: number): Promise<PartRecord | undefined>;
	put(record: PartRecord): Promise<void>;
	remove(dev: number, ino: number): Promise<void>;
	/** Every record (for the sweep). */
	all(): Promise<PartRecord[]>;
}

const key = (dev: number, ino: number) => `${dev}-${ino}`;

function validate(v: unknown): PartRecord {
	const r = v as Partial<PartRecord> | null;
	if (
		typeof r?.peer !== "string" ||
		typeof r.path !== "string" ||
		!Number.isSafeInteger(r.dev) ||
		!Number.isSafeInteger(r.ino) ||
		!Number.isSafeInteger(r.createdAt)
	)
		throw new Error("not a part-file record");
	return r as PartRecord;
}

/** Records in the state directory: they outlive the process. */
export class FilePartRecords implements PartRecordStore {
	readonly dir: string;

	constructor(stateDir: string) {
		this.dir = path.join(stateDir, "parts");
	}

	private file(dev: number, ino: number): string {
		return path.join(this.dir, `${key(dev, ino)}.json`);
	}

	async get(dev: number, ino: number): Promise<PartRecord | undefined> {
		// A damaged record only costs a resume: the part file is then not ours to adopt.
		return readJsonFile(this.file(dev, ino), validate).catch(() => undefined);
	}

	async put(record: PartRecord): Promise<void> {
		await ensureStateDir(this.dir);
		await writeFileAtomic(this.file(record.dev, record.ino), JSON.stringify(record));
	}

	async remove(dev: number, ino: number): Promise<void> {
		await removeFile(this.file(dev, ino)).catch(() => undefined);
	}

	async all(): Promise<PartRecord[]> {
		const names = await readdir(this.dir).catch(() => [] as string[]);
		const out: PartRecord[] = [];
		for (const name of names) {
			if (!/^\d+-\d+\.json$/.test(name)) continue;
			const r = await readJsonFile(path.join(this.dir, name), validate).catch(() => undefined);
			if (r) out.push(r);
		}
		return out;
	}
}

/** Records for one process (library use and tests without a state directory). */
export class MemoryPartRecords implements PartRecordStore {
	private readonly records = new Map<string, PartRecord>();

	async get(dev: number, ino: number): Promise<PartRecord | undefined> {
		return this.records.get(key(dev, ino));
	}

	async put(record: PartRecord): Promise<void> {
		this.records.set(key(record.dev, record.ino), record);
	}

	async remove(dev: number, ino: number): Promise<void> {
		this.records.delete(key(dev, ino));
	}

	async all(): Promise<PartRecord[]> {
		return [...this.records.values()];
	}
}
