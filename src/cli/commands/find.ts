import { defineCommand } from "citty";
import { type FoundServer, findServers } from "../../client/discover.ts";
import { formatAddress } from "../../client/target.ts";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import { PairlinkError } from "../../errors.ts";
import { jsonArg, trustStore } from "../context.ts";
import { parseDuration } from "../duration.ts";
import { logger, out, outJson, safe } from "../terminal.ts";

export const DEFAULT_FIND_TIMEOUT = "2s";
const MAX_FIND_TIMEOUT_MS = 60_000;

export const timeoutArg = {
	timeout: {
		type: "string",
		description: "How long to listen for answers",
		default: DEFAULT_FIND_TIMEOUT,
		valueHint: "DURATION",
	},
} as const;

export function findTimeout(text: string): number {
	const ms = parseDuration(text);
	if (ms < 1 || ms > MAX_FIND_TIMEOUT_MS) {
		throw new PairlinkError("usage", "--timeout must be between 1s and 60s");
	}
	return ms;
}

/** The servers on the local network, as this device knows them. */
export async function discover(timeoutMs: number): Promise<FoundServer[]> {
	const devices = (await trustStore()).list();
	return findServers(devices, {
		timeoutMs,
		onWarning: (message) => logger.warn(`Local network: ${message}`),
	});
}

/** One line per server for people: trusted ones by name, others by address. */
export function describeServer(s: FoundServer): string {
	const where = s.addresses.map((a) => formatAddress(a, s.port)).join(", ");
	const pairing = s.pairingOpen ? "pairing open" : "pairing closed";
	if (s.trusted) {
		return `${safe(s.trusted.name)}  ${where}  ${formatFingerprint(s.trusted.fingerprint)}  (trusted, ${pairing})`;
	}
	const who = s.announced
		? `  announces ${safe(s.announced.name)} ${formatFingerprint(s.announced.fingerprint)}`
		: "";
	return `${where}  (${pairing})${who}`;
}

export function serverJson(s: FoundServer): Record<string, unknown> {
	return {
		addresses: s.addresses,
		port: s.port,
		pairing: s.pairingOpen,
		trusted: s.trusted !== undefined,
		...(s.trusted ?? s.announced ?? {}),
	};
}

export const findCommand = defineCommand({
	meta: {
		name: "find",
		description: "List the pairlink servers on the local network",
	},
	args: { ...timeoutArg, ...jsonArg },
	async run({ args }) {
		const servers = await discover(findTimeout(args.timeout));
		if (args.json) {
			for (const s of servers) outJson(serverJson(s));
			return;
		}
		if (servers.length === 0) {
			logger.info("No pairlink server answered on the local network.");
			return;
		}
		for (const s of servers) out(describeServer(s));
	},
});
