/**
 * The client's side of an established session: requests out with ids,
 * answers and data frames routed back to the operation waiting for them.
 * Every name a server sends back is checked by the same rules the server
 * applies to ours, and every download lands through a verified part file
 * (uploads are in client-uploads.ts).
 */
import { PairlinkError } from "../errors.ts";
import type { FileMeta } from "../fs/metadata.ts";
import { PartFile, type PartOwner } from "../fs/part-file.ts";
import { type Entry, fsError, type SandboxRoot, type WalkEntry } from "../fs/root.ts";
import { parseWirePath } from "../fs/safe-path.ts";
import type { Channel } from "../protocol/channel.ts";
import type { Message, MessageOf } from "../protocol/messages.ts";
import { errorFromWire } from "../protocol/wire-errors.ts";
import { type UploadLink, uploadFile, uploadStream } from "./client-uploads.ts";
import { checkListingProgress, type ListingBudget, takeListing } from "./peer-limits.ts";

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

/** Where one download's bytes go (a part file, or standard output), for `receive`. */
interface Receiver {
	/** The server's `file` message: a refusal, or a step to take before the first write. */
	start(m: MessageOf<"file">): PairlinkError | (() => Promise<void>) | undefined;
	write(parts: Uint8Array[]): Promise<void>;
	/** Every byte is in: verify against `expected` and keep it. */
	finish(expected: string): Promise<TransferResult>;
	/** A failure of the sink, told as the user needs it. */
	error(e: unknown): PairlinkError;
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
		private readonly now: () => number = () => performance.now(),
	) {}

	get closed(): boolean {
		return this.closedWith !== undefined;
	}

	/** Round trip through the server; resolves with the time it took in ms. */
	ping(): Promise<number> {
		if (this.closedWith) return Promise.reject(this.closedWith);
		const nonce = String(this.nextId++);
		const started = this.now();
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
		return this.request<Entry[]>(
			(id) => ({ t: "list", id, path }),
			(m, resolve) => {
				if (m.t !== "entries") return false;
				checkListingProgress(m.entries.length, m.done);
				budget = takeListing(budget, m.entries);
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
	 * Download `remotePath` into `dest` (a path inside the `local` root). A part
	 * file left by an interrupted attempt is offered for resume; nothing
	 * appears at the final name unless size and SHA-256 match. The file gets
	 * the server's mtime and executable bits.
	 */
	async download(
		remotePath: string,
		local: SandboxRoot,
		dest: string,
		opts: TransferOptions,
	): Promise<TransferResult> {
		parseWirePath(remotePath);
		const part = await PartFile.open(local, dest, opts.overwrite, this.partOwner);
		let size = 0;
		/** Where the server chose to start: our offer, or 0 if it did not accept the prefix. */
		let resumedFrom = 0;
		let meta: FileMeta | undefined;
		/** The server's header was accepted: whatever arrives from here on is this attempt's. */
		let accepted = false;
		try {
			return await this.receive(
				(id) => ({
					t: "get",
					id,
					path: remotePath,
					offset: part.resumable,
					...(part.prefixSha256 ? { prefix: part.prefixSha256 } : {}),
				}),
				{
					start: (m) => {
						if (m.offset !== 0 && m.offset !== part.resumable)
							return new PairlinkError(
								"protocol",
								"the server resumed at an offset this device did not offer",
							);
						if (opts.size !== undefined && m.size !== opts.size)
							return new PairlinkError(
								"protocol",
								`the server announced ${m.size} bytes for a file it listed with ${opts.size}`,
							);
						accepted = true;
						size = m.size;
						resumedFrom = m.offset;
						meta = { mtime: m.mtime, mode: m.mode ?? 0 };
						opts.onProgress?.(m.offset, size);
						return async () => {
							// Checked against the size announced here, before a byte is written.
							const free = await part.freeBytes();
							if (m.size - m.offset > free)
								throw new PairlinkError("disk-full", `This device has no space left for ${dest}`);
							await part.startAt(m.offset, m.size);
						};
					},
					write: async (parts) => {
						await part.write(parts);
						opts.onProgress?.(part.received, size);
					},
					finish: async (expected) => {
						const sha256 = await part.commit({ size, sha256: expected }, opts.overwrite, meta);
						return { bytes: size, sha256, resumedFrom };
					},
					error: (e) => (e instanceof PairlinkError ? e : fsError(e, dest)),
				},
			);
		} catch (e) {
			const error = e instanceof PairlinkError ? e : fsError(e, dest);
			// Known-bad data (or a source that changed under it, or data that came with a
			// protocol violation) is not kept; anything else stays resumable. A violation
			// before the header was accepted leaves our own earlier prefix as it was.
			if (
				error.code === "integrity" ||
				error.code === "changed" ||
				(error.code === "protocol" && accepted) ||
				part.received === 0
			)
				await part.discard();
			else await part.keep();
			throw error;
		}
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

	/**
	 * Download `remotePath` into `sink` (standard output) as it arrives,
	 * hashed on the way: bytes already written cannot be taken back, so a
	 * mismatch at the end fails with the output said to be incomplete.
	 * A failure carries `written`, the bytes that reached the sink.
	 */
	async downloadTo(
		remotePath: string,
		sink: (chunk: Uint8Array) => Promise<void>,
		opts: Pick<TransferOptions, "onProgress">,
	): Promise<TransferResult> {
		parseWirePath(remotePath);
		const hasher = new Bun.CryptoHasher("sha256");
		let size = 0;
		let written = 0;
		try {
			return await this.receive((id) => ({ t: "get", id, path: remotePath, offset: 0 }), {
				start: (m) => {
					size = m.size;
					return m.offset === 0
						? undefined
						: new PairlinkError("protocol", "the server resumed a download nobody offered");
				},
				write: async (parts) => {
					const chunk = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
					hasher.update(chunk);
					await sink(chunk);
					written += chunk.length;
					opts.onProgress?.(written, size);
				},
				finish: async (expected) => {
					const sha256 = hasher.digest("hex");
					if (sha256 !== expected)
						throw new PairlinkError("integrity", "the data did not match the server's SHA-256");
					return { bytes: size, sha256, resumedFrom: 0 };
				},
				error: (e) =>
					e instanceof PairlinkError
						? e
						: new PairlinkError(
								"stream-broken",
								`the output could not be written (${(e as Error)?.message ?? String(e)})`,
							),
			});
		} catch (e) {
			const error = e instanceof PairlinkError ? e : new PairlinkError("internal", String(e));
			throw Object.assign(error, { written });
		}
	}

	/**
	 * One download's answers, whatever receives the bytes: the `file`
	 * announcement, data frames in order (never more than announced: a server
	 * that sends more is lying and is stopped at once), then the hash —
	 * after file-end, or once the bytes of a file sent whole are in. Every
	 * write goes through one chain; the result is acknowledged once kept.
	 */
	private async receive(build: (id: number) => Message, r: Receiver): Promise<TransferResult> {
		let size = 0;
		/** Bytes announced so far by the offset plus data frames, before they reach the sink. */
		let incoming = 0;
		/** The file's hash when the server sent it whole (no file-end follows). */
		let wholeSha: string | undefined;
		let announced = false;
		let chain = Promise.resolve();
		let failure: PairlinkError | undefined;
		let settle: { resolve(v: TransferResult): void; reject(e: PairlinkError): void } | undefined;
		const finish = (expected: string, id: number) => {
			chain = chain.then(async () => {
				if (failure) return settle?.reject(failure);
				try {
					const result = await r.finish(expected);
					void this.channel.send({ t: "ack", id }).catch(() => undefined);
					settle?.resolve(result);
				} catch (e) {
					settle?.reject(r.error(e));
				}
			});
		};
		try {
			return await this.request<TransferResult>(
				build,
				(m, resolve, reject, id) => {
					settle = { resolve, reject };
					if (m.t === "file") {
						// One header per download: a second one would reset the size every data frame is held to.
						if (announced) {
							reject(new PairlinkError("protocol", "the server announced the same file twice"));
							return true;
						}
						announced = true;
						const started = r.start(m);
						if (started instanceof PairlinkError) {
							reject(started);
							return true;
						}
						size = m.size;
						incoming = m.offset;
						wholeSha = m.sha256;
						// A failed start (no space for the announced size) ends the download at
						// once: waiting for data or file-end would let the server hold it open.
						if (started)
							chain = chain.then(started).catch((e) => {
								failure ??= r.error(e);
								reject(failure);
							});
						// Sent whole with its hash up front: done once its bytes are in (at once if empty).
						if (wholeSha !== undefined && size === 0) finish(wholeSha, id);
						return true;
					}
					if (m.t === "file-end") {
						finish(m.sha256, id);
						return true;
					}
					return false;
				},
				(parts, length, reject, id) => {
					incoming += length;
					if (incoming > size) {
						failure ??= new PairlinkError(
							"integrity",
							"the server sent more data than it announced",
						);
						reject(failure);
						return;
					}
					this.hold(length);
					chain = chain
						.then(async () => {
							if (!failure) await r.write(parts);
						})
						.catch((e) => {
							failure ??= r.error(e);
							reject(failure);
						})
						.finally(() => this.release(length));
					if (wholeSha !== undefined && incoming === size) finish(wholeSha, id);
				},
			);
		} catch (e) {
			// Nothing may still be writing when the caller discards or keeps what arrived.
			await chain.catch(() => undefined);
			throw e;
		}
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
			done.resolve(this.now());
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

	/** What uploads (client-uploads.ts) use of this session. */
	private get link(): UploadLink {
		return {
			channel: this.channel,
			request: (build, onAnswer) => this.request(build, onAnswer),
		};
	}

	private request<T>(
		build: (id: number) => Message,
		onAnswer: (
			m: Message,
			resolve: (v: T) => void,
			reject: (e: PairlinkError) => void,
			id: number,
		) => boolean,
		onData?: (
			parts: Uint8Array[],
			length: number,
			reject: (e: PairlinkError) => void,
			id: number,
		) => void,
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
