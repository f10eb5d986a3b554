import { stat } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { formatAddress } from "../../client/target.ts";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import { EXIT, PairlinkError } from "../../errors.ts";
import { sweepAbandonedParts } from "../../fs/part-sweep.ts";
import { SandboxRoot } from "../../fs/root.ts";
import { stateDirPairingGate } from "../../server/pairing-gate.ts";
import { DEFAULT_MAX_CLIENTS, type ServerEvent, startServer } from "../../server/server.ts";
import { FilePartRecords } from "../../store/part-records.ts";
import { loadPendingCode, pendingCodeStatus } from "../../store/pending-code.ts";
import { validateDeviceName } from "../../store/trust-store.ts";
import { deviceIdentity, jsonArg, stateDir, trustStore } from "../context.ts";
import { describeDuration } from "../duration.ts";
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
			description: "Address to listen on",
			default: "0.0.0.0",
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
		...jsonArg,
	},
	async run({ args }) {
		const dir = resolve(args.dir ?? ".");
		const info = await stat(dir).catch(() => undefined);
		if (!info?.isDirectory()) throw new PairlinkError("usage", `${dir} is not a directory`);
		const port = wholeNumber(args.port, "--port", 0, 65535);
		const maxClients = wholeNumber(args["max-clients"], "--max-clients", 1, 10_000);
		const noPair = args.pair === false;
		const identity = await deviceIdentity();
		// After the identity: the state directory exists now, so it can be hidden by its inode.
		const sandbox = await SandboxRoot.openShare(dir, stateDir());
		const root = sandbox.dir;
		const partRecords = new FilePartRecords(stateDir());
		// Abandoned part files go by their records' age: now, then hourly.
		const sweep = () => void sweepAbandonedParts(partRecords).catch(() => undefined);
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
				code = await createPendingCode(4, DEFAULT_CODE_TTL);
			}
		}

		const json = args.json === true;
		let stopped!: () => void;
		const done = new Promise<void>((r) => {
			stopped = r;
		});
		const server = startServer({
			hostname: args.host,
			port,
			identity: { ...identity, name },
			trust,
			root: sandbox,
			partRecords,
			policy: {
				readOnly: args["read-only"] === true,
				allowOverwrite: args["allow-overwrite"] === true,
				allowDelete: args["allow-delete"] === true,
			},
			...(noPair ? {} : { pairing: stateDirPairingGate(stateDir()) }),
			maxClients,
			onEvent: (e) => (json ? outJson(e) : printEvent(e)),
		});

		const listening = {
			event: "listening",
			host: server.hostname,
			port: server.port,
			root,
			fingerprint: identity.fingerprint,
			...(code ? { code: code.code } : {}),
		};
		if (json) outJson(listening);
		else {
			const addresses = reachableAddresses(server.hostname, server.port);
			out(`Serving ${safe(root)} as ${safe(name)}`);
			out(`  address      ${addresses.join(", ")}`);
			out(`  fingerprint  ${formatFingerprint(identity.fingerprint)}`);
			if (code) {
				out(
					`  pairing code ${code.code}  (works once, expires in ${describeDuration(code.ttlMs)})`,
				);
				out(`On the other device: pairlink pair ${addresses[0]}`);
			}
			out("Press Ctrl-C to stop.");
		}

		let signals = 0;
		const stop = () => {
			// A second Ctrl-C does not wait for running transfers.
			if (++signals > 1) process.exit(EXIT.ok);
			if (!json)
				logger.info(
					"Stopping: letting running transfers finish for a few seconds (Ctrl-C again to quit now).",
				);
			void server.stop().then(stopped);
		};
		process.on("SIGINT", stop);
		process.on("SIGTERM", stop);
		await done;
	},
});

function printEvent(e: ServerEvent): void {
	switch (e.event) {
		case "connected":
			out(`connected     ${safe(e.name)} from ${safe(e.address)}`);
			return;
		case "disconnected":
			out(`disconnected  ${safe(e.name)}${e.reason ? ` (${safe(e.reason)})` : ""}`);
			return;
		case "paired":
			out(
				`paired        ${safe(e.name)} (${formatFingerprint(e.fingerprint)}) from ${safe(e.address)}`,
			);
			return;
		case "refused":
			out(`refused       ${safe(e.address)}: ${safe(e.reason)}`);
			return;
		case "transfer":
			out(
				`${e.op === "get" ? "sent    " : "received"}      ${safe(e.path)} (${e.bytes} bytes${e.resumedFrom ? `, resumed from ${e.resumedFrom}` : ""}) ${e.op === "get" ? "to" : "from"} ${safe(e.device)}`,
			);
			return;
		case "stopped":
			out("stopped");
			return;
		case "listening":
			return;
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
	if (host !== "0.0.0.0" && host !== "::") return [formatAddress(host, port)];
	const found: string[] = [];
	for (const list of Object.values(networkInterfaces())) {
		for (const a of list ?? []) {
			if (a.internal || (host === "0.0.0.0" && a.family !== "IPv4")) continue;
			found.push(formatAddress(a.address, port));
		}
	}
	return found.length > 0 ? found : [formatAddress("127.0.0.1", port)];
}
