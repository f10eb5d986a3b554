/** What every client command does first: find the server, pin it, pair if needed. */
import { type Connection, connect } from "../client/connect.ts";
import { resolveTarget } from "../client/target.ts";
import { PairlinkError } from "../errors.ts";
import { TrustStore, validateDeviceName } from "../store/trust-store.ts";
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

export async function openConnection(host: string, opts: OpenOptions = {}): Promise<Connection> {
	// Everything that can be a usage error is checked before any state is created or any byte sent.
	const saveAs = opts.saveAs === undefined ? undefined : validateDeviceName(opts.saveAs);
	const trust = await TrustStore.load(stateDir());
	const target = resolveTarget(host, (name) => trust.findByName(name));
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
	const identity = await deviceIdentity();
	return connect({
		target,
		identity,
		trust,
		...(code ? { code } : {}),
		...(opts.wantPair ? { wantPair: true } : {}),
		...(saveAs ? { saveAs } : {}),
	});
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
