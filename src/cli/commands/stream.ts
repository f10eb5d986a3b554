/**
 * `get … -o -`: one remote file to standard output, verified as it goes.
 * Bytes written cannot be taken back, so any failure once the file has
 * started is exit 6 saying the output is incomplete.
 */
import { write } from "node:fs";
import { EXIT, PairlinkError } from "../../errors.ts";
import { normalizeRemote } from "../../fs/safe-path.ts";
import type { ClientSession } from "../../session/client-session.ts";
import { sentence } from "../error-report.ts";
import { progressFor } from "../progress.ts";

/**
 * Standard output as a sink of its own (not process.stdout, whose EPIPE
 * handler ends the process with 0): each chunk resolves once all of it is
 * written, pipe or file, and a reader that went away rejects (EPIPE).
 * Written with write(2) in a loop that continues after a short write: under
 * Bun 1.4.4, `Bun.write(Bun.stdout, chunk)` in this process wrote a 100,000-byte
 * chunk into a pipe as 165,536 bytes (its first 64 KiB twice).
 */
async function toStdout(chunk: Uint8Array): Promise<void> {
	let done = 0;
	while (done < chunk.length) {
		try {
			done += await writeAt(STDOUT, chunk, done);
		} catch (e) {
			// A non-blocking pipe that is full: let the reader catch up, then go on.
			if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
			await new Promise((r) => setTimeout(r, PIPE_FULL_RETRY_MS));
		}
	}
}

const STDOUT = 1;
const PIPE_FULL_RETRY_MS = 2;

function writeAt(fd: number, chunk: Uint8Array, from: number): Promise<number> {
	return new Promise((resolve, reject) =>
		write(fd, chunk, from, chunk.length - from, null, (e, n) => (e ? reject(e) : resolve(n))),
	);
}

/** Nothing but the file reaches stdout: progress goes to stderr, and only when it is a terminal. */
export async function getToStdout(
	session: ClientSession,
	remotes: string[],
	opts: { recursive: boolean; json: boolean },
): Promise<void> {
	if (remotes.length !== 1 || opts.recursive || opts.json)
		throw new PairlinkError(
			"usage",
			"-o - writes one file to standard output: give one REMOTE, without -r or --json",
		);
	const remote = normalizeRemote(remotes[0] as string);
	const progress = progressFor(false);
	try {
		await session.downloadTo(remote, toStdout, {
			onProgress: (d, t) => {
				progress.hooks.onFileProgress?.(remote, d, t);
				progress.hooks.onProgress?.(d, t);
			},
		});
	} catch (e) {
		const error = e instanceof PairlinkError ? e : new PairlinkError("internal", String(e));
		const written = (e as { written?: number }).written ?? 0;
		// A refusal before the first byte (no such file, say) left the output untouched.
		if (written === 0 && error.exitCode === EXIT.refused) throw error;
		throw new PairlinkError(
			"stream-broken",
			`${sentence(error.message).replace(/\.$/, "")}; the output is incomplete (${written} bytes were written to it)`,
		);
	} finally {
		progress.stop();
	}
}
