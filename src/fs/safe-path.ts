/**
 * The name rules for every path that crosses the wire, in either direction.
 * Pure: the server applies them to every request, the client to every name
 * a server sends back (a malicious server must not write outside the
 * destination either). Anything that is not plainly a relative path of
 * ordinary names inside the root is refused, on every OS, whatever the OS
 * this side runs on (a name harmless here may be a device on Windows).
 */
import { PairlinkError } from "../errors.ts";

export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;
export const MAX_DEPTH = 64;

/** The suffix of in-progress files: never served, listed or accepted as a name. */
export const PART_SUFFIX = ".pairlink-part";

const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
const FORBIDDEN_CHARS = /[\u0000-\u001f\u007f-\u009f\\:*?"<>|]/;
// Line/paragraph separators and bidi controls: they make a name display as another name.
const DECEPTIVE_CHARS = /[\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;
const encoder = new TextEncoder();
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

function refuse(path: string, why: string): PairlinkError {
	const shown = JSON.stringify(path.length > 80 ? `${path.slice(0, 80)}…` : path);
	return new PairlinkError("invalid-path", `Refused path ${shown}: ${why}`);
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
	if (name === "") throw refuse(context, "empty path components are not allowed");
	if (name === "." || name === "..") throw refuse(context, `"${name}" is not allowed`);
	// Most names are printable ASCII: no Unicode form can hide in them, so the
	// costly checks (normalisation, UTF-8 length) are skipped for them.
	if (PRINTABLE_ASCII.test(name)) {
		if (name.length > MAX_NAME_BYTES)
			throw refuse(context, `a name is longer than ${MAX_NAME_BYTES} bytes`);
		if (name.includes("/")) throw refuse(context, "a name cannot contain /");
		if (FORBIDDEN_CHARS.test(name))
			throw refuse(context, 'control characters, \\ : * ? " < > | are not allowed');
		checkPortable(name, name, context);
		return;
	}
	if (!name.isWellFormed()) throw refuse(context, "not valid UTF-8");
	if (name.includes("/")) throw refuse(context, "a name cannot contain /");
	if (FORBIDDEN_CHARS.test(name))
		throw refuse(context, 'control characters, \\ : * ? " < > | are not allowed');
	if (DECEPTIVE_CHARS.test(name))
		throw refuse(context, "bidirectional or line-separator characters are not allowed");
	if (encoder.encode(name).length > MAX_NAME_BYTES)
		throw refuse(context, `a name is longer than ${MAX_NAME_BYTES} bytes`);
	// Compatibility forms can turn into "..", "/" or "\" when another layer normalises them.
	const folded = name.normalize("NFKC");
	if (folded === "." || folded === ".." || /[/\\]/.test(folded) || FORBIDDEN_CHARS.test(folded)) {
		throw refuse(context, "the name normalises to a path separator or a dot name");
	}
	checkPortable(name, folded, context);
}

/** Names that are fine here but not on Windows, and names of our own part files. */
function checkPortable(name: string, folded: string, context: string): void {
	if (WINDOWS_DEVICE.test(name) || WINDOWS_DEVICE.test(folded))
		throw refuse(context, "reserved device name");
	if (/[. ]$/.test(name)) throw refuse(context, "a name cannot end with a dot or a space");
	if (name.endsWith(PART_SUFFIX))
		throw refuse(context, "names of unfinished transfers are not allowed");
}

export function joinWirePath(parts: readonly string[]): string {
	return parts.join("/");
}
