/**
 * A stand-in for other hosts on a test network, run with `bun` inside a
 * network namespace the test created (never on the host's own network):
 *
 *   bun mdns-peer.ts sniff
 *       listens on 5353 like any mDNS stack and prints one JSON line per
 *       packet heard ({from, hex}); prints "ready" once listening.
 *   bun mdns-peer.ts forge HOST PORT FINGERPRINT NAME PAIRING(0|1)
 *       announces a server that is not what it claims (pairlink's own
 *       announcer, fed a fingerprint and address of the attacker's choice);
 *       prints "ready" once announced, says goodbye on SIGTERM.
 */
import { createSocket } from "node:dgram";
import { networkInterfaces } from "node:os";
import { startAnnouncer } from "../../src/discovery/announce.ts";

const [mode, ...rest] = process.argv.slice(2);

if (mode === "sniff") {
	const socket = createSocket({ type: "udp4", reuseAddr: true });
	socket.on("message", (msg, rinfo) => {
		process.stdout.write(`${JSON.stringify({ from: rinfo.address, hex: msg.toString("hex") })}\n`);
	});
	socket.bind(5353, "0.0.0.0", () => {
		for (const list of Object.values(networkInterfaces())) {
			for (const a of list ?? []) {
				if (a.family === "IPv4") socket.addMembership("224.0.0.251", a.address);
			}
		}
		process.stdout.write("ready\n");
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
