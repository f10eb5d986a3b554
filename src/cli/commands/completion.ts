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
		out(make(completionModel(tree)));
	},
});

/**
 * What every shell needs, computed once: each script walks the words typed
 * so far to find the command path (`devices remove`) and how many operands
 * follow it, then offers that path's subcommands and options, and trusted
 * device names where the first operand names a device (HOST, DEVICE, OLD).
 */
interface Model {
	/** Command paths below the root, joined with a space. */
	paths: string[];
	/** Per path ("" is the root): words offered while no operand has been typed. */
	words: Map<string, string[]>;
	/** Paths whose first operand is a device name. */
	devicePaths: string[];
	/** Options whose next word is their value, across every command. */
	valueOptions: string[];
	top: string[];
}

const DEVICE_OPERANDS = new Set(["HOST", "DEVICE", "OLD"]);

function completionModel(tree: CommandInfo[]): Model {
	const top = tree.filter((c) => c.path.length === 1).map((c) => c.path[0] as string);
	const words = new Map<string, string[]>();
	for (const c of tree) {
		const key = c.path.join(" ");
		const operandWords = c.operands[0] === "COMMAND" ? top : [];
		words.set(key, [...c.subcommands, ...operandWords, ...c.options, "--help"]);
	}
	return {
		paths: tree.filter((c) => c.path.length > 0).map((c) => c.path.join(" ")),
		words,
		devicePaths: tree
			.filter((c) => DEVICE_OPERANDS.has(c.operands[0] ?? ""))
			.map((c) => c.path.join(" ")),
		valueOptions: [...new Set(tree.flatMap((c) => c.valueOptions))],
		top,
	};
}

const GENERATORS: Record<string, (m: Model) => string> = { bash, zsh, fish };

const quoteSh = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
// Trusted device names, from `devices list --json` (one object per line). A
// name holding a double quote (JSON-escaped) is cut at it: sed decodes no JSON.
const DEVICE_NAMES = `command pairlink devices list --json 2>/dev/null | sed -n 's/^.*"name":"\\([^"]*\\)".*$/\\1/p'`;

/**
 * The same loop in bash and zsh: from the words typed before the cursor, the
 * command path ($cmd) and how many operands follow it ($n); an option's value
 * is no operand.
 */
function walkWords(m: Model, first: string, cursor: string, words: string): string {
	const pathCases = m.paths.map((p) => `        ${quoteSh(p)}) cmd=${quoteSh(p)}; continue ;;`);
	return `  for ((i = ${first}; i < ${cursor}; i++)); do
    w=\${${words}[i]}
    case "$w" in
      ${m.valueOptions.join("|")}) ((i++)); continue ;;
      -*) continue ;;
    esac
    if ((n == 0)); then
      case "\${cmd:+$cmd }$w" in
${pathCases.join("\n")}
      esac
    fi
    ((n++))
  done`;
}

function bash(m: Model): string {
	// Options are offered once a "-" is typed, so they do not bury the names.
	const wordCases = [...m.words].map(
		([p, w]) =>
			`    ${quoteSh(p)}) words=${quoteSh(w.filter((x) => !x.startsWith("-")).join(" "))} opts=${quoteSh(w.filter((x) => x.startsWith("-")).join(" "))} ;;`,
	);
	return `# pairlink bash completion: eval "$(pairlink completion bash)"
_pairlink() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd="" w i n=0 words="" opts=""
${walkWords(m, "1", "COMP_CWORD", "COMP_WORDS")}
  ((n == 0)) || [[ $cur == -* ]] || return 0
  case "$cmd" in
${wordCases.join("\n")}
  esac
  [[ $cur == -* ]] && words=$opts
  local IFS=$'\\n'
  COMPREPLY=($(compgen -W "\${words// /$'\\n'}" -- "$cur"))
  case "$cmd" in
    ${m.devicePaths.map(quoteSh).join("|")})
      [[ $cur == -* ]] || COMPREPLY+=($(compgen -W "$(${DEVICE_NAMES})" -- "$cur" | while read -r w; do printf '%q\\n' "$w"; done)) ;;
  esac
}
complete -o default -o bashdefault -F _pairlink pairlink`;
}

function zsh(m: Model): string {
	// \`path\` is zsh's PATH array: the command path is called \`cmd\`.
	const wordCases = [...m.words].map(([p, w]) => `    ${quoteSh(p)}) compadd -- ${w.join(" ")} ;;`);
	return `#compdef pairlink
# pairlink zsh completion: eval "$(pairlink completion zsh)"
_pairlink() {
  local cmd="" w i n=0
${walkWords(m, "2", "CURRENT", "words")}
  if ((n == 0)); then
    case "$cmd" in
${wordCases.join("\n")}
    esac
    case "$cmd" in
      ${m.devicePaths.map(quoteSh).join("|")})
        local -a devices
        devices=(\${(f)"$(${DEVICE_NAMES})"})
        compadd -- $devices ;;
    esac
  fi
  [[ -n $cmd ]] && _files
}
compdef _pairlink pairlink`;
}

function fish(m: Model): string {
	const lines = [
		"# pairlink fish completion: pairlink completion fish | source",
		"complete -c pairlink -f",
		// Prints the command path typed so far, then how many operands follow it.
		"function __pairlink_state",
		"    set -l cmd ''",
		"    set -l n 0",
		"    set -l skip 0",
		"    for w in (commandline -opc)[2..-1]",
		"        if test $skip = 1; set skip 0; continue; end",
		`        if contains -- $w ${m.valueOptions.join(" ")}; set skip 1; continue; end`,
		"        if string match -q -- '-*' $w; continue; end",
		'        set -l next (string trim -- "$cmd $w")',
		`        if test $n = 0; and contains -- $next ${m.paths.map(quoteSh).join(" ")}`,
		"            set cmd $next",
		"            continue",
		"        end",
		"        set n (math $n + 1)",
		"    end",
		"    echo $cmd",
		"    echo $n",
		"end",
		// True when the command path is $argv[1] (and, for __pairlink_at, no operand was typed yet).
		"function __pairlink_in",
		'    test (__pairlink_state)[1] = "$argv[1]"',
		"end",
		"function __pairlink_at",
		"    set -l s (__pairlink_state)",
		'    test "$s[1]" = "$argv[1]"; and test "$s[2]" = 0',
		"end",
		"function __pairlink_devices",
		`    ${DEVICE_NAMES}`,
		"end",
	];
	for (const [p, words] of m.words) {
		const plain = words.filter((w) => !w.startsWith("-"));
		if (plain.length)
			lines.push(
				`complete -c pairlink -n ${quoteSh(`__pairlink_at ${quoteSh(p)}`)} -a ${quoteSh(plain.join(" "))}`,
			);
		for (const o of words.filter((w) => w.startsWith("-"))) {
			const flag = o.startsWith("--") ? `-l ${o.slice(2)}` : `-s ${o.slice(1)}`;
			lines.push(`complete -c pairlink -n ${quoteSh(`__pairlink_in ${quoteSh(p)}`)} ${flag}`);
		}
	}
	for (const p of m.devicePaths)
		lines.push(
			`complete -c pairlink -n ${quoteSh(`__pairlink_at ${quoteSh(p)}`)} -a '(__pairlink_devices)'`,
		);
	// Other operands are local or remote paths: offer file names there.
	const noFiles = [
		...m.devicePaths,
		...[...m.words.keys()].filter((p) => m.paths.some((q) => q.startsWith(`${p} `))),
	];
	lines.push(
		"function __pairlink_files",
		"    set -l s (__pairlink_state)",
		'    test -n "$s[1]"; or return 1',
		'    test "$s[2]" != 0; and return 0',
		`    not contains -- "$s[1]" ${noFiles.map(quoteSh).join(" ")}`,
		"end",
		"complete -c pairlink -n __pairlink_files -F",
	);
	return lines.join("\n");
}
