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
	/**
	 * A connection with no whole frame in either direction for this long is
	 * closed: a frame counts once it is complete, so a peer that trickles one
	 * byte per period is shed all the same.
	 */
	idleMs: 120_000,
} as const;

export type Timeouts = { handshakeMs: number; idleMs: number };

/**
 * How long a side that is closing waits for the peer's close (a TLS
 * close_notify, the last frames flushed) before it cuts the connection:
 * a peer that never answers must not hold a closing command or a stopping
 * server. One value for every such wait, so they cannot drift apart.
 */
export const CLOSE_GRACE_MS = 1_000;

/**
 * Per-peer limits (DESIGN §1: "every limit is per peer and named once").
 * A limit that exists only per server lets one peer starve the others, so
 * each of these applies to one source address or one connection; the rules
 * that enforce them live in src/session/peer-limits.ts (pure) and are wired
 * from the server and the client session.
 */
export const PEER_LIMITS = {
	/**
	 * Connections not yet showing a trusted certificate that one source (an
	 * IPv4 address, or an IPv6 /64: one host can use a whole /64) may hold,
	 * per client the server admits (--max-clients): a burst of parallel
	 * commands from one host still fits. The server as a whole holds twice
	 * as many per client, and when they are all taken a newcomer sheds the
	 * oldest half-open connection, whatever its source: a real handshake
	 * takes milliseconds, so only idle ones are ever that old.
	 */
	halfOpenPerSourcePerClient: 1,
	halfOpenPerClient: 2,
	/**
	 * A source that had a half-open connection shed may not shed anyone
	 * else's for this long (it waits for a free slot instead): a flood
	 * re-opening each socket as it is shed cannot churn the oldest slot
	 * faster than a real handshake completes.
	 */
	shedCooldownMs: 10_000,
	/**
	 * Established sessions one paired device may hold at once: one device
	 * (or a stolen key) cannot take every --max-clients slot and lock the
	 * other devices out. Parallel commands from one device still fit.
	 */
	sessionsPerDevice: 8,
	/**
	 * Listings (`ls`, the walk of `get -r`) one connection may have being
	 * built at once; the others wait their turn. Each is produced in batches
	 * that wait for the peer to take the previous one, so a peer that asks
	 * for 128 listings of a huge directory and reads nothing pins one batch.
	 */
	listingsAtOnce: 2,
	/** Requests one connection may have being worked on; past it the server stops reading. */
	requestsInFlight: 128,
	/**
	 * Uploads one connection may hold open (each holds a part file and a
	 * descriptor). The client moves at most 64 files at once; a put past the
	 * cap is refused ("busy"), since pausing would starve the open ones of their data.
	 */
	openUploads: 64,
	/** Downloads waiting for their turn on one connection; past it the server stops reading. */
	queuedGets: 64,
	/** Downloads sent but never acknowledged: a peer that withholds its acks is cut off. */
	unackedGets: 1024,
	/**
	 * Reply bytes queued behind a peer's socket. Past it the server stops
	 * reading from that peer until it reads its replies: backpressure, not buffering.
	 */
	queuedReplyBytes: 4 * 1024 * 1024,
	/** Entries one listing (`ls`, or the walk of `get -r`) may have, as a client receives it. */
	listingEntries: 250_000,
	/** Bytes of names and paths one listing may carry, as a client receives it. */
	listingBytes: 64 * 1024 * 1024,
	/**
	 * Part files kept for one peer device's resumes, across all its
	 * connections. Past it the oldest go when one of its connections ends: a
	 * device that keeps starting and abandoning uploads cannot fill the disk
	 * with hidden files until the age sweep (part-sweep.ts).
	 */
	keptPartFiles: 128,
	/**
	 * A listing still going after `listingGraceMs` must have averaged at least
	 * `listingMinRate` entries a second: a server that trickles one entry per
	 * idle period cannot hold a client for months (250,000 entries × the idle
	 * timeout). A real server lists thousands a second.
	 */
	listingGraceMs: 60_000,
	listingMinRate: 100,
} as const;
