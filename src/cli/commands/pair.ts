import { defineCommand } from "citty";
import { formatFingerprint } from "../../crypto/fingerprint.ts";
import { PairlinkError } from "../../errors.ts";
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
		let conn: Awaited<ReturnType<typeof openConnection>>;
		try {
			conn = await openConnection(args.host, {
				codeStdin: args["code-stdin"] === true,
				wantPair: true,
				saveAs: args.name,
			});
		} catch (e) {
			if (e instanceof PairlinkError && e.code === "usage" && /needs the code/.test(e.message)) {
				throw new PairlinkError(
					"usage",
					"Pairing needs the code shown by the server: set PAIRLINK_CODE, pass --code-stdin, or run this in a terminal to be asked for it",
				);
			}
			throw e;
		}
		conn.close();
		out(`Paired with ${safe(conn.peer.name)} (${formatFingerprint(conn.peer.fingerprint)}).`);
	},
});
