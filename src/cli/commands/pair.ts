import { defineCommand } from "citty";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import { codeStdinArg } from "../code-input.ts";
import { openConnection } from "../open-connection.ts";
import { out, safe } from "../terminal.ts";

export const pairCommand = defineCommand({
	meta: {
		name: "pair",
		description:
			"Pair with a device running `pairlink serve`, using the code it shows (from PAIRLINK_CODE, --code-stdin or a prompt)",
	},
	args: {
		host: { type: "positional", description: "HOST[:PORT] of the serving device", required: true },
		name: {
			type: "string",
			description: "Save the device under this name (default: the name it announces)",
		},
		...codeStdinArg,
	},
	async run({ args }) {
		const conn = await openConnection(args.host, {
			codeStdin: args["code-stdin"] === true,
			wantPair: true,
			saveAs: args.name,
		});
		conn.close();
		out(`Paired with ${safe(conn.peer.name)} (${formatFingerprint(conn.peer.fingerprint)}).`);
	},
});
