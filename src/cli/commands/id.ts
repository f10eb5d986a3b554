import { defineCommand } from "citty";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import { deviceIdentity, jsonArg } from "../context.ts";
import { out, outJson, safe } from "../terminal.ts";

export const idCommand = defineCommand({
	meta: { name: "id", description: "Show this device's name and certificate fingerprint" },
	args: { ...jsonArg },
	async run({ args }) {
		const id = await deviceIdentity();
		if (args.json) {
			outJson({ name: id.name, fingerprint: id.fingerprint });
			return;
		}
		out(`Name:        ${safe(id.name)}`);
		out(`Fingerprint: ${formatFingerprint(id.fingerprint)}`);
	},
});
