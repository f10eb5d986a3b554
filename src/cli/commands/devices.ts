import { defineCommand } from "citty";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import type { TrustedDevice } from "../../store/trust-store.ts";
import { jsonArg, trustStore } from "../context.ts";
import { formatLocalTime } from "../format.ts";
import { out, outJson, safe } from "../terminal.ts";

function printDevice(d: TrustedDevice): void {
	out(safe(d.name));
	out(`  fingerprint  ${formatFingerprint(d.fingerprint)}`);
	out(`  last address ${safe(d.address)}`);
	out(`  paired at    ${formatLocalTime(d.pairedAt, true)}`);
	out(`  last seen    ${formatLocalTime(d.lastSeen, true)}`);
}

const listCommand = defineCommand({
	meta: { name: "list", description: "List the trusted devices (the default)" },
	args: { ...jsonArg },
	run: ({ args }) => listDevices(args.json === true),
});

async function listDevices(json: boolean): Promise<void> {
	const devices = (await trustStore()).list();
	if (json) {
		for (const d of devices) outJson(d);
		return;
	}
	if (devices.length === 0) {
		out("No trusted devices yet. Pair with `pairlink pair HOST`.");
		return;
	}
	devices.forEach((d, i) => {
		if (i > 0) out("");
		printDevice(d);
	});
}

const removeCommand = defineCommand({
	meta: {
		name: "remove",
		description: "Revoke a device: it can no longer connect, nor be connected to",
	},
	args: {
		device: {
			type: "positional",
			description: "Name, fingerprint, or a unique fingerprint prefix",
			required: true,
		},
		...jsonArg,
	},
	async run({ args }) {
		const removed = await (await trustStore()).remove(args.device);
		if (args.json) outJson({ event: "removed", ...removed });
		else out(`Removed ${safe(removed.name)} (${formatFingerprint(removed.fingerprint)}).`);
	},
});

const renameCommand = defineCommand({
	meta: { name: "rename", description: "Change the name under which a device is saved" },
	args: {
		old: { type: "positional", description: "Current name or fingerprint", required: true },
		new: { type: "positional", description: "New name", required: true },
		...jsonArg,
	},
	async run({ args }) {
		const renamed = await (await trustStore()).rename(args.old, args.new);
		if (args.json) outJson({ event: "renamed", ...renamed });
		else out(`Renamed to ${safe(renamed.name)}.`);
	},
});

const SUBCOMMANDS = new Set(["list", "remove", "rename"]);

export const devicesCommand = defineCommand({
	meta: { name: "devices", description: "List, remove or rename trusted devices" },
	args: { ...jsonArg },
	subCommands: { list: listCommand, remove: removeCommand, rename: renameCommand },
	async run({ args, rawArgs }) {
		// `pairlink devices` alone lists; citty runs this after a subcommand too.
		if (rawArgs.some((a) => SUBCOMMANDS.has(a))) return;
		await listDevices(args.json === true);
	},
});
