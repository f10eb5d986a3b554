/**
 * One upload on the server, as a pure state machine per request id
 * (DESIGN §1): which frame is legal in which phase, how many bytes a file
 * may carry against the size it announced, and when it is committed.
 * server-session.ts performs the actions (opening the part file, writes,
 * commit) and feeds the outcomes back; it keeps no flags of its own.
 *
 *   opening ──opened──▶ ready ──put-start──▶ receiving ──put-end──▶ committing ──committed──▶ done
 *      │ (a file sent whole receives at once)      │ (its last byte)      ▲
 *      └──────────────────────────────────────────┴──────────────────────┘
 *   any live phase ──put-abort──▶ refused (changed)    ──io-failed──▶ failed
 *   opening ──up-to-date──▶ up-to-date
 *
 * Terminal phases absorb everything. Frames still on their way for an
 * upload that was refused, failed or found up to date are dropped (the
 * client learns of it from our error and stops); a frame for an upload
 * that is being committed or done, or that never existed, is a protocol
 * error: no honest client sends one.
 */
import { MAX_DATA_PAYLOAD } from "../protocol/limits.ts";
import type { WireErrorCode } from "../protocol/wire-errors.ts";
import { uploadAllowed } from "./peer-limits.ts";

export type UploadPhase =
	| "opening"
	| "ready"
	| "receiving"
	| "committing"
	| "done"
	| "up-to-date"
	| "refused"
	| "failed";

export interface UploadState {
	readonly phase: UploadPhase;
	/** Announced size; a stream's is known only at put-end. */
	readonly size: number;
	/** Bytes the part file holds: the resumed prefix plus what arrived since. */
	readonly received: number;
	/** Sent whole: its hash came with the put, it is committed when its bytes are in. */
	readonly whole: boolean;
	/** Standard input: no size check before put-end, never resumed. */
	readonly stream: boolean;
}

export type UploadEvent =
	/** The part file is open and put-ready was sent (or, sent whole, its bytes may come). */
	| { type: "opened" }
	/** The existing file already has this size and mtime: answered without a transfer. */
	| { type: "up-to-date" }
	| { type: "put-start"; offset: number }
	| { type: "data"; length: number }
	| { type: "put-end"; size?: number | undefined }
	| { type: "put-abort" }
	/** A file operation of this upload failed; the session has refused it with that error. */
	| { type: "io-failed" }
	| { type: "committed" };

export type UploadAction =
	| { type: "start-at"; offset: number }
	| { type: "write"; length: number }
	/** Verify against the hash, move into place, answer put-ok. */
	| { type: "commit"; size: number }
	/** End this upload with that wire code; nothing is committed. */
	| { type: "refuse"; wire: WireErrorCode; reason: string }
	/** The peer broke the protocol: the connection ends. */
	| { type: "protocol-error"; reason: string }
	/** The refused upload's last frame (put-end) came: its id need not be remembered any longer. */
	| { type: "forget" };

export interface UploadStep {
	state: UploadState | undefined;
	actions: UploadAction[];
}

const TERMINAL: ReadonlySet<UploadPhase> = new Set(["done", "up-to-date", "refused", "failed"]);
/** Ended without being committed: its remaining frames are dropped, not errors. */
const DROPS: ReadonlySet<UploadPhase> = new Set(["up-to-date", "refused", "failed"]);

/** Ended without a commit: work already queued for it is skipped. */
export function dropped(state: UploadState): boolean {
	return DROPS.has(state.phase);
}

/** What a frame for an id with no upload does: unknown ids are a protocol error. */
export const REFUSED: UploadState = {
	phase: "refused",
	size: 0,
	received: 0,
	whole: false,
	stream: false,
};

/**
 * A put arrives: its first state, or why it is not started. `openUploads`
 * counts the live uploads of this connection (PEER_LIMITS.openUploads).
 */
export function admit(
	put: { size: number; sha256?: string | undefined; stream?: boolean | undefined },
	known: boolean,
	openUploads: number,
): UploadStep {
	if (known) return protocol("request id reused");
	if (put.sha256 !== undefined && put.size > MAX_DATA_PAYLOAD)
		return protocol("a file sent whole must fit one data frame");
	if (!uploadAllowed(openUploads))
		// Each open upload holds a part file and a descriptor: refuse, and drop its data.
		return {
			state: REFUSED,
			actions: [{ type: "refuse", wire: "busy", reason: "too many uploads" }],
		};
	return {
		state: {
			phase: "opening",
			size: put.size,
			received: 0,
			whole: put.sha256 !== undefined,
			stream: put.stream === true,
		},
		actions: [],
	};
}

export function step(state: UploadState | undefined, event: UploadEvent): UploadStep {
	if (state === undefined) return protocol(NO_UPLOAD[event.type]);
	if (TERMINAL.has(state.phase)) return absorb(state, event);
	const { phase } = state;
	switch (event.type) {
		case "opened":
			// Frames the client sent without waiting may have moved it on already.
			if (phase !== "opening") return { state, actions: [] };
			if (state.whole && state.size === 0) return commit(state);
			return { state: { ...state, phase: state.whole ? "receiving" : "ready" }, actions: [] };
		case "up-to-date":
			// Decided before the part file is opened; a put-start may already have come.
			if (phase === "committing") return { state, actions: [] };
			return { state: { ...state, phase: "up-to-date" }, actions: [] };
		case "put-start":
			// Before put-ready is legal too: a client may send it without waiting (small files).
			if (state.whole || (phase !== "opening" && phase !== "ready"))
				return protocol(NO_UPLOAD["put-start"]);
			return {
				state: { ...state, phase: "receiving", received: event.offset },
				actions: [{ type: "start-at", offset: event.offset }],
			};
		case "data":
			return data(state, event.length);
		case "put-end": {
			if (state.whole || phase !== "receiving") return protocol(NO_UPLOAD["put-end"]);
			// A stream's length is known only now; anything else was announced in the put.
			const size = state.stream ? (event.size ?? state.size) : state.size;
			return commit({ ...state, size });
		}
		case "put-abort":
			if (phase === "committing") return protocol(NO_UPLOAD["put-abort"]);
			return refuse(state, "changed", "the file changed while it was being sent");
		case "io-failed":
			return { state: { ...state, phase: "failed" }, actions: [] };
		case "committed":
			if (phase !== "committing") return protocol("committed before its bytes were in");
			return { state: { ...state, phase: "done" }, actions: [] };
	}
}

function data(state: UploadState, length: number): UploadStep {
	if (state.phase !== "receiving" && !(state.whole && state.phase === "opening"))
		return protocol(NO_UPLOAD.data);
	if (!state.stream && state.received + length > state.size)
		return refuse(state, "integrity", "more data than announced");
	const next = { ...state, received: state.received + length };
	const write: UploadAction = { type: "write", length };
	if (state.whole && next.received === state.size) {
		const done = commit(next);
		return { state: done.state, actions: [write, ...done.actions] };
	}
	return { state: next, actions: [write] };
}

function absorb(state: UploadState, event: UploadEvent): UploadStep {
	// Outcomes of work already under way (a write that fails after the refusal) change nothing.
	if (event.type === "io-failed" || event.type === "committed" || event.type === "opened")
		return { state, actions: [] };
	if (!DROPS.has(state.phase)) return protocol(NO_UPLOAD[event.type]);
	return { state, actions: event.type === "put-end" ? [{ type: "forget" }] : [] };
}

function commit(state: UploadState): UploadStep {
	return {
		state: { ...state, phase: "committing" },
		actions: [{ type: "commit", size: state.size }],
	};
}

function refuse(state: UploadState, wire: WireErrorCode, reason: string): UploadStep {
	return { state: { ...state, phase: "refused" }, actions: [{ type: "refuse", wire, reason }] };
}

/** The connection ends, and every upload on it with the connection: no next state. */
function protocol(reason: string): UploadStep {
	return { state: undefined, actions: [{ type: "protocol-error", reason }] };
}

/** Why a frame is a protocol error where no upload takes it. */
const NO_UPLOAD: Record<UploadEvent["type"], string> = {
	opened: "opened without an upload",
	"up-to-date": "up to date without an upload",
	"put-start": "put-start without put",
	data: "data for a stream that is not an upload in progress",
	"put-end": "put-end without an upload",
	"put-abort": "put-abort without an upload",
	"io-failed": "a failure without an upload",
	committed: "committed without an upload",
};
