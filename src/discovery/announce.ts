/**
 * `serve`'s announcer: keeps the server's DNS-SD records on the links it
 * listens on, answers queries for them, renews the blinded identity every
 * few minutes (and whenever pairing opens or closes, so the clear name and
 * fingerprint of a pairing window cannot be linked to later announcements),
 * and says goodbye (TTL 0) when stopped.
 */
import type { MulticastDNS } from "multicast-dns";
import { type BlindedId, newBlindedId, type RandomBytes } from "./blinded-id.ts";
import { type Link, linksForBind, onLink, systemLinks } from "./links.ts";
import { closeMdns, openResponderSocket } from "./mdns-socket.ts";
import { type Announcement, announcementRecords, type RecordSet } from "./records.ts";
import { QueryResponder } from "./responder.ts";

/** SPEC: the nonce is renewed at least every few minutes. */
export const DEFAULT_RENEW_MS = 4 * 60_000;
/** RFC 6762 §8.3: an announcement is sent at least twice, one second apart. */
const REPEAT_MS = 1000;
/** How long the answer to "is a pairing code pending?" is trusted before asking again. */
const PAIRING_STATE_MS = 1000;

export interface AnnouncerOptions {
	/** The address the server listens on: decides the links announced on. */
	host: string;
	port: number;
	name: string;
	fingerprint: string;
	/** Whether a pairing code is pending right now. */
	pairingOpen(): Promise<boolean>;
	renewMs?: number;
	links?: readonly Link[];
	random?: RandomBytes;
	now?: () => number;
	/** Something went wrong on one link; the others carry on. */
	onWarning?(message: string): void;
}

export interface Announcer {
	/** The links being announced on (empty: none could be opened). */
	readonly links: readonly Link[];
	/** Pairing may have opened or closed: look again, and renew if it did. */
	refresh(): Promise<void>;
	/** Goodbye records on every link, then close. */
	stop(): Promise<void>;
}

interface Endpoint {
	link: Link;
	mdns: MulticastDNS;
	responder: QueryResponder;
}

export async function startAnnouncer(opts: AnnouncerOptions): Promise<Announcer> {
	const warn = opts.onWarning ?? (() => undefined);
	const now = opts.now ?? Date.now;
	const endpoints: Endpoint[] = [];
	for (const link of linksForBind(opts.host, opts.links ?? systemLinks())) {
		try {
			endpoints.push({
				link,
				mdns: await openResponderSocket(link, (err) => warn(`${link.name}: ${err.message}`)),
				responder: new QueryResponder(),
			});
		} catch (e) {
			warn(`cannot announce on ${link.name} (${link.address}): ${(e as Error).message}`);
		}
	}

	let pairingOpen = await opts.pairingOpen().catch(() => false);
	let checkedAt = now();
	let blinded: BlindedId = newBlindedId(opts.fingerprint, opts.random);
	let stopped = false;
	const timers = new Set<ReturnType<typeof setTimeout>>();

	const recordsFor = (link: Link, ttl?: number): RecordSet => {
		const a: Announcement = {
			blinded,
			port: opts.port,
			pairingOpen,
			addresses: [link.address],
			...(pairingOpen ? { clear: { name: opts.name, fingerprint: opts.fingerprint } } : {}),
		};
		return announcementRecords(a, ttl);
	};
	const send = (e: Endpoint, set: RecordSet, to?: { address: string; port: number }) =>
		new Promise<void>((resolve) => {
			e.mdns.respond({ answers: [set.pointer, ...set.details] }, to, (err?: Error | null) => {
				if (err) warn(`announcing on ${e.link.name}: ${err.message}`);
				resolve();
			});
		});
	const announceAll = async () => {
		await Promise.all(endpoints.map((e) => send(e, recordsFor(e.link))));
		const again = setTimeout(() => {
			timers.delete(again);
			if (!stopped) void Promise.all(endpoints.map((e) => send(e, recordsFor(e.link))));
		}, REPEAT_MS);
		again.unref?.();
		timers.add(again);
	};
	const goodbyeAll = () => Promise.all(endpoints.map((e) => send(e, recordsFor(e.link, 0))));
	const renew = async () => {
		await goodbyeAll();
		blinded = newBlindedId(opts.fingerprint, opts.random);
		await announceAll();
	};
	// One look at a time: queries arriving together must not renew twice.
	let looking: Promise<void> | undefined;
	const refresh = () => {
		looking ??= (async () => {
			const open = await opts.pairingOpen().catch(() => false);
			checkedAt = now();
			if (stopped || open === pairingOpen) return;
			await goodbyeAll();
			pairingOpen = open;
			blinded = newBlindedId(opts.fingerprint, opts.random);
			await announceAll();
		})().finally(() => {
			looking = undefined;
		});
		return looking;
	};

	for (const e of endpoints) {
		e.mdns.on("query", (query, rinfo) => {
			if (stopped || !onLink(rinfo.address, e.link)) return;
			void (async () => {
				if (now() - checkedAt > PAIRING_STATE_MS) await refresh();
				const reply = e.responder.reply(query, rinfo, recordsFor(e.link), now());
				if (!reply || stopped) return;
				const to = reply.to === "multicast" ? undefined : reply.to;
				e.mdns.respond(reply.packet, to, (err?: Error | null) => {
					if (err) warn(`answering on ${e.link.name}: ${err.message}`);
				});
			})();
		});
	}
	await announceAll();
	const renewal = setInterval(() => void renew(), opts.renewMs ?? DEFAULT_RENEW_MS);
	renewal.unref?.();

	return {
		links: endpoints.map((e) => e.link),
		refresh,
		async stop() {
			if (stopped) return;
			stopped = true;
			clearInterval(renewal);
			for (const t of timers) clearTimeout(t);
			await goodbyeAll();
			await Promise.all(endpoints.map((e) => closeMdns(e.mdns)));
		},
	};
}
