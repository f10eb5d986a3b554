/**
 * The CLI's outer shell: picks the command, enforces strict arguments, runs
 * it, and turns every error into one sentence on stderr and an exit code.
 * citty's runMain exits 1 on every error and prints usage to stdout, so it
 * is not used; runCommand does the execution and we map the rest.
 */
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from "citty";
import { EXIT, type ExitCode, PairlinkError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { rootCommand } from "./commands/root.ts";
import { isUsageError, reportError, stripAnsi } from "./error-report.ts";
import { cliFlags } from "./flags.ts";
import { safe } from "./terminal.ts";

export type AnyCommand = CommandDef<ArgsDef> & {
	/** The last positional argument takes any number of values (get REMOTE...). */
	variadic?: boolean;
};

interface Resolved {
	cmd: AnyCommand;
	parent: AnyCommand | undefined;
	rest: string[];
}

export async function runCli(argv: string[], root = rootCommand as AnyCommand): Promise<ExitCode> {
	const debug = argv.includes("--debug");
	const args = argv.filter((a) => a !== "--debug");
	let resolved: Resolved | undefined;
	try {
		const ddash = args.indexOf("--");
		const flags = ddash === -1 ? args : args.slice(0, ddash);
		resolved = { cmd: root, parent: undefined, rest: args };
		resolved = await resolve(root, args);
		if (flags.includes("--help") || flags.includes("-h")) {
			process.stdout.write(`${await usageFor(resolved, process.stdout)}\n`);
			return EXIT.ok;
		}
		if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
			process.stdout.write(`pairlink ${VERSION}\n`);
			return EXIT.ok;
		}
		await checkStrict(resolved);
		cliFlags.debug = debug;
		// A command may return its own exit code (connect's batch mode reports
		// the first failing command's, already explained on stderr).
		const { result } = await runCommand(resolved.cmd, { rawArgs: resolved.rest });
		return typeof result === "number" ? (result as ExitCode) : EXIT.ok;
	} catch (e) {
		return await report(e, debug, resolved);
	}
}

/** The error first, then where to read more: never the whole help above it. */
async function report(
	e: unknown,
	debug: boolean,
	resolved: Resolved | undefined,
): Promise<ExitCode> {
	if (!isUsageError(e) || !resolved) return reportError(e, debug);
	const path = [
		resolved.parent && (await value(resolved.parent.meta))?.name,
		(await value(resolved.cmd.meta))?.name,
	]
		.filter(Boolean)
		.join(" ");
	return reportError(e, debug, { usageHint: `Run \`${path} --help\` for its usage.` });
}

const usageError = (message: string) => new PairlinkError("usage", message);

async function resolve(root: AnyCommand, args: string[]): Promise<Resolved> {
	let cmd = root;
	let parent: AnyCommand | undefined;
	let rest = args;
	for (;;) {
		const subs = await value(cmd.subCommands);
		if (!subs) break;
		const defs = (await value(cmd.args)) ?? {};
		const index = firstPositional(rest, defs);
		const name = index === -1 ? undefined : rest[index];
		if (name === undefined) break;
		const sub = subs[name];
		if (!sub) {
			if (cmd.run) break;
			throw usageError(`Unknown command "${safe(name)}"`);
		}
		// citty prefixes usage with the parent's name only: carry the whole path.
		const parentMeta = (await value(cmd.meta)) ?? {};
		parent = {
			meta: {
				...parentMeta,
				// Only the root declares a version; a nested command's header shows it too.
				version: parentMeta.version ?? VERSION,
				name: [parent && (await value(parent.meta))?.name, parentMeta.name]
					.filter(Boolean)
					.join(" "),
			},
		};
		cmd = (await value(sub)) as AnyCommand;
		rest = rest.slice(index + 1);
	}
	return { cmd, parent, rest };
}

/** citty ignores unknown flags and surplus arguments; a typo must not be silently dropped. */
async function checkStrict({ cmd, rest }: Resolved): Promise<void> {
	const defs = (await value(cmd.args)) ?? {};
	const known = new Map<string, boolean>(); // flag -> takes a value
	for (const [name, def] of Object.entries(defs)) {
		if (def.type === "positional") continue;
		const takesValue = def.type === "string" || def.type === "enum";
		for (const n of [name, kebab(name)]) {
			known.set(`--${n}`, takesValue);
			if (def.type === "boolean") known.set(`--no-${n}`, false);
		}
		const aliases = "alias" in def && def.alias ? [def.alias].flat() : [];
		for (const a of aliases) known.set(a.length === 1 ? `-${a}` : `--${a}`, takesValue);
	}
	const positionals = Object.values(defs).filter((d) => d.type === "positional").length;
	let seen = 0;
	for (let i = 0; i < rest.length; i++) {
		const token = rest[i] as string;
		if (token === "--") {
			seen += rest.length - i - 1;
			break;
		}
		if (token.startsWith("-") && token !== "-") {
			const flag = token.split("=", 1)[0] as string;
			const takesValue = known.get(flag);
			if (takesValue === undefined) throw usageError(`Unknown option "${safe(flag)}"`);
			if (takesValue && !token.includes("=")) {
				if (i + 1 >= rest.length) throw usageError(`Option "${flag}" needs a value`);
				i++;
			}
			continue;
		}
		seen++;
	}
	if (seen > positionals && !cmd.variadic) {
		throw usageError(`Too many arguments (expected at most ${positionals})`);
	}
}

function firstPositional(args: string[], defs: ArgsDef): number {
	for (let i = 0; i < args.length; i++) {
		const a = args[i] as string;
		if (a === "--") return -1;
		if (a.startsWith("-")) {
			const name = a.replace(/^-{1,2}/, "");
			const def = Object.entries(defs).find(
				([k, d]) =>
					k === name ||
					kebab(k) === name ||
					[("alias" in d && d.alias) || []].flat().includes(name),
			);
			if (def && (def[1].type === "string" || def[1].type === "enum") && !a.includes("=")) i++;
			continue;
		}
		return i;
	}
	return -1;
}

async function value<T>(
	v: T | Promise<T> | (() => T) | (() => Promise<T>) | undefined,
): Promise<T | undefined> {
	return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

/** citty colours its usage text whatever the stream; plain text for pipes and NO_COLOR. */
async function usageFor(r: Resolved, stream: NodeJS.WriteStream): Promise<string> {
	const text = tidyUsage(await renderUsage(r.cmd, r.parent), r.cmd.variadic === true);
	return stream.isTTY && !process.env.NO_COLOR ? text : stripAnsi(text);
}

/**
 * citty pads every option line to the widest across all columns (trailing
 * spaces), appends "(Default: X)" even where the description already says
 * what the default is, and cannot show that the last operand repeats.
 */
// citty greys its hint: the colour codes around it go with it.
// biome-ignore lint/suspicious/noControlCharactersInRegex: colour codes
const CITTY_DEFAULT = / (?:\u001b\[[0-9;]*m)?\(Default: [^)]*\)(?:\u001b\[[0-9;]*m)?/;

export function tidyUsage(text: string, variadic: boolean): string {
	return text
		.split("\n")
		.map((line) => {
			const plain = stripAnsi(line);
			const own = plain.search(/\(Default: /);
			const said = own > 0 && /\bdefault\b/.test(plain.slice(0, own));
			const tidy = said ? line.replace(CITTY_DEFAULT, "") : line;
			const usage =
				variadic && plain.startsWith("USAGE ")
					? tidy.replace(/<([A-Z_]+)>(\S*)$/, "<$1...>$2")
					: tidy;
			return usage.trimEnd();
		})
		.join("\n");
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
