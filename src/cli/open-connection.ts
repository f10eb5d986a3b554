/** What every client command does first: find the server, pin it, pair if needed. */
import type { Connection } from "../client/connect.ts";
import { reach } from "../client/reach.ts";
import { formatAddress, resolveTarget, type Target } from "../client/target.ts";
import { formatFingerprint } from "../crypto/fingerprint.ts";
import { PairlinkError } from "../errors.ts";
import { type TrustedDevice, TrustStore, validateDeviceName } from "../store/trust-store.ts";
import { codeSource } from "./code-input.ts";
import { deviceIdentity, stateDir } from "./context.ts";
import { safe } from "./terminal.ts";

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
	const conn = await reach(target, {
		identity,
		trust,
		...(code ? { code } : {}),
		...(opts.wantPair ? { wantPair: true } : {}),
		...(saveAs ? { saveAs } : {}),
	}).catch((e) => {
		const explained = opts.wantPair ? explainPairing(e, target, trust) : e;
		return Promise.reject(explainUnreachable(explained, target));
	});
	// Whatever command paired, the person can now compare the fingerprint with the server's.
	if (conn.paired && !opts.wantPair) process.stderr.write(`${pairedLine(conn)}\n`);
	return conn;
}

export const pairedLine = (conn: Connection) =>
	`Paired with ${safe(conn.peer.name)} (${formatFingerprint(conn.peer.fingerprint)}).`;

async function pickedTarget(
	pick: () => Promise<Picked>,
	byName: (name: string) => TrustedDevice | undefined,
): Promise<Target> {
	const { host, announced } = await pick();
	return { ...resolveTarget(host, byName), ...(announced ? { announced } : {}) };
}

/**
 * `pair` refused: the server's wire code says what it refused, and this
 * device's own trust store says whether pairing was needed at all.
 */
function explainPairing(e: unknown, target: Target, trust: TrustStore): unknown {
	if (!(e instanceof PairlinkError)) return e;
	const where = formatAddress(target.hostname, target.port);
	const known = target.named ?? trust.list().find((d) => d.address === where);
	// The server let this device past TLS without a pending code: it trusts it already.
	if (known && ["no-code", "code-expired", "code-used"].includes(e.code))
		return new AlreadyPaired(known.name, where, e);
	if (e.code === "not-trusted" || e.code === "no-code")
		return new PairlinkError(
			"no-code",
			`The server at ${where} is not accepting pairing: it has no pending code, or runs with --no-pair`,
			{ advice: "pairing-closed", cause: e },
		);
	return e;
}

/** `pair` with a device this one already trusts: nothing to do, which is success (exit 0). */
export class AlreadyPaired extends PairlinkError {
	constructor(name: string, where: string, cause: PairlinkError) {
		super(cause.code, `Already paired with ${name} (${where}); nothing to do`, {
			advice: "already-paired",
			device: name,
			cause,
		});
	}
}

/** Say which address was tried and why, in the words of what the user typed. */
function explainUnreachable(e: unknown, target: Target): unknown {
	if (!(e instanceof PairlinkError) || e.advice) return e;
	const where = formatAddress(target.hostname, target.port);
	// A server at its connection limit hangs up before TLS, where it cannot say why
	// (the same limit otherwise answers "busy"): say the likely reason once.
	if (/^the TLS handshake with .* failed: ECONNRESET/.test(e.message))
		return new PairlinkError(
			"connect-failed",
			`The server at ${where} hung up during the TLS handshake: it is probably busy (too many connections)`,
			{ advice: "server-busy", cause: e },
		);
	// Only a failure to reach the address at all (dial.ts: "cannot connect", "no answer"),
	// not a server that answered and refused.
	if (!/^(cannot connect|no answer)/.test(e.message)) return e;
	if (target.named)
		return new PairlinkError(
			e.code,
			`Cannot reach ${target.named.name} at its last known address ${where}`,
			{ advice: "stale-address", cause: e },
		);
	if (/ENOTFOUND|EAI_|getaddrinfo|DNS/i.test(e.message))
		return new PairlinkError(
			"connect-failed",
			`There is no trusted device and no host named "${target.hostname}"`,
			{ advice: "unknown-host", cause: e },
		);
	return e;
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
