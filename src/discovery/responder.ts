/**
 * When and how a server answers a query. Pure: the packet, its source and
 * the clock come in, a reply (or nothing) goes out.
 *
 * - A querier on port 5353 (a full mDNS stack) is answered by multicast, at
 *   most once a second (RFC 6762 §6).
 * - Any other port is a "legacy unicast" querier (RFC 6762 §6.7, how
 *   `pairlink find` asks): it gets a unicast reply with the query's id and
 *   TTLs of at most 10 s, limited per source and in total, so a flood of
 *   queries (or spoofed ones) costs a bounded number of small packets.
 */
import type { Answer, Packet } from "dns-packet";
import { RateLimit } from "./rate-limit.ts";
import { answersFor, LEGACY_UNICAST_TTL, type RecordSet } from "./records.ts";

export const MDNS_PORT = 5353;
const AUTHORITATIVE_ANSWER = 1 << 10;

export interface Source {
	address: string;
	port: number;
}

export interface Reply {
	to: Source | "multicast";
	packet: Packet & { answers: Answer[] };
}

export class QueryResponder {
	private readonly multicast = new RateLimit(1, 1, 1);
	private readonly perSource = new RateLimit(5, 5);
	private readonly total = new RateLimit(20, 20, 1);

	reply(query: Packet, from: Source, set: RecordSet, nowMs: number): Reply | undefined {
		if (query.type !== "query" || !query.questions?.length) return undefined;
		const answers = answersFor(query.questions, set);
		if (answers.length === 0) return undefined;
		if (from.port === MDNS_PORT) {
			if (!this.multicast.allow("", nowMs)) return undefined;
			return {
				to: "multicast",
				packet: { type: "response", flags: AUTHORITATIVE_ANSWER, answers },
			};
		}
		// Per source first: one flooding source must not use up everybody's share.
		if (!this.perSource.allow(from.address, nowMs) || !this.total.allow("", nowMs)) {
			return undefined;
		}
		return {
			to: from,
			packet: {
				type: "response",
				id: query.id ?? 0,
				flags: AUTHORITATIVE_ANSWER,
				questions: query.questions.slice(0, 16),
				answers: answers.map(legacy),
			},
		};
	}
}

function legacy(r: Answer): Answer {
	const ttl = "ttl" in r && r.ttl !== undefined ? r.ttl : LEGACY_UNICAST_TTL;
	return { ...r, ttl: Math.min(ttl, LEGACY_UNICAST_TTL), flush: false } as Answer;
}
