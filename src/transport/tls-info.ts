import type { Socket } from "bun";
import { normalizeFingerprint } from "../crypto/fingerprint.ts";
import { EXPORTER_LABEL, type TlsInfo } from "./frame-socket.ts";

/**
 * Read what we need from a socket in its `handshake` callback. Bun's own
 * `success`/`authorized` verdict is ignored on purpose: with self-signed
 * certificates it differs between the two sides; trust comes from pinning.
 */
export function readTlsInfo(socket: Socket<unknown>): TlsInfo {
	const cert = socket.getPeerCertificate() as { fingerprint256?: string } | null | undefined;
	const raw = cert?.fingerprint256;
	return {
		tlsVersion: socket.getTLSVersion() ?? "",
		peerFingerprint: raw ? normalizeFingerprint(raw) : undefined,
		exporter: new Uint8Array(socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0))),
		remoteAddress: socket.remoteAddress,
	};
}
