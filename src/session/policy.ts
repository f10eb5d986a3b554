/**
 * The one place that decides whether a device may do an operation on a
 * path. Fed by the serve flags today; per-device rules (read-only for one
 * device, a subtree per device) plug in here later without touching the
 * handlers.
 */
import { PairlinkError } from "../errors.ts";
import type { PeerInfo } from "../protocol/channel.ts";
import type { WireErrorCode } from "../protocol/wire-errors.ts";

export interface ServePolicy {
	readOnly: boolean;
	allowOverwrite: boolean;
	allowDelete: boolean;
}

export type Operation =
	| { op: "list" | "stat" | "walk" | "get"; path: string }
	| { op: "put"; path: string; overwrite: boolean }
	| { op: "mkdir"; path: string }
	| { op: "rm"; path: string };

/** undefined when allowed; otherwise the refusal to send. */
export function allowed(
	policy: ServePolicy,
	_device: PeerInfo,
	operation: Operation,
): WireErrorCode | undefined {
	switch (operation.op) {
		case "list":
		case "stat":
		case "walk":
		case "get":
			return undefined;
		case "put":
			if (policy.readOnly) return "read-only";
			return undefined;
		case "mkdir":
			return policy.readOnly ? "read-only" : undefined;
		case "rm":
			if (policy.readOnly) return "read-only";
			return policy.allowDelete ? undefined : "delete-forbidden";
	}
}

/** Overwriting needs both sides to agree: the client asks, the server allows. */
export function overwriteRefusal(policy: ServePolicy, requested: boolean): WireErrorCode {
	return requested && !policy.allowOverwrite ? "overwrite-forbidden" : "exists";
}

/** A refusal that carries the exact wire code to send (and, with disk-full, the bytes free here). */
export const refusal = (wire: WireErrorCode, message: string, free?: number) =>
	new PairlinkError("refused", message, { wire, free });
