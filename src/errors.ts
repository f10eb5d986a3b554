/**
 * The one error type of pairlink. Every failure the user can meet carries a
 * code; ERROR_TABLE maps it to the exit code of SPEC.md and a one-line hint.
 * Only src/cli/ prints errors or sets the exit code.
 */

export type ErrorCode =
	| "internal"
	| "usage"
	| "connect-failed"
	| "listen-failed"
	| "timeout"
	| "protocol"
	| "frame-too-large"
	| "not-trusted"
	| "no-certificate"
	| "fingerprint-changed"
	| "wrong-code"
	| "code-expired"
	| "code-used"
	| "no-code"
	| "pairing-busy"
	| "unknown-device"
	| "ambiguous-device"
	| "state-corrupt"
	| "state-locked"
	| "refused"
	| "not-found"
	| "exists"
	| "permission"
	| "invalid-path"
	| "is-directory"
	| "not-empty"
	| "busy"
	| "integrity"
	| "disk-full"
	| "interrupted"
	| "local-not-found"
	| "local-exists"
	| "invalid-name"
	| "state-permission"
	| "path-too-long"
	| "io-error"
	| "out-of-descriptors"
	| "changed"
	| "stream-broken";

export type ExitCode = 0 | 1 | 2 | 3 | 4 | 5 | 6;

export const EXIT = {
	ok: 0,
	internal: 1,
	usage: 2,
	connection: 3,
	auth: 4,
	refused: 5,
	transfer: 6,
} as const satisfies Record<string, ExitCode>;

interface ErrorInfo {
	exit: ExitCode;
	hint: string;
}

// `satisfies Record<ErrorCode, …>` makes tsc reject a code without an entry.
export const ERROR_TABLE = {
	internal: {
		exit: EXIT.internal,
		hint: "This is a bug in pairlink; run again with --debug and report it.",
	},
	usage: { exit: EXIT.usage, hint: "See --help for the command's usage." },
	"connect-failed": {
		exit: EXIT.connection,
		hint: "Check the address and that `pairlink serve` runs there.",
	},
	"listen-failed": {
		exit: EXIT.connection,
		hint: "Is another program using that port? Pick another with --port, or check --host.",
	},
	timeout: {
		exit: EXIT.connection,
		hint: "The peer did not answer in time; check the network and try again.",
	},
	protocol: {
		exit: EXIT.connection,
		hint: "The peer spoke an unexpected protocol; are both sides running pairlink of the same version?",
	},
	"frame-too-large": {
		exit: EXIT.connection,
		hint: "The peer sent an oversized frame; are both sides running pairlink?",
	},
	"not-trusted": {
		exit: EXIT.auth,
		hint: "Pair first: run `pairlink code` (or `serve`) on the server and `pairlink pair HOST` here.",
	},
	"no-certificate": {
		exit: EXIT.auth,
		hint: "The peer presented no certificate; it is not a pairlink device.",
	},
	"fingerprint-changed": {
		exit: EXIT.auth,
		hint: "If NAME was reinstalled, run `pairlink devices remove NAME` and pair again; otherwise someone may be impersonating it.",
	},
	"wrong-code": { exit: EXIT.auth, hint: "Check the code shown by the server and try again." },
	"code-expired": {
		exit: EXIT.auth,
		hint: "Create a new code with `pairlink code` on the server.",
	},
	"code-used": { exit: EXIT.auth, hint: "Create a new code with `pairlink code` on the server." },
	"no-code": {
		exit: EXIT.auth,
		hint: "The server has no pending pairing code; run `pairlink code` there.",
	},
	"pairing-busy": {
		exit: EXIT.auth,
		hint: "Another device is pairing right now; try again in a moment.",
	},
	"unknown-device": {
		exit: EXIT.usage,
		hint: "See `pairlink devices list` for the trusted devices.",
	},
	"ambiguous-device": { exit: EXIT.usage, hint: "Give more of the name or fingerprint." },
	"state-corrupt": {
		exit: EXIT.internal,
		hint: "A file in the state directory is damaged; move it away to reset it.",
	},
	"state-locked": {
		exit: EXIT.refused,
		hint: "Wait for the other pairlink command to finish; if none is running, delete the lock file.",
	},
	refused: { exit: EXIT.refused, hint: "The server refused the operation." },
	"not-found": { exit: EXIT.refused, hint: "Check the path with `pairlink ls`." },
	exists: {
		exit: EXIT.refused,
		hint: "Pass --overwrite to replace it (uploads also need the server's --allow-overwrite).",
	},
	permission: {
		exit: EXIT.refused,
		hint: "Check the permissions of that path.",
	},
	"invalid-path": { exit: EXIT.refused, hint: "Use a relative path inside the shared directory." },
	"is-directory": { exit: EXIT.refused, hint: "Use -r for directories." },
	"not-empty": { exit: EXIT.refused, hint: "Use -r to remove a directory and everything in it." },
	busy: { exit: EXIT.refused, hint: "Wait for the other transfer to finish, then try again." },
	integrity: {
		exit: EXIT.transfer,
		hint: "The data did not match its SHA-256; run the command again to retry.",
	},
	"disk-full": {
		exit: EXIT.transfer,
		hint: "Free some space and run the command again; it resumes.",
	},
	"invalid-name": {
		exit: EXIT.refused,
		hint: "Rename such files to names that both systems can hold.",
	},
	"local-not-found": {
		exit: EXIT.refused,
		hint: "Check that path on this device: it is a local path.",
	},
	"local-exists": {
		exit: EXIT.refused,
		hint: "Pass --overwrite to replace the local file, or choose another destination with -o.",
	},
	changed: {
		exit: EXIT.transfer,
		hint: "Run the command again once the file is no longer being written.",
	},
	"stream-broken": {
		exit: EXIT.transfer,
		hint: "Run the command again; a pipe must stay open until the whole file is through.",
	},
	interrupted: {
		exit: EXIT.transfer,
		hint: "Run the same command again; it resumes from the verified part.",
	},
	"state-permission": {
		exit: EXIT.refused,
		hint: "Give your user access to the state directory (chown it, chmod 700), or set PAIRLINK_HOME to a directory you own.",
	},
	"path-too-long": {
		exit: EXIT.usage,
		hint: "Set PAIRLINK_HOME to a shorter path.",
	},
	"io-error": {
		exit: EXIT.transfer,
		hint: "The disk reported an I/O error: check the disk (dmesg, fsck) or move PAIRLINK_HOME to another one, then run again.",
	},
	"out-of-descriptors": {
		exit: EXIT.transfer,
		hint: "Too many files are open: raise the limit (ulimit -n) or close other programs, then run again.",
	},
} as const satisfies Record<ErrorCode, ErrorInfo>;

/**
 * Advice for situations narrower than an error code, where the code's own
 * hint would be wrong (a read-only server is not a file-permission problem).
 * Every sentence a person reads after "what happened" is in ERROR_TABLE or
 * here, so the same situation is always explained the same way.
 */
export const ADVICE = {
	"read-only": "Ask the server's owner to run `pairlink serve` without --read-only.",
	// Only ever said to a client that passed --overwrite (policy.ts).
	"overwrite-forbidden": "Ask the server's owner to run `pairlink serve` with --allow-overwrite.",
	"delete-forbidden": "Ask the server's owner to run `pairlink serve` with --allow-delete.",
	"server-busy": "Try again when one of its clients has finished.",
	"server-stopped": "Run the same command again once it serves again; transfers resume.",
	"user-cancelled": "Run the same command again; it resumes from the verified part.",
	"dir-exists": "Nothing was created; `pairlink ls` shows what is there.",
	"pairing-closed":
		"On the server, run `pairlink code` while `pairlink serve` runs without --no-pair, then pair again.",
	"already-paired": "Use it by name, e.g. `pairlink ls NAME`.",
	"announce-mismatch":
		"Nothing was sent to it; compare the fingerprint shown on the device itself before pairing by address.",
	"code-burned": "Create a new code with `pairlink code` on the server, then pair again.",
	"unknown-host": "Check the spelling; `pairlink devices list` shows the names of trusted devices.",
	"stale-address":
		"If its address or port changed, connect once with HOST:PORT; the saved address then follows.",
	"local-path": "Check the local path with `lls`.",
	"read-only-fs": "Choose a destination on a writable disk, or remount that one read-write.",
	"local-io":
		"Check that disk (dmesg, fsck) or choose another destination, then run the command again; it resumes.",
	"local-kind": "Only regular files and directories can be sent.",
	"no-such-address":
		"Give one of this machine's own addresses (`ip addr` lists them), or leave out --host to listen on all of them.",
	"read-only-contradiction": "Drop one of the two options.",
	"mkdir-parents":
		"Create the missing directories first, from the top down (mkdir makes one at a time).",
	"rm-top": "Remove what is inside it by name; `pairlink ls` lists it.",
	"file-in-the-way":
		"A file cannot be replaced by a directory, even with --overwrite: move that file away, or choose another destination with -o.",
	"shell-ls": "Check the path with `ls`.",
	"part-name":
		"Such a file holds the verified part of an unfinished transfer and is never moved itself; run that transfer again to finish it.",
	"retype-code": "Type it again, as the server shows it.",
	"shell-help": "Type `help` for the commands, or `help COMMAND` for one.",
	"state-dir":
		"Check that PAIRLINK_HOME (or ~/.config/pairlink) is a directory you can write, or point PAIRLINK_HOME elsewhere.",
	// Each failed file was already named with its own reason and advice; one fits them all.
	"several-failed":
		"Fix what the lines above say, then run the same command again: it moves only what is missing.",
	"fingerprint-prefix": "Give more digits of the fingerprint (`pairlink devices list` shows them).",
} as const;

export type AdviceKey = keyof typeof ADVICE;

export class PairlinkError extends Error {
	override readonly name = "PairlinkError";
	readonly code: ErrorCode;
	/** Narrower advice than the code's hint, when the situation is known. */
	readonly advice: AdviceKey | undefined;
	/** The device the advice is about: it stands for NAME in the hint. */
	readonly device: string | undefined;

	constructor(
		code: ErrorCode,
		message: string,
		options?: { cause?: unknown; advice?: AdviceKey | undefined; device?: string | undefined },
	) {
		super(message, options);
		this.code = code;
		this.advice = options?.advice;
		this.device = options?.device;
	}

	get exitCode(): ExitCode {
		return ERROR_TABLE[this.code].exit;
	}

	get hint(): string {
		const hint = this.advice ? ADVICE[this.advice] : ERROR_TABLE[this.code].hint;
		return this.device === undefined ? hint : hint.replaceAll("NAME", this.device);
	}
}

export function isPairlinkError(e: unknown): e is PairlinkError {
	return e instanceof PairlinkError;
}
