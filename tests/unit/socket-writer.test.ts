import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import { COALESCE_BELOW, SocketWriter } from "../../src/transport/socket-writer.ts";

/** A socket that accepts at most `budget` bytes until the test refills it. */
class FakeSocket {
	received: number[] = [];
	budget: number;
	gone = false;
	constructor(budget: number) {
		this.budget = budget;
	}
	write(data: Uint8Array): number {
		if (this.gone) return -1;
		const n = Math.min(this.budget, data.length);
		this.received.push(...data.subarray(0, n));
		this.budget -= n;
		return n;
	}
}

/** Flush at once: every write reaches the socket immediately, as without coalescing. */
const now = (flush: () => void) => flush();

const bytes = (from: number, n: number) =>
	Uint8Array.from({ length: n }, (_, i) => (from + i) & 255);

describe("SocketWriter", () => {
	test("a write the socket takes whole resolves at once", async () => {
		const s = new FakeSocket(100);
		const w = new SocketWriter(s, now);
		await w.write(bytes(0, 10));
		expect(s.received).toEqual(Array.from(bytes(0, 10)));
		expect(w.pendingBytes).toBe(0);
	});

	test("partial writes keep the tail and resolve in order as drain frees room", async () => {
		const s = new FakeSocket(3);
		const w = new SocketWriter(s, now);
		const order: string[] = [];
		const a = w.write(bytes(0, 10)).then(() => order.push("a"));
		const b = w.write(bytes(10, 5)).then(() => order.push("b"));
		expect(s.received.length).toBe(3);
		expect(w.pendingBytes).toBe(12);

		s.budget = 4;
		w.drain();
		await Promise.resolve();
		expect(order).toEqual([]);
		expect(s.received.length).toBe(7);

		s.budget = 5; // finishes a (3 left) and takes 2 of b
		w.drain();
		await a;
		expect(order).toEqual(["a"]);
		expect(w.pendingBytes).toBe(3);

		s.budget = 100;
		w.drain();
		await b;
		expect(order).toEqual(["a", "b"]);
		expect(s.received).toEqual(Array.from(bytes(0, 15)));
		expect(w.pendingBytes).toBe(0);
	});

	test("a later write never overtakes queued bytes, even when the socket has room", async () => {
		const s = new FakeSocket(2);
		const w = new SocketWriter(s, now);
		const a = w.write(bytes(0, 4));
		s.budget = 100; // room appears, but no drain yet
		const b = w.write(bytes(4, 2));
		expect(s.received).toEqual([0, 1]);
		w.drain();
		await Promise.all([a, b]);
		expect(s.received).toEqual([0, 1, 2, 3, 4, 5]);
	});

	test("pending writes are rejected when the connection closes, and later writes reject at once", async () => {
		const s = new FakeSocket(1);
		const w = new SocketWriter(s, now);
		const settled = Promise.allSettled([w.write(bytes(0, 4)), w.write(bytes(4, 4))]);
		w.fail(new PairlinkError("interrupted", "closed"));
		for (const r of await settled) {
			expect(r.status).toBe("rejected");
			expect(String((r as PromiseRejectedResult).reason)).toContain("closed");
		}
		await expect(w.write(bytes(0, 1))).rejects.toThrow("closed");
		expect(w.pendingBytes).toBe(0);
		expect(w.closed).toBe(true);
	});

	test("a socket that reports it is gone (-1) fails the writer", async () => {
		const s = new FakeSocket(1);
		const w = new SocketWriter(s, now);
		const a = w.write(bytes(0, 4));
		s.gone = true;
		w.drain();
		await expect(a).rejects.toBeInstanceOf(PairlinkError);
		await expect(w.write(bytes(0, 1))).rejects.toBeInstanceOf(PairlinkError);
	});

	test("drain with nothing queued does nothing", () => {
		const s = new FakeSocket(0);
		const w = new SocketWriter(s, now);
		w.drain();
		expect(s.received).toEqual([]);
	});
});

describe("SocketWriter.flush", () => {
	test("resolves after every earlier write was accepted", async () => {
		const s = new FakeSocket(1);
		const w = new SocketWriter(s, now);
		await w.flush();
		const a = w.write(bytes(0, 3));
		let flushed = false;
		const f = w.flush().then(() => {
			flushed = true;
		});
		s.budget = 1;
		w.drain();
		await Promise.resolve();
		expect(flushed).toBe(false);
		s.budget = 10;
		w.drain();
		await Promise.all([a, f]);
		expect(flushed).toBe(true);
		expect(s.received).toEqual([0, 1, 2]);
	});
});

describe("SocketWriter coalescing", () => {
	test("small writes in one turn go out as one socket write, in order; large ones at once", async () => {
		const calls: number[] = [];
		const sink = {
			received: [] as number[],
			write(d: Uint8Array) {
				calls.push(d.length);
				this.received.push(...d);
				return d.length;
			},
		};
		let pending: (() => void) | undefined;
		const w = new SocketWriter(sink, (f) => {
			pending = f;
		});
		const a = w.write(bytes(0, 3));
		const b = w.write(bytes(3, 2));
		expect(calls).toEqual([]);
		expect(w.pendingBytes).toBe(5);
		pending?.();
		await Promise.all([a, b]);
		expect(calls).toEqual([5]);
		// A large write flushes what is batched first, so order holds.
		const c = w.write(bytes(5, 1));
		const big = w.write(bytes(6, COALESCE_BELOW));
		await Promise.all([c, big]);
		expect(calls).toEqual([5, 1, COALESCE_BELOW]);
		expect(sink.received).toEqual(Array.from(bytes(0, 6 + COALESCE_BELOW)));
	});

	test("a batch reaching the threshold goes out without waiting for the turn to end", async () => {
		const calls: number[] = [];
		const sink = {
			write(d: Uint8Array) {
				calls.push(d.length);
				return d.length;
			},
		};
		const w = new SocketWriter(sink, () => undefined);
		const half = COALESCE_BELOW / 2;
		await Promise.all([w.write(bytes(0, half)), w.write(bytes(0, half))]);
		expect(calls).toEqual([COALESCE_BELOW]);
	});

	test("batched writes are rejected when the connection fails before they went out", async () => {
		const w = new SocketWriter({ write: (d) => d.length }, () => undefined);
		const a = w.write(bytes(0, 3));
		w.fail(new PairlinkError("interrupted", "closed"));
		await expect(a).rejects.toThrow("closed");
	});
});
