import { defineCommand } from "citty";
import type { ExitCode } from "../../errors.ts";

/** `pairlink help get` is `pairlink get --help`, as in git and cargo. */
export const helpCommand = Object.assign(
	defineCommand({
		meta: { name: "help", description: "Show the help of pairlink or of one command" },
		args: {
			command: {
				type: "positional",
				description: "A command, e.g. get or devices remove",
				required: false,
			},
		},
		async run({ rawArgs }): Promise<ExitCode> {
			const { runCli } = await import("../run.ts");
			return runCli([...rawArgs.filter((a) => a !== "--"), "--help"]);
		},
	}),
	{ variadic: true },
);
