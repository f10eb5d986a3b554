import { defineCommand } from "citty";
import type { FoundServer } from "../../client/discover.ts";
import { formatAddress } from "../../client/target.ts";
import { PairlinkError } from "../../errors.ts";
import { ask, codeStdinArg } from "../code-input.ts";
import { AlreadyPaired, openConnection, type Picked, pairedLine } from "../open-connection.ts";
import { out, safe } from "../terminal.ts";
import { DEFAULT_FIND_TIMEOUT, describeServer, discover, findTimeout } from "./find.ts";

export const pairCommand = defineCommand({
	meta: {
		name: "pair",
		description:
			"Pair with a device running `pairlink serve`, using the code it shows (from PAIRLINK_CODE, --code-stdin or a prompt); without HOST, with the one on the local network that has pairing open",
	},
	args: {
		host: {
			type: "positional",
			description: "HOST[:PORT] of the serving device (default: find it on the local network)",
			required: false,
		},
		name: {
			type: "string",
			description: "Save the device under this name (default: the name it announces)",
		},
		...codeStdinArg,
	},
	async run({ args }) {
		// Without HOST the network is asked only once the code is known to be at hand.
		const conn = await openConnection(args.host ?? pickOpenServer, {
			codeStdin: args["code-stdin"] === true,
			wantPair: true,
			saveAs: args.name,
		}).catch((e: unknown) => {
			if (!(e instanceof AlreadyPaired)) throw e;
			out(`${safe(e.message)}. ${safe(e.hint)}`);
		});
		if (!conn) return;
		conn.close();
		out(pairedLine(conn));
	},
});

const picked = (s: FoundServer): Picked => ({
	host: formatAddress(s.addresses[0] as string, s.port),
	announced: s.announced?.fingerprint,
});

/** SPEC: the one server with pairing open; several → a terminal asks, a script gets exit 2 and the list. */
async function pickOpenServer(): Promise<Picked> {
	const open = (await discover(findTimeout(DEFAULT_FIND_TIMEOUT))).filter((s) => s.pairingOpen);
	const [first] = open;
	if (!first) {
		throw new PairlinkError(
			"connect-failed",
			"No pairlink server with pairing open answered on the local network. Start `pairlink serve` (or `pairlink code`) on the other device, or give its address: pairlink pair HOST",
		);
	}
	if (open.length === 1) return picked(first);
	const list = open.map((s, i) => `  ${i + 1}. ${describeServer(s)}`).join("\n");
	if (!process.stdin.isTTY) {
		throw new PairlinkError(
			"usage",
			`${open.length} servers have pairing open; choose one with pairlink pair HOST:\n${list}`,
		);
	}
	process.stderr.write(`Servers with pairing open:\n${list}\n`);
	const answer = (await ask(`Pair with which one? [1-${open.length}] `)).trim();
	const chosen = /^\d+$/.test(answer) ? open[Number(answer) - 1] : undefined;
	if (!chosen) throw new PairlinkError("usage", `"${safe(answer)}" is not one of 1-${open.length}`);
	return picked(chosen);
}
