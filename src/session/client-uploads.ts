/**
 * Uploads, for ClientSession: a file (found up to date by the server, sent
 * whole when it fits one frame, else streamed and resumable) or standard
 * input. Each carries the source's mtime and mode; a source that changes
 * while it is read is not committed.
 */

import { PairlinkError } from "../errors.ts";
import { newHasher, sha256Hex } from "../fs/hasher.ts";
import { openLocal, readIfSmall, statLocal } from "../fs/local-source.ts";
import { changed, changedWhileRead, type FileMeta, snapshot } from "../fs/metadata.ts";
import { readChunks } from "../fs/part-file.ts";
import { fsError } from "../fs/root.ts";
import { parseWirePath } from "../fs/safe-path.ts";
import type { Channel } from "../protocol/channel.ts";
import { MAX_DATA_PAYLOAD } from "../protocol/limits.ts";
import type { Message, MessageOf } from "../protocol/messages.ts";
import type { TransferOptions, TransferResult } from "./client-session.ts";

/** What an upload needs of the session: its channel, and requests routed by id. */
export interface UploadLink {
	channel: Channel;
	request<T>(
		build: (id: number) => Message,
		onAnswer: (m: Message, resolve: (v: T) => void) => boolean,
	): Promise<T>;
}

/**
 * Upload a local file with its mtime and mode; resumes from a verified
 * part file the server kept. The server answers "up-to-date" instead of
 * put-ready when it already has the file. A source that changes while it
 * is read is not committed.
 */
export async function uploadFile(
	link: UploadLink,
	localPath: string,
	remotePath: string,
	opts: TransferOptions,
): Promise<TransferResult> {
	parseWirePath(remotePath);
	const label = JSON.stringify(localPath);
	const named = await statLocal(localPath).catch((e) => Promise.reject(fsError(e, label)));
	// Small files (most of a tree) are read in one native call: open, read and close.
	const small = named.size <= MAX_DATA_PAYLOAD ? await readIfSmall(localPath) : undefined;
	if (small) {
		const after = await statLocal(localPath).catch(() => undefined);
		if (small.length !== named.size || !after || changed(snapshot(named), snapshot(after)))
			throw changedHere(label);
		return uploadWhole(link, small, remotePath, opts, metaOf(named));
	}
	let fh: Awaited<ReturnType<typeof openLocal>>;
	try {
		fh = await openLocal(localPath);
	} catch (e) {
		throw fsError(e, label);
	}
	try {
		const before = snapshot(await fh.stat());
		const size = before.size;
		let aborted: PairlinkError | undefined;
		let ready: (r: MessageOf<"put-ready">) => void = () => undefined;
		const readyP = new Promise<MessageOf<"put-ready">>((r) => {
			ready = r;
		});
		let id = 0;
		const result = link.request<TransferResult>(
			(n) => {
				id = n;
				const put = { t: "put", id: n, path: remotePath, size, overwrite: opts.overwrite };
				return { ...put, ...metaOf(before), ...quick(opts) } as Message;
			},
			(m, resolve) => {
				if (m.t === "put-ready") {
					ready(m);
					return true;
				}
				return answerPut(m, resolve, size);
			},
		);
		result.catch((e) => {
			aborted = e;
		});
		let start = 0;
		let hasher = newHasher();
		const r = await Promise.race([readyP, result.then(() => undefined)]);
		if (!r) return await result;
		if (r.offset > 0 && r.offset <= size && r.prefix) {
			const h = newHasher();
			for await (const c of readChunks(fh, 0, r.offset, true)) h.update(c);
			if (h.copy().digest("hex") === r.prefix) {
				start = r.offset;
				hasher = h;
			}
		}
		await link.channel.send({ t: "put-start", id, offset: start });
		opts.onProgress?.(start, size);
		let done = start;
		for await (const chunk of readChunks(fh, start, size, true)) {
			if (aborted) break;
			hasher.update(chunk);
			await link.channel.sendData(id, chunk);
			done += chunk.length;
			opts.onProgress?.(done, size);
		}
		if (!aborted && (await changedWhileRead(fh, before, () => statLocal(localPath)))) {
			// The server discards what it got and answers with an error; only then is the id free.
			await link.channel.send({ t: "put-abort", id });
			await result.catch(() => undefined);
			throw changedHere(label);
		}
		if (!aborted) {
			const sha256 = hasher.digest("hex");
			await link.channel.send({ t: "put-end", id, sha256 });
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
async function uploadWhole(
	link: UploadLink,
	data: Uint8Array,
	remotePath: string,
	opts: TransferOptions,
	meta: FileMeta,
): Promise<TransferResult> {
	const size = data.length;
	const sha256 = sha256Hex(data);
	opts.onProgress?.(0, size);
	const result = link.request<TransferResult>(
		(id) => {
			// Queued right behind the put, in the same turn, so both go out in one write.
			if (size > 0)
				queueMicrotask(() => void link.channel.sendData(id, data).catch(() => undefined));
			const put = { t: "put", id, path: remotePath, size, overwrite: opts.overwrite, sha256 };
			return { ...put, ...meta, ...quick(opts) } as Message;
		},
		(m, resolve) => answerPut(m, resolve, size),
	);
	const r = await result;
	if (!r.skipped && r.sha256 !== sha256)
		throw new PairlinkError("integrity", "the server stored data with another SHA-256");
	opts.onProgress?.(size, size);
	return r;
}

/**
 * Upload a stream of unknown length (standard input) into `remotePath`:
 * still through a part file on the server, committed only when the
 * SHA-256 sent at the end matches. Never resumed. A source that fails
 * while it is read commits nothing.
 */
export async function uploadStream(
	link: UploadLink,
	source: AsyncIterable<Uint8Array>,
	remotePath: string,
	opts: TransferOptions,
): Promise<TransferResult> {
	parseWirePath(remotePath);
	let id = 0;
	let ready: () => void = () => undefined;
	const readyP = new Promise<void>((r) => {
		ready = r;
	});
	let aborted = false;
	const result = link.request<TransferResult>(
		(n) => {
			id = n;
			return {
				t: "put",
				id: n,
				path: remotePath,
				size: 0,
				overwrite: opts.overwrite,
				stream: true,
			};
		},
		(m, resolve) => {
			if (m.t === "put-ready") {
				ready();
				return true;
			}
			return answerPut(m, resolve, 0);
		},
	);
	result.catch(() => {
		aborted = true;
	});
	await Promise.race([readyP, result]);
	await link.channel.send({ t: "put-start", id, offset: 0 });
	const hasher = newHasher();
	let size = 0;
	try {
		for await (const chunk of source) {
			if (aborted) break;
			for (let at = 0; at < chunk.length; at += MAX_DATA_PAYLOAD) {
				const piece = chunk.slice(at, at + MAX_DATA_PAYLOAD);
				hasher.update(piece);
				await link.channel.sendData(id, piece);
				size += piece.length;
			}
			opts.onProgress?.(size, size);
		}
	} catch (e) {
		await link.channel.send({ t: "put-abort", id }).catch(() => undefined);
		await result.catch(() => undefined);
		throw new PairlinkError(
			"stream-broken",
			`standard input failed while it was being sent (${(e as Error)?.message ?? String(e)}); nothing was committed`,
		);
	}
	if (aborted) return await result;
	const sha256 = hasher.digest("hex");
	await link.channel.send({ t: "put-end", id, sha256, size });
	const r = await result;
	if (r.sha256 !== sha256)
		throw new PairlinkError("integrity", "the server stored data with another SHA-256");
	return { ...r, bytes: size };
}

/** The answers that end an upload: put-ok, or "up-to-date" when nothing had to move. */
function answerPut(m: Message, resolve: (r: TransferResult) => void, size: number): boolean {
	if (m.t === "put-ok") resolve({ bytes: size, sha256: m.sha256, resumedFrom: 0 });
	else if (m.t === "up-to-date")
		resolve({ bytes: size, sha256: "", resumedFrom: 0, skipped: "up-to-date" });
	else return false;
	return true;
}

/** What a local file tells the server about itself: its mtime (ms) and mode. */
function metaOf(s: { mtimeMs: number; mode: number }): FileMeta {
	return { mtime: Math.round(s.mtimeMs), mode: s.mode & 0o7777 };
}

const quick = (opts: TransferOptions) => (opts.checksum ? { quick: false } : {});

const changedHere = (label: string) =>
	new PairlinkError(
		"changed",
		`${label} changed while it was being sent; nothing was committed, run the command again`,
	);
