/** The one escaper for peer text (issue 14 item 4): every character that can reorder or hide what is shown. */
import { describe, expect, test } from "bun:test";
import { reportError } from "../../src/cli/error-report.ts";
import { safe, safeLines } from "../../src/cli/terminal.ts";
import { PairlinkError } from "../../src/errors.ts";

describe("safe", () => {
	test("bidi marks, the Arabic letter mark and the BOM are escaped", () => {
		expect(safe("a\u200eb\u200fc\u061cd\ufeffe")).toBe("a\\u200eb\\u200fc\\u061cd\\ufeffe");
	});

	test("C0, C1, DEL, line separators and bidi overrides/isolates are escaped", () => {
		expect(safe("\u001b]0;x\u0007\u009b31m\u007f\u2028\u202e\u2066")).toBe(
			"\\x1b]0;x\\x07\\x9b31m\\x7f\\u2028\\u202e\\u2066",
		);
		expect(safe("plain café 名前")).toBe("plain café 名前");
	});

	test("safeLines keeps line breaks and escapes everything else", () => {
		expect(safeLines("one\u202e\ntwo\u009b")).toBe("one\\u202e\ntwo\\x9b");
	});
});

describe("--debug stack traces", () => {
	test("a peer's text inside a stack trace reaches stderr escaped", () => {
		const e = new PairlinkError("not-found", "no such file \u009b2J\u202egpj.exe");
		const chunks: string[] = [];
		const write = process.stderr.write.bind(process.stderr);
		process.stderr.write = ((c: string | Uint8Array) => {
			chunks.push(String(c));
			return true;
		}) as typeof process.stderr.write;
		try {
			reportError(e, true);
		} finally {
			process.stderr.write = write;
		}
		const text = chunks.join("");
		expect(text).toContain("\\x9b2J\\u202egpj.exe");
		expect(text).not.toMatch(/[\u009b\u202e]/);
		expect(text).toContain("\n    at "); // still a readable, multi-line stack
	});
});
