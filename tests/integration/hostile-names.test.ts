/**
 * Legal but extreme directory contents: many entries whose names are long,
 * or made of characters that JSON escapes to six bytes each. Found while
 * fuzzing the control messages (tests/fuzz/messages.fuzz.test.ts): the
 * schema allows 128 entries per listing message, and 128 such entries do
 * not fit in one 64 KiB control frame.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SandboxRoot } from "../../src/fs/root.ts";
import { MAX_CONTROL_PAYLOAD } from "../../src/protocol/limits.ts";
import { encodeMessage, MAX_ENTRIES_PER_MESSAGE } from "../../src/protocol/messages.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	serve,
	type TestDevice,
	type TestServer,
	tempRoot,
	trustEachOther,
} from "../helpers/devices.ts";

const FILES = MAX_ENTRIES_PER_MESSAGE + 2;
let desk: TestDevice;
let laptop: TestDevice;
let root: SandboxRoot;
let srv: TestServer;

beforeAll(async () => {
	[desk, laptop] = await Promise.all([makeDevice("desk"), makeDevice("laptop")]);
	await trustEachOther(laptop, desk);
	root = tempRoot();
	// 130 names of 243 bytes (Linux allows 255) in a directory whose own name is 200 bytes.
	const long = join(root.dir, "d".repeat(200));
	mkdirSync(long);
	for (let i = 0; i < FILES; i++)
		writeFileSync(join(long, `${String(i).padStart(3, "0")}${"n".repeat(240)}`), "x");
	// 130 names of 200 control characters: legal on Linux, 6 bytes each once JSON-escaped.
	const ctl = join(root.dir, "ctl");
	mkdirSync(ctl);
	for (let i = 0; i < FILES; i++)
		writeFileSync(join(ctl, `${String(i).padStart(3, "0")}${"\u0001".repeat(200)}`), "x");
	// The same count with short names: the control case, which works.
	const short = join(root.dir, "short");
	mkdirSync(short);
	for (let i = 0; i < FILES; i++) writeFileSync(join(short, `f${i}`), "x");
	srv = serve(desk, { root });
});

afterAll(async () => {
	await srv.server.stop(0);
	await removeTempDirs();
});

const session = () => connectTo(laptop, srv.target());

describe("listings that do not fit one control frame", () => {
	test("a directory of many short names lists and walks", async () => {
		const conn = await session();
		expect(await conn.session.list("short")).toHaveLength(FILES);
		expect((await conn.session.walk("short")).entries).toHaveLength(FILES);
		conn.close();
	});

	test("the arithmetic: 128 such entries exceed the control-frame cap", () => {
		const entry = { name: "\u0001".repeat(200), type: "file" as const, size: 1, mtime: 0 };
		const entries = Array.from({ length: MAX_ENTRIES_PER_MESSAGE }, () => entry);
		const bytes = encodeMessage({ t: "entries", id: 1, entries, done: false }).length;
		expect(bytes).toBeGreaterThan(MAX_CONTROL_PAYLOAD);
	});

	// Regression (once a bug):
	test("a directory of 130 names made of control characters lists", async () => {
		const conn = await session();
		try {
			expect(await conn.session.list("ctl")).toHaveLength(FILES);
		} finally {
			conn.close();
		}
	});

	test("a tree of 130 long names under a long directory name walks", async () => {
		const conn = await session();
		try {
			expect((await conn.session.walk("d".repeat(200))).entries).toHaveLength(FILES);
		} finally {
			conn.close();
		}
	});
});
