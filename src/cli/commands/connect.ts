import { defineCommand } from "citty";
import type { ExitCode } from "../../errors.ts";
import { codeStdinArg } from "../code-input.ts";
import { cliFlags } from "../flags.ts";
import { RemoteLink } from "../repl/remote-link.ts";
import { newState, runBatch, runInteractive } from "../repl/repl.ts";

export const connectCommand = defineCommand({
	meta: {
		name: "connect",
		description:
			"Open an interactive session (ls, cd, get, put, …); reads commands from stdin when it is not a terminal",
	},
	args: {
		host: {
			type: "positional",
			description: "HOST[:PORT] or the name of a trusted device",
			required: true,
		},
		...codeStdinArg,
	},
	async run({ args }): Promise<ExitCode> {
		const debug = cliFlags.debug;
		const codeStdin = args["code-stdin"] === true;
		const link = new RemoteLink(args.host, { codeStdin, keepStdin: true });
		const state = newState(link);
		// Connect (and pair if needed) before the first prompt: a server that
		// cannot be reached or trusted ends the command with its exit code.
		await link.session();
		try {
			const interactive = process.stdin.isTTY === true && !codeStdin;
			return interactive ? await runInteractive(state, debug) : await runBatch(state, debug);
		} finally {
			link.close();
		}
	},
});
