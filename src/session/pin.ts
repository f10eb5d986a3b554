/**
 * The client's pin decision: made from its own trust store as soon as TLS
 * shows the server's certificate, before the client sends a single byte.
 */
import { formatFingerprint } from "../crypto/fingerprint.ts";
import { PairlinkError } from "../errors.ts";
import type { ClientDecision } from "./handshake.ts";

export interface KnownDevice {
	name: string;
	fingerprint: string;
}

export interface PinInput {
	peerFingerprint: string;
	/** What the user typed as HOST, for messages. */
	host: string;
	/** The trusted device whose certificate this is, if any. */
	trusted: KnownDevice | undefined;
	/** The device the user named as HOST (`connect laptop`), if they named one. */
	named: KnownDevice | undefined;
	/** The trusted device most recently reached at this very address, if any. */
	lastAtAddress: KnownDevice | undefined;
	/** A pairing code is at hand (environment, stdin or prompt). */
	canPair: boolean;
	/** The user asked to pair (`pairlink pair`), even with a trusted server. */
	wantPair: boolean;
	/** The fingerprint the announcement the user picked this server by showed, if any. */
	announced?: string | undefined;
}

export function decidePin(p: PinInput): ClientDecision {
	if (p.announced !== undefined && p.announced !== p.peerFingerprint) {
		return {
			ok: false,
			error: new PairlinkError(
				"fingerprint-changed",
				`${p.host} announced certificate ${formatFingerprint(p.announced)} but presented ${formatFingerprint(p.peerFingerprint)}. Someone may be impersonating it; refusing to connect`,
				{ advice: "announce-mismatch" },
			),
		};
	}
	if (p.named && p.named.fingerprint !== p.peerFingerprint) {
		return { ok: false, error: changed(p.named, p.host, p.peerFingerprint) };
	}
	// By address, only the certificate last seen there is accepted — another
	// trusted device there is as suspect as a stranger — and this warning
	// comes before any pairing prompt: a code typed into an impersonator's
	// prompt would be the very thing the impersonator wants.
	const byAddress = !p.named && p.announced === undefined;
	if (byAddress && p.lastAtAddress && p.lastAtAddress.fingerprint !== p.peerFingerprint) {
		return { ok: false, error: changed(p.lastAtAddress, p.host, p.peerFingerprint) };
	}
	if (p.wantPair) {
		return p.canPair
			? { ok: true, mode: "pair" }
			: {
					ok: false,
					error: new PairlinkError("usage", "Pairing needs the code shown by the server"),
				};
	}
	if (p.trusted) return { ok: true, mode: "session" };
	if (p.canPair) return { ok: true, mode: "pair" };
	return {
		ok: false,
		error: new PairlinkError(
			"not-trusted",
			`This device has not paired with ${p.host} (certificate ${formatFingerprint(p.peerFingerprint)})`,
		),
	};
}

function changed(device: KnownDevice, host: string, seen: string): PairlinkError {
	return new PairlinkError(
		"fingerprint-changed",
		`WARNING: THE IDENTITY OF ${device.name.toUpperCase()} HAS CHANGED! ${host} presented certificate ${formatFingerprint(seen)}, but ${device.name} is trusted as ${formatFingerprint(device.fingerprint)}; refusing to connect`,
		{ device: device.name },
	);
}
