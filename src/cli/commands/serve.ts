import { stat } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { formatAddress, plainAddress } from "../../client/target.ts";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import { DEFAULT_CODE_WORDS } from "../../crypto/pairing-code.ts";
import { type Announcer, startAnnouncer } from "../../discovery/announce.ts";
import { EXIT, PairlinkError } from "../../errors.ts";
import { sweepAbandonedParts } from "../../fs/part-sweep.ts";
import { SandboxRoot } from "../../fs/root.ts";
import { stateDirPairingGate } from "../../server/pairing-gate.ts";
import {
	DEFAULT_MAX_CLIENTS,
	DEFAULT_STOP_GRACE_MS,
	type ServerEvent,
	startServer,
} from "../../server/server.ts";
import type { ServePolicy } from "../../session/policy.ts";
import { FilePartRecords } from "../../store/part-records.ts";
import { loadPendingCode, pendingCodeStatus } from "../../store/pending-code.ts";
import { validateDeviceName } from "../../store/trust-store.ts";
import { ANY_ADDRESS } from "../../transport/listen.ts";
import { deviceIdentity, jsonArg, stateDir, trustStore } from "../context.ts";
import { describeDuration } from "../duration.ts";
import { formatBytes, formatLocalTime } from "../format.ts";
import { logger, out, outJson, safe } from "../terminal.ts";
import { createPendingCode, DEFAULT_CODE_TTL } from "./code.ts";

export const DEFAULT_SERVE_PORT = 47070;

export const serveCommand = defineCommand({
	meta: {
		name: "serve",
		description:
			"Share a directory with trusted devices, and accept pairing while a code is pending",
	},
	args: {
		dir: {
			type: "positional",
			description: "Directory to share (default: the current directory)",
			required: false,
		},
		host: {
			type: "string",
			description: "Address to listen on (default: every IPv4 and IPv6 address)",
			default: ANY_ADDRESS,
			valueHint: "ADDR",
		},
		port: {
			type: "string",
			description: "Port to listen on (0 picks a free one)",
			default: String(DEFAULT_SERVE_PORT),
			valueHint: "N",
		},
		name: {
			type: "string",
			description: "Name to announce to peers (default: this device's name)",
		},
		"read-only": { type: "boolean", description: "Refuse uploads, mkdir and rm" },
		"allow-overwrite": {
			type: "boolean",
			description: "Let clients replace existing files (they must also pass --overwrite)",
		},
		"allow-delete": { type: "boolean", description: "Let clients remove files and directories" },
		// citty reads --no-pair as "pair: false"; a flag named "no-pair" would never be set.
		pair: {
			type: "boolean",
			default: true,
			description: "Accept pairing while a code is pending (the default)",
			negativeDescription: "Do not accept pairing, even with a pending code",
		},
		"max-clients": {
			type: "string",
			description: "Most clients served at once",
			default: String(DEFAULT_MAX_CLIENTS),
			valueHint: "N",
		},
		announce: {
			type: "boolean",
			default: true,
			description: "Announce this server on the local network (the default)",
			negativeDescription: "Do not announce this server on the local network",
		},
		...jsonArg,
	},
	async run({ args }) {
		const dir = resolve(args.dir ?? ".");
		const info = await stat(dir).catch(() => undefined);
		if (!info) throw new PairlinkError("usage", `${dir} does not exist`);
		if (!info.isDirectory()) throw new PairlinkError("usage", `${dir} is not a directory`);
		// Refused rather than guessed: which of the two did the owner mean?
		for (const allow of ["allow-delete", "allow-overwrite"] as const)
			if (args["read-only"] && args[allow])
				throw new PairlinkError(
					"usage",
					`--read-only refuses every change, so --${allow} contradicts it`,
					{ advice: "read-only-contradiction" },
				);
		const port = wholeNumber(args.port, "--port", 0, 65535);
		const maxClients = wholeNumber(args["max-clients"], "--max-clients", 1, 10_000);
		const noPair = args.pair === false;
		const identity = await deviceIdentity();
		// After the identity: the state directory exists now, so it can be hidden by its inode.
		const sandbox = await SandboxRoot.openShare(dir, stateDir());
		const root = sandbox.dir;
		const partRecords = new FilePartRecords(stateDir());
		// Abandoned part files go by their records' age (now, then hourly), and past
		// a peer's cap when one of its connections ends; sweeps never overlap.
		const sweep = coalesced(() => sweepAbandonedParts(partRecords).catch(() => undefined));
		sweep();
		setInterval(sweep, 3600_000).unref();
		const name = args.name === undefined ? identity.name : validateDeviceName(args.name);
		const trust = await trustStore();

		let code: { code: string; expiresAt: string; ttlMs: number } | undefined;
		if (!noPair) {
			const pending = await loadPendingCode(stateDir());
			if (pending && pendingCodeStatus(pending, new Date()) === "pending") {
				code = {
					code: pending.code,
					expiresAt: pending.expiresAt,
					ttlMs: Date.parse(pending.expiresAt) - Date.now(),
				};
			} else {
				code = await createPendingCode(DEFAULT_CODE_WORDS, DEFAULT_CODE_TTL);
			}
		}

		const json = args.json === true;
		const policy = {
			readOnly: args["read-only"] === true,
			allowOverwrite: args["allow-overwrite"] === true,
			allowDelete: args["allow-delete"] === true,
		};
		const log = eventLog(json);
		const server = startServer({
			hostname: args.host,
			port,
			identity: { ...identity, name },
			trust,
			root: sandbox,
			partRecords,
			policy,
			...(noPair ? {} : { pairing: stateDirPairingGate(stateDir()) }),
			maxClients,
			onEvent: (e) => {
				// Pairing just closed: the announcement stops showing name and fingerprint.
				if (e.event === "paired") void announcer?.refresh();
				if (e.event === "disconnected") sweep();
				log(e);
			},
		});

		let announcer: Announcer | undefined;
		if (args.announce !== false) {
			announcer = await startAnnouncer({
				host: server.hostname,
				port: server.port,
				name,
				fingerprint: identity.fingerprint,
				pairingOpen: async () => {
					const pending = noPair ? undefined : await loadPendingCode(stateDir());
					return pending !== undefined && pendingCodeStatus(pending, new Date()) === "pending";
				},
				onWarning: (message) => logger.warn(`Local network announcement: ${message}`),
			});
		}

		// Before the banner: a signal sent as soon as it is read must find the handlers.
		const stopped = stopOnSignals(
			() => Promise.all([server.stop(), announcer?.stop()]).then(() => {}),
			log,
		);
		const addresses = reachableAddresses(server.hostname, server.port);
		if (json)
			log({
				event: "listening",
				host: server.hostname,
				port: server.port,
				root,
				fingerprint: identity.fingerprint,
				policy,
				...(code ? { code: code.code } : {}),
			});
		else {
			out(`Serving ${safe(root)} as ${safe(name)}`);
			out(`  address      ${addresses.join(", ")}`);
			out(`  fingerprint  ${formatFingerprint(identity.fingerprint)}`);
			out(`  allows       ${describePolicy(policy)}`);
			if (code) {
				out(
					`  pairing code ${code.code}  (works once, expires in ${describeDuration(code.ttlMs)})`,
				);
				out(
					announcer?.links.length
						? `On the other device: pairlink pair  (or: pairlink pair ${addresses[0]})`
						: `On the other device: pairlink pair ${addresses[0]}`,
				);
			} else out("  pairing      off (--no-pair)");
			out("Press Ctrl-C to stop.");
		}
		// A new code opens pairing: the announcement says so at once, not at its next renewal.
		const watch = noPair
			? undefined
			: watchCode(code?.code, (e) => {
					void announcer?.refresh();
					log(e);
				});
		await stopped;
		clearInterval(watch);
	},
});

/** `run` at most once at a time; a call while it runs asks for one more run after it. */
function coalesced(run: () => Promise<unknown>): () => void {
	let running = false;
	let again = false;
	const go = (): void => {
		if (running) {
			again = true;
			return;
		}
		running = true;
		void run().finally(() => {
			running = false;
			if (again) {
				again = false;
				go();
			}
		});
	};
	return go;
}

/** What serve logs: the server's events, and what only the command knows. */
type LogEvent =
	| Exclude<ServerEvent, { event: "stopped" }>
	| (Extract<ServerEvent, { event: "listening" }> & {
			root: string;
			policy: ServePolicy;
			code?: string;
	  })
	| { event: "code"; code: string; expiresAt: string }
	| { event: "stopping"; signal: NodeJS.Signals; graceMs: number }
	| { event: "stopped"; signal?: NodeJS.Signals; forced?: boolean };

/** What the share allows, said in the banner so nobody has to guess from refusals. */
export function describePolicy(p: ServePolicy): string {
	if (p.readOnly) return "downloads only (--read-only): uploads, mkdir and rm are refused";
	return [
		"downloads, uploads, mkdir",
		p.allowOverwrite ? "replacing files" : "no replacing files (--allow-overwrite)",
		p.allowDelete ? "rm" : "no rm (--allow-delete)",
	].join("; ");
}

/**
 * `pairlink code` in another shell replaces the pending code: say so, or a
 * person types the old one (which then counts against the new one).
 */
function watchCode(shown: string | undefined, log: (e: LogEvent) => void) {
	let last = shown;
	let busy = false;
	const timer = setInterval(async () => {
		if (busy) return;
		busy = true;
		const pending = await loadPendingCode(stateDir()).catch(() => undefined);
		busy = false;
		if (!pending || pendingCodeStatus(pending, new Date()) !== "pending") return;
		if (pending.code === last) return;
		last = pending.code;
		log({ event: "code", code: pending.code, expiresAt: pending.expiresAt });
	}, CODE_POLL_MS);
	timer.unref();
	return timer;
}

const CODE_POLL_MS = 1000;

/**
 * SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal went away) all stop
 * gracefully and end with a `stopped` event; a second signal stops at once,
 * still logging `stopped`.
 */
async function stopOnSignals(stop: () => Promise<void>, log: (e: LogEvent) => void): Promise<void> {
	let first: NodeJS.Signals | undefined;
	let finished!: () => void;
	const done = new Promise<void>((r) => {
		finished = r;
	});
	const onSignal = (signal: NodeJS.Signals) => {
		if (first) {
			log({ event: "stopped", signal, forced: true });
			process.exit(EXIT.ok);
		}
		first = signal;
		log({ event: "stopping", signal, graceMs: DEFAULT_STOP_GRACE_MS });
		void stop().then(finished);
	};
	const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
	for (const s of signals) process.on(s, onSignal);
	await done;
	for (const s of signals) process.off(s, onSignal);
}

/** Every log line and event carries its time: local with offset for people, ISO in JSON. */
function eventLog(json: boolean): (e: LogEvent) => void {
	return (e) => {
		const event = "address" in e ? { ...e, address: plainAddress(e.address) } : e;
		if (json) outJson({ ...event, time: new Date().toISOString() });
		else {
			const line = describeEvent(event);
			if (line !== undefined) out(`${formatLocalTime(Date.now(), true)}  ${line}`);
		}
	};
}

function describeEvent(e: LogEvent): string | undefined {
	switch (e.event) {
		case "connected":
			return `connected     ${safe(e.name)} from ${safe(e.address)}`;
		case "disconnected":
			return `disconnected  ${safe(e.name)}${e.reason ? ` (${safe(e.reason)})` : ""}`;
		case "paired":
			return `paired        ${safe(e.name)} (${formatFingerprint(e.fingerprint)}) from ${safe(e.address)}`;
		case "refused":
			return `refused       ${safe(e.address)}: ${safe(e.reason)}`;
		case "transfer":
			return `${e.op === "get" ? "sent    " : "received"}      ${safe(e.path)} (${formatBytes(e.bytes)}${e.resumedFrom ? `, resumed at ${formatBytes(e.resumedFrom)}` : ""}) ${e.op === "get" ? "to" : "from"} ${safe(e.device)}`;
		case "operation":
			return e.refused
				? `refused       ${e.op} ${safe(e.path || "/")} by ${safe(e.device)}: ${e.refused}`
				: `${e.op.padEnd(14)}${safe(e.path)} by ${safe(e.device)}`;
		case "interrupted":
			return `interrupted   put ${safe(e.path)} by ${safe(e.device)} (${formatBytes(e.kept)} kept to resume from)`;
		case "stopped":
			return "stopped";
		case "stopping":
			// A log line like the others (timestamped, on stdout), saying what a second Ctrl-C does.
			return `stopping      (${e.signal}): letting running transfers finish for up to ${e.graceMs / 1000} seconds${e.signal === "SIGINT" ? " (Ctrl-C again to stop at once)" : ""}`;
		case "code":
			return `pairing code ${e.code}  (replaced; works once, expires at ${formatLocalTime(e.expiresAt, true)})`;
		case "listening":
			return undefined;
	}
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
	const n = Number(text);
	if (!/^\d+$/.test(text) || n < min || n > max) {
		throw new PairlinkError("usage", `${flag} must be a whole number from ${min} to ${max}`);
	}
	return n;
}

/** What a person should type on the other device: real interface addresses for a wildcard bind. */
function reachableAddresses(host: string, port: number): string[] {
	if (host !== "0.0.0.0" && host !== ANY_ADDRESS) return [formatAddress(host, port)];
	const v4: string[] = [];
	const v6: string[] = [];
	for (const list of Object.values(networkInterfaces())) {
		for (const a of list ?? []) {
			if (a.internal) continue;
			if (a.family === "IPv4") v4.push(formatAddress(a.address, port));
			// A link-local address needs the peer's own zone (%eth0 here means
			// nothing there): only addresses a peer can type as printed.
			else if (host === ANY_ADDRESS && !/^fe[89ab]/i.test(a.address))
				v6.push(formatAddress(a.address, port));
		}
	}
	const found = [...v4, ...v6];
	if (found.length > 0) return found;
	return host === ANY_ADDRESS
		? [formatAddress("127.0.0.1", port), formatAddress("::1", port)]
		: [formatAddress("127.0.0.1", port)];
}
