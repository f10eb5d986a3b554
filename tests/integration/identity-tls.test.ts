/**
 * The identities loadOrCreateIdentity produces must work as they are with
 * Bun's TLS: Ed25519 certificates, mutual authentication, TLS 1.3, peer
 * fingerprints readable on both sides, and an exporter both sides agree on
 * (CPace uses it as its sid).
 */

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { fingerprintOf, normalizeFingerprint } from "../../src/crypto/fingerprint";
import { type Identity, loadOrCreateIdentity } from "../../src/store/identity";

const LABEL = "EXPORTER-pairlink-cpace";
const TIMEOUT_MS = 5000;

interface Seen {
	version: string | null;
	fingerprint256: string | undefined;
	raw: Uint8Array | undefined;
	keying: Buffer;
	keyingNoContext: Buffer;
}

let root = "";
const cleanups: (() => void)[] = [];

beforeEach(async () => {
	root = await mkdtemp(path.join(tmpdir(), "pairlink-tls-"));
});

afterEach(async () => {
	for (const f of cleanups.splice(0)) f();
	await rm(root, { recursive: true, force: true });
});

function inspect(socket: Socket<undefined>): Seen {
	const peer = socket.getPeerCertificate() as
		| ReturnType<typeof socket.getPeerCertificate>
		| undefined;
	return {
		version: socket.getTLSVersion(),
		fingerprint256: peer?.fingerprint256,
		raw: peer?.raw === undefined ? undefined : new Uint8Array(peer.raw),
		keying: socket.exportKeyingMaterial(32, LABEL, Buffer.alloc(0)),
		// bun-types declares the context-less overload as returning void; it
		// returns the same Buffer as an empty context (RFC 8446 §7.5).
		keyingNoContext: socket.exportKeyingMaterial(32, LABEL) as unknown as Buffer,
	};
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
	let timer: ReturnType<typeof setTimeout> | undefined;
	const timeout = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs one handshake between `server` and `client` (or a certificate-less client). */
async function handshake(
	server: Identity,
	client: Identity | undefined,
): Promise<{ server: Seen; client: Seen }> {
	const serverSeen = Promise.withResolvers<Seen>();
	const clientSeen = Promise.withResolvers<Seen>();
	const capture = (into: PromiseWithResolvers<Seen>) => (socket: Socket<undefined>) => {
		try {
			into.resolve(inspect(socket));
		} catch (e) {
			into.reject(e);
		}
	};

	const listener: TCPSocketListener<undefined> = Bun.listen<undefined>({
		hostname: "127.0.0.1",
		port: 0,
		tls: { key: server.keyPem, cert: server.certPem, requestCert: true, rejectUnauthorized: false },
		socket: {
			data() {},
			// Bun's success/authorized verdict is ignored on purpose (DESIGN §2).
			handshake: capture(serverSeen),
			error: (_, e) => serverSeen.reject(e),
			close: () => serverSeen.reject(new Error("server side closed before the handshake")),
		},
	});
	cleanups.push(() => listener.stop(true));

	const socket = await Bun.connect<undefined>({
		hostname: "127.0.0.1",
		port: listener.port,
		tls: client
			? { key: client.keyPem, cert: client.certPem, rejectUnauthorized: false }
			: { rejectUnauthorized: false },
		socket: {
			data() {},
			handshake: capture(clientSeen),
			error: (_, e) => clientSeen.reject(e),
			connectError: (_, e) => clientSeen.reject(e),
			close: () => clientSeen.reject(new Error("client side closed before the handshake")),
		},
	});
	cleanups.push(() => socket.terminate());

	const [s, c] = await withTimeout(
		Promise.all([serverSeen.promise, clientSeen.promise]),
		"both handshakes",
	);
	return { server: s, client: c };
}

describe("identity certificates with Bun TLS", () => {
	test("mutual TLS 1.3: each side sees the other's fingerprint and the same exporter", async () => {
		const a = await loadOrCreateIdentity(path.join(root, "a"), { defaultName: "server" });
		const b = await loadOrCreateIdentity(path.join(root, "b"), { defaultName: "client" });
		expect(a.fingerprint).not.toBe(b.fingerprint);

		const seen = await handshake(a, b);

		expect(seen.server.version).toBe("TLSv1.3");
		expect(seen.client.version).toBe("TLSv1.3");

		// Bun's format: uppercase hex pairs joined by ":".
		expect(seen.server.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
		expect(normalizeFingerprint(seen.server.fingerprint256 ?? "")).toBe(b.fingerprint);
		expect(normalizeFingerprint(seen.client.fingerprint256 ?? "")).toBe(a.fingerprint);

		// `raw` is the peer's certificate DER: the fingerprint can be computed from it too.
		expect(fingerprintOf(seen.server.raw ?? new Uint8Array())).toBe(b.fingerprint);
		expect(fingerprintOf(seen.client.raw ?? new Uint8Array())).toBe(a.fingerprint);

		expect(seen.server.keying.length).toBe(32);
		expect(seen.client.keying.length).toBe(32);
		expect(seen.server.keying.equals(seen.client.keying)).toBe(true);
		expect(seen.server.keyingNoContext.equals(seen.server.keying)).toBe(true);
		expect(seen.client.keyingNoContext.equals(seen.client.keying)).toBe(true);
	}, 15_000);

	test("the exporter is unique per connection", async () => {
		const a = await loadOrCreateIdentity(path.join(root, "a"), { defaultName: "server" });
		const b = await loadOrCreateIdentity(path.join(root, "b"), { defaultName: "client" });
		const first = await handshake(a, b);
		const second = await handshake(a, b);
		expect(first.client.keying.equals(second.client.keying)).toBe(false);
	}, 15_000);

	test("a client without a certificate: the server sees no peer certificate", async () => {
		const a = await loadOrCreateIdentity(path.join(root, "a"), { defaultName: "server" });
		const seen = await handshake(a, undefined);
		expect(seen.server.version).toBe("TLSv1.3");
		expect(seen.server.fingerprint256).toBeUndefined();
		expect(normalizeFingerprint(seen.client.fingerprint256 ?? "")).toBe(a.fingerprint);
	}, 15_000);
});
