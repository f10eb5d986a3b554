/**
 * One failed file of a many-file transfer, told as the user needs it: which
 * file, on which side (this device, the server, or the connection between
 * them), and why. The rest of the transfer goes on without it.
 */
import { PairlinkError } from "../errors.ts";
import { errno } from "../fs/root.ts";
import { WireError } from "../protocol/wire-errors.ts";
import { PeerNameError } from "../session/client-session.ts";

export interface FileFailed {
	/** The file as the user knows it: remote path for get, local path for put. */
	path: string;
	error: PairlinkError;
}

/** Failures that end the whole transfer: the connection or the peer is the problem, not one file. */
const CONNECTION_CODES: ReadonlySet<string> = new Set([
	"interrupted",
	"protocol",
	"frame-too-large",
	"timeout",
	"connect-failed",
	"not-trusted",
]);

/** A lost connection, or a server that sent a forbidden name: no point going on with it. */
export function endsTransfer(e: PairlinkError): boolean {
	return e instanceof PeerNameError || CONNECTION_CODES.has(e.code);
}

/**
 * What failed for `label` (a local path, shown quoted): a refusal the server
 * sent already names its path; a lost connection or bad data is about the
 * transfer; anything else happened on this device and says so.
 */
export function accountFor(e: unknown, label: string): PairlinkError {
	if (e instanceof WireError) return e;
	// Bad data, or a source that changed while it was read: already said about the transfer.
	if (
		e instanceof PairlinkError &&
		(endsTransfer(e) ||
			e.code === "integrity" ||
			e.code === "changed" ||
			e.code === "stream-broken")
	)
		return e;
	// Already told as this device's failure (a directory above it that could not be made).
	if (e instanceof PairlinkError && e.code.startsWith("local-")) return e;
	return onThisDevice(e, label);
}

/** A failure of this device's file system (or its rules) for `label`, said to be local. */
export function onThisDevice(e: unknown, label: string): PairlinkError {
	const what = JSON.stringify(label);
	const code = e instanceof PairlinkError ? e.code : undefined;
	const os = errno(e);
	if (os === "ENOTDIR" || os === "EEXIST" || os === "ENOENT" || os === "EACCES" || os === "EPERM")
		return fromErrno(os, what, e);
	switch (code) {
		case "not-found":
		case "local-not-found":
			return new PairlinkError("local-not-found", `${what} does not exist on this device`);
		case "exists":
		case "local-exists":
			return new PairlinkError("local-exists", `${what} already exists on this device`);
		case "permission":
			return new PairlinkError("permission", `This device gives no permission for ${what}`);
		case "disk-full":
			return new PairlinkError("disk-full", `This device has no space left for ${what}`);
		case "is-directory":
			return new PairlinkError("is-directory", `${what} is a directory on this device`);
		case "busy":
			return new PairlinkError(
				"busy",
				`${what} is being received on this device by another transfer right now`,
			);
		case undefined:
			return new PairlinkError("internal", `${what} on this device: ${String(e)}`);
		default:
			return new PairlinkError(code, `${(e as Error).message} (${what}, on this device)`);
	}
}

function fromErrno(os: string, what: string, e: unknown): PairlinkError {
	switch (os) {
		case "ENOTDIR":
		case "EEXIST":
			// mkdir -p met a file where a directory has to be.
			return new PairlinkError(
				"local-exists",
				`${what} cannot be created on this device: a file stands where a directory must be`,
				{ cause: e },
			);
		case "ENOENT":
			return new PairlinkError("local-not-found", `${what} does not exist on this device`, {
				cause: e,
			});
		default:
			return new PairlinkError("permission", `This device gives no permission for ${what}`, {
				cause: e,
			});
	}
}
