/**
 * What `find` and `pair` without HOST show: the servers heard on the local
 * network, one entry per server (a server on several links is heard at
 * several addresses), recognised against the trust store by their blinded
 * identity. Everything here is a hint for a person; trust is decided by
 * the TLS pin and the PAKE when connecting.
 */
import { recognise } from "../discovery/blinded-id.ts";
import { type BrowseOptions, browse } from "../discovery/browse.ts";
import type { Sighting } from "../discovery/records.ts";
import type { TrustedDevice } from "../store/trust-store.ts";

export interface FoundServer {
	/** Where it was heard, in the order heard. */
	addresses: string[];
	port: number;
	pairingOpen: boolean;
	/** Set when the blinded identity is one of ours: the name we saved it under. */
	trusted?: { name: string; fingerprint: string };
	/** What the server announced about itself (only while its pairing is open). */
	announced?: { name: string; fingerprint: string };
}

export function groupSightings(
	sightings: readonly Sighting[],
	devices: readonly TrustedDevice[],
): FoundServer[] {
	const servers = new Map<string, FoundServer>();
	for (const s of sightings) {
		const key = `${s.blinded.nonce} ${s.blinded.id} ${s.port}`;
		const known = servers.get(key);
		if (known) {
			if (!known.addresses.includes(s.address)) known.addresses.push(s.address);
			continue;
		}
		const fp = recognise(
			s.blinded,
			devices.map((d) => d.fingerprint),
		);
		const device = devices.find((d) => d.fingerprint === fp);
		servers.set(key, {
			addresses: [s.address],
			port: s.port,
			pairingOpen: s.pairingOpen,
			...(device ? { trusted: { name: device.name, fingerprint: device.fingerprint } } : {}),
			...(s.name !== undefined && s.fingerprint !== undefined
				? { announced: { name: s.name, fingerprint: s.fingerprint } }
				: {}),
		});
	}
	return [...servers.values()];
}

export async function findServers(
	devices: readonly TrustedDevice[],
	opts: Pick<BrowseOptions, "timeoutMs" | "onWarning">,
): Promise<FoundServer[]> {
	return groupSightings(await browse(opts), devices);
}
