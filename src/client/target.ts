/** HOST[:PORT] or a trusted device's name -> where to dial and whom to expect. */
import { PairlinkError } from "../errors.ts";
import type { TrustedDevice } from "../store/trust-store.ts";

export const DEFAULT_PORT = 47070;

export interface Target {
	/** As the user typed it, for messages. */
	display: string;
	hostname: string;
	port: number;
	/** Set when HOST named a trusted device: its certificate is expected. */
	named: TrustedDevice | undefined;
	/**
	 * Set when the address came from an announcement the user picked by its
	 * fingerprint (`pair` without HOST): that certificate is expected, and
	 * whoever was last seen at the address does not matter.
	 */
	announced?: string;
}

export function parseHostPort(
	input: string,
	defaultPort = DEFAULT_PORT,
): { hostname: string; port: number } {
	const bad = () =>
		new PairlinkError("usage", `"${input}" is not a HOST[:PORT] or a trusted device name`);
	const s = input.trim();
	if (!s) throw bad();
	let hostname: string;
	let portText: string | undefined;
	const bracketed = /^\[([0-9a-fA-F:.%a-zA-Z]+)\](?::(\d+))?$/.exec(s);
	if (bracketed) {
		hostname = bracketed[1] as string;
		portText = bracketed[2];
	} else if ((s.match(/:/g) ?? []).length > 1) {
		hostname = s; // a bare IPv6 address: no port can follow without brackets
	} else {
		const [h, p] = s.split(":");
		hostname = h as string;
		portText = p;
		if (portText !== undefined && portText === "") throw bad();
	}
	if (!/^[0-9a-zA-Z.\-_:%]+$/.test(hostname)) throw bad();
	let port = defaultPort;
	if (portText !== undefined) {
		port = Number(portText);
		if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
			throw new PairlinkError("usage", `"${portText}" is not a port number (1-65535)`);
		}
	}
	return { hostname, port };
}

/** An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d: people know it as a.b.c.d. */
export function plainAddress(address: string): string {
	return address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
}

export function formatAddress(hostname: string, port: number): string {
	return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

export function resolveTarget(
	input: string,
	findByName: (name: string) => TrustedDevice | undefined,
): Target {
	const device = findByName(input);
	if (device) {
		const { hostname, port } = parseHostPort(device.address);
		return { display: device.name, hostname, port, named: device };
	}
	const { hostname, port } = parseHostPort(input);
	return { display: input, hostname, port, named: undefined };
}
