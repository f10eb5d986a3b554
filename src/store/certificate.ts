/**
 * Creates a device identity: an Ed25519 key pair (WebCrypto) and a
 * self-signed X.509 certificate (@peculiar/x509).
 *
 * Only ever loaded with `await import("./certificate")` when an identity is
 * created: @peculiar/x509 and its tsyringe/reflect-metadata dependencies are
 * the heaviest imports pairlink has, and every other command only reads the
 * PEMs back.
 *
 * reflect-metadata must run before @peculiar/x509 (tsyringe checks for it
 * at load). A static `import "reflect-metadata"` first is NOT enough once
 * bundled: in a lazily loaded module, Bun's bundler (1.4.4) initialises the
 * ESM dependencies (@peculiar/x509) before the CommonJS ones
 * (reflect-metadata), and the compiled binary dies with "tsyringe requires
 * a reflect polyfill". Two sequential dynamic imports make the order
 * explicit under `bun run` and `bun build --compile` alike.
 */

import type * as X509 from "@peculiar/x509";

async function loadX509(): Promise<typeof X509> {
	await import("reflect-metadata");
	return import("@peculiar/x509");
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Pinning by fingerprint replaces expiry: a certificate that expired would
// silently break every pairing, so it effectively never does.
const VALIDITY_YEARS = 100;
const SERIAL_BYTES = 16;

export interface IdentityMaterial {
	/** PKCS#8 "PRIVATE KEY" PEM. */
	keyPem: string;
	/** "CERTIFICATE" PEM. */
	certPem: string;
}

export async function createIdentityMaterial(now: Date = new Date()): Promise<IdentityMaterial> {
	const x509 = await loadX509();
	const algorithm = { name: "Ed25519" };
	const keys = (await crypto.subtle.generateKey(algorithm, true, [
		"sign",
		"verify",
	])) as CryptoKeyPair;
	const cert = await x509.X509CertificateGenerator.createSelfSigned({
		serialNumber: randomSerial(),
		// Not the device name: names change, the certificate must not.
		name: "CN=pairlink device",
		// A day of slack for peers whose clocks run behind.
		notBefore: new Date(now.getTime() - DAY_MS),
		notAfter: new Date(now.getTime() + VALIDITY_YEARS * 365 * DAY_MS),
		signingAlgorithm: algorithm,
		keys,
		// Without extensions the generator emits an empty extensions SEQUENCE,
		// which RFC 5280 forbids and stricter parsers reject.
		extensions: [
			new x509.BasicConstraintsExtension(false, undefined, true),
			new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
			new x509.ExtendedKeyUsageExtension(
				[x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
				false,
			),
		],
	});
	const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
	return {
		keyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
		certPem: cert.toString("pem"),
	};
}

// Positive (top bit clear) and minimally encoded (first byte non-zero), as
// RFC 5280 asks of serial numbers.
function randomSerial(): string {
	const bytes = crypto.getRandomValues(new Uint8Array(SERIAL_BYTES));
	bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
	return Buffer.from(bytes).toString("hex");
}
