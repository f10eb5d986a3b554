import { describe, expect, test } from "bun:test";
import {
	globToRegExp,
	hasGlob,
	matchGlob,
	resolveRemote,
	splitDirBase,
	splitLine,
} from "../../src/cli/repl/line.ts";
import { PairlinkError } from "../../src/errors.ts";
import { makePrng, seedFromEnv } from "../helpers/prng.ts";

const texts = (line: string) => splitLine(line).map((w) => w.text);

describe("splitLine", () => {
	test("words, quotes and escapes", () => {
		expect(texts("get  a.txt   b.txt")).toEqual(["get", "a.txt", "b.txt"]);
		expect(texts("get \"my file.pdf\" 'x y'")).toEqual(["get", "my file.pdf", "x y"]);
		expect(texts("get my\\ file.pdf")).toEqual(["get", "my file.pdf"]);
		expect(texts('get "a \\"quoted\\" name"')).toEqual(["get", 'a "quoted" name']);
		expect(texts("get 'it''s'")).toEqual(["get", "its"]);
		expect(texts('ls ""')).toEqual(["ls", ""]);
		expect(texts("   ")).toEqual([]);
	});

	test("quoted or escaped words are literal: no glob expansion", () => {
		const [, a, b, c] = splitLine('get *.pdf "*.pdf" \\*.pdf');
		expect(hasGlob(a as never)).toBe(true);
		expect(hasGlob(b as never)).toBe(false);
		expect(hasGlob(c as never)).toBe(false);
	});

	test("unbalanced quotes and a trailing backslash are usage errors", () => {
		for (const bad of ['get "open', "get 'open", "get x\\"]) {
			expect(() => splitLine(bad)).toThrow(PairlinkError);
		}
	});

	test("fuzz: any line either splits or throws a usage PairlinkError", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		const alphabet = ['"', "'", "\\", " ", "\t", "a", "*", "?", "[", "]", "é", "\u0000"];
		for (let i = 0; i < 20_000; i++) {
			let line = "";
			for (let n = rng.int(16); n > 0; n--) line += rng.pick(alphabet);
			try {
				splitLine(line);
			} catch (e) {
				if (!(e instanceof PairlinkError) || e.code !== "usage")
					throw new Error(`seed ${seed}: ${JSON.stringify(line)}: ${e}`);
			}
		}
	});
});

describe("resolveRemote", () => {
	test("relative, absolute, dot and dot-dot, clamped at the top", () => {
		expect(resolveRemote("", "docs")).toBe("docs");
		expect(resolveRemote("docs", "a.txt")).toBe("docs/a.txt");
		expect(resolveRemote("docs/sub", "..")).toBe("docs");
		expect(resolveRemote("docs", "../../../etc/passwd")).toBe("etc/passwd");
		expect(resolveRemote("docs", "/x")).toBe("x");
		expect(resolveRemote("docs", "./a//b/.")).toBe("docs/a/b");
		expect(resolveRemote("docs", "/")).toBe("");
	});
});

describe("globs", () => {
	test("matching", () => {
		const names = ["a.pdf", "b.PDF", ".hidden.pdf", "c.txt", "report 1.pdf", "x[1].pdf"];
		expect(matchGlob("*.pdf", names)).toEqual(["a.pdf", "report 1.pdf", "x[1].pdf"]);
		expect(matchGlob(".*", names)).toEqual([".hidden.pdf"]);
		expect(matchGlob("?.txt", names)).toEqual(["c.txt"]);
		expect(matchGlob("[ab].*", names)).toEqual(["a.pdf", "b.PDF"]);
		expect(matchGlob("[!a].pdf", names)).toEqual([]);
		expect(globToRegExp("a+b(c).*").test("a+b(c).x")).toBe(true);
	});

	test("splitDirBase", () => {
		expect(splitDirBase("docs/sub/*.pdf")).toEqual(["docs/sub", "*.pdf"]);
		expect(splitDirBase("*.pdf")).toEqual(["", "*.pdf"]);
	});
});
