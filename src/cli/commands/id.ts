import path from "node:path";
import { defineCommand } from "citty";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import { deviceIdentity, jsonArg, stateDir } from "../context.ts";
import { out, outJson, safe } from "../terminal.ts";

export const idCommand = defineCommand({
	meta: { name: "id", description: "Show this device's name and certificate fingerprint" },
	args: { ...jsonArg },
	async run({ args }) {
		const id = await deviceIdentity();
		const dir = path.resolve(stateDir());
		if (args.json) {
			outJson({ name: id.name, fingerprint: id.fingerprint, stateDir: dir });
			return;
		}
		out(`Name:        ${safe(id.name)}`);
		out(`Fingerprint: ${formatFingerprint(id.fingerprint)}`);
		out(`State:       ${safe(dir)}`);
	},
});
