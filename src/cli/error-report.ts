/** The one way an error reaches the user: one sentence and a hint on stderr, and an exit code. */
import { ERROR_TABLE, EXIT, type ExitCode, isPairlinkError } from "../errors.ts";
import { logger, safe } from "./terminal.ts";

export function isUsageError(e: unknown): boolean {
	if (isPairlinkError(e)) return e.code === "usage";
	return e instanceof Error && e.name === "CLIError";
}

export function exitCodeOf(e: unknown): ExitCode {
	if (isPairlinkError(e)) return e.exitCode;
	return isUsageError(e) ? EXIT.usage : EXIT.internal;
}

export function reportError(e: unknown, debug: boolean): ExitCode {
	if (isPairlinkError(e)) logger.error(`${sentence(safe(e.message))} ${e.hint}`);
	else if (isUsageError(e))
		logger.error(`${sentence(stripAnsi((e as Error).message))} ${ERROR_TABLE.usage.hint}`);
	else
		logger.error(
			`Unexpected error: ${safe(String((e as Error)?.message ?? e))}. ${ERROR_TABLE.internal.hint}`,
		);
	if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
	return exitCodeOf(e);
}

export const sentence = (s: string) => (/[.!?]$/.test(s) ? s : `${s}.`);
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping colour codes
export const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");
