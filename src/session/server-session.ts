/**
 * What a trusted client may ask once the handshake is over: list, stat,
 * walk, get, put, mkdir, rm. Every path goes through the sandbox root and
 * the policy; every refusal goes back as a small wire code with the
 * request's id. The transport never sees what the frames mean.
 */
import type { FileHandle } from "node:fs/promises";
import { PairlinkError } from "../errors.ts";
import { excluder } from "../fs/exclude.ts";
import { changedWhileRead, type FileMeta, snapshot, upToDate } from "../fs/metadata.ts";
import { PartFile as Part, type PartFile, readChunks, readWhole } from "../fs/part-file.ts";
import { type Entry, fsError, type SandboxRoot, type WalkEntry } from "../fs/root.ts";
import { checkReceivable } from "../fs/safe-path.ts";
import type { Channel, PeerInfo } from "../protocol/channel.ts";
import { MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD, PEER_LIMITS } from "../protocol/limits.ts";
import { MAX_ENTRIES_PER_MESSAGE, type Message, type MessageOf } from "../protocol/messages.ts";
import { type WireErrorCode, wireCodeFor } from "../protocol/wire-errors.ts";
import type { PartRecordStore } from "../store/part-records.ts";
import { type ConnectionLoad, checkUnacked, uploadAllowed } from "./peer-limits.ts";
import { allowed, overwriteRefusal, type ServePolicy } from "./policy.ts";

export interface TransferEvent {
	op: "get" | "put";
	path: string;
	bytes: number;
	sha256: string;
	resumedFrom: number;
}

/** A file operation for the server's log: done, or refused with the code the client got. */
export interface OperationEvent {
	op: "list" | "stat" | "walk" | "hash" | "mkdir" | "rm" | "get" | "put";
	path: string;
	refused?: WireErrorCode;
}

export interface ServerSessionDeps {
	root: SandboxRoot;
	policy: ServePolicy;
	peer: PeerInfo;
	/** Where part files are recorded (the state directory); default: for this process only. */
	partRecords?: PartRecordStore;
	onTransfer?(event: TransferEvent): void;
	/** mkdir and rm done, and every refused request (transfers done are onTransfer's). */
	onOperation?(event: OperationEvent): void;
	/** The last transfer in flight is done (a stopping server closes the connection then). */
	onIdle?(): void;
	/** The OS whose name rules uploads must meet (default: this one's); injectable for tests. */
	platform?: string;
	/** A request was taken on or finished: the connection re-checks its limits (peer-limits.ts). */
	onLoad?(): void;
}

/** Downloads read and sent at once per connection; more wait their turn. */
const CONCURRENT_GETS = 32;
/** Upload bytes buffered ahead of the disk before the socket is paused. */
const PAUSE_ABOVE = 16 * 1024 * 1024;
const RESUME_BELOW = 4 * 1024 * 1024;
const MAX_REMEMBERED_REFUSALS = 4096;

type Request = MessageOf<"list" | "stat" | "walk" | "hash" | "mkdir" | "rm" | "get">;

/** A refusal that carries the exact wire code to send. */
class Refusal extends PairlinkError {
	constructor(
		readonly wire: WireErrorCode,
		message: string,
		/** With disk-full: the bytes free here. */
		readonly free?: number,
	) {
		super("refused", message);
	}
}

/** The source changed while it was read: what arrived is not committed. */
const changedSource = () =>
	new Refusal("changed", "the file changed while it was being sent; nothing was committed");

interface Upload {
	path: string;
	size: number;
	/** Known up front for a file sent whole: it is committed as soon as its bytes are in. */
	sha256: string | undefined;
	overwrite: boolean;
	/** The sender's mtime and mode, applied at commit (an older client sends none). */
	meta: FileMeta | undefined;
	/** Standard input of unknown length: no size check until put-end, never resumed. */
	stream: boolean;
	part: PartFile | undefined;
	started: boolean;
	resumedFrom: number;
	/** Writes happen in arrival order, one after another. */
	chain: Promise<void>;
	failed: boolean;
}

interface Download {
	path: string;
	bytes: number;
	sha256: string;
	resumedFrom: number;
}

/**
 * Listing entries grouped into messages that stay under both the entry
 * count and the control-frame cap: 128 names of 255 escaped control
 * characters each would otherwise make a message too large to send.
 */
class EntryBatches<T> {
	private batch: T[] = [];
	private bytes = 0;
	private static readonly BUDGET = MAX_CONTROL_PAYLOAD - 1024;

	/** Add an entry; returns a full batch to send first, if adding it would overflow. */
	add(entry: T): T[] | undefined {
		const size = Buffer.byteLength(JSON.stringify(entry)) + 1;
		let full: T[] | undefined;
		if (
			this.batch.length > 0 &&
			(this.batch.length === MAX_ENTRIES_PER_MESSAGE || this.bytes + size > EntryBatches.BUDGET)
		) {
			full = this.batch;
			this.batch = [];
			this.bytes = 0;
		}
		this.batch.push(entry);
		this.bytes += size;
		return full;
	}

	rest(): T[] {
		const last = this.batch;
		this.batch = [];
		return last;
	}
}

export class ServerSession {
	private readonly uploads = new Map<number, Upload>();
	/** Uploads refused before the client heard of it: their remaining frames are dropped, not errors. */
	private readonly refusedUploads = new Set<number>();
	private readonly awaitingAck = new Map<number, Download>();
	private readonly getQueue: (() => Promise<void>)[] = [];
	private activeGets = 0;
	/** Requests other than downloads being worked on. */
	private running = 0;
	/** Download bytes being read and sent (see replyRoom), and who waits for room. */
	private unsentData = 0;
	private readonly roomWaiters: (() => void)[] = [];
	private buffered = 0;
	/** Listings being built (PEER_LIMITS.listingsAtOnce), and the ones waiting their turn. */
	private listings = 0;
	private readonly listingWaiters: (() => void)[] = [];
	private paused = false;
	private closed = false;
	private readonly openFiles = new Set<FileHandle>();

	constructor(
		private readonly channel: Channel,
		private readonly deps: ServerSessionDeps,
	) {}

	/** A transfer is in flight: a stopping server waits for it a little. */
	get busy(): boolean {
		// A download counts until the client acknowledged it: closing earlier could
		// cut its commit short on the client's side.
		return (
			this.uploads.size > 0 ||
			this.activeGets > 0 ||
			this.getQueue.length > 0 ||
			this.awaitingAck.size > 0
		);
	}

	/** What this peer has asked for and not been given yet: the input of keepReading(). */
	get load(): Omit<ConnectionLoad, "queuedReplyBytes"> {
		return {
			requestsInFlight: this.running + this.activeGets + this.getQueue.length,
			queuedGets: this.getQueue.length,
		};
	}

	private notifyIfIdle(): void {
		if (!this.busy) this.deps.onIdle?.();
	}

	onMessage(message: Message): void {
		if (this.closed) return;
		switch (message.t) {
			case "ping":
				this.send({ t: "pong", nonce: message.nonce });
				return;
			case "list":
				this.run(message, () => this.list(message));
				return;
			case "stat":
				this.run(message, () => this.stat(message));
				return;
			case "walk":
				this.run(message, () => this.walk(message));
				return;
			case "hash":
				// Reading a whole file, like a download: it waits its turn with them.
				this.getQueue.push(() => this.guard(message, () => this.hash(message)));
				this.pumpGets();
				return;
			case "mkdir":
				this.run(message, () => this.mkdir(message));
				return;
			case "rm":
				this.run(message, () => this.rm(message));
				return;
			case "get":
				this.enqueueGet(message);
				return;
			case "ack":
				this.ack(message.id);
				return;
			case "put":
				this.put(message);
				return;
			case "put-start":
				this.putStart(message);
				return;
			case "put-end":
				this.putEnd(message);
				return;
			case "put-abort":
				this.putAbort(message.id);
				return;
			default:
				this.channel.fail(
					new PairlinkError("protocol", `unexpected "${message.t}" message from the client`),
				);
		}
	}

	onData(stream: number, parts: Uint8Array[], length: number): void {
		if (this.closed) return;
		const upload = this.uploads.get(stream);
		if (!upload?.started) {
			if (!this.refusedUploads.has(stream)) {
				this.channel.fail(
					new PairlinkError("protocol", "data for a stream that is not an upload in progress"),
				);
			}
			return;
		}
		if (upload.failed) return; // already refused; the client stops sending
		this.buffered += length;
		if (!this.paused && this.buffered > PAUSE_ABOVE) {
			this.paused = true;
			this.channel.pause();
		}
		upload.chain = upload.chain.then(async () => {
			try {
				if (!upload.failed) {
					if (!upload.stream && (upload.part as PartFile).received + length > upload.size) {
						throw new Refusal("integrity", "more data than announced");
					}
					await (upload.part as PartFile).write(parts);
					if (upload.sha256 && (upload.part as PartFile).received === upload.size) {
						await this.finishUpload(stream, upload, upload.sha256);
					}
				}
			} finally {
				this.buffered -= length;
				if (this.paused && this.buffered < RESUME_BELOW) {
					this.paused = false;
					this.channel.resume();
				}
			}
		});
		upload.chain = upload.chain.catch((e) => this.failUpload(stream, upload, e));
	}

	/**
	 * The connection is gone: keep partial uploads for resume, close open files.
	 * Resolves with the uploads it cut short that left bytes to resume from.
	 */
	async onClose(): Promise<{ path: string; kept: number }[]> {
		const cut: { path: string; kept: number }[] = [];
		this.closed = true;
		this.getQueue.length = 0;
		// Waiting listings wake to find the connection closed and do nothing:
		// a stopping server has no queued work left to run (attack 1, finding 2).
		for (const wake of this.roomWaiters.splice(0)) wake();
		for (const wake of this.listingWaiters.splice(0)) wake();
		for (const fh of this.openFiles) await fh.close().catch(() => undefined);
		for (const upload of this.uploads.values()) {
			await upload.chain.catch(() => undefined);
			if (!resumable(upload)) await upload.part?.discard();
			else if (upload.part) {
				await upload.part.keep();
				if (!upload.failed) cut.push({ path: upload.path, kept: upload.part.received });
			}
		}
		this.uploads.clear();
		return cut;
	}

	// ---- handlers

	/**
	 * Entries are looked up one message's worth at a time, and each message
	 * is sent (taken by the socket) before the next is looked up: a peer
	 * that does not read its replies holds this listing at one batch.
	 */
	private async list(m: MessageOf<"list">): Promise<void> {
		this.check({ op: "list", path: m.path });
		await this.listingTurn(async () => {
			const batches = new EntryBatches<Entry>();
			for await (const found of this.deps.root.listBatches(m.path, MAX_ENTRIES_PER_MESSAGE)) {
				for (const entry of found) {
					if (this.closed) return;
					const full = batches.add(entry);
					if (full) await this.channel.send({ t: "entries", id: m.id, entries: full, done: false });
				}
			}
			await this.channel.send({ t: "entries", id: m.id, entries: batches.rest(), done: true });
		});
	}

	private async stat(m: MessageOf<"stat">): Promise<void> {
		this.check({ op: "stat", path: m.path });
		await this.channel.send({
			t: "stat-ok",
			id: m.id,
			entry: await this.deps.root.stat(m.path, m.follow === true),
		});
	}

	private async walk(m: MessageOf<"walk">): Promise<void> {
		this.check({ op: "walk", path: m.path });
		const batches = new EntryBatches<WalkEntry>();
		const top = m.path.split("/").filter(Boolean).at(-1) ?? "";
		await this.listingTurn(async () => {
			for await (const entry of this.deps.root.walk(m.path, excluder(m.exclude ?? [], top))) {
				if (this.closed) return;
				const full = batches.add(entry);
				if (full) await this.channel.send(walkMessage(m.id, full, false));
			}
			await this.channel.send(walkMessage(m.id, batches.rest(), true));
		});
	}

	/**
	 * Run one listing (list or walk) once fewer than PEER_LIMITS.listingsAtOnce
	 * of this connection's are being built; skipped if the connection closes
	 * while it waits. 128 listings asked at once cost two, not 128 (finding 2).
	 */
	private async listingTurn(build: () => Promise<void>): Promise<void> {
		while (!this.closed && this.listings >= PEER_LIMITS.listingsAtOnce)
			await new Promise<void>((wake) => this.listingWaiters.push(wake));
		if (this.closed) return;
		this.listings++;
		try {
			await build();
		} finally {
			this.listings--;
			this.listingWaiters.shift()?.();
		}
	}

	/** --checksum: the server hashes a file only when asked, and only that file. */
	private async hash(m: MessageOf<"hash">): Promise<void> {
		this.check({ op: "get", path: m.path });
		const file = await this.deps.root.openRead(m.path);
		this.openFiles.add(file.fh);
		try {
			const h = new Bun.CryptoHasher("sha256");
			for await (const chunk of readChunks(file.fh, 0, file.size, true)) h.update(chunk);
			await this.channel.send({ t: "hash-ok", id: m.id, size: file.size, sha256: h.digest("hex") });
		} finally {
			this.openFiles.delete(file.fh);
			await file.fh.close().catch(() => undefined);
		}
	}

	private async mkdir(m: MessageOf<"mkdir">): Promise<void> {
		this.check({ op: "mkdir", path: m.path });
		checkReceivable(m.path, this.platform);
		await this.deps.root.mkdir(m.path, m.parents);
		await this.channel.send({ t: "ok", id: m.id });
		this.deps.onOperation?.({ op: "mkdir", path: m.path });
	}

	private async rm(m: MessageOf<"rm">): Promise<void> {
		this.check({ op: "rm", path: m.path });
		await this.deps.root.remove(m.path, m.recursive);
		await this.channel.send({ t: "ok", id: m.id });
		this.deps.onOperation?.({ op: "rm", path: m.path });
	}

	private enqueueGet(m: MessageOf<"get">): void {
		this.getQueue.push(() => this.get(m));
		this.pumpGets();
	}

	private pumpGets(): void {
		while (this.activeGets < CONCURRENT_GETS && !this.closed) {
			const next = this.getQueue.shift();
			if (!next) return;
			this.activeGets++;
			void next().finally(() => {
				this.activeGets--;
				this.pumpGets();
				this.notifyIfIdle();
				this.deps.onLoad?.();
			});
		}
	}

	private async get(m: MessageOf<"get">): Promise<void> {
		await this.guard(m, async () => {
			this.check({ op: "get", path: m.path });
			const file = await this.deps.root.openRead(m.path);
			this.openFiles.add(file.fh);
			// A small file is read whole; a larger one holds a chunk and the one read ahead.
			const room = Math.min(file.size, 2 * MAX_DATA_PAYLOAD);
			await this.replyRoom(room);
			try {
				const before = snapshot(await file.fh.stat());
				// What the path leads to once the file is read: the same file, or it changed.
				const again = () => this.deps.root.statTarget(m.path);
				const mode = before.mode & 0o7777;
				if (file.size <= MAX_DATA_PAYLOAD && !(m.offset > 0 && m.prefix)) {
					// Small: read and hash it whole, announce the hash up front, no file-end.
					const whole = await readWhole(file.fh, file.size);
					if (await changedWhileRead(file.fh, before, again)) throw changedSource();
					const sha256 = new Bun.CryptoHasher("sha256").update(whole).digest("hex");
					this.awaitingAck.set(m.id, { path: m.path, bytes: file.size, sha256, resumedFrom: 0 });
					checkUnacked(this.awaitingAck.size);
					void this.channel
						.send({
							t: "file",
							id: m.id,
							size: file.size,
							mtime: file.mtime,
							mode,
							offset: 0,
							sha256,
						})
						.catch(() => undefined);
					if (file.size > 0) await this.channel.sendData(m.id, whole);
					return;
				}
				let offset = 0;
				let h = new Bun.CryptoHasher("sha256");
				if (m.offset > 0 && m.offset <= file.size && m.prefix) {
					// Resume only from bytes the client proves it holds: the same prefix hash.
					const prefix = new Bun.CryptoHasher("sha256");
					for await (const c of readChunks(file.fh, 0, m.offset, true)) prefix.update(c);
					if (prefix.copy().digest("hex") === m.prefix) {
						offset = m.offset;
						h = prefix;
					}
				}
				await this.channel.send({
					t: "file",
					id: m.id,
					size: file.size,
					mtime: file.mtime,
					mode,
					offset,
				});
				for await (const chunk of readChunks(file.fh, offset, file.size, true)) {
					if (this.closed) return;
					h.update(chunk);
					await this.channel.sendData(m.id, chunk);
				}
				// Sent but not to be committed: the client discards its part file on this error.
				if (await changedWhileRead(file.fh, before, again)) throw changedSource();
				const sha256 = h.digest("hex");
				this.awaitingAck.set(m.id, { path: m.path, bytes: file.size, sha256, resumedFrom: offset });
				checkUnacked(this.awaitingAck.size);
				await this.channel.send({ t: "file-end", id: m.id, sha256 });
			} finally {
				this.freeRoom(room);
				this.openFiles.delete(file.fh);
				await file.fh.close().catch(() => undefined);
			}
		});
	}

	private ack(id: number): void {
		const done = this.awaitingAck.get(id);
		if (!done) {
			this.channel.fail(new PairlinkError("protocol", "ack for a download that was not sent"));
			return;
		}
		this.awaitingAck.delete(id);
		queueMicrotask(() => this.notifyIfIdle());
		this.deps.onTransfer?.({ op: "get", ...done });
	}

	/**
	 * Registered at once and driven through one promise chain, so a client may
	 * send put-start, data and put-end without waiting for put-ready (small
	 * files: no round trip per file).
	 */
	private put(m: MessageOf<"put">): void {
		if (this.uploads.has(m.id)) {
			this.channel.fail(new PairlinkError("protocol", "request id reused"));
			return;
		}
		if (m.sha256 !== undefined && m.size > MAX_DATA_PAYLOAD) {
			this.channel.fail(new PairlinkError("protocol", "a file sent whole must fit one data frame"));
			return;
		}
		if (!uploadAllowed(this.uploads.size)) {
			// Each open upload holds a part file and a descriptor: refuse, and drop its data.
			this.rememberRefused(m.id);
			this.send({ t: "error", id: m.id, code: "busy" });
			return;
		}
		const overwrite = m.overwrite && this.deps.policy.allowOverwrite;
		const whole = m.sha256 !== undefined;
		const stream = m.stream === true;
		const upload: Upload = {
			path: m.path,
			size: m.size,
			sha256: m.sha256,
			overwrite,
			meta: m.mtime !== undefined ? { mtime: m.mtime, mode: m.mode ?? 0 } : undefined,
			stream,
			part: undefined,
			started: whole,
			resumedFrom: 0,
			chain: Promise.resolve(),
			failed: false,
		};
		this.uploads.set(m.id, upload);
		upload.chain = (async () => {
			this.check({ op: "put", path: m.path, overwrite: m.overwrite });
			checkReceivable(m.path, this.platform);
			// SPEC's quick check, answered in place of put-ready: no round trip of its own.
			if (
				upload.meta &&
				!stream &&
				m.quick !== false &&
				(await this.isUpToDate(m.path, m.size, upload.meta.mtime))
			) {
				this.forgetUpload(m.id, upload);
				this.send({ t: "up-to-date", id: m.id });
				return;
			}
			try {
				upload.part = await Part.open(this.deps.root, m.path, overwrite, {
					records: this.deps.partRecords,
					peer: this.deps.peer.fingerprint,
				});
			} catch (e) {
				if (e instanceof PairlinkError && e.code === "exists") {
					throw new Refusal(overwriteRefusal(this.deps.policy, m.overwrite), e.message);
				}
				throw e;
			}
			if (whole) {
				// Nothing to resume for a file that fits one frame: start clean, commit when it is in.
				await upload.part.startAt(0, m.size);
				if (m.size === 0) await this.finishUpload(m.id, upload, m.sha256 as string);
				return;
			}
			// A part file longer than the announced size cannot be a prefix of it; a stream never resumes.
			const offset = !stream && upload.part.resumable <= m.size ? upload.part.resumable : 0;
			const free = await upload.part.freeBytes();
			if (!stream && m.size - offset > free)
				throw new Refusal(
					"disk-full",
					`${m.size - offset} bytes are needed, ${free} are free`,
					free,
				);
			this.send({
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
	private putAbort(id: number): void {
		const upload = this.uploads.get(id);
		if (!upload) {
			if (!this.refusedUploads.has(id))
				this.channel.fail(new PairlinkError("protocol", "put-abort without an upload"));
			return;
		}
		upload.chain = upload.chain.then(() => this.failUpload(id, upload, changedSource()));
	}

	private putStart(m: MessageOf<"put-start">): void {
		const upload = this.uploads.get(m.id);
		if (!upload || upload.started) {
			if (!this.refusedUploads.has(m.id))
				this.channel.fail(new PairlinkError("protocol", "put-start without put"));
			return;
		}
		upload.started = true;
		upload.resumedFrom = m.offset;
		upload.chain = upload.chain
			.then(() =>
				upload.failed ? undefined : (upload.part as PartFile).startAt(m.offset, upload.size),
			)
			.catch((e) => this.failUpload(m.id, upload, e));
	}

	private putEnd(m: MessageOf<"put-end">): void {
		const upload = this.uploads.get(m.id);
		if (!upload?.started) {
			if (!this.refusedUploads.has(m.id))
				this.channel.fail(new PairlinkError("protocol", "put-end without an upload"));
			this.refusedUploads.delete(m.id);
			return;
		}
		// A stream's length is known only now; anything else was announced in the put.
		if (upload.stream) upload.size = m.size ?? upload.size;
		upload.chain = upload.chain.then(() =>
			upload.failed ? undefined : this.finishUpload(m.id, upload, m.sha256),
		);
	}

	/** Verify, move into place, answer put-ok: the explicit ACK the sender waits for. */
	private async finishUpload(id: number, upload: Upload, expected: string): Promise<void> {
		this.uploads.delete(id);
		queueMicrotask(() => this.notifyIfIdle());
		try {
			const sha256 = await (upload.part as PartFile).commit(
				{ size: upload.size, sha256: expected },
				upload.overwrite,
				upload.meta,
			);
			this.send({ t: "put-ok", id, sha256 });
			this.deps.onTransfer?.({
				op: "put",
				path: upload.path,
				bytes: upload.size,
				sha256,
				resumedFrom: upload.resumedFrom,
			});
		} catch (e) {
			this.refuse(id, e, { op: "put", path: upload.path });
		}
	}

	private async failUpload(id: number, upload: Upload, e: unknown): Promise<void> {
		if (upload.failed) return;
		this.forgetUpload(id, upload);
		this.refuse(id, e, { op: "put", path: upload.path });
		// Bad data is not worth resuming from; a full disk or a broken pipe is.
		if (
			e instanceof PairlinkError &&
			e.code !== "integrity" &&
			!(e instanceof Refusal) &&
			resumable(upload)
		)
			await upload.part?.keep();
		else await upload.part?.discard();
	}

	/** Answered without being written: the frames still on their way for it are dropped. */
	private forgetUpload(id: number, upload: Upload): void {
		upload.failed = true;
		this.uploads.delete(id);
		this.rememberRefused(id);
	}

	// ---- plumbing

	private get platform(): string {
		return this.deps.platform ?? process.platform;
	}

	private check(op: Parameters<typeof allowed>[2]): void {
		const refusal = allowed(this.deps.policy, this.deps.peer, op);
		if (refusal) throw new Refusal(refusal, `${op.op} refused by the server's policy`);
	}

	/**
	 * Download bytes read from disk and not yet taken by the socket are
	 * capped per connection (PEER_LIMITS.queuedReplyBytes): a download waits
	 * for room before it reads anything, so a peer that never reads its
	 * replies pins at most the cap, however many downloads it asked for.
	 */
	private async replyRoom(bytes: number): Promise<void> {
		while (
			!this.closed &&
			this.unsentData > 0 &&
			this.unsentData + bytes > PEER_LIMITS.queuedReplyBytes
		) {
			await new Promise<void>((wake) => this.roomWaiters.push(wake));
		}
		this.unsentData += bytes;
	}

	private freeRoom(bytes: number): void {
		this.unsentData -= bytes;
		for (const wake of this.roomWaiters.splice(0)) wake();
	}

	private rememberRefused(id: number): void {
		if (this.refusedUploads.size >= MAX_REMEMBERED_REFUSALS) this.refusedUploads.clear();
		this.refusedUploads.add(id);
	}

	private run(m: Request, handler: () => Promise<void>): void {
		this.running++;
		void this.guard(m, handler).finally(() => {
			this.running--;
			this.deps.onLoad?.();
		});
	}

	private async guard(m: Request, handler: () => Promise<void>): Promise<void> {
		try {
			await handler();
		} catch (e) {
			this.refuse(m.id, e, { op: m.t, path: m.path });
		}
	}

	private refuse(id: number, e: unknown, what: Omit<OperationEvent, "refused">): void {
		if (this.closed) return;
		const error = e instanceof PairlinkError ? e : fsError(e, "the file");
		if (error.code === "protocol") {
			this.channel.fail(error);
			return;
		}
		const code = error instanceof Refusal ? error.wire : wireCodeFor(error);
		const free = error instanceof Refusal && error.free !== undefined ? { free: error.free } : {};
		this.send({ t: "error", id, code, ...free });
		this.deps.onOperation?.({ ...what, refused: code });
	}

	private send(message: Message): void {
		void this.channel.send(message).catch(() => undefined);
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

/**
 * One walk message: files the wire rules let through as entries, the others
 * as refusals the client reports per file (their names only for people).
 */
function walkMessage(id: number, batch: WalkEntry[], done: boolean): Message {
	const entries: WalkEntry[] = [];
	const refused: { path: string; code: "invalid-path"; why: string }[] = [];
	for (const { refused: why, ...entry } of batch) {
		if (why === undefined) entries.push(entry);
		else refused.push({ path: entry.path.slice(0, 4000), code: "invalid-path", why });
	}
	return { t: "walk-entries", id, entries, ...(refused.length > 0 ? { refused } : {}), done };
}
