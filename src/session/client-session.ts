/**
 * The client's side of an established session: requests out with ids,
 * answers and data frames routed back to the operation waiting for them.
 * Every name a server sends back is checked by the same rules the server
 * applies to ours, and every download lands through a verified part file.
 */
import { open } from "node:fs/promises";
import { PairlinkError } from "../errors.ts";
import { PartFile, type PartOwner, readChunks } from "../fs/part-file.ts";
import { type Entry, fsError, type SandboxRoot, type WalkEntry } from "../fs/root.ts";
import { parseWirePath } from "../fs/safe-path.ts";
import { readPath } from "../fs/small-io.ts";
import type { Channel } from "../protocol/channel.ts";
import { MAX_DATA_PAYLOAD } from "../protocol/limits.ts";
import type { Message, MessageOf } from "../protocol/messages.ts";
import { errorFromWire } from "../protocol/wire-errors.ts";
import { type ListingBudget, takeListing } from "./peer-limits.ts";

export interface TransferResult {
	bytes: number;
	sha256: string;
	/** Bytes of verified partial data that were not sent again. */
	resumedFrom: number;
}

export interface TransferOptions {
	overwrite: boolean;
	/** Called with the bytes of this file done so far (including resumed ones). */
	onProgress?(done: number, total: number): void;
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
				budget = takeListing(budget, m.entries);
				entries.push(...m.entries);
				if (m.done) resolve(entries);
				return true;
			},
		);
	}

	stat(path: string): Promise<Entry> {
		const refused = checkPath(path);
		if (refused) return refused;
		return this.request<Entry>(
			(id) => ({ t: "stat", id, path }),
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
	walk(path: string): Promise<Walk> {
		const refused = checkPath(path);
		if (refused) return refused;
		const walk: Walk = { entries: [], refused: [] };
		let budget: ListingBudget = { entries: 0, bytes: 0 };
		return this.request<Walk>(
			(id) => ({ t: "walk", id, path }),
			(m, resolve) => {
				if (m.t !== "walk-entries") return false;
				const refusals = m.refused ?? [];
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
	 * appears at the final name unless size and SHA-256 match.
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
		let announced = false;
		/** Where the server chose to start: our offer, or 0 if it did not accept the prefix. */
		let resumedFrom = 0;
		/** Bytes announced so far by the offset plus data frames, before they reach the disk. */
		let incoming = 0;
		let chain = Promise.resolve();
		let failure: PairlinkError | undefined;
		const fail = (e: unknown) => {
			failure ??= e instanceof PairlinkError ? e : fsError(e, dest);
		};
		/** The file's hash when the server sent it whole (no file-end follows). */
		let wholeSha: string | undefined;
		let resolveResult: (r: TransferResult) => void = () => undefined;
		let rejectResult: (e: PairlinkError) => void = () => undefined;
		/** After every byte is written: verify, move into place, acknowledge. */
		const finish = (expected: string, id: number) => {
			chain = chain.then(async () => {
				if (failure) return rejectResult(failure);
				try {
					const sha256 = await part.commit({ size, sha256: expected }, opts.overwrite);
					void this.channel.send({ t: "ack", id }).catch(() => undefined);
					resolveResult({ bytes: size, sha256, resumedFrom });
				} catch (e) {
					rejectResult(e instanceof PairlinkError ? e : fsError(e, dest));
				}
			});
		};
		try {
			const result = await this.request<TransferResult>(
				(id) => ({
					t: "get",
					id,
					path: remotePath,
					offset: part.resumable,
					...(part.prefixSha256 ? { prefix: part.prefixSha256 } : {}),
				}),
				(m, resolve, reject, id) => {
					resolveResult = resolve;
					rejectResult = reject;
					if (m.t === "file") {
						// One header per download: a second one would reset the size every data frame is held to.
						if (announced) {
							reject(new PairlinkError("protocol", "the server announced the same file twice"));
							return true;
						}
						announced = true;
						size = m.size;
						const start = m.offset;
						if (start !== 0 && start !== part.resumable) {
							reject(
								new PairlinkError(
									"protocol",
									"the server resumed at an offset this device did not offer",
								),
							);
							return true;
						}
						incoming = start;
						resumedFrom = start;
						wholeSha = m.sha256;
						chain = chain.then(() => part.startAt(start, m.size)).catch(fail);
						opts.onProgress?.(start, size);
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
					// A server that sends more than it announced (or data before "file") is lying: stop at once.
					incoming += length;
					if (incoming > size) {
						fail(new PairlinkError("integrity", "the server sent more data than it announced"));
						reject(failure as PairlinkError);
						return;
					}
					this.hold(length);
					chain = chain
						.then(async () => {
							if (failure) return;
							await part.write(parts);
							opts.onProgress?.(part.received, size);
						})
						.catch((e) => {
							fail(e);
							reject(failure as PairlinkError);
						})
						.finally(() => this.release(length));
					if (wholeSha !== undefined && incoming === size) finish(wholeSha, id);
				},
			);
			return result;
		} catch (e) {
			await chain.catch(() => undefined);
			const error = e instanceof PairlinkError ? e : fsError(e, dest);
			// Known-bad data is not kept; anything else stays resumable.
			if (error.code === "integrity" || part.received === 0) await part.discard();
			else await part.keep();
			throw error;
		}
	}

	/** Upload a local file; resumes from a verified part file the server kept. */
	async upload(
		localPath: string,
		remotePath: string,
		opts: TransferOptions,
	): Promise<TransferResult> {
		parseWirePath(remotePath);
		// Small files (most of a tree) are read in one native call: open, read and close.
		const small = await readIfSmall(localPath);
		if (small) return this.uploadWhole(small, remotePath, opts);
		let fh: Awaited<ReturnType<typeof open>>;
		try {
			fh = await open(localPath, "r");
		} catch (e) {
			throw fsError(e, JSON.stringify(localPath));
		}
		try {
			const { size } = await fh.stat();
			let aborted: PairlinkError | undefined;
			let ready: (r: MessageOf<"put-ready">) => void = () => undefined;
			const readyP = new Promise<MessageOf<"put-ready">>((r) => {
				ready = r;
			});
			let id = 0;
			const result = this.request<TransferResult>(
				(n) => {
					id = n;
					return { t: "put", id: n, path: remotePath, size, overwrite: opts.overwrite };
				},
				(m, resolve) => {
					if (m.t === "put-ready") {
						ready(m);
						return true;
					}
					if (m.t === "put-ok") {
						resolve({ bytes: size, sha256: m.sha256, resumedFrom: 0 });
						return true;
					}
					return false;
				},
			);
			result.catch((e) => {
				aborted = e;
			});
			let start = 0;
			let hasher = new Bun.CryptoHasher("sha256");
			const r = await Promise.race([readyP, result.then(() => undefined)]);
			if (!r) return await result;
			if (r.offset > 0 && r.offset <= size && r.prefix) {
				const h = new Bun.CryptoHasher("sha256");
				for await (const c of readChunks(fh, 0, r.offset, true)) h.update(c);
				if (h.copy().digest("hex") === r.prefix) {
					start = r.offset;
					hasher = h;
				}
			}
			await this.channel.send({ t: "put-start", id, offset: start });
			opts.onProgress?.(start, size);
			let done = start;
			for await (const chunk of readChunks(fh, start, size, true)) {
				if (aborted) break;
				hasher.update(chunk);
				await this.channel.sendData(id, chunk);
				done += chunk.length;
				opts.onProgress?.(done, size);
			}
			if (!aborted) {
				const sha256 = hasher.digest("hex");
				await this.channel.send({ t: "put-end", id, sha256 });
				const r = await result;
				if (r.sha256 !== sha256)
					throw new PairlinkError("integrity", "the server stored data with another SHA-256");
				return { ...r, resumedFrom: start };
			}
			return await result;
		} finally {
			await fh.close().catch(() => undefined);
		}
	}

	/**
	 * A file that fits one data frame goes out whole: its hash in the put, its
	 * data right behind it, one answer back. No round trip before the data,
	 * and nothing to resume (a part file, if any, is started over).
	 */
	private async uploadWhole(
		data: Uint8Array,
		remotePath: string,
		opts: TransferOptions,
	): Promise<TransferResult> {
		const size = data.length;
		const sha256 = new Bun.CryptoHasher("sha256").update(data).digest("hex");
		opts.onProgress?.(0, size);
		const result = this.request<TransferResult>(
			(id) => {
				// Queued right behind the put, in the same turn, so both go out in one write.
				if (size > 0)
					queueMicrotask(() => void this.channel.sendData(id, data).catch(() => undefined));
				return { t: "put", id, path: remotePath, size, overwrite: opts.overwrite, sha256 };
			},
			(m, resolve) => {
				if (m.t !== "put-ok") return false;
				resolve({ bytes: size, sha256: m.sha256, resumedFrom: 0 });
				return true;
			},
		);
		const r = await result;
		if (r.sha256 !== sha256)
			throw new PairlinkError("integrity", "the server stored data with another SHA-256");
		opts.onProgress?.(size, size);
		return r;
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
			exchange.fail(errorFromWire(message.code, exchange.about));
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

/** A file's bytes when it fits one data frame; undefined for a larger one. */
async function readIfSmall(path: string): Promise<Uint8Array | undefined> {
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
