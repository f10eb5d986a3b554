/**
 * The network links discovery speaks on, and whether a packet's source is
 * on one of them. Pure, except `systemLinks`, which reads the interface list.
 *
 * A server announces only where it listens: a server bound to 127.0.0.1
 * speaks on loopback alone, so nothing it says can leave the machine. And
 * it only ever answers sources on those links (RFC 6762 §11): a packet from
 * elsewhere was routed, or forged, and gets nothing.
 */
import { networkInterfaces } from "node:os";

export interface Link {
	/** The interface's name, e.g. "eth0", "lo". */
	name: string;
	family: "IPv4" | "IPv6";
	/** This host's address on the link. */
	address: string;
	/** Prefix length of the link's subnet. */
	prefix: number;
	internal: boolean;
}

export function systemLinks(): Link[] {
	const links: Link[] = [];
	for (const [name, list] of Object.entries(networkInterfaces())) {
		for (const a of list ?? []) {
			const prefix = Number((a.cidr ?? "").split("/")[1]);
			if (!Number.isInteger(prefix)) continue;
			links.push({
				name,
				family: a.family === "IPv6" ? "IPv6" : "IPv4",
				address: a.address,
				prefix,
				internal: a.internal,
			});
		}
	}
	return links;
}

export const isLoopback = (address: string) =>
	address.startsWith("127.") || address === "::1" || address === "localhost";

/**
 * Where a server bound to `host` announces: for a wildcard, every link of
 * the families it accepts (`::` accepts IPv4 too), loopback included;
 * otherwise the link that holds `host`.
 */
export function linksForBind(host: string, all: readonly Link[]): Link[] {
	const bare = host.replace(/^\[|\]$/g, "");
	const picked =
		bare === "0.0.0.0"
			? all.filter((l) => l.family === "IPv4")
			: bare === "::"
				? [...all]
				: all.filter(
						(l) =>
							l.address === bare ||
							(isLoopback(bare) && isLoopback(l.address) && l.family === familyOf(bare)),
					);
	return usable(picked);
}

/**
 * Where a client looks: everywhere, or on loopback alone when the device it
 * looks for was last reached at a loopback address (it lives on this
 * machine, so the question never needs to leave it).
 */
export function linksForBrowse(all: readonly Link[], loopbackOnly = false): Link[] {
	return usable(loopbackOnly ? all.filter((l) => l.internal) : [...all]);
}

/**
 * One address per family and interface, a routable one before a link-local
 * one (an answer from it needs no zone to be dialled); no IPv6 loopback.
 */
function usable(links: Link[]): Link[] {
	const seen = new Set<string>();
	const linkLocalLast = [...links].sort(
		(a, b) => Number(a.address.startsWith("fe80:")) - Number(b.address.startsWith("fe80:")),
	);
	return linkLocalLast.filter((l) => {
		const key = `${l.name}/${l.family}`;
		if (seen.has(key)) return false;
		if (l.family === "IPv6" && l.internal) return false; // IPv6 loopback has no multicast
		seen.add(key);
		return true;
	});
}

function familyOf(address: string): "IPv4" | "IPv6" {
	return address.includes(":") ? "IPv6" : "IPv4";
}

/** The source is on `link`'s subnet (for loopback: any loopback address). */
export function onLink(source: string, link: Link): boolean {
	const src = source.replace(/^::ffff:(?=\d+\.)/, "").split("%")[0] as string;
	if (link.internal) return isLoopback(src);
	if (familyOf(src) !== link.family) return false;
	const a = toBytes(src);
	const b = toBytes(link.address.split("%")[0] as string);
	if (!a || !b) return false;
	for (let bit = 0; bit < link.prefix; bit++) {
		const mask = 0x80 >> (bit % 8);
		if (((a[bit >> 3] as number) & mask) !== ((b[bit >> 3] as number) & mask)) return false;
	}
	return true;
}

function toBytes(address: string): number[] | undefined {
	if (!address.includes(":")) {
		const parts = address.split(".").map(Number);
		return parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p < 256)
			? parts
			: undefined;
	}
	const [head = "", tail] = address.split("::");
	const h = head ? head.split(":") : [];
	const t = tail ? tail.split(":") : [];
	const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
	if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
	return groups.flatMap((g) => [Number.parseInt(g, 16) >> 8, Number.parseInt(g, 16) & 0xff]);
}
