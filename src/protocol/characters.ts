/**
 * The character classes behind every name rule and the terminal escaper
 * (DESIGN §5: one place for character rules). They live here, in the lowest
 * layer, so the wire schema (protocol/), the path rules (fs/safe-path.ts),
 * device names (store/trust-store.ts) and the escaper share one definition.
 * Pure.
 */

/** C0 controls, DEL and C1 controls: refused in every name that crosses the wire. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this finds
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * What a device name may not hold: controls (Cc), format characters such as
 * bidi overrides (Cf: names are printed to terminals and must not pose as
 * another), and line/paragraph separators (Zl, Zp). File names may hold the
 * latter three (any Unicode moves); they are escaped when printed instead.
 */
export const DEVICE_NAME_UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
export const DEVICE_NAME_UNSAFE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/**
 * What the terminal escaper rewrites in peer-controlled text: controls, bidi
 * marks and overrides (U+061C, U+200E/F, U+202A-E, U+2066-9), line and
 * paragraph separators, and the BOM.
 */
export const TERMINAL_UNSAFE_ALL =
	// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what gets escaped
	/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;
