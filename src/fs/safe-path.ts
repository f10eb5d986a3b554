/**
 * Every character rule of pairlink, in one place (DESIGN §5):
 *
 * - the wire rules, the same on every OS: what any path that crosses the
 *   wire must be (the server applies them to every request, the client to
 *   every name a server sends back);
 * - the receiver rules: what the receiving side's own OS cannot hold safely
 *   (on Windows: drive letters, `: * ? " < > |`, trailing dots or spaces,
 *   device names). Applied only by the receiver, file by file, and only for
 *   its own platform, which is a parameter so every OS's rules can be
 *   tested anywhere;
 * - the terminal escaping of peer-controlled text.
 *
 * Pure. Local paths the user typed are not wire paths and never come here.
 */
import { PairlinkError } from "../errors.ts";
import { CONTROL_CHARS, TERMINAL_UNSAFE_ALL } from "../protocol/characters.ts";

export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;
const MAX_DEPTH = 64;

/** The suffix of in-progress files: never served, listed or accepted as a name. */
export const PART_SUFFIX = ".pairlink-part";

const encoder = new TextEncoder();
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

function shown(path: string): string {
	return JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}…` : path);
}

const PART_NAME = "names of unfinished transfers are not allowed";

function refuse(path: string, why: string): PairlinkError {
	// "Use a relative path inside the share" would not help: the name itself is reserved.
	return new PairlinkError("invalid-path", `Refused path ${shown(path)}: ${why}`, {
		advice: why === PART_NAME ? "part-name" : undefined,
	});
}

/** Why a single name breaks the wire rules, or undefined when it is fine. */
export function wireNameProblem(name: string): string | undefined {
	if (name === "") return "empty path components are not allowed";
	if (name === "." || name === "..") return `"${name}" is not allowed`;
	// Most names are printable ASCII: no encoding question can hide in them.
	const ascii = PRINTABLE_ASCII.test(name);
	if (!ascii && !name.isWellFormed()) return "not valid UTF-8";
	if (name.includes("/")) return "a name cannot contain /";
	if (name.includes("\\")) return "a name cannot contain \\";
	if (!ascii && CONTROL_CHARS.test(name)) return "control characters are not allowed";
	if ((ascii ? name.length : encoder.encode(name).length) > MAX_NAME_BYTES)
		return `a name is longer than ${MAX_NAME_BYTES} bytes`;
	if (name.endsWith(PART_SUFFIX)) return PART_NAME;
	return undefined;
}

/**
 * Validate a wire path and return its components. "" and "." mean the root
 * itself (an empty list). Throws PairlinkError "invalid-path".
 */
export function parseWirePath(path: string): string[] {
	if (typeof path !== "string") throw refuse(String(path), "not a string");
	if (path === "" || path === ".") return [];
	if (!path.isWellFormed()) throw refuse(path, "not valid UTF-8");
	if (encoder.encode(path).length > MAX_PATH_BYTES)
		throw refuse(path, `longer than ${MAX_PATH_BYTES} bytes`);
	if (path.startsWith("/")) throw refuse(path, "absolute paths are not allowed");
	const parts = path.split("/");
	if (parts.length > MAX_DEPTH) throw refuse(path, `deeper than ${MAX_DEPTH} directories`);
	for (const part of parts) checkName(part, path);
	return parts;
}

/** A single name (one path component), e.g. a directory entry a server sent. */
export function checkName(name: string, context = name): void {
	const why = wireNameProblem(name);
	if (why) throw refuse(context, why);
}

const WINDOWS_DEVICE =
	/^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$)(\..*)?$/i;
const WINDOWS_FORBIDDEN = /[:*?"<>|]/;

/**
 * Why the receiving side's OS cannot hold `name` safely, or undefined. Only
 * Windows has such rules; a Linux or macOS receiver holds every wire name.
 */
export function receiverNameProblem(name: string, platform: string): string | undefined {
	if (platform !== "win32") return undefined;
	// Windows' "best fit" code-page mapping turns compatibility forms such as a
	// fullwidth ＼ or ： into the ASCII character, so judge the folded form too.
	const folded = PRINTABLE_ASCII.test(name) ? name : name.normalize("NFKC");
	if (folded === "." || folded === "..") return "the name reads as a dot name on Windows";
	if (/^[a-z]:/i.test(folded)) return "a drive letter cannot start a name on Windows";
	if (WINDOWS_FORBIDDEN.test(folded) || /[/\\]/.test(folded))
		return 'Windows cannot hold : * ? " < > | in a name';
	if (/[. ]$/.test(name)) return "Windows cannot hold a name that ends with a dot or a space";
	if (WINDOWS_DEVICE.test(folded.trimEnd()))
		return `${folded.split(".")[0]} is a reserved device name on Windows`;
	return undefined;
}

/** The first component of a wire path that this receiver's OS cannot hold, with why. */
export function receiverPathProblem(
	parts: readonly string[],
	platform: string,
): { name: string; why: string } | undefined {
	for (const name of parts) {
		const why = receiverNameProblem(name, platform);
		if (why) return { name, why };
	}
	return undefined;
}

/** Throws "invalid-path" when this receiver's OS cannot hold the wire path. */
export function checkReceivable(wirePath: string, platform: string): void {
	const problem = receiverPathProblem(parseWirePath(wirePath), platform);
	if (problem) throw refuse(wirePath, problem.why);
}

export function joinWirePath(parts: readonly string[]): string {
	return parts.join("/");
}

/** Users type "/docs/a.txt" or "docs/": a leading / is the top of the share. */
export function normalizeRemote(p: string): string {
	return p.replace(/^\/+/, "").replace(/\/+$/, "");
}

/**
 * Peer-controlled text (device and file names) with every control character
 * escaped, so a name cannot move the cursor, change colours or rewrite the
 * screen (croc issue #595); bidi controls too, so it cannot pose as another.
 */
export function escapeForTerminal(text: string): string {
	return text.replace(TERMINAL_UNSAFE_ALL, (c) => {
		const code = c.charCodeAt(0);
		return code <= 0xff
			? `\\x${code.toString(16).padStart(2, "0")}`
			: `\\u${code.toString(16).padStart(4, "0")}`;
	});
}
