/**
 * This device's identity, in ONE file, `identity.json` (0600):
 *
 *   { "version": 1, "name": "...", "key": "<PKCS#8 PEM>", "cert": "<PEM>" }
 *
 * Key and certificate live together so they can never mismatch: two
 * processes creating an identity at once cannot leave one's key next to the
 * other's certificate. Creation is exclusive (createFileExclusive): the first
 * writer wins and the loser adopts its identity, so both processes present
 * the same fingerprint. The device name is in the same file; renaming
 * rewrites it atomically with the key and certificate unchanged.
 *
 * Reading does not load @peculiar/x509: the fingerprint is the SHA-256 of
 * the DER inside the certificate PEM.
 */

import path from "node:path";
import { fingerprintOf } from "../crypto/fingerprint";
import { PairlinkError } from "../errors";
import { createFileExclusive, ensureStateDir, readJsonFile, writeFileAtomic } from "./state-dir";
import { deviceNameProblem, sanitizeDeviceName, validateDeviceName } from "./trust-store";

export const IDENTITY_FILE = "identity.json";
const FORMAT_VERSION = 1;
const FALLBACK_NAME = "pairlink device";

export interface Identity {
	name: string;
	/** PKCS#8 PEM, for Bun's `tls.key`. */
	keyPem: string;
	/** PEM, for Bun's `tls.cert`. */
	certPem: string;
	certDer: Uint8Array;
	/** 64 lowercase hex digits. */
	fingerprint: string;
}

interface IdentityFile {
	name: string;
	key: string;
	cert: string;
}

/** The stored identity, or undefined if this state directory has none yet. */
export async function loadIdentity(stateDir: string): Promise<Identity | undefined> {
	const stored = await readJsonFile(fileIn(stateDir), parseIdentityFile);
	return stored && toIdentity(stored);
}

/**
 * The device's identity, created on first use (with the state directory,
 * see ensureStateDir). `defaultName` (the caller passes os.hostname()) is
 * sanitised into a valid device name.
 */
export async function loadOrCreateIdentity(
	stateDir: string,
	options: { defaultName: string },
): Promise<Identity> {
	await ensureStateDir(stateDir);
	const existing = await loadIdentity(stateDir);
	if (existing) return existing;

	const { createIdentityMaterial } = await import("./certificate");
	const material = await createIdentityMaterial();
	const stored: IdentityFile = {
		name: sanitizeDeviceName(options.defaultName, FALLBACK_NAME),
		key: material.keyPem,
		cert: material.certPem,
	};
	if (await createFileExclusive(fileIn(stateDir), serialize(stored))) return toIdentity(stored);

	// Another process created it first: use theirs, so both agree.
	const winner = await loadIdentity(stateDir);
	if (!winner) {
		throw new PairlinkError("state-corrupt", `${fileIn(stateDir)} vanished while being created.`);
	}
	return winner;
}

/** Renames this device (what it announces when pairing). "usage" for an invalid name. */
export async function setDeviceName(stateDir: string, name: string): Promise<Identity> {
	validateDeviceName(name);
	const stored = await readJsonFile(fileIn(stateDir), parseIdentityFile);
	if (!stored) {
		throw new PairlinkError(
			"usage",
			"This device has no identity yet; run `pairlink id` to create one.",
		);
	}
	const updated = { ...stored, name };
	await writeFileAtomic(fileIn(stateDir), serialize(updated));
	return toIdentity(updated);
}

/** DER bytes of the first "CERTIFICATE" block of a PEM string. */
export function certificateDer(certPem: string): Uint8Array {
	const match =
		/-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----/.exec(certPem);
	const body = match?.[1]?.replace(/[\r\n]/g, "");
	if (!body) throw new Error("no PEM certificate");
	const der = new Uint8Array(Buffer.from(body, "base64"));
	// Buffer's base64 decoder skips junk silently; a round trip catches it.
	if (der.length === 0 || Buffer.from(der).toString("base64") !== body) {
		throw new Error("bad PEM certificate");
	}
	return der;
}

function toIdentity(stored: IdentityFile): Identity {
	const certDer = certificateDer(stored.cert);
	return {
		name: stored.name,
		keyPem: stored.key,
		certPem: stored.cert,
		certDer,
		fingerprint: fingerprintOf(certDer),
	};
}

function serialize(stored: IdentityFile): string {
	const body = { version: FORMAT_VERSION, name: stored.name, key: stored.key, cert: stored.cert };
	return `${JSON.stringify(body, null, "\t")}\n`;
}

function parseIdentityFile(value: unknown): IdentityFile {
	if (typeof value !== "object" || value === null || Array.isArray(value))
		throw new Error("not an object");
	const v = value as Record<string, unknown>;
	if (v.version !== FORMAT_VERSION) throw new Error(`unknown version ${JSON.stringify(v.version)}`);
	const { name, key, cert } = v;
	if (typeof name !== "string") throw new Error("name is missing");
	// The lenient rule: a name saved before the address rule still loads.
	const problem = deviceNameProblem(name);
	if (problem !== undefined) throw new Error(problem);
	if (
		typeof key !== "string" ||
		!/^-----BEGIN PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PRIVATE KEY-----\r?\n?$/.test(
			key,
		)
	) {
		throw new Error("key is not a PKCS#8 PEM private key");
	}
	if (typeof cert !== "string") throw new Error("cert is missing");
	certificateDer(cert);
	return { name, key, cert };
}

function fileIn(stateDir: string): string {
	return path.join(stateDir, IDENTITY_FILE);
}
