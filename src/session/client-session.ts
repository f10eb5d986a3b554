/**
 * The client's side of an established session: requests out with ids,
 * answers and data frames routed back to the operation waiting for them.
 * Every name a server sends back is checked by the same rules the server
 * applies to ours, and every download lands through a verified part file
 * (uploads are in client-uploads.ts).
 */

import { type Clock, systemClock } from "../clock.ts";
import { PairlinkError } from "../errors.ts";
import type { PartOwner } from "../fs/part-file.ts";
import type { Entry, SandboxRoot, WalkEntry } from "../fs/root.ts";
import { parseWirePath } from "../fs/safe-path.ts";
import type { Channel } from "../protocol/channel.ts";
import type { Message, MessageOf } from "../protocol/messages.ts";
import { errorFromWire } from "../protocol/wire-errors.ts";
import {
	type DownloadLink,
	downloadFile,
	downloadTo,
	type OnAnswer,
	type OnData,
} from "./client-downloads.ts";
import { type UploadLink, uploadFile, uploadStream } from "./client-uploads.ts";
import {
	checkListingPace,
	checkListingProgress,
	type ListingBudget,
	takeListing,
} from "./peer-limits.ts";

export interface TransferResult {
	bytes: number;
	/** Empty when the file was not moved and not hashed (up to date by size and time). */
	sha256: string;
	/** Bytes of verified partial data that were not sent again. */
	resumedFrom: number;
	/** Set when the file was not moved because the destination already had it. */
	skipped?: "up-to-date";
}

export interface TransferOptions {
	overwrite: boolean;
	/** The caller compared by SHA-256 already: the server must not skip by size and mtime. */
	checksum?: boolean;
	/** Called with the bytes of this file done so far (including resumed ones). */
	onProgress?(done: number, total: number): void;
	/**
	 * Downloads: the size the server gave for this file (stat or walk). A
	 * `file` header with another size is a protocol error and nothing is
	 * kept: a server cannot say "10 bytes" to pass the free-space check and
	 * then send 400 MiB (attack 1, finding 5).
	 */
	size?: number;
}

/**
 * The server sent a name the wire rules forbid: it misbehaves, so the
 * transfer that asked stops at once (SPEC), rather than failing one file.
 */
export class PeerNameError extends PairlinkError {
	constructor(message: string) {
		super("invalid-path", message);
	}
}

/** A path the server sent, checked by the wire rules; PeerNameError when it breaks them. */
function peerPath(path: string): string[] {
	try {
		return parseWirePath(path);
	} catch (e) {
		throw new PeerNameError((e as Error).message);
	}
}

/** A remote directory's tree, as walk() returns it. */
export interface Walk {
	entries: WalkEntry[];
	/** Files the server could not send, with its wire code and why (`path` for people only). */
	refused: MessageOf<"walk-entries">["refused"] & {};
}

/** One request in flight: the answers and data frames that carry its id. */
interface Exchange {
	/** The path the request is about, quoted for people: refusals name it. */
	about: string | undefined;
	onMessage(message: Message): void;
	onData?(parts: Uint8Array[], length: number): void;
	fail(error: PairlinkError): void;
}

/** Download bytes buffered ahead of the disk before the socket is paused. */
const PAUSE_ABOVE = 16 * 1024 * 1024;
const RESUME_BELOW = 4 * 1024 * 1024;

export class ClientSession {
	private readonly exchanges = new Map<number, Exchange>();
	private readonly pings = new Map<
		string,
		{ resolve(endedAt: number): void; reject(e: PairlinkError): void }
	>();
	private closedWith: PairlinkError | undefined;
	private nextId = 1;
	private buffered = 0;
	private paused = false;
	/** Whose part files downloads create: the server's fingerprint and where they are recorded. */
	partOwner: Partial<PartOwner> = {};

	constructor(
		private readonly channel: Channel,
		private readonly clock: Pick<Clock, "now"> = systemClock,
	) {}

	get closed(): boolean {
		return this.closedWith !== undefined;
	}

	/** Round trip through the server; resolves with the time it took in ms. */
	ping(): Promise<number> {
		if (this.closedWith) return Promise.reject(this.closedWith);
		const nonce = String(this.nextId++);
		const started = this.clock.now();
		return new Promise<number>((resolve, reject) => {
			this.pings.set(nonce, { resolve: (end) => resolve(end - started), reject });
			this.channel.send({ t: "ping", nonce }).catch(reject);
		});
	}

	/** Names are for display only here (escaped by whoever prints them); walk() checks the ones used as paths. */
	list(path: string): Promise<Entry[]> {
		const refused = checkPath(path);
		if (refused) return refused;
		const entries: Entry[] = [];
		let budget: ListingBudget = { entries: 0, bytes: 0 };
		const started = this.clock.now();
		return this.request<Entry[]>(
			(id) => ({ t: "list", id, path }),
			(m, resolve) => {
				if (m.t !== "entries") return false;
				checkListingProgress(m.entries.length, m.done);
				budget = takeListing(budget, m.entries);
				checkListingPace(this.clock.now() - started, budget.entries, m.done);
				entries.push(...m.entries);
				if (m.done) resolve(entries);
				return true;
			},
		);
	}

	/** `follow`: describe a final symlink by its target, when that stays inside the share. */
	stat(path: string, follow = false): Promise<Entry> {
		const refused = checkPath(path);
		if (refused) return refused;
		return this.request<Entry>(
			(id) => ({ t: "stat", id, path, ...(follow ? { follow } : {}) }),
			(m, resolve) => {
				if (m.t !== "stat-ok") return false;
				resolve(m.entry);
				return true;
			},
		);
	}

	/**
	 * Everything below a remote directory, and the files the server reported
	 * it cannot send. Every path is checked before anyone uses it: one that
	 * breaks the wire rules fails the whole walk (the server misbehaves).
	 */
	walk(path: string, exclude: readonly string[] = []): Promise<Walk> {
		const refused = checkPath(path);
		if (refused) return refused;
		const walk: Walk = { entries: [], refused: [] };
		let budget: ListingBudget = { entries: 0, bytes: 0 };
		const started = this.clock.now();
		return this.request<Walk>(
			(id) => ({ t: "walk", id, path, ...(exclude.length > 0 ? { exclude: [...exclude] } : {}) }),
			(m, resolve) => {
				if (m.t !== "walk-entries") return false;
				const refusals = m.refused ?? [];
				checkListingProgress(m.entries.length + refusals.length, m.done);
				// Refusals are entries too: an endless list of them must hit the same cap.
				budget = takeListing(budget, m.entries);
				budget = takeListing(
					budget,
					refusals.map((r) => ({ name: r.why, path: r.path })),
				);
				checkListingPace(this.clock.now() - started, budget.entries, m.done);
				for (const e of m.entries) {
					if (peerPath(e.path).at(-1) !== e.name)
						throw new PeerNameError(
							`Refused path ${JSON.stringify(e.path)}: the server named it ${JSON.stringify(e.name)}`,
						);
					walk.entries.push(e);
				}
				walk.refused.push(...refusals);
				if (m.done) resolve(walk);
				return true;
			},
		);
	}

	/** SHA-256 of a remote file, hashed by the server on request (--checksum). */
	hash(path: string): Promise<{ size: number; sha256: string }> {
		const refused = checkPath(path);
		if (refused) return refused;
		return this.request(
			(id) => ({ t: "hash", id, path }),
			(m, resolve) => {
				if (m.t !== "hash-ok") return false;
				resolve({ size: m.size, sha256: m.sha256 });
				return true;
			},
		);
	}

	mkdir(path: string, parents = false): Promise<void> {
		const refused = checkPath(path);
		if (refused) return refused;
		return this.request<void>((id) => ({ t: "mkdir", id, path, parents }), okOnly);
	}

	rm(path: string, recursive: boolean): Promise<void> {
		const refused = checkPath(path);
		if (refused) return refused;
		return this.request<void>((id) => ({ t: "rm", id, path, recursive }), okOnly);
	}

	/**
	 * Download `remotePath` into `dest` (a path inside the `local` root);
	 * resumable, committed only when size and SHA-256 match (client-downloads.ts).
	 */
	download(
		remotePath: string,
		local: SandboxRoot,
		dest: string,
		opts: TransferOptions,
	): Promise<TransferResult> {
		return downloadFile(this.downloadLink, remotePath, local, dest, opts);
	}

	/** Download `remotePath` into `sink` (standard output) as it arrives (client-downloads.ts). */
	downloadTo(
		remotePath: string,
		sink: (chunk: Uint8Array) => Promise<void>,
		opts: Pick<TransferOptions, "onProgress">,
	): Promise<TransferResult> {
		return downloadTo(this.downloadLink, remotePath, sink, opts);
	}

	/** Upload a local file (client-uploads.ts): up to date, resumed, or sent whole. */
	upload(localPath: string, remotePath: string, opts: TransferOptions): Promise<TransferResult> {
		return uploadFile(this.link, localPath, remotePath, opts);
	}

	/** Standard input into `remotePath` (client-uploads.ts). */
	uploadStream(
		source: AsyncIterable<Uint8Array>,
		remotePath: string,
		opts: TransferOptions,
	): Promise<TransferResult> {
		return uploadStream(this.link, source, remotePath, opts);
	}

	onMessage(message: Message): void {
		if (message.t === "pong") {
			const done = this.pings.get(message.nonce);
			if (!done) {
				this.channel.fail(
					new PairlinkError("protocol", "the server answered a ping that was never sent"),
				);
				return;
			}
			this.pings.delete(message.nonce);
			done.resolve(this.clock.now());
			return;
		}
		if (message.t === "error" && message.id === undefined) {
			const e = errorFromWire(message.code);
			this.channel.fail(e);
			this.onClose(e);
			return;
		}
		const id = "id" in message ? message.id : undefined;
		const exchange = id === undefined ? undefined : this.exchanges.get(id);
		if (!exchange) {
			this.channel.fail(
				new PairlinkError("protocol", `the server sent "${message.t}" for no request in flight`),
			);
			return;
		}
		if (message.t === "error") {
			exchange.fail(errorFromWire(message.code, exchange.about, message.free));
			return;
		}
		exchange.onMessage(message);
	}

	onData(stream: number, parts: Uint8Array[], length: number): void {
		const exchange = this.exchanges.get(stream);
		if (!exchange?.onData) {
			this.channel.fail(
				new PairlinkError("protocol", "the server sent data for no download in flight"),
			);
			return;
		}
		exchange.onData(parts, length);
	}

	/** Every waiting caller learns why the connection ended. */
	onClose(error: PairlinkError | undefined): void {
		if (this.closedWith) return;
		this.closedWith = error ?? new PairlinkError("interrupted", "the server closed the connection");
		for (const exchange of [...this.exchanges.values()]) exchange.fail(this.closedWith);
		for (const ping of this.pings.values()) ping.reject(this.closedWith);
		this.exchanges.clear();
		this.pings.clear();
	}

	// ---- plumbing

	/** What downloads (client-downloads.ts) use of this session. */
	private get downloadLink(): DownloadLink {
		return {
			channel: this.channel,
			partOwner: this.partOwner,
			request: (build, onAnswer, onData) => this.request(build, onAnswer, onData),
			hold: (n) => this.hold(n),
			release: (n) => this.release(n),
		};
	}

	/** What uploads (client-uploads.ts) use of this session. */
	private get link(): UploadLink {
		return {
			channel: this.channel,
			request: (build, onAnswer) => this.request(build, onAnswer),
		};
	}

	private request<T>(
		build: (id: number) => Message,
		onAnswer: OnAnswer<T>,
		onData?: OnData,
	): Promise<T> {
		if (this.closedWith) return Promise.reject(this.closedWith);
		const id = this.nextId++;
		const first = build(id);
		return this.exchange<T>(
			id,
			(resolve, reject) => ({
				about: "path" in first ? JSON.stringify(first.path || "/") : undefined,
				onMessage: (m) => {
					try {
						if (!onAnswer(m, resolve, reject, id)) {
							reject(new PairlinkError("protocol", `unexpected "${m.t}" answer from the server`));
						}
					} catch (e) {
						// A refused name from the server fails this request, not the process.
						reject(e instanceof PairlinkError ? e : new PairlinkError("protocol", String(e)));
					}
				},
				...(onData ? { onData: (p: Uint8Array[], n: number) => onData(p, n, reject, id) } : {}),
				fail: reject,
			}),
			first,
		);
	}

	private exchange<T>(
		id: number,
		make: (resolve: (v: T) => void, reject: (e: PairlinkError) => void) => Exchange,
		first: Message,
	): Promise<T> {
		return new Promise<T>((resolve, reject) => {
			const done = () => this.exchanges.delete(id);
			const exchange = make(
				(v) => {
					done();
					resolve(v);
				},
				(e) => {
					done();
					reject(e);
				},
			);
			this.exchanges.set(id, exchange);
			this.channel
				.send(first)
				.catch((e) =>
					exchange.fail(
						e instanceof PairlinkError ? e : new PairlinkError("interrupted", String(e)),
					),
				);
		});
	}

	private hold(n: number): void {
		this.buffered += n;
		if (!this.paused && this.buffered > PAUSE_ABOVE) {
			this.paused = true;
			this.channel.pause();
		}
	}

	private release(n: number): void {
		this.buffered -= n;
		if (this.paused && this.buffered < RESUME_BELOW) {
			this.paused = false;
			this.channel.resume();
		}
	}
}

function okOnly(m: Message, resolve: (v: undefined) => void): boolean {
	if (m.t !== "ok") return false;
	resolve(undefined);
	return true;
}

/**
 * The server would refuse a path that breaks the wire rules, or drop the
 * connection for one longer than a message may carry: refuse it here, with
 * the same error, before anything is sent.
 */
function checkPath(path: string): Promise<never> | undefined {
	try {
		parseWirePath(path);
		return undefined;
	} catch (e) {
		return Promise.reject(e);
	}
}
