/**
 * A stand-in for other hosts on a test network, run with `bun` inside a
 * network namespace the test created (never on the host's own network):
 *
 *   bun mdns-peer.ts sniff
 *       listens on 5353 like any mDNS stack, asks once for pairlink servers
 *       (who answer it by multicast), and prints one JSON line per packet
 *       heard ({from, port, hex}); prints "ready" once it has asked.
 *   bun mdns-peer.ts forge HOST PORT FINGERPRINT NAME PAIRING(0|1)
 *       announces a server that is not what it claims (pairlink's own
 *       announcer, fed a fingerprint and address of the attacker's choice);
 *       prints "ready" once announced, says goodbye on SIGTERM.
 */
import { createSocket } from "node:dgram";
import { networkInterfaces } from "node:os";
import { encode } from "dns-packet";
import { startAnnouncer } from "../../src/discovery/announce.ts";

const [mode, ...rest] = process.argv.slice(2);

if (mode === "sniff") {
	const socket = createSocket({ type: "udp4", reuseAddr: true });
	socket.on("message", (msg, rinfo) => {
		const heard = { from: rinfo.address, port: rinfo.port, hex: msg.toString("hex") };
		process.stdout.write(`${JSON.stringify(heard)}\n`);
	});
	socket.bind(5353, "0.0.0.0", () => {
		const v4 = Object.values(networkInterfaces())
			.flat()
			.filter((a) => a?.family === "IPv4");
		for (const a of v4) if (a) socket.addMembership("224.0.0.251", a.address);
		// The namespace has no default route: name the link the question goes out on.
		const link = v4.find((a) => a && !a.internal);
		if (link) socket.setMulticastInterface(link.address);
		// Ask once, as any mDNS stack on port 5353 would: servers answer by multicast.
		const query = encode({
			type: "query",
			questions: [{ name: "_pairlink._tcp.local", type: "PTR" }],
		});
		socket.send(query, 5353, "224.0.0.251", () => process.stdout.write("ready\n"));
	});
	process.on("SIGTERM", () => socket.close(() => process.exit(0)));
} else if (mode === "forge") {
	const [host = "", port = "", fingerprint = "", name = "", pairing = ""] = rest;
	const announcer = await startAnnouncer({
		host,
		port: Number(port),
		name,
		fingerprint,
		pairingOpen: async () => pairing === "1",
	});
	process.stdout.write("ready\n");
	process.on("SIGTERM", () => void announcer.stop().then(() => process.exit(0)));
} else {
	process.stderr.write("usage: mdns-peer.ts sniff | forge HOST PORT FINGERPRINT NAME PAIRING\n");
	process.exit(2);
}
