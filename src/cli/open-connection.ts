/** What every client command does first: find the server, pin it, pair if needed. */
import type { Connection } from "../client/connect.ts";
import { reach } from "../client/reach.ts";
import { resolveTarget, type Target } from "../client/target.ts";
import { PairlinkError } from "../errors.ts";
import { type TrustedDevice, TrustStore, validateDeviceName } from "../store/trust-store.ts";
import { codeSource } from "./code-input.ts";
import { deviceIdentity, stateDir } from "./context.ts";

export interface OpenOptions {
	codeStdin?: boolean;
	keepStdin?: boolean;
	/** false: never prompt for a pairing code (see codeSource). */
	prompt?: boolean;
	wantPair?: boolean;
	saveAs?: string | undefined;
}

/** A server picked from the local network: where it is, and the fingerprint it announced. */
export interface Picked {
	host: string;
	announced: string | undefined;
}

/** `host` may be found only once the command line is known to be usable (`pair` without HOST). */
export async function openConnection(
	host: string | (() => Promise<Picked>),
	opts: OpenOptions = {},
): Promise<Connection> {
	// Everything that can be a usage error is checked before any state is created or any byte sent.
	const saveAs = opts.saveAs === undefined ? undefined : validateDeviceName(opts.saveAs);
	const trust = await TrustStore.load(stateDir());
	const byName = (name: string) => trust.findByName(name);
	const given = typeof host === "string" ? resolveTarget(host, byName) : undefined;
	const code = codeSource({
		codeStdin: opts.codeStdin ?? false,
		keepStdin: opts.keepStdin ?? false,
		prompt: opts.prompt ?? true,
	});
	if (opts.wantPair && !code) {
		throw new PairlinkError(
			"usage",
			"Pairing needs the code shown by the server: set PAIRLINK_CODE, pass --code-stdin, or run this in a terminal to be asked for it",
		);
	}
	const target = given ?? (await pickedTarget(host as () => Promise<Picked>, byName));
	const identity = await deviceIdentity();
	return reach(target, {
		identity,
		trust,
		...(code ? { code } : {}),
		...(opts.wantPair ? { wantPair: true } : {}),
		...(saveAs ? { saveAs } : {}),
	});
}

async function pickedTarget(
	pick: () => Promise<Picked>,
	byName: (name: string) => TrustedDevice | undefined,
): Promise<Target> {
	const { host, announced } = await pick();
	return { ...resolveTarget(host, byName), ...(announced ? { announced } : {}) };
}

/** Open, run `use`, and close cleanly whatever happens. */
export async function withSession<T>(
	host: string,
	opts: OpenOptions,
	use: (conn: Connection) => Promise<T>,
): Promise<T> {
	const conn = await openConnection(host, opts);
	try {
		return await use(conn);
	} finally {
		conn.close();
		await Promise.race([conn.closed, new Promise((r) => setTimeout(r, 1000).unref())]);
	}
}
