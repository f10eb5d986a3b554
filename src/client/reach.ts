/**
 * SPEC's rule for names versus addresses. By address: connect there, and
 * the pin decides (only the certificate last seen at that address). By the
 * name of a trusted device: try its saved address; when that fails or
 * answers with another certificate, look for the device's fingerprint on
 * the local network and connect where it is found — TLS pinning still
 * decides, so a forged announcement costs one connection attempt and
 * nothing else — and the address that worked is saved. Only when the
 * fingerprint is not found does a different certificate give the
 * identity-changed warning.
 */
import { recognise } from "../discovery/blinded-id.ts";
import { browse } from "../discovery/browse.ts";
import { isLoopback } from "../discovery/links.ts";
import type { Sighting } from "../discovery/records.ts";
import { PairlinkError } from "../errors.ts";
import { type Connection, type ConnectOptions, connect } from "./connect.ts";
import type { Target } from "./target.ts";

/** How long a name's fallback listens for its device on the network. */
export const LOOKUP_TIMEOUT_MS = 2000;
/** …and, once it answered, for others claiming the same fingerprint (a forger must not hide it). */
const LOOKUP_SETTLE_MS = 250;
/** At most this many addresses claiming the fingerprint are tried: forgeries cost bounded time. */
export const MAX_CANDIDATES = 4;

/** What "the saved address failed or answered with another certificate" looks like. */
const WORTH_LOOKING: ReadonlySet<string> = new Set([
	"connect-failed",
	"timeout",
	"protocol",
	"no-certificate",
	"fingerprint-changed",
]);

export interface ReachOptions extends Omit<ConnectOptions, "target"> {
	/** Finds where the device with this fingerprint is announced (default: the local network). */
	lookup?(fingerprint: string, nearLoopback: boolean): Promise<Sighting[]>;
}

export async function reach(target: Target, opts: ReachOptions): Promise<Connection> {
	const { lookup = lookUpOnNetwork, ...rest } = opts;
	const { named } = target;
	try {
		return await connect({ ...rest, target });
	} catch (e) {
		if (!named || !(e instanceof PairlinkError) || !WORTH_LOOKING.has(e.code)) throw e;
		const failures: PairlinkError[] = [e];
		const near = isLoopback(target.hostname);
		const found = await lookup(named.fingerprint, near);
		const elsewhere = found.filter((s) => s.address !== target.hostname || s.port !== target.port);
		for (const s of elsewhere.slice(0, MAX_CANDIDATES)) {
			try {
				const conn = await connect({
					...rest,
					target: { ...target, hostname: s.address, port: s.port },
				});
				await conn.recorded; // the new address is saved before anything else happens
				return conn;
			} catch (again) {
				if (!(again instanceof PairlinkError)) throw again;
				failures.push(again);
			}
		}
		// The loud warning, if any address showed another certificate; else why the saved one failed.
		throw failures.find((f) => f.code === "fingerprint-changed") ?? e;
	}
}

async function lookUpOnNetwork(fingerprint: string, loopbackOnly: boolean): Promise<Sighting[]> {
	const mine = (s: Sighting) => recognise(s.blinded, [fingerprint]) !== undefined;
	const seen = await browse({
		timeoutMs: LOOKUP_TIMEOUT_MS,
		loopbackOnly,
		until: mine,
		settleMs: LOOKUP_SETTLE_MS,
	});
	return seen.filter(mine);
}
