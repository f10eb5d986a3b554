/**
 * One set of character rules (src/protocol/characters.ts) behind the wire
 * schema, the path rules, device names and the terminal escaper: every
 * control character is refused by each rule and escaped by the escaper.
 */
import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { escapeForTerminal, wireNameProblem } from "../../src/fs/safe-path.ts";
import { DeviceNameSchema } from "../../src/protocol/messages.ts";
import { deviceNameProblem } from "../../src/store/trust-store.ts";

const controls = [
	...Array.from({ length: 0x20 }, (_, i) => i),
	0x7f,
	...Array.from({ length: 0x20 }, (_, i) => 0x80 + i),
].map((c) => String.fromCharCode(c));

describe("every control character, by every rule", () => {
	test.each(controls.map((c) => [c.charCodeAt(0).toString(16), c]))(
		"U+%s is refused in file names, device names and on the wire, and escaped on a terminal",
		(_hex, c) => {
			const name = `a${c}b`;
			expect(wireNameProblem(name)).toBeDefined();
			expect(deviceNameProblem(name)).toBeDefined();
			expect(v.safeParse(DeviceNameSchema, name).success).toBe(false);
			expect(escapeForTerminal(name)).not.toContain(c);
		},
	);
});

describe("format characters", () => {
	test("a bidi override moves in a file name, is refused in a device name, and is escaped on a terminal", () => {
		const name = "invoice\u202Efdp.exe";
		expect(wireNameProblem(name)).toBeUndefined();
		expect(deviceNameProblem(name)).toBeDefined();
		expect(escapeForTerminal(name)).toBe("invoice\\u202efdp.exe");
	});
});
