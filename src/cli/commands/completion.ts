import { defineCommand } from "citty";
import { PairlinkError } from "../../errors.ts";
import { type CommandInfo, commandTree } from "../command-tree.ts";
import { out } from "../terminal.ts";

/** Shell completion scripts, generated from the command definitions. */
export const completionCommand = defineCommand({
	meta: { name: "completion", description: "Print a shell completion script (bash, zsh or fish)" },
	args: {
		shell: { type: "positional", description: "bash, zsh or fish", required: true },
	},
	async run({ args }) {
		const { rootCommand } = await import("./root.ts");
		const tree = await commandTree(rootCommand as never);
		const make = GENERATORS[args.shell];
		if (!make)
			throw new PairlinkError(
				"usage",
				`no completion for ${JSON.stringify(args.shell)}: use bash, zsh or fish`,
			);
		out(make(tree));
	},
});

const GENERATORS: Record<string, (tree: CommandInfo[]) => string> = { bash, zsh, fish };

const top = (tree: CommandInfo[]) => tree.filter((c) => c.path.length === 1);
const optionsOf = (c: CommandInfo) => [...c.options, "--help"].join(" ");
const quoteSh = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

function bash(tree: CommandInfo[]): string {
	const cases = tree
		.filter((c) => c.path.length > 0)
		.map((c) => {
			const words = [...c.subcommands, ...c.options, "--help"].join(" ");
			return `    ${quoteSh(c.path.join(" "))}) words=${quoteSh(words)} ;;`;
		})
		.join("\n");
	return `# pairlink bash completion: eval "$(pairlink completion bash)"
_pairlink() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    case "$path $w" in
${tree
	.filter((c) => c.path.length > 0)
	.map((c) => `      ${quoteSh(` ${c.path.join(" ")}`)}) path=${quoteSh(c.path.join(" "))} ;;`)
	.join("\n")}
    esac
  done
  local words
  case "$path" in
${cases}
    *) words=${quoteSh([...top(tree).map((c) => c.path[0]), "--help", "--version"].join(" "))} ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _pairlink pairlink`;
}

function zsh(tree: CommandInfo[]): string {
	const cases = top(tree)
		.map((c) => {
			const subs = c.subcommands.length ? ` ${c.subcommands.join(" ")}` : "";
			return `    ${c.path[0]}) compadd -- ${optionsOf(c)}${subs}; _files ;;`;
		})
		.join("\n");
	return `#compdef pairlink
# pairlink zsh completion: eval "$(pairlink completion zsh)"
_pairlink() {
  if (( CURRENT == 2 )); then
    compadd -- ${top(tree)
			.map((c) => c.path[0])
			.join(" ")} --help --version
    return
  fi
  case $words[2] in
${cases}
  esac
}
compdef _pairlink pairlink`;
}

function fish(tree: CommandInfo[]): string {
	const lines = [
		"# pairlink fish completion: pairlink completion fish | source",
		"complete -c pairlink -f",
	];
	for (const c of top(tree)) {
		lines.push(
			`complete -c pairlink -n __fish_use_subcommand -a ${c.path[0]} -d ${quoteSh(c.description)}`,
		);
	}
	for (const c of tree.filter((x) => x.path.length >= 1)) {
		const cond = `__fish_seen_subcommand_from ${c.path.at(-1)}`;
		for (const sub of c.subcommands)
			lines.push(`complete -c pairlink -n ${quoteSh(cond)} -a ${sub}`);
		for (const o of c.options) {
			const flag = o.startsWith("--") ? `-l ${o.slice(2)}` : `-s ${o.slice(1)}`;
			lines.push(`complete -c pairlink -n ${quoteSh(cond)} ${flag}`);
		}
		if (c.operands.length) lines.push(`complete -c pairlink -n ${quoteSh(cond)} -F`);
	}
	return lines.join("\n");
}
