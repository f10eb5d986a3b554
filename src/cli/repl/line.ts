/**
 * The REPL's pure helpers: splitting a typed line into words (quotes and
 * backslashes as in a shell), resolving remote paths against the remote
 * working directory, and matching globs. No I/O.
 */
import { PairlinkError } from "../../errors.ts";

export interface Word {
	text: string;
	/** Quoted or escaped somewhere: glob characters in it are literal. */
	literal: boolean;
}

/** Split a command line: 'single' and "double" quotes, backslash escapes, whitespace between words. */
export function splitLine(line: string): Word[] {
	const words: Word[] = [];
	let current = "";
	let inWord = false;
	let literal = false;
	let quote: '"' | "'" | undefined;
	for (let i = 0; i < line.length; i++) {
		const c = line[i] as string;
		if (quote) {
			if (c === quote) quote = undefined;
			else if (c === "\\" && quote === '"' && (line[i + 1] === '"' || line[i + 1] === "\\"))
				current += line[++i];
			else current += c;
			continue;
		}
		if (c === "'" || c === '"') {
			quote = c;
			inWord = true;
			literal = true;
		} else if (c === "\\") {
			if (i + 1 >= line.length)
				throw new PairlinkError("usage", "the line ends with a lone backslash");
			current += line[++i];
			inWord = true;
			literal = true;
		} else if (/\s/.test(c)) {
			if (inWord) words.push({ text: current, literal });
			current = "";
			inWord = false;
			literal = false;
		} else {
			current += c;
			inWord = true;
		}
	}
	if (quote)
		throw new PairlinkError("usage", `unclosed ${quote === '"' ? "double" : "single"} quote`);
	if (inWord) words.push({ text: current, literal });
	return words;
}

/**
 * A remote path typed in the session, resolved against the remote working
 * directory into a wire path ("" is the top). ".." is handled here and never
 * reaches the server; it stops at the top, as in a chrooted sftp session.
 */
export function resolveRemote(cwd: string, input: string): string {
	const parts = input.startsWith("/") ? [] : cwd.split("/").filter(Boolean);
	for (const part of input.split("/")) {
		if (part === "" || part === ".") continue;
		if (part === "..") parts.pop();
		else parts.push(part);
	}
	return parts.join("/");
}

export function hasGlob(word: Word): boolean {
	return !word.literal && /[*?[]/.test(word.text);
}

/** Shell-style glob for one name: * ? [abc] [a-z] [!x]; a leading dot must be matched explicitly. */
export function globToRegExp(pattern: string): RegExp {
	let re = "^";
	for (let i = 0; i < pattern.length; i++) {
		const c = pattern[i] as string;
		if (c === "*") re += "[^/]*";
		else if (c === "?") re += "[^/]";
		else if (c === "[") {
			const end = pattern.indexOf("]", i + 2);
			if (end === -1) re += "\\[";
			else {
				let body = pattern.slice(i + 1, end);
				if (body.startsWith("!")) body = `^${body.slice(1)}`;
				re += `[${body.replace(/\\/g, "\\\\")}]`;
				i = end;
			}
		} else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
	}
	try {
		return new RegExp(`${re}$`);
	} catch {
		// A bracket range such as [z-a] is not a pattern at all.
		throw new PairlinkError("usage", `${JSON.stringify(pattern)} is not a valid pattern`);
	}
}

export function matchGlob(pattern: string, names: readonly string[]): string[] {
	const re = globToRegExp(pattern);
	return names.filter((n) => re.test(n) && (!n.startsWith(".") || pattern.startsWith(".")));
}

/** "dir/sub/*.pdf" -> ["dir/sub", "*.pdf"]; "*.pdf" -> ["", "*.pdf"]. */
export function splitDirBase(path: string): [string, string] {
	const i = path.lastIndexOf("/");
	return i === -1 ? ["", path] : [path.slice(0, i), path.slice(i + 1)];
}
