import { defineCommand } from "citty";
import { VERSION } from "../../version.ts";

// Subcommands load lazily: `--version` and `--help` of one command do not
// pay for X.509, the PAKE or the socket code of the others.
export const rootCommand = defineCommand({
	meta: {
		name: "pairlink",
		version: VERSION,
		description:
			"Pair two devices once with a short code, then move files between them over pinned TLS 1.3",
	},
	args: {
		debug: { type: "boolean", description: "Show stack traces on errors" },
		version: { type: "boolean", alias: "v", description: "Show the version" },
	},
	subCommands: {
		code: () => import("./code.ts").then((m) => m.codeCommand),
		serve: () => import("./serve.ts").then((m) => m.serveCommand),
		pair: () => import("./pair.ts").then((m) => m.pairCommand),
		find: () => import("./find.ts").then((m) => m.findCommand),
		connect: () => import("./connect.ts").then((m) => m.connectCommand),
		ls: () => import("./files.ts").then((m) => m.lsCommand),
		get: () => import("./files.ts").then((m) => m.getCommand),
		put: () => import("./files.ts").then((m) => m.putCommand),
		mkdir: () => import("./files.ts").then((m) => m.mkdirCommand),
		rm: () => import("./files.ts").then((m) => m.rmCommand),
		devices: () => import("./devices.ts").then((m) => m.devicesCommand),
		id: () => import("./id.ts").then((m) => m.idCommand),
		completion: () => import("./completion.ts").then((m) => m.completionCommand),
		help: () => import("./help.ts").then((m) => m.helpCommand),
	},
});
