/**
 * `find`'s half: ask every link "which pairlink servers are there?" and
 * collect what answers within the timeout. What comes back is a hint — an
 * address to try — never a decision about trust.
 */
import type { MulticastDNS } from "multicast-dns";
import { type Link, linksForBrowse, onLink, systemLinks } from "./links.ts";
import { closeMdns, openBrowserSocket } from "./mdns-socket.ts";
import { readSightings, SERVICE, type Sighting } from "./records.ts";

/** UDP may drop a question: ask again at these times (ms after the start), within the timeout. */
const QUERY_AT_MS = [0, 300, 1000];
/** More servers than this on one network are not listed (memory stays bounded). */
export const MAX_SIGHTINGS = 64;

export interface BrowseOptions {
	timeoutMs: number;
	links?: readonly Link[];
	/** Look on loopback only (the device sought was last reached on this machine). */
	loopbackOnly?: boolean;
	/** Stop once this sighting turns up (and `settleMs` more have passed). */
	until?(sighting: Sighting): boolean;
	/**
	 * After `until` matched, go on listening this long: other servers answer
	 * the same question within milliseconds, and a forger answering first
	 * must not hide the real one.
	 */
	settleMs?: number;
	onWarning?(message: string): void;
}

export async function browse(opts: BrowseOptions): Promise<Sighting[]> {
	const warn = opts.onWarning ?? (() => undefined);
	const sockets: { link: Link; mdns: MulticastDNS }[] = [];
	for (const link of linksForBrowse(opts.links ?? systemLinks(), opts.loopbackOnly)) {
		try {
			sockets.push({ link, mdns: await openBrowserSocket(link) });
		} catch (e) {
			warn(`cannot look on ${link.name} (${link.address}): ${(e as Error).message}`);
		}
	}
	const found = new Map<string, Sighting>();
	const timers: ReturnType<typeof setTimeout>[] = [];
	let settling = false;
	await new Promise<void>((resolve) => {
		timers.push(setTimeout(resolve, opts.timeoutMs));
		for (const { link, mdns: m } of sockets) {
			m.on("response", (packet, rinfo) => {
				// An announced address off this link is never dialled because of an announcement.
				for (const heard of readSightings(packet, rinfo.address, (a) => onLink(a, link))) {
					const s = { ...heard, address: withZone(heard.address, link) };
					const key = `${s.blinded.id} ${s.address} ${s.port}`;
					if (found.size >= MAX_SIGHTINGS && !found.has(key)) return;
					found.set(key, s);
					if (opts.until?.(s) && !settling) {
						settling = true;
						timers.push(setTimeout(resolve, opts.settleMs ?? 0));
					}
				}
			});
		}
		for (const at of QUERY_AT_MS.filter((t) => t < opts.timeoutMs)) {
			timers.push(
				setTimeout(() => {
					for (const { mdns: m } of sockets)
						m.query({ questions: [{ name: SERVICE, type: "PTR" }] });
				}, at),
			);
		}
	});
	for (const t of timers) clearTimeout(t);
	await Promise.all(sockets.map((s) => closeMdns(s.mdns)));
	return [...found.values()];
}

/** A link-local address is dialled through the link it was heard on. */
function withZone(address: string, link: Link): string {
	return address.startsWith("fe80:") && !address.includes("%")
		? `${address}%${link.name}`
		: address;
}
