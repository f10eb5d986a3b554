/**
 * Events-list tests of the client's download machine
 * (session/download-machine.ts), in the style of magic-wormhole's
 * test_machines.py: every phase reached, every bad sequence fails closed
 * with the error it must.
 */
import { describe, expect, test } from "bun:test";
import {
	type DownloadAction,
	type DownloadEvent,
	type DownloadPhase,
	REQUESTED,
	step,
} from "../../src/session/download-machine.ts";

function show(a: DownloadAction): string {
	switch (a.type) {
		case "start":
			return "start";
		case "write":
			return `write:${a.length}`;
		case "finish":
			return `finish:${a.sha256}`;
		case "fail":
			return `fail:${a.code}`;
	}
}

function run(events: DownloadEvent[]): { phase: DownloadPhase; actions: string[] } {
	let state = REQUESTED;
	const actions: string[] = [];
	for (const e of events) {
		const next = step(state, e);
		state = next.state;
		actions.push(...next.actions.map(show));
	}
	return { phase: state.phase, actions };
}

const file = (size: number, offset = 0, sha256?: string): DownloadEvent => ({
	type: "file",
	size,
	offset,
	sha256,
});
const data = (length: number): DownloadEvent => ({ type: "data", length });
const end = (sha256 = "h"): DownloadEvent => ({ type: "file-end", sha256 });
const committed: DownloadEvent = { type: "committed" };
const ioFailed: DownloadEvent = { type: "io-failed" };

describe("download machine: the good paths", () => {
	test("requested → receiving → committing → done", () => {
		expect(run([file(10), data(4), data(6), end(), committed])).toEqual({
			phase: "done",
			actions: ["start", "write:4", "write:6", "finish:h"],
		});
	});

	test("a resumed download counts its offset against the size", () => {
		expect(run([file(10, 8), data(2), end()])).toEqual({
			phase: "committing",
			actions: ["start", "write:2", "finish:h"],
		});
	});

	test("a file sent whole finishes on its last byte; an empty one at once", () => {
		expect(run([file(3, 0, "w"), data(3)])).toEqual({
			phase: "committing",
			actions: ["start", "write:3", "finish:w"],
		});
		expect(run([file(0, 0, "w")])).toEqual({ phase: "committing", actions: ["start", "finish:w"] });
	});
});

describe("download machine: a lying server fails closed", () => {
	const cases: [string, DownloadEvent[], string[]][] = [
		["more data than announced", [file(4), data(5)], ["start", "fail:integrity"]],
		[
			"more data than announced after a resumed offset",
			[file(4, 3), data(2)],
			["start", "fail:integrity"],
		],
		["data before the file was announced", [data(1)], ["fail:integrity"]],
		[
			"data after a whole file's last byte",
			[file(1, 0, "w"), data(1), data(1)],
			["start", "write:1", "finish:w", "fail:integrity"],
		],
		[
			"data after file-end",
			[file(2), data(1), end(), data(1)],
			["start", "write:1", "finish:h", "fail:integrity"],
		],
		["the same file announced twice", [file(4), file(100)], ["start", "fail:protocol"]],
		["file-end before the file", [end()], ["fail:protocol"]],
		["file-end for a file sent whole", [file(2, 0, "w"), end()], ["start", "fail:protocol"]],
		["file-end twice", [file(0), end(), end()], ["start", "finish:h", "fail:protocol"]],
	];
	for (const [name, events, actions] of cases) {
		test(name, () => {
			expect(run(events)).toEqual({ phase: "failed", actions });
		});
	}

	test("the receiver's failure ends it; nothing after is acted on", () => {
		expect(run([file(4), data(1), ioFailed, data(1), end(), committed])).toEqual({
			phase: "failed",
			actions: ["start", "write:1"],
		});
	});
});

describe("download machine: every (phase, event) pair is decided", () => {
	const PHASES: DownloadPhase[] = ["requested", "receiving", "committing", "done", "failed"];
	const EVENTS: DownloadEvent[] = [file(4), data(1), end(), ioFailed, committed];

	test("terminal phases absorb everything; live ones answer every event", () => {
		for (const phase of PHASES)
			for (const e of EVENTS) {
				const next = step({ ...REQUESTED, phase, size: 4 }, e);
				const terminal = phase === "done" || phase === "failed";
				expect({ phase, e: e.type, stays: terminal ? next.state.phase === phase : true }).toEqual({
					phase,
					e: e.type,
					stays: true,
				});
				if (terminal) expect(next.actions).toEqual([]);
			}
	});
});
