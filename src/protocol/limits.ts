/**
 * Every bound the wire protocol enforces, in one place so that the codec,
 * the transport and the tests agree on them.
 */

/**
 * 2: file messages carry mtime and mode, uploads can be found up to date,
 * streams, excludes, hashes on request. A peer on 1 is told to upgrade.
 */
export const PROTOCOL_VERSION = 2;

/** Exclude patterns a peer may send with a walk, and the bytes of each. */
export const MAX_EXCLUDES = 64;
export const MAX_EXCLUDE_BYTES = 256;

/** ALPN identifier; also the domain-separation prefix of CPace inputs. */
export const ALPN = "pairlink/1";

/** Largest payload of a data frame: file bodies move in chunks of at most this. */
export const MAX_DATA_PAYLOAD = 1024 * 1024;

/** Largest payload of any control frame (JSON messages). */
export const MAX_CONTROL_PAYLOAD = 64 * 1024;

export const MAX_NAME_LENGTH = 64;

export const DEFAULT_TIMEOUTS = {
	/** TLS handshake plus the HELLO exchange must finish within this. */
	handshakeMs: 10_000,
	/** A connection with no frame in either direction for this long is closed. */
	idleMs: 120_000,
} as const;

export type Timeouts = { handshakeMs: number; idleMs: number };
