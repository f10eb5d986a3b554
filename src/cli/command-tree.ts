/**
 * The command definitions as data: every command path with its options and
 * operands. Shell completion is generated from it, and a test checks the
 * README's command reference against it, so neither can drift from --help.
 */
import type { ArgsDef, CommandDef } from "citty";

export interface CommandInfo {
	/** e.g. ["devices", "remove"]. */
	path: string[];
	description: string;
	/** Long and short option spellings, e.g. "--json", "-l", "--no-pair". */
	options: string[];
	/** The same, grouped per option: ["--long", "-l"]. */
	optionGroups: string[][];
	/** The spellings of options that take a value (--output, -o), whose next word is not an operand. */
	valueOptions: string[];
	/** Operand names in order, e.g. ["HOST", "REMOTE"]. */
	operands: string[];
	/** Subcommand names, when the command has them. */
	subcommands: string[];
}

type AnyDef = CommandDef<ArgsDef>;

async function value<T>(
	v: T | Promise<T> | (() => T) | (() => Promise<T>) | undefined,
): Promise<T | undefined> {
	return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export async function commandTree(root: AnyDef): Promise<CommandInfo[]> {
	const out: CommandInfo[] = [];
	async function visit(cmd: AnyDef, path: string[]): Promise<void> {
		const meta = (await value(cmd.meta)) ?? {};
		const args = (await value(cmd.args)) ?? {};
		const subs = (await value(cmd.subCommands)) ?? {};
		const optionGroups: string[][] = [];
		const valueOptions: string[] = [];
		const operands: string[] = [];
		for (const [name, def] of Object.entries(args)) {
			if (def.type === "positional") {
				operands.push(name.toUpperCase());
				continue;
			}
			// A boolean that defaults to true is spelled by its negation (--no-pair).
			const group = [
				def.type === "boolean" && def.default === true ? `--no-${kebab(name)}` : `--${kebab(name)}`,
			];
			for (const alias of [("alias" in def && def.alias) || []].flat()) {
				group.push(alias.length === 1 ? `-${alias}` : `--${alias}`);
			}
			optionGroups.push(group);
			if (def.type === "string" || def.type === "enum") valueOptions.push(...group);
		}
		out.push({
			path,
			description: meta.description ?? "",
			options: optionGroups.flat(),
			optionGroups,
			valueOptions,
			operands,
			subcommands: Object.keys(subs),
		});
		for (const [name, sub] of Object.entries(subs))
			await visit((await value(sub)) as AnyDef, [...path, name]);
	}
	await visit(root, []);
	return out;
}
