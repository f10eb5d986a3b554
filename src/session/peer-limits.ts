/**
 * The per-peer limits of src/protocol/limits.ts as rules: pure functions
 * and a small ledger, no sockets, no timers, so each rule is tested on its
 * own (tests/unit/peer-limits.test.ts) and the server and client only wire
 * them to what they observe.
 */
import { PairlinkError } from "../errors.ts";
import { PEER_LIMITS } from "../protocol/limits.ts";

/**
 * Who a connection counts against: an IPv4 address, or the /64 of an IPv6
 * address (one host is routinely given a whole /64, so counting single
 * IPv6 addresses would let it open 2^64 "sources"). IPv4-mapped IPv6
 * addresses count as the IPv4 address they carry.
 */
export function sourceKey(address: string): string {
	const bare = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
	const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
	if (mapped) return mapped[1] as string;
	if (!bare.includes(":")) return bare;
	return `${expandIpv6(bare).slice(0, 4).join(":")}::/64`;
}

/** Eight 16-bit groups, lowercase, without leading zeros; garbage in gives a stable key anyway. */
function expandIpv6(address: string): string[] {
	const [head = "", tail] = address.toLowerCase().split("::", 2);
	const left = head ? head.split(":") : [];
	const right = tail ? tail.split(":") : [];
	const fill =
		tail === undefined ? [] : new Array(Math.max(0, 8 - left.length - right.length)).fill("0");
	return [...left, ...fill, ...right].map((g) => g.replace(/^0+(?=.)/, ""));
}

/**
 * Connections that have not yet shown a trusted certificate, per source.
 * `admit` says whether a newcomer gets a slot and which held connection, if
 * any, must be shed to make room:
 * - a source at its own cap is refused: its flood competes only with itself;
 * - when every slot of the server is taken, the newcomer takes the slot of
 *   the OLDEST half-open connection, whatever its source. A real client
 *   shows its certificate milliseconds after it connects (and then leaves
 *   this ledger), so it is never the oldest for long; a flood of idle
 *   handshakes from many sources (attack 1, finding 3: 64 addresses, one
 *   socket each) only ever evicts itself. Shedding only from the biggest
 *   source did nothing when every source held one slot;
 * - a source that had a connection shed within PEER_LIMITS.shedCooldownMs
 *   may not shed anyone itself (it is refused while the server is full): a
 *   flood that re-opens each socket the moment it is shed would otherwise
 *   evict faster than a real client completes its handshake.
 */
/** Sources whose last shedding is remembered: a bound on the ledger's memory, however many sources flood. */
const MAX_SHED_SOURCES = 4096;

export class HalfOpenLedger<T> {
	private readonly bySource = new Map<string, T[]>();
	/** In admission order (Map keeps insertion order): the first key is the oldest. */
	private readonly sourceOf = new Map<T, string>();
	/** When each source last had a connection shed, oldest first; bounded by MAX_SHED_SOURCES. */
	private readonly shedAt = new Map<string, number>();

	constructor(
		private readonly totalCap: number,
		private readonly perSourceCap: number,
	) {}

	/** The caps of PEER_LIMITS for a server that admits `maxClients` clients. */
	static forClients<T>(maxClients: number): HalfOpenLedger<T> {
		return new HalfOpenLedger<T>(
			maxClients * PEER_LIMITS.halfOpenPerClient,
			maxClients * PEER_LIMITS.halfOpenPerSourcePerClient,
		);
	}

	get size(): number {
		return this.sourceOf.size;
	}

	/** `now`: milliseconds on any monotonic clock (the cooldown is measured on it). */
	admit(source: string, conn: T, now: number): { admitted: boolean; shed: T | undefined } {
		if ((this.bySource.get(source)?.length ?? 0) >= this.perSourceCap)
			return { admitted: false, shed: undefined };
		let shed: T | undefined;
		if (this.sourceOf.size >= this.totalCap) {
			const last = this.shedAt.get(source);
			if (last !== undefined && now - last < PEER_LIMITS.shedCooldownMs)
				return { admitted: false, shed: undefined };
			shed = this.sourceOf.keys().next().value;
			if (shed !== undefined) {
				this.noteShed(this.sourceOf.get(shed) as string, now);
				this.leave(shed);
			}
		}
		// Read after the shedding: the oldest may have been this source's own.
		const own = this.bySource.get(source) ?? [];
		own.push(conn);
		this.bySource.set(source, own);
		this.sourceOf.set(conn, source);
		return { admitted: true, shed };
	}

	private noteShed(source: string, now: number): void {
		this.shedAt.delete(source); // re-inserted last: the map stays in time order
		this.shedAt.set(source, now);
		if (this.shedAt.size > MAX_SHED_SOURCES)
			this.shedAt.delete(this.shedAt.keys().next().value as string);
	}

	/** The connection closed, or showed a trusted certificate: it no longer holds a slot. */
	leave(conn: T): void {
		const source = this.sourceOf.get(conn);
		if (source === undefined) return;
		this.sourceOf.delete(conn);
		const rest = (this.bySource.get(source) ?? []).filter((c) => c !== conn);
		if (rest.length === 0) this.bySource.delete(source);
		else this.bySource.set(source, rest);
	}
}

/** What one connection has asked of the server and not yet been given. */
export interface ConnectionLoad {
	/** Requests accepted and not yet answered in full (downloads included). */
	requestsInFlight: number;
	/** Downloads waiting for their turn. */
	queuedGets: number;
	/** Reply bytes written but not yet taken by the peer's socket. */
	queuedReplyBytes: number;
}

/**
 * Whether to go on reading frames from a peer. Past any cap the server stops
 * reading (the peer's own TCP window then throttles it) instead of queueing
 * more work or more replies; reading resumes once the load is back under
 * the caps, the reply queue with hysteresis (half of its cap) so that a
 * slow reader does not flip the socket at every drain.
 */
export function keepReading(load: ConnectionLoad, reading: boolean): boolean {
	if (load.requestsInFlight >= PEER_LIMITS.requestsInFlight) return false;
	if (load.queuedGets >= PEER_LIMITS.queuedGets) return false;
	const replyCap = reading ? PEER_LIMITS.queuedReplyBytes : PEER_LIMITS.queuedReplyBytes / 2;
	return load.queuedReplyBytes < replyCap;
}

/** A put past the open-uploads cap is refused, not queued (its data would follow at once). */
export function uploadAllowed(openUploads: number): boolean {
	return openUploads < PEER_LIMITS.openUploads;
}

/** Downloads sent and never acknowledged: past the cap the peer is cut off. */
export function checkUnacked(unacked: number): void {
	if (unacked > PEER_LIMITS.unackedGets)
		throw new PairlinkError("protocol", "the peer does not acknowledge its downloads");
}

/** How much of a listing a client has taken in so far. */
export interface ListingBudget {
	entries: number;
	bytes: number;
}

/**
 * Count one batch of listing entries against the caps: a server that never
 * ends a listing (or sends enormous names) cannot grow the client without
 * bound. Returns the new budget; throws "protocol" past either cap.
 */
export function takeListing(
	budget: ListingBudget,
	entries: readonly { name: string; path?: string }[],
): ListingBudget {
	let bytes = budget.bytes;
	// Names and paths are what grows; 64 bytes stand for the rest of an entry.
	for (const e of entries) bytes += e.name.length + (e.path?.length ?? 0) + 64;
	const next = { entries: budget.entries + entries.length, bytes };
	if (next.entries > PEER_LIMITS.listingEntries || next.bytes > PEER_LIMITS.listingBytes) {
		throw new PairlinkError(
			"protocol",
			`the server sent a listing larger than ${PEER_LIMITS.listingEntries} entries or ${PEER_LIMITS.listingBytes / (1024 * 1024)} MiB`,
		);
	}
	return next;
}

/**
 * A listing batch that is not the last must carry something: a server that
 * sends empty batches forever would otherwise keep a listing (and, since
 * each is a whole frame, the idle timer) alive at no cost to it (attack 1,
 * finding 8). With this rule every frame of a listing is progress against
 * the listing caps, and silence runs into the idle timeout.
 */
export function checkListingProgress(items: number, done: boolean): void {
	if (items === 0 && !done)
		throw new PairlinkError("protocol", "the server sent an empty batch of a listing that goes on");
}

/**
 * A listing that has run past its grace time at less than the minimum rate
 * is given up (PEER_LIMITS.listingMinRate): checked as each batch arrives,
 * so a trickling server is cut off at its next batch, and silence runs into
 * the idle timeout.
 */
export function checkListingPace(elapsedMs: number, entries: number, done: boolean): void {
	if (done || elapsedMs <= PEER_LIMITS.listingGraceMs) return;
	if (entries < (elapsedMs / 1000) * PEER_LIMITS.listingMinRate)
		throw new PairlinkError(
			"timeout",
			`the server listed ${entries} entries in ${Math.round(elapsedMs / 1000)} s, slower than ${PEER_LIMITS.listingMinRate} a second`,
		);
}
