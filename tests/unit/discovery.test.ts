/** The pure half of discovery, fed packets by hand: records, replies, limits, links, recognition. */
import { describe, expect, test } from "bun:test";
import { type Answer, decode, encode, type Packet } from "dns-packet";
import { groupSightings } from "../../src/client/discover.ts";
import { blindedIdFor, newBlindedId, recognise } from "../../src/discovery/blinded-id.ts";
import { type Link, linksForBind, linksForBrowse, onLink } from "../../src/discovery/links.ts";
import { RateLimit } from "../../src/discovery/rate-limit.ts";
import {
	type Announcement,
	announcementRecords,
	readSightings,
	SERVICE,
} from "../../src/discovery/records.ts";
import { QueryResponder } from "../../src/discovery/responder.ts";
import type { TrustedDevice } from "../../src/store/trust-store.ts";
import { makePrng } from "../helpers/prng.ts";

const FP = "5a".repeat(32);
const OTHER_FP = "c3".repeat(32);
let counter = 0;
/** Deterministic "randomness": a different nonce on every call. */
const random = (a: Uint8Array) => a.fill(++counter);

function announcement(over: Partial<Announcement> = {}): Announcement {
	return {
		blinded: newBlindedId(FP, random),
		port: 47070,
		pairingOpen: false,
		addresses: ["192.0.2.1"],
		...over,
	};
}

/** What a browser would receive: the full record set as one encoded and decoded response. */
function received(a: Announcement, ttl?: number): Packet {
	const set = announcementRecords(a, ttl);
	return decode(encode({ type: "response", answers: [set.pointer, ...set.details] }));
}

const txtOf = (p: Packet) =>
	(p.answers ?? [])
		.filter((r) => r.type === "TXT")
		.flatMap((r) => (r.data as Buffer[]).map((b) => b.toString()));

const query = (name: string, type = "PTR", id = 7): Packet =>
	decode(encode({ type: "query", id, questions: [{ name, type: type as "PTR" }] }));

describe("blinded identity", () => {
	test("a device that knows the fingerprint recognises it; nobody else learns anything", () => {
		const b = newBlindedId(FP, random);
		expect(recognise(b, [OTHER_FP, FP])).toBe(FP);
		expect(recognise(b, [OTHER_FP])).toBeUndefined();
		expect(b.id).toBe(blindedIdFor(b.nonce, FP));
		expect(`${b.nonce}${b.id}`).not.toContain(FP.slice(0, 8));
	});

	test("every renewal gives unrelated strings: two announcements cannot be linked", () => {
		const one = newBlindedId(FP);
		const two = newBlindedId(FP);
		expect(one.nonce).not.toBe(two.nonce);
		expect(one.id).not.toBe(two.id);
		expect(one.id).toMatch(/^[0-9a-f]{32}$/);
		expect(one.nonce).toMatch(/^[0-9a-f]{32}$/);
	});
});

describe("announcement records", () => {
	test("closed pairing: port, nonce, blinded id — no name, no fingerprint", () => {
		const a = announcement({ clear: { name: "desk", fingerprint: FP } });
		const packet = received(a);
		const txt = txtOf(packet);
		expect(txt).toEqual(["v=1", `n=${a.blinded.nonce}`, `id=${a.blinded.id}`, "pair=0"]);
		const bytes = encode(packet).toString("latin1");
		expect(bytes).not.toContain("desk");
		expect(bytes).not.toContain(FP);
		// Labels come from the nonce, never from the machine's name.
		const ptr = packet.answers?.find((r) => r.type === "PTR");
		expect(ptr?.type === "PTR" && ptr.data).toBe(
			`pairlink-${a.blinded.nonce.slice(0, 12)}.${SERVICE}`,
		);
	});

	test("open pairing: name and fingerprint in clear", () => {
		const a = announcement({ pairingOpen: true, clear: { name: "desk", fingerprint: FP } });
		expect(txtOf(received(a))).toContain(`fp=${FP}`);
		expect(txtOf(received(a))).toContain("name=desk");
	});

	test("a response fits one unfragmented packet, even with the longest name in 4-byte characters", () => {
		const name = "😀".repeat(64);
		const a = announcement({
			pairingOpen: true,
			clear: { name, fingerprint: FP },
			addresses: ["192.0.2.1", "2001:db8::1"],
		});
		const set = announcementRecords(a);
		const size = encode({ type: "response", answers: [set.pointer, ...set.details] }).length;
		expect(size).toBeLessThan(1200);
	});

	test("read back: the sighting carries what was announced", () => {
		const a = announcement({ pairingOpen: true, clear: { name: "desk", fingerprint: FP } });
		const [s] = readSightings(received(a), "192.0.2.99", (x) => x.startsWith("192.0.2."));
		expect(s).toEqual({
			address: "192.0.2.1",
			port: 47070,
			pairingOpen: true,
			blinded: a.blinded,
			name: "desk",
			fingerprint: FP,
		});
	});

	test("an announced address off the link is not taken: the packet's source is", () => {
		const a = announcement({ addresses: ["198.51.100.7"] });
		const [s] = readSightings(received(a), "192.0.2.5", (x) => x.startsWith("192.0.2."));
		expect(s?.address).toBe("192.0.2.5");
	});

	test("a goodbye (TTL 0) is nothing to connect to", () => {
		expect(readSightings(received(announcement(), 0), "192.0.2.1")).toEqual([]);
	});

	test("a fingerprint that does not match the blinded id is dropped with its sighting", () => {
		const a = announcement({ pairingOpen: true, clear: { name: "desk", fingerprint: OTHER_FP } });
		a.blinded = newBlindedId(FP, random); // id made from FP, fp= claims OTHER_FP
		expect(readSightings(received(a), "192.0.2.1")).toEqual([]);
	});

	const bad: [string, (txt: string[]) => string[]][] = [
		["no version", (t) => t.filter((x) => !x.startsWith("v="))],
		["a future version", (t) => t.map((x) => (x === "v=1" ? "v=2" : x))],
		["a short nonce", (t) => t.map((x) => (x.startsWith("n=") ? "n=abcd" : x))],
		[
			"an id that is not hex",
			(t) => t.map((x) => (x.startsWith("id=") ? `id=${"z".repeat(32)}` : x)),
		],
		["pair=maybe", (t) => t.map((x) => (x.startsWith("pair=") ? "pair=maybe" : x))],
		["too many strings", (t) => [...t, ...Array(20).fill("x=y")]],
	];
	for (const [what, mangle] of bad) {
		test(`malformed TXT is ignored: ${what}`, () => {
			const packet = received(announcement());
			for (const r of packet.answers ?? []) {
				if (r.type === "TXT") r.data = mangle((r.data as Buffer[]).map(String));
			}
			expect(readSightings(decode(encode(packet)), "192.0.2.1")).toEqual([]);
		});
	}

	test("a packet with more records than any pairlink server sends is ignored whole", () => {
		const packet = received(announcement());
		const padding: Answer[] = Array.from({ length: 40 }, (_, i) => ({
			name: `x${i}.local`,
			type: "A",
			ttl: 120,
			data: "192.0.2.3",
		}));
		packet.additionals = padding;
		expect(readSightings(decode(encode(packet)), "192.0.2.1")).toEqual([]);
	});

	test("garbage: whatever dns-packet manages to decode never makes readSightings throw", () => {
		const rng = makePrng(17);
		const valid = encode(
			received(announcement({ pairingOpen: true, clear: { name: "d", fingerprint: FP } })),
		);
		let decoded = 0;
		for (let i = 0; i < 3000; i++) {
			const bytes = Buffer.from(valid);
			for (let k = 0; k < 1 + (i % 8); k++) bytes[rng.int(bytes.length)] = rng.int(256);
			let packet: Packet;
			try {
				packet = decode(bytes);
			} catch {
				continue; // multicast-dns drops these ("warning") before we see them
			}
			decoded++;
			expect(() => readSightings(packet, "192.0.2.1", () => true)).not.toThrow();
		}
		expect(decoded).toBeGreaterThan(100);
	});
});

describe("answering queries", () => {
	const set = () => announcementRecords(announcement());

	test("a PTR query from an mDNS stack (port 5353) is answered by multicast, at most once a second", () => {
		const r = new QueryResponder();
		const s = set();
		const first = r.reply(query(SERVICE), { address: "192.0.2.2", port: 5353 }, s, 1000);
		expect(first?.to).toBe("multicast");
		expect(first?.packet.answers.map((a) => a.type)).toEqual(["PTR", "SRV", "TXT", "A"]);
		expect(r.reply(query(SERVICE), { address: "192.0.2.3", port: 5353 }, s, 1500)).toBeUndefined();
		expect(r.reply(query(SERVICE), { address: "192.0.2.3", port: 5353 }, s, 2100)?.to).toBe(
			"multicast",
		);
	});

	test("a legacy unicast query gets a unicast reply with its id and TTLs of at most 10 s", () => {
		const reply = new QueryResponder().reply(
			query(SERVICE, "PTR", 4242),
			{ address: "192.0.2.2", port: 40000 },
			set(),
			0,
		);
		expect(reply?.to).toEqual({ address: "192.0.2.2", port: 40000 });
		expect(reply?.packet.id).toBe(4242);
		for (const a of reply?.packet.answers ?? []) {
			expect("ttl" in a && a.ttl).toBe(10);
			expect("flush" in a && a.flush).toBe(false);
		}
	});

	test("replies are bounded: 5 per source and 20 in all, per second, however many queries", () => {
		const r = new QueryResponder();
		const s = set();
		let fromOne = 0;
		for (let i = 0; i < 100; i++) {
			if (r.reply(query(SERVICE), { address: "192.0.2.2", port: 40000 }, s, 0)) fromOne++;
		}
		expect(fromOne).toBe(5);
		let fromMany = fromOne;
		for (let i = 0; i < 200; i++) {
			const from = { address: `192.0.2.${10 + (i % 100)}`, port: 40000 };
			if (r.reply(query(SERVICE), from, s, 0)) fromMany++;
		}
		expect(fromMany).toBe(20);
	});

	test("questions about other names, and responses, get nothing", () => {
		const r = new QueryResponder();
		const from = { address: "192.0.2.2", port: 40000 };
		expect(r.reply(query("_http._tcp.local"), from, set(), 0)).toBeUndefined();
		expect(r.reply(received(announcement()), from, set(), 0)).toBeUndefined();
	});

	test("the instance and host names are answered too (a resolver's second step)", () => {
		const s = set();
		const instance = s.pointer.data;
		const host = (s.details[0] as { data: { target: string } }).data.target;
		const r = new QueryResponder();
		const from = { address: "192.0.2.2", port: 40000 };
		expect(r.reply(query(instance, "SRV"), from, s, 0)?.packet.answers.length).toBe(3);
		expect(r.reply(query(host, "A"), from, s, 0)?.packet.answers.map((a) => a.type)).toEqual(["A"]);
	});
});

test("RateLimit: tokens come back with time, and forgotten sources stay bounded", () => {
	const limit = new RateLimit(2, 2, 3);
	expect([limit.allow("a", 0), limit.allow("a", 0), limit.allow("a", 0)]).toEqual([
		true,
		true,
		false,
	]);
	expect(limit.allow("a", 500)).toBe(true);
	for (const k of ["b", "c", "d", "e"]) limit.allow(k, 500);
	expect(limit.allow("a", 500)).toBe(true); // "a" was forgotten: a fresh bucket
});

describe("links", () => {
	const links: Link[] = [
		{ name: "lo", family: "IPv4", address: "127.0.0.1", prefix: 8, internal: true },
		{ name: "lo", family: "IPv6", address: "::1", prefix: 128, internal: true },
		{ name: "eth0", family: "IPv4", address: "192.0.2.1", prefix: 24, internal: false },
		{ name: "eth0", family: "IPv4", address: "192.0.2.11", prefix: 24, internal: false },
		{ name: "eth0", family: "IPv6", address: "2001:db8::1", prefix: 64, internal: false },
		{ name: "eth1", family: "IPv4", address: "198.51.100.1", prefix: 24, internal: false },
	];

	test("bound to 127.0.0.1, a server announces on loopback only", () => {
		expect(linksForBind("127.0.0.1", links).map((l) => l.name)).toEqual(["lo"]);
	});

	test("bound to one address, on that address's link; to a wildcard, on every link of its families", () => {
		expect(linksForBind("192.0.2.11", links).map((l) => l.address)).toEqual(["192.0.2.11"]);
		expect(linksForBind("0.0.0.0", links).map((l) => l.address)).toEqual([
			"127.0.0.1",
			"192.0.2.1",
			"198.51.100.1",
		]);
		expect(linksForBind("::", links).map((l) => l.address)).toContain("2001:db8::1");
	});

	test("a client looking for a device last reached on loopback stays on loopback", () => {
		expect(linksForBrowse(links, true).map((l) => l.address)).toEqual(["127.0.0.1"]);
	});

	test("only sources on the link are answered", () => {
		const [lo, , eth0, , eth0v6] = links as [Link, Link, Link, Link, Link];
		expect(onLink("192.0.2.200", eth0)).toBe(true);
		expect(onLink("198.51.100.200", eth0)).toBe(false);
		expect(onLink("::ffff:192.0.2.9", eth0)).toBe(true);
		expect(onLink("127.0.0.1", lo)).toBe(true);
		expect(onLink("192.0.2.200", lo)).toBe(false);
		expect(onLink("2001:db8::99", eth0v6)).toBe(true);
		expect(onLink("2001:db8:1::99", eth0v6)).toBe(false);
		expect(onLink("not-an-address", eth0)).toBe(false);
	});
});

describe("grouping what find heard", () => {
	const device = (name: string, fingerprint: string): TrustedDevice => ({
		name,
		fingerprint,
		address: "192.0.2.1:47070",
		pairedAt: "2026-01-01T00:00:00.000Z",
		lastSeen: "2026-01-01T00:00:00.000Z",
	});

	test("a trusted device by its saved name; a stranger by address; one server heard twice is one entry", () => {
		const mine = newBlindedId(FP, random);
		const theirs = newBlindedId(OTHER_FP, random);
		const heard = [
			{ address: "192.0.2.1", port: 47070, pairingOpen: false, blinded: mine },
			{ address: "198.51.100.1", port: 47070, pairingOpen: false, blinded: mine },
			{ address: "192.0.2.9", port: 5000, pairingOpen: false, blinded: theirs },
		];
		expect(groupSightings(heard, [device("desk", FP)])).toEqual([
			{
				addresses: ["192.0.2.1", "198.51.100.1"],
				port: 47070,
				pairingOpen: false,
				trusted: { name: "desk", fingerprint: FP },
			},
			{ addresses: ["192.0.2.9"], port: 5000, pairingOpen: false },
		]);
	});
});
