/** The per-peer limit rules of src/session/peer-limits.ts, without sockets. */
import { describe, expect, test } from "bun:test";
import { PairlinkError } from "../../src/errors.ts";
import type { Channel } from "../../src/protocol/channel.ts";
import { PEER_LIMITS } from "../../src/protocol/limits.ts";
import type { Message } from "../../src/protocol/messages.ts";
import { ClientSession } from "../../src/session/client-session.ts";
import {
	checkListingPace,
	checkUnacked,
	HalfOpenLedger,
	keepReading,
	sourceKey,
	takeListing,
	uploadAllowed,
} from "../../src/session/peer-limits.ts";

describe("sourceKey", () => {
	test.each([
		["192.0.2.7", "192.0.2.7"],
		["::ffff:192.0.2.7", "192.0.2.7"],
		["::FFFF:198.51.100.1", "198.51.100.1"],
		["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
		["2001:db8:1:2::99", "2001:db8:1:2::/64"],
		["2001:0db8:0001:0002:ffff::1", "2001:db8:1:2::/64"],
		["[2001:db8:1:2::5]", "2001:db8:1:2::/64"],
		["fe80::1%eth0", "fe80:0:0:0::/64"],
		["::1", "0:0:0:0::/64"],
	])("%s counts as %s", (address, key) => {
		expect(sourceKey(address)).toBe(key);
	});

	test("two hosts of one /64 are one source; of two /64s, two", () => {
		expect(sourceKey("2001:db8:0:1::a")).toBe(sourceKey("2001:db8:0:1:ffff:ffff:ffff:ffff"));
		expect(sourceKey("2001:db8:0:1::a")).not.toBe(sourceKey("2001:db8:0:2::a"));
	});
});

describe("HalfOpenLedger", () => {
	test("a source at its cap is refused; others still get in", () => {
		const ledger = new HalfOpenLedger<string>(100, 3);
		for (const c of ["a1", "a2", "a3"])
			expect(ledger.admit("A", c, 0)).toEqual({ admitted: true, shed: undefined });
		expect(ledger.admit("A", "a4", 0)).toEqual({ admitted: false, shed: undefined });
		expect(ledger.admit("B", "b1", 0)).toEqual({ admitted: true, shed: undefined });
		ledger.leave("a1");
		expect(ledger.admit("A", "a5", 0).admitted).toBe(true);
		expect(ledger.size).toBe(4);
	});

	test("with every slot taken, a newcomer sheds the oldest, whatever its source", () => {
		const ledger = new HalfOpenLedger<string>(4, 3);
		ledger.admit("A", "a1", 0);
		ledger.admit("B", "b1", 0);
		ledger.admit("A", "a2", 0);
		ledger.admit("C", "c1", 0);
		expect(ledger.admit("D", "d1", 1)).toEqual({ admitted: true, shed: "a1" });
		// One slot per source (a flood from many addresses) is no shield for the oldest.
		expect(ledger.admit("E", "e1", 2)).toEqual({ admitted: true, shed: "b1" });
		expect(ledger.size).toBe(4);
		ledger.leave("e1");
		expect(ledger.size).toBe(3);
	});

	test("a source that was shed may not shed others during the cooldown: a re-opening flood cannot churn", () => {
		const ledger = new HalfOpenLedger<string>(2, 2);
		ledger.admit("A", "a1", 0);
		ledger.admit("B", "b1", 0);
		expect(ledger.admit("C", "c1", 1)).toEqual({ admitted: true, shed: "a1" });
		// A re-opens at once: refused while the server is full, nobody shed.
		expect(ledger.admit("A", "a2", 2)).toEqual({ admitted: false, shed: undefined });
		// A newcomer that was never shed still gets in; after the cooldown, so does A.
		expect(ledger.admit("D", "d1", 3)).toEqual({ admitted: true, shed: "b1" });
		expect(ledger.admit("A", "a3", 1 + PEER_LIMITS.shedCooldownMs)).toEqual({
			admitted: true,
			shed: "c1",
		});
		// With a free slot the cooldown does not matter.
		ledger.leave("d1");
		expect(ledger.admit("B", "b2", 4)).toEqual({ admitted: true, shed: undefined });
	});

	test("leave is idempotent and forgets unknown connections", () => {
		const ledger = new HalfOpenLedger<string>(4, 2);
		ledger.admit("A", "a1", 0);
		ledger.leave("a1");
		ledger.leave("a1");
		ledger.leave("never");
		expect(ledger.size).toBe(0);
	});
});

describe("keepReading", () => {
	const idle = { requestsInFlight: 0, queuedGets: 0, queuedReplyBytes: 0 };
	test("stops at each cap", () => {
		expect(keepReading(idle, true)).toBe(true);
		expect(keepReading({ ...idle, requestsInFlight: PEER_LIMITS.requestsInFlight }, true)).toBe(
			false,
		);
		expect(keepReading({ ...idle, queuedGets: PEER_LIMITS.queuedGets }, true)).toBe(false);
		expect(keepReading({ ...idle, queuedReplyBytes: PEER_LIMITS.queuedReplyBytes }, true)).toBe(
			false,
		);
	});
	test("resumes on replies only once half of the reply cap is drained", () => {
		const between = { ...idle, queuedReplyBytes: PEER_LIMITS.queuedReplyBytes * 0.75 };
		expect(keepReading(between, true)).toBe(true);
		expect(keepReading(between, false)).toBe(false);
		expect(
			keepReading({ ...idle, queuedReplyBytes: PEER_LIMITS.queuedReplyBytes / 4 }, false),
		).toBe(true);
	});
});

test("uploads past the cap are refused; unacknowledged downloads past theirs end the connection", () => {
	expect(uploadAllowed(PEER_LIMITS.openUploads - 1)).toBe(true);
	expect(uploadAllowed(PEER_LIMITS.openUploads)).toBe(false);
	expect(() => checkUnacked(PEER_LIMITS.unackedGets)).not.toThrow();
	expect(() => checkUnacked(PEER_LIMITS.unackedGets + 1)).toThrow(PairlinkError);
});

describe("takeListing", () => {
	test("counts entries and bytes across batches and refuses past either cap", () => {
		const batch = Array.from({ length: 128 }, (_, i) => ({ name: `f${i}` }));
		let budget = { entries: 0, bytes: 0 };
		let batches = 0;
		const run = () => {
			for (;;) {
				budget = takeListing(budget, batch);
				batches++;
			}
		};
		expect(run).toThrow(/listing larger than/);
		expect(batches).toBe(Math.floor(PEER_LIMITS.listingEntries / 128));
	});

	test("a few huge names hit the byte cap long before the entry cap", () => {
		const huge = [{ name: "x".repeat(255), path: "p/".repeat(2000) }];
		let budget = { entries: 0, bytes: 0 };
		let n = 0;
		expect(() => {
			for (;;) {
				budget = takeListing(budget, huge);
				n++;
			}
		}).toThrow(PairlinkError);
		expect(n).toBeLessThan(PEER_LIMITS.listingEntries / 10);
	});
});

describe("listing pace (a trickling server)", () => {
	const grace = PEER_LIMITS.listingGraceMs;
	const rate = PEER_LIMITS.listingMinRate;

	test("within the grace time any pace is fine; a finished listing always is", () => {
		expect(() => checkListingPace(grace, 1, false)).not.toThrow();
		expect(() => checkListingPace(grace * 100, 1, true)).not.toThrow();
	});

	test("past the grace time, fewer entries than the minimum rate is a timeout", () => {
		const elapsed = grace + 1000;
		const needed = Math.ceil((elapsed / 1000) * rate);
		expect(() => checkListingPace(elapsed, needed, false)).not.toThrow();
		let caught: unknown;
		try {
			checkListingPace(elapsed, needed - 1, false);
		} catch (e) {
			caught = e;
		}
		expect(caught).toBeInstanceOf(PairlinkError);
		expect((caught as PairlinkError).code).toBe("timeout");
	});

	test("a ClientSession listing fed one entry per idle period is given up at its first late batch", async () => {
		let now = 0;
		const sent: Message[] = [];
		const channel: Channel = {
			send: async (m) => {
				sent.push(m);
			},
			sendData: async () => {},
			fail: () => {},
			close: () => {},
			pause: () => {},
			resume: () => {},
		};
		const session = new ClientSession(channel, { now: () => now });
		const listing = session.list("big");
		const request = sent[0];
		if (request?.t !== "list") throw new Error("no list request sent");
		const entry = (i: number) => ({ name: `f${i}`, type: "file" as const, size: 1, mtime: 0 });
		// One entry per 119 s (just under the idle timeout): the second batch arrives past the grace time.
		session.onMessage({ t: "entries", id: request.id, entries: [entry(1)], done: false });
		now += 119_000;
		session.onMessage({ t: "entries", id: request.id, entries: [entry(2)], done: false });
		const outcome = await listing.then(
			() => "resolved",
			(e: PairlinkError) => e.code,
		);
		expect(outcome).toBe("timeout");
	});
});
