/** The TLS settings both ends share: 1.3 only, our certificate, ALPN, no CA verdicts. */
import { constants } from "node:crypto";
import { ALPN } from "../protocol/limits.ts";

export interface Credentials {
	keyPem: string;
	certPem: string;
}

/** ALPN on the wire is length-prefixed; Bun silently ignores a plain string. */
const ALPN_WIRE = Buffer.concat([Buffer.from([ALPN.length]), Buffer.from(ALPN)]);

/** Refuse every protocol version below TLS 1.3 at the TLS layer itself. */
const NO_LEGACY_TLS =
	constants.SSL_OP_NO_SSLv2 |
	constants.SSL_OP_NO_SSLv3 |
	constants.SSL_OP_NO_TLSv1 |
	constants.SSL_OP_NO_TLSv1_1 |
	constants.SSL_OP_NO_TLSv1_2;

export function tlsOptions(creds: Credentials, side: "server" | "client") {
	return {
		key: creds.keyPem,
		cert: creds.certPem,
		// Certificates are self-signed device identities: trust is decided by
		// pinning fingerprints after the handshake, never by a CA.
		rejectUnauthorized: false,
		requestCert: side === "server",
		secureOptions: NO_LEGACY_TLS,
		ALPNProtocols: ALPN_WIRE,
	};
}
