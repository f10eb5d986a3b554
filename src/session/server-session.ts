/**
 * What a trusted client may ask once the handshake is over: list, stat,
 * walk, get, put, mkdir, rm. Every path goes through the sandbox root and
 * the policy; every refusal goes back as a small wire code with the
 * request's id. The transport never sees what the frames mean.
 */

import { PairlinkError } from "../errors.ts";
import { excluder } from "../fs/exclude.ts";
import { newHasher, sha256Hex } from "../fs/hasher.ts";
import { changedWhileRead, snapshot } from "../fs/metadata.ts";
import { readChunks, readWhole } from "../fs/part-file.ts";
import { type Entry, fsError, type SandboxRoot, type WalkEntry } from "../fs/root.ts";
import { checkReceivable } from "../fs/safe-path.ts";
import type { Channel, PeerInfo } from "../protocol/channel.ts";
import { MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD, PEER_LIMITS } from "../protocol/limits.ts";
import { MAX_ENTRIES_PER_MESSAGE, type Message, type MessageOf } from "../protocol/messages.ts";
import type { WireErrorCode } from "../protocol/wire-errors.ts";
import type { PartRecordStore } from "../store/part-records.ts";
import { type ConnectionLoad, checkUnacked } from "./peer-limits.ts";
import { allowed, refusal, type ServePolicy } from "./policy.ts";
import { ServerUploads } from "./server-uploads.ts";

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

/** A file opened beneath the root for reading (root.ts): closed when the connection ends. */
type ReadHandle = Awaited<ReturnType<SandboxRoot["openRead"]>>["fh"];

type Request = MessageOf<"list" | "stat" | "walk" | "hash" | "mkdir" | "rm" | "get">;

/** The source changed while it was read: what arrived is not committed. */
const changedSource = () =>
	refusal("changed", "the file changed while it was being sent; nothing was committed");

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
	private readonly awaitingAck = new Map<number, Download>();
	private readonly getQueue: (() => Promise<void>)[] = [];
	private activeGets = 0;
	/** Requests other than downloads being worked on. */
	private running = 0;
	/** Download bytes being read and sent (see replyRoom), and who waits for room. */
	private unsentData = 0;
	private readonly roomWaiters: (() => void)[] = [];
	/** Listings being built (PEER_LIMITS.listingsAtOnce), and the ones waiting their turn. */
	private listings = 0;
	private readonly listingWaiters: (() => void)[] = [];
	private closed = false;
	private readonly openFiles = new Set<ReadHandle>();

	private readonly uploads: ServerUploads;

	constructor(
		private readonly channel: Channel,
		private readonly deps: ServerSessionDeps,
	) {
		this.uploads = new ServerUploads(channel, deps, {
			check: (op) => this.check(op),
			refuse: (id, e, what) => this.refuse(id, e, what),
			send: (m) => this.send(m),
			notifyIfIdle: () => this.notifyIfIdle(),
			platform: () => this.platform,
		});
	}

	/** A transfer is in flight: a stopping server waits for it a little. */
	get busy(): boolean {
		// A download counts until the client acknowledged it: closing earlier could
		// cut its commit short on the client's side.
		return (
			this.uploads.open > 0 ||
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
				this.uploads.put(message);
				return;
			case "put-start":
				this.uploads.putStart(message);
				return;
			case "put-end":
				this.uploads.putEnd(message);
				return;
			case "put-abort":
				this.uploads.putAbort(message.id);
				return;
			default:
				this.channel.fail(
					new PairlinkError("protocol", `unexpected "${message.t}" message from the client`),
				);
		}
	}

	onData(stream: number, parts: Uint8Array[], length: number): void {
		if (this.closed) return;
		this.uploads.onData(stream, parts, length);
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
		cut.push(...(await this.uploads.onClose()));
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
			const h = newHasher();
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
					const sha256 = sha256Hex(whole);
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
				let h = newHasher();
				if (m.offset > 0 && m.offset <= file.size && m.prefix) {
					// Resume only from bytes the client proves it holds: the same prefix hash.
					const prefix = newHasher();
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

	// ---- plumbing

	private get platform(): string {
		return this.deps.platform ?? process.platform;
	}

	private check(op: Parameters<typeof allowed>[2]): void {
		const denied = allowed(this.deps.policy, this.deps.peer, op);
		if (denied) throw refusal(denied, `${op.op} refused by the server's policy`);
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
		const code = error.wire;
		const free =
			error.refusedAs !== undefined && error.free !== undefined ? { free: error.free } : {};
		this.send({ t: "error", id, code, ...free });
		this.deps.onOperation?.({ ...what, refused: code });
	}

	private send(message: Message): void {
		void this.channel.send(message).catch(() => undefined);
	}
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
