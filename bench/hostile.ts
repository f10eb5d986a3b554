/**
 * `serve` under a hostile paired peer, for `bun run bench`: its RSS and
 * descriptor count sampled once a second while one peer never reads its
 * replies (list + ping, as fast as its socket takes them) and while another
 * opens uploads without end. Per-peer limits (src/protocol/limits.ts) should
 * keep both rows flat over time.
 */
import { readdir, readFile } from "node:fs/promises";
import type { Credentials } from "../src/transport/tls-options.ts";
import { handPeer, helloExchange } from "../tests/helpers/bad-peers.ts";

export interface HostileRow {
	peer: string;
	/** One sample per second, from the peer's start. */
	rssMiB: number[];
	fds: number[];
	/** Requests the peer got the server to take (or at least its socket). */
	requests: number;
}

async function sample(pid: number): Promise<{ rssMiB: number; fds: number }> {
	const status = await readFile(`/proc/${pid}/status`, "utf8");
	const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
	return { rssMiB: kb / 1024, fds: (await readdir(`/proc/${pid}/fd`)).length };
}

async function watch(
	peer: string,
	pid: number,
	seconds: number,
	attack: (stop: () => boolean) => Promise<number>,
): Promise<HostileRow> {
	const row: HostileRow = { peer, rssMiB: [], fds: [], requests: 0 };
	let over = false;
	const running = attack(() => over);
	for (let s = 0; s < seconds; s++) {
		await Bun.sleep(1000); // the sampling pace, not a synchronisation
		const now = await sample(pid);
		row.rssMiB.push(Math.round(now.rssMiB));
		row.fds.push(now.fds);
	}
	over = true;
	row.requests = await running;
	return row;
}

async function sessionPeer(port: number, identity: Credentials) {
	const peer = handPeer(port, identity);
	await helloExchange(peer, "session", "bench-peer");
	return peer;
}

export async function hostileRows(
	serve: { port: number; pid: number },
	identity: Credentials,
	seconds: number,
): Promise<HostileRow[]> {
	const slowReader = await watch(
		"slow reader (list + ping, never reads)",
		serve.pid,
		seconds,
		async (stop) => {
			const peer = await sessionPeer(serve.port, identity);
			peer.pause();
			let n = 0;
			const pushing = (async () => {
				while (!stop() && !peer.isClosed) {
					await peer.send({ t: "list", id: ++n, path: "" });
					await peer.send({ t: "ping", nonce: String(n) });
				}
			})().catch(() => undefined);
			// Its writes block once the server stops reading: end it from outside.
			while (!stop()) await Bun.sleep(100);
			peer.terminate();
			await pushing;
			return n;
		},
	);
	const manyUploads = await watch(
		"many uploads (put, never data)",
		serve.pid,
		seconds,
		async (stop) => {
			const peer = await sessionPeer(serve.port, identity);
			let n = 0;
			while (!stop() && !peer.isClosed && n < 1_000_000) {
				await peer.send({
					t: "put",
					id: ++n,
					path: `bench-upload-${n}.bin`,
					size: 1,
					overwrite: false,
				});
			}
			peer.terminate();
			return n;
		},
	);
	return [slowReader, manyUploads];
}
