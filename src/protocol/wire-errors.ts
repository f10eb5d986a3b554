/**
 * Errors on the wire are small stable codes, never local messages or stack
 * traces: the receiving side turns them into its own sentence.
 */
import { type ErrorCode, PairlinkError } from "../errors.ts";

export const WIRE_ERROR_CODES = [
	"protocol",
	"version",
	"not-trusted",
	"no-code",
	"pairing-busy",
	"wrong-code",
	"code-expired",
	"busy",
	"timeout",
	"internal",
] as const;

export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

const FROM_WIRE: Record<WireErrorCode, { code: ErrorCode; message: string }> = {
	protocol: { code: "protocol", message: "The peer reported a protocol error." },
	version: {
		code: "protocol",
		message: "The peer speaks another version of the pairlink protocol.",
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
	busy: { code: "connect-failed", message: "The server has too many connections right now." },
	timeout: { code: "timeout", message: "The peer closed the connection after a timeout." },
	internal: { code: "internal", message: "The peer hit an internal error." },
};

export function errorFromWire(code: WireErrorCode): PairlinkError {
	const { code: local, message } = FROM_WIRE[code];
	return new PairlinkError(local, message);
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
		default:
			return "internal";
	}
}
