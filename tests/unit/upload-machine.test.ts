/**
 * Events-list tests of the server's upload machine (session/upload-machine.ts),
 * in the style of magic-wormhole's test_machines.py: feed a list of events,
 * compare the actions and the phase. Every phase is reached; every bad
 * sequence fails closed with the wire code (or the protocol error) it must.
 */
import { describe, expect, test } from "bun:test";
import { MAX_DATA_PAYLOAD, PEER_LIMITS } from "../../src/protocol/limits.ts";
import {
	admit,
	REFUSED,
	step,
	type UploadEvent,
	type UploadPhase,
	type UploadState,
} from "../../src/session/upload-machine.ts";

type Put = { size: number; sha256?: string; stream?: boolean };

/** Actions as short strings: "write:4", "refuse:integrity", "protocol", "commit:10". */
function run(put: Put, events: UploadEvent[], open = 0): { phase: string; actions: string[] } {
	const first = admit(put, false, open);
	const actions = first.actions.map(show);
	let state = first.state;
	for (const e of events) {
		const next = step(state, e);
		actions.push(...next.actions.map(show));
		state = next.state;
		if (!state) break; // the connection ends with a protocol error
	}
	return { phase: state?.phase ?? "closed", actions };
}

function show(a: ReturnType<typeof step>["actions"][number]): string {
	switch (a.type) {
		case "start-at":
			return `start:${a.offset}`;
		case "write":
			return `write:${a.length}`;
		case "commit":
			return `commit:${a.size}`;
		case "refuse":
			return `refuse:${a.wire}`;
		case "protocol-error":
			return "protocol";
		case "forget":
			return "forget";
	}
}

const opened: UploadEvent = { type: "opened" };
const start = (offset = 0): UploadEvent => ({ type: "put-start", offset });
const data = (length: number): UploadEvent => ({ type: "data", length });
const end = (size?: number): UploadEvent => ({ type: "put-end", size });
const abort: UploadEvent = { type: "put-abort" };
const ioFailed: UploadEvent = { type: "io-failed" };
const committed: UploadEvent = { type: "committed" };
const upToDate: UploadEvent = { type: "up-to-date" };
const WHOLE = "ab".repeat(32);

describe("upload machine: the good paths", () => {
	test("resumable file: opening → ready → receiving → committing → done", () => {
		expect(run({ size: 10 }, [opened, start(0), data(4), data(6), end(), committed])).toEqual({
			phase: "done",
			actions: ["start:0", "write:4", "write:6", "commit:10"],
		});
	});

	test("a resumed file counts the prefix it kept against the announced size", () => {
		expect(run({ size: 10 }, [opened, start(7), data(3), end()])).toEqual({
			phase: "committing",
			actions: ["start:7", "write:3", "commit:10"],
		});
	});

	test("put-start and data may come before put-ready was sent (no round trip per small file)", () => {
		expect(run({ size: 2 }, [start(0), data(2), opened, end()])).toEqual({
			phase: "committing",
			actions: ["start:0", "write:2", "commit:2"],
		});
	});

	test("a file sent whole is committed when its last byte is in; one of zero bytes when opened", () => {
		expect(run({ size: 5, sha256: WHOLE }, [data(2), opened, data(3)])).toEqual({
			phase: "committing",
			actions: ["write:2", "write:3", "commit:5"],
		});
		expect(run({ size: 0, sha256: WHOLE }, [opened])).toEqual({
			phase: "committing",
			actions: ["commit:0"],
		});
	});

	test("a stream has no size until put-end, and is not held to the announced one", () => {
		expect(run({ size: 0, stream: true }, [opened, start(0), data(9), data(9), end(18)])).toEqual({
			phase: "committing",
			actions: ["start:0", "write:9", "write:9", "commit:18"],
		});
	});

	test("up to date: answered without a transfer, and frames already sent are dropped", () => {
		expect(run({ size: 3 }, [start(0), upToDate, data(3), end()])).toEqual({
			phase: "up-to-date",
			actions: ["start:0", "forget"],
		});
	});
});

describe("upload machine: bad sequences fail closed", () => {
	const cases: [string, Put, UploadEvent[], string[], string][] = [
		[
			"more data than announced",
			{ size: 4 },
			[opened, start(0), data(5)],
			["start:0", "refuse:integrity"],
			"refused",
		],
		[
			"more data than announced, after a resumed prefix",
			{ size: 4 },
			[start(3), data(2)],
			["start:3", "refuse:integrity"],
			"refused",
		],
		[
			"more data than a file sent whole announced",
			{ size: 2, sha256: WHOLE },
			[data(3)],
			["refuse:integrity"],
			"refused",
		],
		["data before put-start", { size: 4 }, [opened, data(1)], ["protocol"], "closed"],
		["put-start twice", { size: 4 }, [start(0), start(0)], ["start:0", "protocol"], "closed"],
		[
			"put-start for a file sent whole",
			{ size: 1, sha256: WHOLE },
			[start(0)],
			["protocol"],
			"closed",
		],
		["put-end before put-start", { size: 4 }, [opened, end()], ["protocol"], "closed"],
		["put-end for a file sent whole", { size: 1, sha256: WHOLE }, [end()], ["protocol"], "closed"],
		[
			"data after put-end",
			{ size: 1 },
			[start(0), data(1), end(), data(1)],
			["start:0", "write:1", "commit:1", "protocol"],
			"closed",
		],
		[
			"put-abort while committing",
			{ size: 1 },
			[start(0), data(1), end(), abort],
			["start:0", "write:1", "commit:1", "protocol"],
			"closed",
		],
		[
			"data after done",
			{ size: 1, sha256: WHOLE },
			[data(1), committed, data(1)],
			["write:1", "commit:1", "protocol"],
			"closed",
		],
		[
			"put-end after done",
			{ size: 0, sha256: WHOLE },
			[opened, committed, end()],
			["commit:0", "protocol"],
			"closed",
		],
	];
	for (const [name, put, events, actions, phase] of cases) {
		test(name, () => {
			expect(run(put, events)).toEqual({ phase, actions });
		});
	}

	test("the sender's put-abort refuses with `changed` in every live phase", () => {
		const lead: Record<string, UploadEvent[]> = {
			opening: [],
			ready: [opened],
			receiving: [opened, start(0), data(1)],
		};
		for (const [phase, events] of Object.entries(lead)) {
			const out = run({ size: 4 }, [...events, abort]);
			expect({ phase, out: out.phase, last: out.actions.at(-1) }).toEqual({
				phase,
				out: "refused",
				last: "refuse:changed",
			});
		}
	});

	test("a failed write ends the upload; what was already queued changes nothing", () => {
		expect(
			run({ size: 4 }, [opened, start(0), data(1), ioFailed, data(1), ioFailed, end()]),
		).toEqual({
			phase: "failed",
			actions: ["start:0", "write:1", "forget"],
		});
	});

	test("admission: a reused id and an oversized whole file end the connection, one upload too many is `busy`", () => {
		expect(admit({ size: 1 }, true, 0)).toEqual({
			state: undefined,
			actions: [{ type: "protocol-error", reason: "request id reused" }],
		});
		expect(admit({ size: MAX_DATA_PAYLOAD + 1, sha256: WHOLE }, false, 0).actions[0]?.type).toBe(
			"protocol-error",
		);
		expect(run({ size: 1 }, [start(0), data(1), end()], PEER_LIMITS.openUploads)).toEqual({
			phase: "refused",
			actions: ["refuse:busy", "forget"],
		});
		expect(run({ size: 1 }, [], PEER_LIMITS.openUploads - 1).phase).toBe("opening");
	});

	test("a frame for an id that has no upload is a protocol error, whatever it is", () => {
		for (const e of [start(0), data(1), end(), abort]) {
			expect(step(undefined, e).actions.map((a) => a.type)).toEqual(["protocol-error"]);
		}
	});
});

describe("upload machine: every (phase, event) pair is decided, terminal phases absorb", () => {
	const PHASES: UploadPhase[] = [
		"opening",
		"ready",
		"receiving",
		"committing",
		"done",
		"up-to-date",
		"refused",
		"failed",
	];
	const EVENTS: UploadEvent[] = [
		opened,
		upToDate,
		start(0),
		data(1),
		end(1),
		abort,
		ioFailed,
		committed,
	];

	test("no pair throws, and each returns a state or a protocol error", () => {
		for (const whole of [false, true])
			for (const phase of PHASES)
				for (const e of EVENTS) {
					const s: UploadState = { phase, size: 4, received: 0, whole, stream: false };
					const next = step(s, e);
					const closes = next.actions.some((a) => a.type === "protocol-error");
					expect({ phase, e: e.type, ok: closes || next.state !== undefined }).toEqual({
						phase,
						e: e.type,
						ok: true,
					});
				}
	});

	test("a terminal phase never leaves itself and never writes or commits", () => {
		for (const phase of ["done", "up-to-date", "refused", "failed"] as const)
			for (const e of EVENTS) {
				const s: UploadState = { ...REFUSED, phase };
				const next = step(s, e);
				const acts = next.actions.map((a) => a.type);
				expect({
					phase,
					e: e.type,
					moved: next.state !== undefined && next.state.phase !== phase,
				}).toEqual({
					phase,
					e: e.type,
					moved: false,
				});
				expect(acts.filter((a) => a === "write" || a === "commit" || a === "start-at")).toEqual([]);
			}
	});
});
