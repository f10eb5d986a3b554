/**
 * Errors on the wire are small stable codes, never local messages or stack
 * traces: the receiving side turns them into its own sentence.
 */
import { type AdviceKey, type ErrorCode, PairlinkError } from "../errors.ts";

export const WIRE_ERROR_CODES = [
	"protocol",
	"version",
	"not-trusted",
	"no-code",
	"pairing-busy",
	"wrong-code",
	"code-expired",
	"busy",
	"stopping",
	"timeout",
	"internal",
	// Refusals of file operations.
	"not-found",
	"exists",
	"overwrite-forbidden",
	"read-only",
	"delete-forbidden",
	"permission",
	"invalid-path",
	"is-directory",
	"not-empty",
	"integrity",
	"disk-full",
	"io",
	"in-use",
	"changed",
] as const;

export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/**
 * What each code means to the client. `about` names the path the request
 * was for, so a refusal says which file it was about ("nope.txt" does not
 * exist on the server) rather than only that something failed; `advice`
 * picks the one hint that fits where the code's own would not.
 */
const FROM_WIRE: Record<
	WireErrorCode,
	{ code: ErrorCode; message: string; about?: (what: string) => string; advice?: AdviceKey }
> = {
	protocol: { code: "protocol", message: "The peer reported a protocol error." },
	version: {
		code: "protocol",
		message:
			"The peer speaks another version of the pairlink protocol: upgrade pairlink on the side with the older version.",
	},
	"not-trusted": {
		code: "not-trusted",
		message: "The server does not trust this device (not paired, or removed from its devices).",
	},
	"no-code": { code: "no-code", message: "The server is not accepting pairing right now." },
	"pairing-busy": { code: "pairing-busy", message: "The server is pairing with another device." },
	"wrong-code": { code: "wrong-code", message: "Pairing failed: wrong code." },
	"code-expired": {
		code: "code-expired",
		message: "The pairing code has expired or been used up.",
	},
	busy: {
		code: "connect-failed",
		message: "The server is busy: it serves as many clients as its --max-clients allows.",
		advice: "server-busy",
	},
	stopping: {
		code: "interrupted",
		message: "The server stopped (its `pairlink serve` was ended).",
		advice: "server-stopped",
	},
	"in-use": {
		code: "busy",
		message: "That file is being received by another transfer right now.",
		about: (w) => `${w} is being received on the server by another transfer right now`,
	},
	timeout: { code: "timeout", message: "The peer closed the connection after a timeout." },
	internal: { code: "internal", message: "The peer hit an internal error." },
	"not-found": {
		code: "not-found",
		message: "No such file or directory on the server.",
		about: (w) => `${w} does not exist on the server`,
	},
	exists: {
		code: "exists",
		message: "It already exists on the server.",
		about: (w) => `${w} already exists on the server`,
	},
	"overwrite-forbidden": {
		code: "permission",
		message: "The server does not allow replacing files.",
		about: (w) => `${w} already exists on the server, which does not allow replacing files`,
		advice: "overwrite-forbidden",
	},
	"read-only": {
		code: "permission",
		message: "The server is read-only.",
		advice: "read-only",
	},
	"delete-forbidden": {
		code: "permission",
		message: "The server does not allow deleting.",
		advice: "delete-forbidden",
	},
	permission: {
		code: "permission",
		message: "The server has no permission for that path.",
		about: (w) => `The server has no permission for ${w}`,
	},
	"invalid-path": {
		code: "invalid-path",
		message: "The server refused the path as unsafe or outside the shared directory.",
		about: (w) => `The server refused ${w} as a name its system cannot hold or as unsafe`,
	},
	"is-directory": {
		code: "is-directory",
		message: "That is a directory on the server.",
		about: (w) => `${w} is a directory on the server`,
	},
	"not-empty": {
		code: "not-empty",
		message: "The directory on the server is not empty.",
		about: (w) => `${w} is a directory on the server that is not empty`,
	},
	integrity: {
		code: "integrity",
		message: "The server received data whose SHA-256 did not match.",
		about: (w) => `The server received data for ${w} whose SHA-256 did not match`,
	},
	"disk-full": {
		code: "disk-full",
		message: "The server has no space left.",
		about: (w) => `The server has no space left for ${w}`,
	},
	changed: {
		code: "changed",
		message: "The file changed on the server while it was being sent; run the command again.",
		about: (w) => `${w} changed on the server while it was being sent; run the command again`,
	},
	io: {
		code: "refused",
		message: "The server could not complete the operation.",
		about: (w) => `The server could not complete the operation on ${w}`,
	},
};

/** A refusal the peer sent: the side that failed is the other one. */
export class WireError extends PairlinkError {
	constructor(
		readonly wire: WireErrorCode,
		code: ErrorCode,
		message: string,
		advice?: AdviceKey,
	) {
		super(code, message, { advice });
	}
}

/** The peer's refusal as an error; `what` (already quoted for people) names the path it was about. */
export function errorFromWire(code: WireErrorCode, what?: string, free?: number): WireError {
	const { code: local, message, about, advice } = FROM_WIRE[code];
	const said = what !== undefined && about ? about(what) : message;
	// A full disk says how much room there is, so the user knows what to free.
	const room = free !== undefined ? ` (${free} bytes are free there)` : "";
	return new WireError(code, local, `${said}${room}`, advice);
}

export function wireCodeFor(e: unknown): WireErrorCode {
	if (!(e instanceof PairlinkError)) return "internal";
	switch (e.code) {
		case "protocol":
		case "frame-too-large":
			return "protocol";
		case "timeout":
			return "timeout";
		case "not-trusted":
		case "no-certificate":
			return "not-trusted";
		case "wrong-code":
		case "no-code":
		case "pairing-busy":
			return e.code;
		case "code-expired":
		case "code-used":
			return "code-expired";
		case "not-found":
		case "exists":
		case "permission":
		case "invalid-path":
		case "integrity":
		case "disk-full":
		case "is-directory":
		case "not-empty":
		case "changed":
			return e.code;
		case "busy":
			return "in-use";
		case "refused":
		case "interrupted":
			return "io";
		default:
			return "internal";
	}
}
