/** The one way an error reaches the user: one sentence and a hint on stderr, and an exit code. */
import {
	type AdviceKey,
	ERROR_TABLE,
	type ErrorCode,
	EXIT,
	type ExitCode,
	isPairlinkError,
	PairlinkError,
} from "../errors.ts";
import { logger, safe, safeLines } from "./terminal.ts";

export function isUsageError(e: unknown): boolean {
	if (isPairlinkError(e)) return e.code === "usage";
	return e instanceof Error && e.name === "CLIError";
}

export function exitCodeOf(e: unknown): ExitCode {
	if (isPairlinkError(e)) return e.exitCode;
	return isUsageError(e) ? EXIT.usage : EXIT.internal;
}

/**
 * `usageHint` replaces the generic "see --help" of a usage error with the
 * exact command to run (`pairlink get --help`); `prefix` locates the error
 * (a batch script's `line 6: get nope.md`).
 */
export function reportError(
	e: unknown,
	debug: boolean,
	opts: { usageHint?: string; prefix?: string } = {},
): ExitCode {
	const at = opts.prefix ? `${opts.prefix}: ` : "";
	const usageHint = opts.usageHint ?? ERROR_TABLE.usage.hint;
	if (isPairlinkError(e)) {
		const hint = e.code === "usage" && !e.advice ? usageHint : e.hint;
		logger.error(`${at}${sentence(safe(e.message))} ${safe(hint)}`);
	} else if (isUsageError(e))
		logger.error(`${at}${sentence(safe(stripAnsi((e as Error).message)))} ${usageHint}`);
	else
		logger.error(
			`${at}Unexpected error: ${safe(String((e as Error)?.message ?? e))}. ${ERROR_TABLE.internal.hint}`,
		);
	// A stack trace can quote a peer's text (a file name in a message): escaped like any other.
	if (debug && e instanceof Error && e.stack) process.stderr.write(`${safeLines(e.stack)}\n`);
	return exitCodeOf(e);
}

/** For `.catch`: an error of `code` gets the advice that fits where it happened. */
export const adviseOn =
	(code: ErrorCode, advice: AdviceKey) =>
	(e: unknown): never => {
		if (isPairlinkError(e) && e.code === code)
			throw new PairlinkError(code, e.message, { advice, cause: e });
		throw e;
	};

export const sentence = (s: string) => (/[.!?]$/.test(s) ? s : `${s}.`);
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping colour codes
export const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");
