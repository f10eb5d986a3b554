/**
 * Downloads on the client: into a part file beneath a local root (resumable,
 * committed only when size and SHA-256 match), or into a sink such as
 * standard output. Which answer is legal when is download-machine.ts's to
 * decide; this performs its actions on the receiver.
 */
import { PairlinkError } from "../errors.ts";
import { newHasher } from "../fs/hasher.ts";
import type { FileMeta } from "../fs/metadata.ts";
import { PartFile, type PartOwner } from "../fs/part-file.ts";
import { fsError, type SandboxRoot } from "../fs/root.ts";
import { parseWirePath } from "../fs/safe-path.ts";
import type { Channel } from "../protocol/channel.ts";
import type { Message, MessageOf } from "../protocol/messages.ts";
import type { TransferOptions, TransferResult } from "./client-session.ts";
import { type DownloadEvent, REQUESTED, step as stepDownload } from "./download-machine.ts";

/** What a download needs of the session: requests routed by id, and its read backpressure. */
/** How a request's answers reach it: true when the message was its answer. */
export type OnAnswer<T> = (
	m: Message,
	resolve: (v: T) => void,
	reject: (e: PairlinkError) => void,
	id: number,
) => boolean;

/** How a request's data frames reach it. */
export type OnData = (
	parts: Uint8Array[],
	length: number,
	reject: (e: PairlinkError) => void,
	id: number,
) => void;

export interface DownloadLink {
	channel: Channel;
	/** Whose part files downloads create. */
	partOwner: Partial<PartOwner>;
	request<T>(build: (id: number) => Message, onAnswer: OnAnswer<T>, onData?: OnData): Promise<T>;
	/** Bytes taken in and not yet written: past a mark the socket is paused. */
	hold(n: number): void;
	release(n: number): void;
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

/**
 * Download `remotePath` into `dest` (a path inside the `local` root). A part
 * file left by an interrupted attempt is offered for resume; nothing
 * appears at the final name unless size and SHA-256 match. The file gets
 * the server's mtime and executable bits.
 */
export async function downloadFile(
	link: DownloadLink,
	remotePath: string,
	local: SandboxRoot,
	dest: string,
	opts: TransferOptions,
): Promise<TransferResult> {
	parseWirePath(remotePath);
	const part = await PartFile.open(local, dest, opts.overwrite, link.partOwner);
	let size = 0;
	/** Where the server chose to start: our offer, or 0 if it did not accept the prefix. */
	let resumedFrom = 0;
	let meta: FileMeta | undefined;
	/** The server's header was accepted: whatever arrives from here on is this attempt's. */
	let accepted = false;
	try {
		return await receive(
			link,
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

/**
 * Download `remotePath` into `sink` (standard output) as it arrives,
 * hashed on the way: bytes already written cannot be taken back, so a
 * mismatch at the end fails with the output said to be incomplete.
 * A failure carries `written`, the bytes that reached the sink.
 */
export async function downloadTo(
	link: DownloadLink,
	remotePath: string,
	sink: (chunk: Uint8Array) => Promise<void>,
	opts: Pick<TransferOptions, "onProgress">,
): Promise<TransferResult> {
	parseWirePath(remotePath);
	const hasher = newHasher();
	let size = 0;
	let written = 0;
	try {
		return await receive(link, (id) => ({ t: "get", id, path: remotePath, offset: 0 }), {
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
 * One download's answers, whatever receives the bytes. Which frame is
 * legal when, and the bytes it may carry, is download-machine.ts's to
 * decide (a server that sends more than it announced is stopped at
 * once); this performs its actions. Every write goes through one chain;
 * the result is acknowledged once kept.
 */
async function receive(
	link: DownloadLink,
	build: (id: number) => Message,
	r: Receiver,
): Promise<TransferResult> {
	let state = REQUESTED;
	let chain = Promise.resolve();
	/** Why the receiver failed, once it has: later work on the chain only reports it. */
	let failure: PairlinkError | undefined;
	let settle: { resolve(v: TransferResult): void; reject(e: PairlinkError): void } | undefined;
	const drive = (
		event: DownloadEvent,
		id: number,
		reject: (e: PairlinkError) => void,
		given: { file?: MessageOf<"file">; parts?: Uint8Array[] } = {},
	) => {
		const next = stepDownload(state, event);
		state = next.state;
		for (const action of next.actions) {
			switch (action.type) {
				case "start": {
					const started = r.start(given.file as MessageOf<"file">);
					if (started instanceof PairlinkError) {
						state = stepDownload(state, { type: "io-failed" }).state;
						reject(started);
						return;
					}
					// A failed start (no space for the announced size) ends the download at
					// once: waiting for data or file-end would let the server hold it open.
					if (started)
						chain = chain.then(started).catch((e) => {
							failure ??= r.error(e);
							state = stepDownload(state, { type: "io-failed" }).state;
							reject(failure);
						});
					break;
				}
				case "write": {
					const { length } = action;
					link.hold(length);
					chain = chain
						.then(async () => {
							if (!failure) await r.write(given.parts ?? []);
						})
						.catch((e) => {
							failure ??= r.error(e);
							reject(failure);
						})
						.finally(() => link.release(length));
					break;
				}
				case "finish":
					chain = chain.then(async () => {
						if (failure) return settle?.reject(failure);
						try {
							const result = await r.finish(action.sha256);
							state = stepDownload(state, { type: "committed" }).state;
							void link.channel.send({ t: "ack", id }).catch(() => undefined);
							settle?.resolve(result);
						} catch (e) {
							settle?.reject(r.error(e));
						}
					});
					break;
				case "fail": {
					const e = new PairlinkError(action.code, action.reason);
					// Bad data also stops writes still queued; a protocol slip only ends the request.
					if (action.code === "integrity") failure ??= e;
					reject(action.code === "integrity" ? (failure ?? e) : e);
					return;
				}
			}
		}
	};
	try {
		return await link.request<TransferResult>(
			build,
			(m, resolve, reject, id) => {
				settle = { resolve, reject };
				if (m.t === "file") {
					const event = {
						type: "file",
						size: m.size,
						offset: m.offset,
						sha256: m.sha256,
					} as const;
					drive(event, id, reject, { file: m });
					return true;
				}
				if (m.t === "file-end") {
					drive({ type: "file-end", sha256: m.sha256 }, id, reject);
					return true;
				}
				return false;
			},
			(parts, length, reject, id) => drive({ type: "data", length }, id, reject, { parts }),
		);
	} catch (e) {
		// Nothing may still be writing when the caller discards or keeps what arrived.
		await chain.catch(() => undefined);
		throw e;
	}
}
