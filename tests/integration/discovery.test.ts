/**
 * Discovery on loopback only (a server bound to 127.0.0.1 announces there
 * and nowhere else): real multicast-dns sockets, real TLS servers, and the
 * rule for names versus addresses. Real networks are tested between
 * namespaces (tests/e2e/discovery-netns.test.ts).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { reach } from "../../src/client/reach.ts";
import { type Announcer, startAnnouncer } from "../../src/discovery/announce.ts";
import { newBlindedId } from "../../src/discovery/blinded-id.ts";
import { browse } from "../../src/discovery/browse.ts";
import { PairlinkError } from "../../src/errors.ts";
import {
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	trustEachOther,
} from "../helpers/devices.ts";

afterAll(removeTempDirs);

const announcers: Announcer[] = [];
afterAll(async () => {
	await Promise.all(announcers.map((a) => a.stop()));
});

async function announce(dev: TestDevice, port: number, pairing = false): Promise<Announcer> {
	const a = await startAnnouncer({
		host: "127.0.0.1",
		port,
		name: dev.identity.name,
		fingerprint: dev.identity.fingerprint,
		pairingOpen: async () => pairing,
	});
	announcers.push(a);
	return a;
}

test("bound to 127.0.0.1: announced on loopback alone, found there, and malformed packets change nothing", async () => {
	const desk = await makeDevice("desk");
	const a = await announce(desk, 4711, true);
	expect(a.links.map((l) => l.address)).toEqual(["127.0.0.1"]);
	// Garbage to the group on loopback: dropped by the codec, the responder keeps answering.
	const junk = createSocket("udp4");
	await new Promise<void>((r) => junk.bind(0, "127.0.0.1", () => r()));
	junk.setMulticastInterface("127.0.0.1");
	for (const bytes of [Buffer.alloc(0), Buffer.alloc(12, 0xff), Buffer.from("not dns at all")]) {
		await new Promise<void>((r) => junk.send(bytes, 5353, "224.0.0.251", () => r()));
	}
	junk.close();
	const seen = await browse({
		timeoutMs: 2000,
		loopbackOnly: true,
		until: (s) => s.port === 4711,
	});
	expect(seen.filter((s) => s.port === 4711)).toEqual([
		expect.objectContaining({
			address: "127.0.0.1",
			pairingOpen: true,
			name: "desk",
			fingerprint: desk.identity.fingerprint,
		}),
	]);
	await a.stop();
	expect(
		(await browse({ timeoutMs: 600, loopbackOnly: true })).filter((s) => s.port === 4711),
	).toEqual([]);
});

for (const [responder, flags] of [
	["avahi (SO_REUSEADDR)", { reuseAddr: true }],
	["mDNSResponder (SO_REUSEPORT)", { reusePort: true }],
] as const) {
	test(`shares port 5353 with a system responder that holds it: ${responder}`, async () => {
		const system = createSocket({ type: "udp4", ...flags });
		await new Promise<void>((resolve, reject) => {
			system.once("error", reject);
			system.bind(5353, "0.0.0.0", () => resolve());
		});
		try {
			const warnings: string[] = [];
			const desk = await makeDevice("desk");
			const a = await startAnnouncer({
				host: "127.0.0.1",
				port: 4713,
				name: "desk",
				fingerprint: desk.identity.fingerprint,
				pairingOpen: async () => false,
				onWarning: (w) => warnings.push(w),
			});
			announcers.push(a);
			expect(warnings).toEqual([]);
			expect(a.links.map((l) => l.address)).toEqual(["127.0.0.1"]);
			const seen = await browse({
				timeoutMs: 2000,
				loopbackOnly: true,
				until: (s) => s.port === 4713,
			});
			expect(seen.filter((s) => s.port === 4713).length).toBe(1);
			await a.stop();
		} finally {
			system.close();
		}
	});
}

test("the blinded identity is renewed on its timer, and when pairing closes the clear name goes with it", async () => {
	const desk = await makeDevice("desk");
	let pairing = true;
	const a = await startAnnouncer({
		host: "127.0.0.1",
		port: 4712,
		name: "desk",
		fingerprint: desk.identity.fingerprint,
		pairingOpen: async () => pairing,
		renewMs: 400,
	});
	announcers.push(a);
	const look = async () => {
		const seen = await browse({
			timeoutMs: 1500,
			loopbackOnly: true,
			until: (s) => s.port === 4712,
		});
		return seen.find((s) => s.port === 4712);
	};
	const open = await look();
	expect(open).toMatchObject({ pairingOpen: true, name: "desk" });
	pairing = false;
	await a.refresh();
	const closed = await look();
	expect(closed?.pairingOpen).toBe(false);
	expect(closed?.name).toBeUndefined();
	expect(closed?.fingerprint).toBeUndefined();
	expect(closed?.blinded.nonce).not.toBe(open?.blinded.nonce);
	// The timer renews it again; a bounded number of looks, each answered at once.
	const nonces = new Set<string>();
	for (let i = 0; i < 20 && nonces.size < 3; i++) {
		const s = await look();
		if (s) nonces.add(s.blinded.nonce);
		await new Promise((r) => setTimeout(r, 100));
	}
	expect(nonces.size).toBeGreaterThanOrEqual(2);
	await a.stop();
});

describe("names and addresses", () => {
	test("by name: the saved address answers with another trusted device's certificate, so desk is looked up, reached, and its new address saved", async () => {
		const laptop = await makeDevice("laptop");
		const desk = await makeDevice("desk");
		const phone = await makeDevice("phone");
		const deskServer = serve(desk);
		const phoneServer = serve(phone);
		try {
			const phoneAddress = `127.0.0.1:${phoneServer.server.port}`;
			// desk was last reached where phone now serves.
			await trustEachOther(laptop, desk, phoneAddress);
			await trustEachOther(laptop, phone, phoneAddress);
			await laptop.trust.touch(phone.identity.fingerprint, "127.0.0.1:1");
			await announce(desk, deskServer.server.port);
			const named = laptop.trust.findByName("desk");
			const conn = await reach(
				{ display: "desk", hostname: "127.0.0.1", port: phoneServer.server.port, named },
				{ identity: laptop.identity, trust: laptop.trust },
			);
			expect(conn.peer.fingerprint).toBe(desk.identity.fingerprint);
			await conn.session.ping();
			conn.close();
			await conn.closed;
			await laptop.trust.reload();
			expect(laptop.trust.findByName("desk")?.address).toBe(`127.0.0.1:${deskServer.server.port}`);
			expect(laptop.trust.findByName("phone")?.address).toBe("127.0.0.1:1");
		} finally {
			deskServer.server.stop();
			phoneServer.server.stop();
		}
	});

	test("by name: another certificate at the saved address and the fingerprint nowhere else: the identity-changed warning", async () => {
		const laptop = await makeDevice("laptop");
		const desk = await makeDevice("desk");
		const impostor = await makeDevice("desk");
		const fake = serve(impostor);
		try {
			const there = `127.0.0.1:${fake.server.port}`;
			await trustEachOther(laptop, desk, there);
			let lookedFor: string | undefined;
			const err = await reach(
				{
					display: "desk",
					hostname: "127.0.0.1",
					port: fake.server.port,
					named: laptop.trust.findByName("desk"),
				},
				{
					identity: laptop.identity,
					trust: laptop.trust,
					code: async () => "never-asked",
					lookup: async (fp) => {
						lookedFor = fp;
						return [];
					},
				},
			).catch((e) => e);
			expect(lookedFor).toBe(desk.identity.fingerprint);
			expect((err as PairlinkError).code).toBe("fingerprint-changed");
			expect((err as PairlinkError).exitCode).toBe(4);
			expect(fake.events.filter((e) => e.event === "connected" || e.event === "paired")).toEqual(
				[],
			);
			await laptop.trust.reload();
			expect(laptop.trust.findByName("desk")?.address).toBe(there);
		} finally {
			fake.server.stop();
		}
	});

	test("by name: a flood of addresses claiming desk's fingerprint costs at most 4 connection attempts", async () => {
		const laptop = await makeDevice("laptop");
		const desk = await makeDevice("desk");
		await trustEachOther(laptop, desk, "127.0.0.1:1");
		const dialled: number[] = [];
		const decoys = Array.from({ length: 6 }, (_, i) =>
			Bun.listen({
				hostname: "127.0.0.1",
				port: 0,
				socket: {
					open(socket) {
						dialled.push(i);
						socket.end(); // not TLS: the client fails this one and moves on
					},
					data() {},
				},
			}),
		);
		try {
			const blinded = newBlindedId(desk.identity.fingerprint);
			const err = await reach(
				{ display: "desk", hostname: "127.0.0.1", port: 1, named: laptop.trust.findByName("desk") },
				{
					identity: laptop.identity,
					trust: laptop.trust,
					lookup: async () =>
						decoys.map((d) => ({
							address: "127.0.0.1",
							port: d.port,
							pairingOpen: false,
							blinded,
						})),
				},
			).catch((e) => e);
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).exitCode).toBe(3);
			expect(dialled.sort()).toEqual([0, 1, 2, 3]);
			await laptop.trust.reload();
			expect(laptop.trust.findByName("desk")?.address).toBe("127.0.0.1:1");
		} finally {
			for (const d of decoys) d.stop(true);
		}
	});

	test("by address: another paired device where desk was last seen gets the warning, and no address is re-saved", async () => {
		const laptop = await makeDevice("laptop");
		const desk = await makeDevice("desk");
		const phone = await makeDevice("phone");
		const phoneServer = serve(phone);
		try {
			const there = `127.0.0.1:${phoneServer.server.port}`;
			await trustEachOther(laptop, desk, there);
			await trustEachOther(laptop, phone, "127.0.0.1:2");
			const before = laptop.trust.list();
			const err = await reach(phoneServer.target(), {
				identity: laptop.identity,
				trust: laptop.trust,
				code: async () => "never-asked",
			}).catch((e) => e);
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).code).toBe("fingerprint-changed");
			expect((err as PairlinkError).message).toMatch(/IDENTITY OF DESK HAS CHANGED/);
			expect(phoneServer.events.filter((e) => e.event === "connected")).toEqual([]);
			await laptop.trust.reload();
			expect(laptop.trust.list()).toEqual(before);
		} finally {
			phoneServer.server.stop();
		}
	});
});
