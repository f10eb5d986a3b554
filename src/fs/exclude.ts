/**
 * SPEC "--exclude GLOB": a pattern matches any single name, or a path
 * relative to the directory being sent, that directory's own name included
 * (`photos/raw` when sending `photos`). Matching is Bun's Glob; the side
 * that walks applies it, so an excluded directory is never opened.
 */
import { PairlinkError } from "../errors.ts";
import { MAX_EXCLUDE_BYTES, MAX_EXCLUDES } from "../protocol/limits.ts";

/** True when `rel` (the `/`-separated path below the walked directory) is left out. */
export type Excluded = (rel: string) => boolean;

export const NOTHING_EXCLUDED: Excluded = () => false;

/** Patterns past the wire's bounds are refused the same way on both sides. */
export function checkExcludes(patterns: readonly string[]): void {
	if (patterns.length > MAX_EXCLUDES)
		throw new PairlinkError("usage", `at most ${MAX_EXCLUDES} --exclude patterns are allowed`);
	for (const p of patterns) {
		if (p === "" || Buffer.byteLength(p) > MAX_EXCLUDE_BYTES)
			throw new PairlinkError(
				"usage",
				`an --exclude pattern must be 1 to ${MAX_EXCLUDE_BYTES} bytes long`,
			);
	}
}

/** `top` is the walked directory's own name ("" for the top of a share). */
export function excluder(patterns: readonly string[], top: string): Excluded {
	if (patterns.length === 0) return NOTHING_EXCLUDED;
	const globs = patterns.map((p) => new Bun.Glob(p.replace(/^\/+|\/+$/g, "") || p));
	return (rel) => {
		const name = rel.slice(rel.lastIndexOf("/") + 1);
		const full = top ? `${top}/${rel}` : rel;
		return globs.some((g) => g.match(name) || g.match(full) || g.match(rel));
	};
}
