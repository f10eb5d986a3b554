/**
 * The uploads of one server connection: the machine of each (upload-machine.ts)
 * decides, this performs its actions on the part file and answers the
 * client. A newcomer looking for where an upload's state lives: its phase is
 * Upload.state, everything else here is what performing it needs.
 */
import { PairlinkError } from "../errors.ts";
import type { FileMeta } from "../fs/metadata.ts";
import { upToDate } from "../fs/metadata.ts";
import { PartFile as Part, type PartFile } from "../fs/part-file.ts";
import { checkReceivable } from "../fs/safe-path.ts";
import type { Channel } from "../protocol/channel.ts";
import type { Message, MessageOf } from "../protocol/messages.ts";
import { type allowed, overwriteRefusal, refusal } from "./policy.ts";
import type { OperationEvent, ServerSessionDeps } from "./server-session.ts";
import {
	admit,
	dropped,
	REFUSED,
	step as stepUpload,
	type UploadEvent,
	type UploadState,
	type UploadStep,
} from "./upload-machine.ts";

/** Upload bytes buffered ahead of the disk before the socket is paused. */
const PAUSE_ABOVE = 16 * 1024 * 1024;
const RESUME_BELOW = 4 * 1024 * 1024;
/** Refused ids whose late frames are dropped quietly; past this the oldest are forgotten. */
const MAX_REMEMBERED_REFUSALS = 4096;

/** What a frame brings besides its event: the bytes of a data frame, the hash of a put-end. */
type Given = { parts?: Uint8Array[]; sha256?: string };

/** What the uploads use of their session: its policy check, its answers, its idle signal. */
export interface UploadHost {
	check(op: Parameters<typeof allowed>[2]): void;
	refuse(id: number, e: unknown, what: Omit<OperationEvent, "refused">): void;
	send(message: Message): void;
	notifyIfIdle(): void;
	platform(): string;
}

/** An upload's state lives in its machine (upload-machine.ts); this holds what performing it needs. */
interface Upload {
	path: string;
	state: UploadState;
	/** Known up front for a file sent whole: it is committed as soon as its bytes are in. */
	sha256: string | undefined;
	overwrite: boolean;
	/** The sender's mtime and mode, applied at commit (an older client sends none). */
	meta: FileMeta | undefined;
	/** Standard input of unknown length: no size check until put-end, never resumed. */
	stream: boolean;
	part: PartFile | undefined;
	resumedFrom: number;
	/** Writes happen in arrival order, one after another. */
	chain: Promise<void>;
}

export class ServerUploads {
	private readonly uploads = new Map<number, Upload>();
	/** Uploads refused before the client heard of it: their remaining frames are dropped, not errors. */
	private readonly refused = new Set<number>();
	private buffered = 0;
	private paused = false;

	constructor(
		private readonly channel: Channel,
		private readonly deps: ServerSessionDeps,
		private readonly host: UploadHost,
	) {}

	/** Uploads open on this connection. */
	get open(): number {
		return this.uploads.size;
	}

	onData(stream: number, parts: Uint8Array[], length: number): void {
		this.drive(stream, { type: "data", length }, { parts });
	}

	/**
	 * The connection is gone: keep partial uploads for resume. Resolves with
	 * the uploads it cut short that left bytes to resume from.
	 */
	async onClose(): Promise<{ path: string; kept: number }[]> {
		const cut: { path: string; kept: number }[] = [];
		for (const upload of this.uploads.values()) {
			await upload.chain.catch(() => undefined);
			if (!resumable(upload)) await upload.part?.discard();
			else if (upload.part) {
				await upload.part.keep();
				if (!dropped(upload.state)) cut.push({ path: upload.path, kept: upload.part.received });
			}
		}
		this.uploads.clear();
		return cut;
	}

	/**
	 * Registered at once and driven through one promise chain, so a client may
	 * send put-start, data and put-end without waiting for put-ready (small
	 * files: no round trip per file).
	 */
	put(m: MessageOf<"put">): void {
		const admitted = admit(m, this.uploads.has(m.id), this.uploads.size);
		if (admitted.state?.phase !== "opening") {
			this.perform(m.id, undefined, admitted);
			return;
		}
		const overwrite = m.overwrite && this.deps.policy.allowOverwrite;
		const whole = m.sha256 !== undefined;
		const stream = m.stream === true;
		const upload: Upload = {
			path: m.path,
			state: admitted.state,
			sha256: m.sha256,
			overwrite,
			meta: m.mtime !== undefined ? { mtime: m.mtime, mode: m.mode ?? 0 } : undefined,
			stream,
			part: undefined,
			resumedFrom: 0,
			chain: Promise.resolve(),
		};
		this.uploads.set(m.id, upload);
		upload.chain = (async () => {
			this.host.check({ op: "put", path: m.path, overwrite: m.overwrite });
			checkReceivable(m.path, this.host.platform());
			// SPEC's quick check, answered in place of put-ready: no round trip of its own.
			if (
				upload.meta &&
				!stream &&
				m.quick !== false &&
				(await this.isUpToDate(m.path, m.size, upload.meta.mtime))
			) {
				this.drive(m.id, { type: "up-to-date" });
				this.forgetUpload(m.id);
				this.host.send({ t: "up-to-date", id: m.id });
				return;
			}
			try {
				upload.part = await Part.open(this.deps.root, m.path, overwrite, {
					records: this.deps.partRecords,
					peer: this.deps.peer.fingerprint,
				});
			} catch (e) {
				if (e instanceof PairlinkError && e.code === "exists") {
					throw refusal(overwriteRefusal(this.deps.policy, m.overwrite), e.message);
				}
				throw e;
			}
			if (whole) {
				// Nothing to resume for a file that fits one frame: start clean, commit when it is in.
				await upload.part.startAt(0, m.size);
				this.drive(m.id, { type: "opened" });
				return;
			}
			// A part file longer than the announced size cannot be a prefix of it; a stream never resumes.
			const offset = !stream && upload.part.resumable <= m.size ? upload.part.resumable : 0;
			const free = await upload.part.freeBytes();
			if (!stream && m.size - offset > free)
				throw refusal("disk-full", `${m.size - offset} bytes are needed, ${free} are free`, free);
			this.drive(m.id, { type: "opened" });
			this.host.send({
				t: "put-ready",
				id: m.id,
				offset,
				...(offset > 0 && upload.part.prefixSha256 ? { prefix: upload.part.prefixSha256 } : {}),
			});
		})().catch((e) => this.failUpload(m.id, upload, e));
	}

	/** An existing regular file with the announced size and modification time. */
	private async isUpToDate(path: string, size: number, mtime: number): Promise<boolean> {
		const existing = await this.deps.root.stat(path).catch(() => undefined);
		return existing?.type === "file" && upToDate({ size, mtime }, existing);
	}

	/** The sender found its file changed after sending it: nothing is committed. */
	putAbort(id: number): void {
		this.drive(id, { type: "put-abort" });
	}

	putStart(m: MessageOf<"put-start">): void {
		this.drive(m.id, { type: "put-start", offset: m.offset });
	}

	putEnd(m: MessageOf<"put-end">): void {
		this.drive(m.id, { type: "put-end", size: m.size }, { sha256: m.sha256 });
	}

	/** One frame (or outcome) for an upload: the machine decides, this performs. */
	private drive(id: number, event: UploadEvent, given: Given = {}): void {
		const upload = this.uploads.get(id);
		const state = upload?.state ?? (this.refused.has(id) ? REFUSED : undefined);
		this.perform(id, upload, stepUpload(state, event), given);
	}

	private perform(id: number, upload: Upload | undefined, next: UploadStep, given: Given = {}) {
		if (upload && next.state) upload.state = next.state;
		for (const action of next.actions) {
			if (action.type === "protocol-error") {
				this.channel.fail(new PairlinkError("protocol", action.reason));
				return;
			}
			if (action.type === "forget") {
				this.refused.delete(id);
				continue;
			}
			if (!upload) {
				// Refused at admission: nothing was opened, its data is dropped.
				if (action.type === "refuse") {
					this.rememberRefused(id);
					this.host.send({ t: "error", id, code: action.wire });
				}
				continue;
			}
			switch (action.type) {
				case "refuse": {
					const why = refusal(action.wire, action.reason);
					upload.chain = upload.chain.then(() => this.failUpload(id, upload, why));
					break;
				}
				case "start-at":
					upload.resumedFrom = action.offset;
					this.queue(id, upload, (part) => part.startAt(action.offset, upload.state.size));
					break;
				case "write":
					this.write(id, upload, given.parts ?? [], action.length);
					break;
				case "commit": {
					const expected = upload.sha256 ?? given.sha256;
					upload.chain = upload.chain.then(() =>
						dropped(upload.state) ? undefined : this.finishUpload(id, upload, expected as string),
					);
					break;
				}
			}
		}
	}

	/** Work on the part file, in arrival order; skipped once the upload ended without a commit. */
	private queue(id: number, upload: Upload, work: (part: PartFile) => Promise<unknown>): void {
		upload.chain = upload.chain
			.then(async () => {
				if (!dropped(upload.state)) await work(upload.part as PartFile);
			})
			.catch((e) => this.failUpload(id, upload, e));
	}

	private write(id: number, upload: Upload, parts: Uint8Array[], length: number): void {
		this.buffered += length;
		if (!this.paused && this.buffered > PAUSE_ABOVE) {
			this.paused = true;
			this.channel.pause();
		}
		this.queue(id, upload, async (part) => {
			try {
				await part.write(parts);
			} finally {
				this.buffered -= length;
				if (this.paused && this.buffered < RESUME_BELOW) {
					this.paused = false;
					this.channel.resume();
				}
			}
		});
	}

	/** Verify, move into place, answer put-ok: the explicit ACK the sender waits for. */
	private async finishUpload(id: number, upload: Upload, expected: string): Promise<void> {
		this.uploads.delete(id);
		queueMicrotask(() => this.host.notifyIfIdle());
		try {
			const sha256 = await (upload.part as PartFile).commit(
				{ size: upload.state.size, sha256: expected },
				upload.overwrite,
				upload.meta,
			);
			upload.state = stepUpload(upload.state, { type: "committed" }).state ?? upload.state;
			this.host.send({ t: "put-ok", id, sha256 });
			this.deps.onTransfer?.({
				op: "put",
				path: upload.path,
				bytes: upload.state.size,
				sha256,
				resumedFrom: upload.resumedFrom,
			});
		} catch (e) {
			this.host.refuse(id, e, { op: "put", path: upload.path });
		}
	}

	private async failUpload(id: number, upload: Upload, e: unknown): Promise<void> {
		// Answered already (refused, or failed by an earlier write): one answer per request.
		if (this.uploads.get(id) !== upload) return;
		upload.state = stepUpload(upload.state, { type: "io-failed" }).state ?? upload.state;
		this.forgetUpload(id);
		this.host.refuse(id, e, { op: "put", path: upload.path });
		// Bad data is not worth resuming from; a full disk or a broken pipe is.
		if (
			e instanceof PairlinkError &&
			e.code !== "integrity" &&
			e.refusedAs === undefined &&
			resumable(upload)
		)
			await upload.part?.keep();
		else await upload.part?.discard();
	}

	/** Answered without being written: the frames still on their way for it are dropped. */
	private forgetUpload(id: number): void {
		this.uploads.delete(id);
		this.rememberRefused(id);
	}

	private rememberRefused(id: number): void {
		if (this.refused.size >= MAX_REMEMBERED_REFUSALS) this.refused.clear();
		this.refused.add(id);
	}
}

/**
 * Whether an unfinished upload's part file is kept for a later attempt.
 * An empty one resumes nothing; a stream is never resumed; nor is a file
 * sent whole (hash up front, one frame): it always starts over at 0, so
 * its part file is never recorded and, kept, would be an orphan no sweep
 * finds (attack 1, finding 7: 50 × 1 MB of them from one connection).
 */
function resumable(upload: Upload): boolean {
	return !upload.stream && upload.sha256 === undefined && (upload.part?.received ?? 0) > 0;
}
