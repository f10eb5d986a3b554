/**
 * One failed file of a many-file transfer, told as the user needs it: which
 * file, on which side (this device, the server, or the connection between
 * them), and why. The rest of the transfer goes on without it.
 */
import { type AdviceKey, type ErrorCode, PairlinkError } from "../errors.ts";
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

/** How the transport words a peer that went away while this side was writing. */
const HUNG_UP = /ECONNRESET|EPIPE|connection closed while sending|connection is closed/;

/**
 * What failed for `label` (a local path, shown quoted): a refusal the server
 * sent already names its path; a lost connection or bad data is about the
 * transfer; anything else happened on this device and says so.
 */
export function accountFor(e: unknown, label: string): PairlinkError {
	if (e instanceof WireError) return e;
	// A reset while sending is the same event as an EOF while receiving (the server went
	// away mid-transfer): said the same way, without the socket's errno.
	if (e instanceof PairlinkError && e.code === "interrupted" && HUNG_UP.test(e.message))
		return new PairlinkError("interrupted", "the server closed the connection", { cause: e });
	// Bad data, or a source that changed while it was read: already said about the transfer.
	if (
		e instanceof PairlinkError &&
		(endsTransfer(e) ||
			e.code === "integrity" ||
			e.code === "changed" ||
			e.code === "stream-broken")
	)
		return e;
	// Already told as this device's failure, in its own words.
	if (e instanceof PairlinkError && e.code.startsWith("local-")) return e;
	return onThisDevice(e, label);
}

/** Already told as this device's failure (e.g. a directory above the file that could not be made). */
class LocalFailure extends PairlinkError {}

const local = (code: ErrorCode, message: string, e: unknown, advice?: AdviceKey) =>
	new LocalFailure(code, message, { cause: e, advice });

/**
 * A failure of this device's file system (or its rules) for `label`, said to
 * be local, in one sentence. An OS error is never "a bug": the disk, its
 * permissions or its mount said no.
 */
export function onThisDevice(e: unknown, label: string): PairlinkError {
	if (e instanceof LocalFailure) return e;
	const what = JSON.stringify(label);
	const os = osErrorOf(e);
	const code = e instanceof PairlinkError ? e.code : os ? ERRNO_CODES[os] : undefined;
	switch (code) {
		case "not-found":
		case "local-not-found":
			return local("local-not-found", `${what} does not exist on this device`, e);
		case "exists":
		case "local-exists":
			// mkdir -p met a file where a directory has to be (ENOTDIR/EEXIST).
			return os
				? local(
						"local-exists",
						`${what} cannot be created on this device: a file stands where a directory must be`,
						e,
						"file-in-the-way",
					)
				: local("local-exists", `${what} already exists on this device`, e);
		case "permission":
			return os === "EROFS"
				? local(
						"permission",
						`${what} is on a read-only file system on this device`,
						e,
						"read-only-fs",
					)
				: local("permission", `This device gives no permission for ${what}`, e);
		case "disk-full":
			return local("disk-full", `This device has no space left for ${what}`, e);
		case "is-directory":
			return local("is-directory", `${what} is a directory on this device`, e);
		case "busy":
			return local(
				"busy",
				`${what} is being received on this device by another transfer right now`,
				e,
			);
		case "invalid-name":
			return os
				? local("invalid-name", `${what} is too long a name for this device's file system`, e)
				: local("invalid-name", `${(e as Error).message} (${what}, on this device)`, e);
		case "out-of-descriptors":
			return local("out-of-descriptors", `This device has too many files open to write ${what}`, e);
		case "io-error":
			return local(
				"io-error",
				`The disk of this device failed reading or writing ${what}`,
				e,
				"local-io",
			);
		case undefined:
			return os
				? local("io-error", `${what} failed on this device: ${describeOs(e)}`, e, "local-io")
				: local("internal", `${what} on this device: ${String(e)}`, e);
		default:
			return local(code, `${(e as Error).message} (${what}, on this device)`, e);
	}
}

/** The OS error at the root of `e`, through the few layers that wrap it (fs/ keeps it as `cause`). */
function osErrorOf(e: unknown): string | undefined {
	let at = e;
	for (let depth = 0; depth < 4 && at !== undefined; depth++) {
		const os = errno(at);
		if (os !== undefined && !(at instanceof PairlinkError)) return os;
		at = (at as Error | undefined)?.cause;
	}
	return undefined;
}

/** What each OS error means for a file on this device. */
const ERRNO_CODES: Record<string, ErrorCode> = {
	ENOENT: "not-found",
	ENOTDIR: "exists",
	EEXIST: "exists",
	EACCES: "permission",
	EPERM: "permission",
	EROFS: "permission",
	ENOSPC: "disk-full",
	EDQUOT: "disk-full",
	EFBIG: "disk-full",
	EISDIR: "is-directory",
	ENAMETOOLONG: "invalid-name",
	EMFILE: "out-of-descriptors",
	ENFILE: "out-of-descriptors",
	EIO: "io-error",
};

/** "EXDEV: cross-device link not permitted, rename 'a' -> 'b'": the reason, without the paths. */
const describeOs = (e: unknown): string =>
	String((e as Error)?.message ?? e)
		.replace(/,\s.*$/, "")
		.replace(/^[A-Z]+:\s*/, "");
