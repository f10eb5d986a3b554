import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect as tcpConnect } from "node:net";
import { PairlinkError } from "../../src/errors.ts";
import { encodeFrame, FrameType } from "../../src/protocol/frame.ts";
import type { Timeouts } from "../../src/protocol/limits.ts";
import { encodeMessage } from "../../src/protocol/messages.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	type TestServer,
	trustEachOther,
} from "../helpers/devices.ts";

const TIMEOUTS: Timeouts = { handshakeMs: 400, idleMs: 2000 };
/** How long past its timeout a bad peer may linger before the test calls it a leak. */
const SLACK_MS = 1500;

let server: TestDevice;
let client: TestDevice;
let stranger: TestDevice;
let srv: TestServer;

beforeAll(async () => {
	[server, client, stranger] = await Promise.all([
		makeDevice("desk"),
		makeDevice("laptop"),
		makeDevice("stranger"),
	]);
	await trustEachOther(client, server);
	srv = serve(server, { timeouts: TIMEOUTS });
});

afterAll(async () => {
	srv.server.stop();
	await removeTempDirs();
});

async function expectTrustedClientWorks() {
	const conn = await connectTo(client, srv.target());
	expect(conn.paired).toBe(false);
	expect(conn.peer.fingerprint).toBe(server.identity.fingerprint);
	const rtt = await conn.session.ping();
	expect(typeof rtt).toBe("number");
	conn.close();
	await conn.closed;
}

/** Resolves with ms until the server closed the raw socket. */
function rawPeer(send: (s: ReturnType<typeof tcpConnect>) => void): Promise<number> {
	return new Promise((resolve, reject) => {
		const started = performance.now();
		const s = tcpConnect({ host: "127.0.0.1", port: srv.server.port }, () => send(s));
		s.on("error", () => undefined);
		s.on("data", () => undefined);
		s.on("close", () => resolve(performance.now() - started));
		setTimeout(
			() => reject(new Error("the server never closed the connection")),
			TIMEOUTS.handshakeMs + SLACK_MS,
		).unref();
	});
}

/** A TLS client driven by hand: Bun.connect with the given tls options. */
function tlsPeer(
	tls: Record<string, unknown>,
	onOpen?: (s: { write(d: Uint8Array): number }, error: Error | null) => void,
	received: Uint8Array[] = [],
): Promise<number> {
	return new Promise((resolve, reject) => {
		const started = performance.now();
		const timer = setTimeout(
			() => reject(new Error("the server never closed the connection")),
			TIMEOUTS.handshakeMs + SLACK_MS,
		);
		Bun.connect({
			hostname: "127.0.0.1",
			port: srv.server.port,
			tls: { rejectUnauthorized: false, ...tls },
			socket: {
				handshake(s, _ok, error) {
					onOpen?.(s, error);
				},
				data(_s, d) {
					received.push(new Uint8Array(d));
				},
				close() {
					clearTimeout(timer);
					resolve(performance.now() - started);
				},
				error() {},
				connectError() {
					clearTimeout(timer);
					resolve(performance.now() - started);
				},
			},
		}).catch(() => undefined);
	});
}

describe("pinned TLS 1.3 channel", () => {
	test("a trusted pair connects, pings and the server logs it", async () => {
		await expectTrustedClientWorks();
		const ev = await srv.waitFor((e) => e.event === "connected");
		expect(ev).toMatchObject({
			event: "connected",
			name: "laptop",
			fingerprint: client.identity.fingerprint,
		});
	});

	test("many pings in flight are matched to their callers", async () => {
		const conn = await connectTo(client, srv.target());
		const rtts = await Promise.all(Array.from({ length: 50 }, () => conn.session.ping()));
		expect(rtts.every((r) => typeof r === "number" && r >= 0)).toBe(true);
		conn.close();
	});

	test("an untrusted client is refused with a clear error, and the server says why", async () => {
		// The stranger has the server pinned, but the server never trusted it.
		await stranger.trust.add({
			name: "desk",
			fingerprint: server.identity.fingerprint,
			address: "127.0.0.1:1",
		});
		const err = await connectTo(stranger, srv.target()).catch((e) => e);
		expect(err).toBeInstanceOf(PairlinkError);
		expect((err as PairlinkError).code).toBe("not-trusted");
		expect((err as PairlinkError).exitCode).toBe(4);
		expect((err as PairlinkError).message).toMatch(/does not trust this device/);
		await srv.waitFor(
			(e) => e.event === "refused" && e.fingerprint === stranger.identity.fingerprint,
		);
		await expectTrustedClientWorks();
	});

	test("a client refuses an unknown server before sending anything", async () => {
		// The server would accept this device; the device has never seen the server.
		const fresh = await makeDevice("fresh");
		await server.trust.add({
			name: "fresh",
			fingerprint: fresh.identity.fingerprint,
			address: "127.0.0.1:1",
		});
		const err = await connectTo(fresh, srv.target()).catch((e) => e);
		expect(err).toBeInstanceOf(PairlinkError);
		expect((err as PairlinkError).code).toBe("not-trusted");
		expect((err as PairlinkError).message).toMatch(/has not paired with 127\.0\.0\.1/);
		const ev = await srv.waitFor(
			(e) => e.event === "refused" && e.fingerprint === fresh.identity.fingerprint,
		);
		expect(ev).toMatchObject({ reason: "the peer closed the connection before its HELLO" });
	});

	test("a client with no certificate is closed at once, and the server says why", async () => {
		const from = srv.events.length;
		const ms = await tlsPeer({});
		// Refused by the certificate check, not left to the handshake timeout.
		expect(ms).toBeLessThan(TIMEOUTS.handshakeMs);
		const ev = await srv.waitFor(
			(e) => srv.events.indexOf(e) >= from && e.event === "refused" && !("fingerprint" in e),
		);
		expect(ev).toMatchObject({ event: "refused", reason: expect.stringMatching(/certificate/) });
		await expectTrustedClientWorks();
	});

	test("a TLS 1.2 client is refused at the TLS layer", async () => {
		const { constants } = await import("node:crypto");
		let failure = "";
		const ms = await tlsPeer(
			{
				key: client.identity.keyPem,
				cert: client.identity.certPem,
				secureOptions: constants.SSL_OP_NO_TLSv1_3,
			},
			(_s, error) => {
				failure = String(error);
			},
		);
		// Even a trusted certificate gets nowhere over TLS 1.2: the server sends a protocol_version alert.
		expect(failure).toMatch(/PROTOCOL_VERSION/);
		expect(ms).toBeLessThan(TIMEOUTS.handshakeMs + SLACK_MS);
		await expectTrustedClientWorks();
	});

	test("a plain-TCP client that sends nothing is closed after the handshake timeout", async () => {
		const ms = await rawPeer(() => undefined);
		expect(ms).toBeGreaterThanOrEqual(TIMEOUTS.handshakeMs - 50);
		await expectTrustedClientWorks();
	});

	test("a plain-TCP client sending garbage is closed at once by TLS, and logged", async () => {
		const from = srv.events.length;
		const ms = await rawPeer((s) => s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100)));
		// Not a ClientHello: TLS gives up on it, long before the handshake timeout.
		expect(ms).toBeLessThan(TIMEOUTS.handshakeMs);
		const ev = await srv.waitFor((e) => srv.events.indexOf(e) >= from && e.event === "refused");
		expect(ev).toMatchObject({ event: "refused", address: expect.stringMatching(/127\.0\.0\.1/) });
		await expectTrustedClientWorks();
	});

	test("a trusted client sending garbage inside TLS is closed at once", async () => {
		const ms = await tlsPeer(
			{ key: client.identity.keyPem, cert: client.identity.certPem },
			(s) => {
				s.write(new TextEncoder().encode("this is not a frame, not at all"));
			},
		);
		expect(ms).toBeLessThan(TIMEOUTS.handshakeMs);
		await expectTrustedClientWorks();
	});

	test("a trusted client that skips HELLO is closed; no application frame is processed", async () => {
		const received: Uint8Array[] = [];
		const ms = await tlsPeer(
			{ key: client.identity.keyPem, cert: client.identity.certPem },
			(s) => {
				s.write(encodeFrame(FrameType.control, 0, encodeMessage({ t: "ping", nonce: "1" })));
			},
			received,
		);
		expect(ms).toBeLessThan(TIMEOUTS.handshakeMs);
		// Everything the server sent: one protocol error, and no pong (the ping was never served).
		const text = new TextDecoder().decode(Buffer.concat(received));
		expect(text).toContain('"t":"error"');
		expect(text).toContain('"code":"protocol"');
		expect(text).not.toContain("pong");
	});

	test("an oversized frame header closes the connection before any payload is buffered", async () => {
		const header = encodeFrame(FrameType.data, 0, new Uint8Array(0));
		new DataView(header.buffer).setUint32(8, 0xffffffff);
		const ms = await tlsPeer(
			{ key: client.identity.keyPem, cert: client.identity.certPem },
			(s) => {
				s.write(header);
			},
		);
		expect(ms).toBeLessThan(TIMEOUTS.handshakeMs);
		await expectTrustedClientWorks();
	});

	test("an established connection with no traffic is closed after the idle timeout", async () => {
		const conn = await connectTo(client, srv.target());
		const started = performance.now();
		const reason = await conn.closed;
		const ms = performance.now() - started;
		expect(ms).toBeGreaterThanOrEqual(TIMEOUTS.idleMs - 100);
		expect(ms).toBeLessThan(TIMEOUTS.idleMs + SLACK_MS);
		expect(reason).toBeInstanceOf(PairlinkError);
	});

	test("a server whose certificate changed under a known name is refused loudly", async () => {
		const impostor = await makeDevice("desk");
		const fake = serve(impostor, { timeouts: TIMEOUTS });
		try {
			const known = client.trust.findByName("desk");
			expect(known).toBeDefined();
			const target = {
				display: "desk",
				hostname: "127.0.0.1",
				port: fake.server.port,
				named: known,
			};
			const err = await connectTo(client, target).catch((e) => e);
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).code).toBe("fingerprint-changed");
			expect((err as PairlinkError).exitCode).toBe(4);
			expect((err as PairlinkError).message).toMatch(/IDENTITY OF DESK HAS CHANGED/);
		} finally {
			fake.server.stop();
		}
	});

	test("a new certificate at the address of a known device is refused loudly", async () => {
		const impostor = await makeDevice("other");
		const fake = serve(impostor, { timeouts: TIMEOUTS });
		try {
			await client.trust.touch(server.identity.fingerprint, `127.0.0.1:${fake.server.port}`);
			const err = await connectTo(client, fake.target()).catch((e) => e);
			expect((err as PairlinkError).code).toBe("fingerprint-changed");
		} finally {
			fake.server.stop();
		}
	});

	test("removing a device revokes it for the next connection", async () => {
		const victim = await makeDevice("phone");
		await trustEachOther(victim, server);
		const ok = await connectTo(victim, srv.target());
		await ok.session.ping();
		ok.close();
		await server.trust.remove("phone");
		const err = await connectTo(victim, srv.target()).catch((e) => e);
		expect((err as PairlinkError).code).toBe("not-trusted");
		await expectTrustedClientWorks();
	});
});
