/**
 * The upper bound for the benchmark: the same transfers over plain Bun TCP
 * sockets, written with the same socket API pairlink uses, but with no TLS,
 * no hashing, no framing and no safety checks.
 *
 *   bun bench/raw-tcp.ts serve ROOT             prints the port, serves until killed
 *   bun bench/raw-tcp.ts get PORT NAME DEST     file NAME (or tree NAME/) from ROOT into DEST
 *   bun bench/raw-tcp.ts put PORT SRC NAME      file or tree SRC into ROOT/NAME
 *
 * Wire: one request line ("GET name\n" | "PUT name\n"), then a stream of
 * records [u16 path length][path][u64 size][bytes] ending with a zero-length path.
 */
import { lstatSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";

type Sock = { write(d: Uint8Array): number; end(): void };

function* walk(path: string): Generator<string> {
	if (!lstatSync(path).isDirectory()) {
		yield path;
		return;
	}
	for (const name of readdirSync(path).sort()) yield* walk(join(path, name));
}

/** Send records for SRC (a file or a tree) with backpressure; resolves when all is handed to the socket. */
async function sendRecords(sock: Sock, src: string, waitDrain: () => Promise<void>): Promise<void> {
	const base = lstatSync(src).isDirectory() ? src : dirname(src);
	const write = async (data: Uint8Array) => {
		let off = 0;
		while (off < data.length) {
			const n = sock.write(off === 0 ? data : data.subarray(off));
			if (n < 0) throw new Error("socket closed");
			off += n;
			if (off < data.length) await waitDrain();
		}
	};
	for (const file of walk(src)) {
		const rel = new TextEncoder().encode(relative(base, file));
		const size = Bun.file(file).size;
		const head = new Uint8Array(2 + rel.length + 8);
		const view = new DataView(head.buffer);
		view.setUint16(0, rel.length);
		head.set(rel, 2);
		view.setBigUint64(2 + rel.length, BigInt(size));
		await write(head);
		for (let off = 0; off < size; off += 1 << 20)
			await write(
				await Bun.file(file)
					.slice(off, off + (1 << 20))
					.bytes(),
			);
	}
	await write(new Uint8Array(2));
}

/** Receive records into DEST; `onDone` runs at the end marker, once every file is flushed. */
function receiver(dest: string, onDone: () => void) {
	let buf: Uint8Array = new Uint8Array(0);
	const ends: Promise<unknown>[] = [];
	let sink: ReturnType<ReturnType<typeof Bun.file>["writer"]> | undefined;
	let left = 0;
	return (chunk: Uint8Array) => {
		buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
		for (;;) {
			if (sink) {
				const take = Math.min(left, buf.length);
				if (take > 0) sink.write(buf.subarray(0, take));
				left -= take;
				buf = buf.subarray(take);
				if (left > 0) return;
				ends.push(Promise.resolve(sink.end()));
				sink = undefined;
				continue;
			}
			if (buf.length < 2) return;
			const n = new DataView(buf.buffer, buf.byteOffset).getUint16(0);
			if (n === 0) {
				void Promise.all(ends).then(onDone);
				return;
			}
			if (buf.length < 2 + n + 8) return;
			const rel = new TextDecoder().decode(buf.subarray(2, 2 + n));
			left = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(2 + n));
			buf = buf.subarray(2 + n + 8);
			const path = join(dest, rel);
			mkdirSync(dirname(path), { recursive: true });
			sink = Bun.file(path).writer({ highWaterMark: 1 << 20 });
			if (left === 0) {
				ends.push(Promise.resolve(sink.end()));
				sink = undefined;
			}
		}
	};
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === "serve") {
	const root = rest[0] as string;
	const server = Bun.listen<{ line: string; recv?: (c: Uint8Array) => void; drain?: () => void }>({
		hostname: "127.0.0.1",
		port: 0,
		socket: {
			open(s) {
				s.data = { line: "" };
			},
			data(s, chunk) {
				if (s.data.recv) return s.data.recv(chunk);
				const text = new TextDecoder().decode(chunk);
				const nl = text.indexOf("\n");
				const [verb, name] = text.slice(0, nl).split(" ") as [string, string];
				if (verb === "GET") {
					const waitDrain = () => new Promise<void>((r) => (s.data.drain = r));
					void sendRecords(s, join(root, name), waitDrain).then(() => s.end());
				} else {
					s.data.recv = receiver(join(root, name), () => s.end());
					const restBytes = chunk.subarray(new TextEncoder().encode(text.slice(0, nl + 1)).length);
					if (restBytes.length) s.data.recv(restBytes);
				}
			},
			drain(s) {
				s.data.drain?.();
			},
		},
	});
	console.log(server.port);
} else if (mode === "get" || mode === "put") {
	const [port, a, b] = rest as [string, string, string];
	await new Promise<void>((resolve, reject) => {
		let drain: (() => void) | undefined;
		// get: done when the last record is on disk; put: done when the server has it on disk and hangs up.
		const recv = mode === "get" ? receiver(b, resolve) : undefined;
		Bun.connect<undefined>({
			hostname: "127.0.0.1",
			port: Number(port),
			socket: {
				open(s) {
					s.write(`${mode === "get" ? "GET" : "PUT"} ${mode === "get" ? a : b}\n`);
					if (mode === "put") void sendRecords(s, a, () => new Promise<void>((r) => (drain = r)));
				},
				data(_s, chunk) {
					recv?.(chunk);
				},
				drain() {
					drain?.();
				},
				close() {
					resolve();
				},
				connectError(_s, e) {
					reject(e);
				},
			},
		});
	});
	process.exit(0);
} else {
	console.error("usage: raw-tcp.ts serve ROOT | get PORT NAME DEST | put PORT SRC NAME");
	process.exit(2);
}
