/**
 * One download on the client, as a pure state machine per request id
 * (DESIGN §1): the server's `file` announcement, data frames never past the
 * announced size, then the hash (file-end, or the last byte of a file sent
 * whole). client-session.ts performs the actions on its receiver (a part
 * file, or standard output) and feeds failures back.
 *
 *   requested ──file──▶ receiving ──file-end / last byte of a whole file──▶ committing ──committed──▶ done
 *   (an empty file sent whole goes straight to committing)
 *   any live phase ──more data than announced / a second `file`──▶ failed
 *
 * Terminal phases absorb everything: the request has been answered.
 */
import type { ErrorCode } from "../errors.ts";

export type DownloadPhase = "requested" | "receiving" | "committing" | "done" | "failed";

export interface DownloadState {
	readonly phase: DownloadPhase;
	readonly size: number;
	/** Bytes accounted for so far: the resumed offset plus data frames, before they reach the sink. */
	readonly incoming: number;
	/** The file's hash when the server sent it whole: no file-end follows. */
	readonly wholeSha: string | undefined;
}

export type DownloadEvent =
	| { type: "file"; size: number; offset: number; sha256?: string | undefined }
	| { type: "data"; length: number }
	| { type: "file-end"; sha256: string }
	/** The receiver refused the file or failed to write it; the request has been rejected. */
	| { type: "io-failed" }
	| { type: "committed" };

export type DownloadAction =
	/** Tell the receiver about the file (it may refuse it). */
	| { type: "start" }
	| { type: "write"; length: number }
	/** Every byte is in: verify against `sha256`, keep it, acknowledge. */
	| { type: "finish"; sha256: string }
	/** The server broke its word: the request fails with this code. */
	| { type: "fail"; code: Extract<ErrorCode, "protocol" | "integrity">; reason: string };

export interface DownloadStep {
	state: DownloadState;
	actions: DownloadAction[];
}

export const REQUESTED: DownloadState = {
	phase: "requested",
	size: 0,
	incoming: 0,
	wholeSha: undefined,
};

export function step(state: DownloadState, event: DownloadEvent): DownloadStep {
	if (state.phase === "done" || state.phase === "failed") return { state, actions: [] };
	switch (event.type) {
		case "file": {
			// One header per download: a second one would reset the size every data frame is held to.
			if (state.phase !== "requested")
				return fail(state, "protocol", "the server announced the same file twice");
			const next: DownloadState = {
				phase: "receiving",
				size: event.size,
				incoming: event.offset,
				wholeSha: event.sha256,
			};
			// Sent whole with its hash up front, and empty: done at once.
			if (next.wholeSha !== undefined && next.size === 0) {
				const done = finish(next, next.wholeSha);
				return { state: done.state, actions: [{ type: "start" }, ...done.actions] };
			}
			return { state: next, actions: [{ type: "start" }] };
		}
		case "data": {
			const incoming = state.incoming + event.length;
			// Before `file` nothing was announced: any byte is more than that.
			if (incoming > state.size || state.phase !== "receiving")
				return fail(state, "integrity", "the server sent more data than it announced");
			const next = { ...state, incoming };
			const write: DownloadAction = { type: "write", length: event.length };
			if (next.wholeSha !== undefined && incoming === next.size) {
				const done = finish(next, next.wholeSha);
				return { state: done.state, actions: [write, ...done.actions] };
			}
			return { state: next, actions: [write] };
		}
		case "file-end":
			if (state.phase !== "receiving" || state.wholeSha !== undefined)
				return fail(state, "protocol", "the server ended a file it was not sending");
			return finish(state, event.sha256);
		case "io-failed":
			return { state: { ...state, phase: "failed" }, actions: [] };
		case "committed":
			if (state.phase !== "committing")
				return fail(state, "protocol", "committed before every byte was in");
			return { state: { ...state, phase: "done" }, actions: [] };
	}
}

function finish(state: DownloadState, sha256: string): DownloadStep {
	return { state: { ...state, phase: "committing" }, actions: [{ type: "finish", sha256 }] };
}

function fail(
	state: DownloadState,
	code: Extract<ErrorCode, "protocol" | "integrity">,
	reason: string,
): DownloadStep {
	return { state: { ...state, phase: "failed" }, actions: [{ type: "fail", code, reason }] };
}
