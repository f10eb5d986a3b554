/**
 * One multicast-dns endpoint per link: the only place discovery touches
 * UDP. multicast-dns (with dns-packet) does the codec, the group membership
 * and the socket; a packet it cannot decode is dropped there ("warning"),
 * never thrown at us.
 */
import { createSocket } from "node:dgram";
import makeMdns, { type MulticastDNS } from "multicast-dns";
import type { Link } from "./links.ts";
import { MDNS_PORT } from "./responder.ts";

const GROUP = { IPv4: "224.0.0.251", IPv6: "ff02::fb" } as const;
/**
 * SO_REUSEPORT next to SO_REUSEADDR where Node's dgram offers it as an option
 * (Linux); elsewhere it refuses the option, and on macOS and the BSDs
 * reuseAddr already sets SO_REUSEPORT.
 */
const REUSE_PORT = process.platform === "linux";
/** Undecodable packets ("warning") are dropped by design; so are a browser's socket errors. */
const ignore = () => undefined;

/** multicast-dns names an IPv6 interface "::%eth0". */
const mdnsInterface = (link: Link) => (link.family === "IPv4" ? link.address : `::%${link.name}`);

/**
 * A responder's endpoint: bound to port 5353 with both SO_REUSEADDR and
 * SO_REUSEPORT, so it shares the port with a system responder (avahi,
 * mDNSResponder) whichever of the two that one set. Multicast reaches every
 * socket bound there.
 */
export function openResponderSocket(
	link: Link,
	onError: (e: Error) => void,
): Promise<MulticastDNS> {
	const type = link.family === "IPv4" ? "udp4" : "udp6";
	const m = makeMdns({
		socket: createSocket({ type, reuseAddr: true, reusePort: REUSE_PORT, ipv6Only: true }),
		type,
		ip: GROUP[link.family],
		port: MDNS_PORT,
		interface: mdnsInterface(link),
		bind: link.family === "IPv4" ? "0.0.0.0" : "::",
		loopback: true,
		ttl: 255,
	});
	return new Promise((resolve, reject) => {
		const failed = (e: Error) => {
			m.destroy();
			reject(e);
		};
		m.once("error", failed);
		m.once("ready", () => {
			m.removeListener("error", failed);
			// From here on an error is reported, never thrown by an emitter nobody listens to.
			m.on("error", onError);
			m.on("warning", ignore);
			resolve(m);
		});
	});
}

/**
 * A browser's endpoint: an ephemeral port on the link's own address, so
 * servers answer it by unicast (RFC 6762 §6.7) and the question goes out
 * on this link only.
 */
export function openBrowserSocket(link: Link): Promise<MulticastDNS> {
	const socket = createSocket({ type: link.family === "IPv4" ? "udp4" : "udp6", ipv6Only: true });
	return new Promise((resolve, reject) => {
		socket.once("error", reject);
		// Only a link-local address needs its zone (and Bun refuses one on any other).
		const bindTo = link.address.startsWith("fe80:") ? `${link.address}%${link.name}` : link.address;
		socket.bind(0, bindTo, () => {
			socket.removeListener("error", reject);
			try {
				socket.setMulticastInterface(mdnsInterface(link));
				socket.setMulticastTTL(255);
				socket.setMulticastLoopback(true);
			} catch (e) {
				socket.close();
				reject(e);
				return;
			}
			const m = makeMdns({
				socket,
				bind: false,
				multicast: false,
				type: link.family === "IPv4" ? "udp4" : "udp6",
				ip: GROUP[link.family],
				interface: mdnsInterface(link),
				port: MDNS_PORT,
			});
			m.on("error", ignore);
			m.on("warning", ignore);
			resolve(m);
		});
	});
}

export function closeMdns(m: MulticastDNS): Promise<void> {
	return new Promise((resolve) => m.destroy(() => resolve()));
}
