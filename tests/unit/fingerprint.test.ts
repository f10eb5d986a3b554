import { describe, expect, test } from "bun:test";
import {
	fingerprintBytes,
	fingerprintOf,
	formatFingerprint,
	isFingerprintPrefix,
	normalizeFingerprint,
	normalizeFingerprintPrefix,
	tryNormalizeFingerprint,
} from "../../src/crypto/fingerprint";
import { PairlinkError } from "../../src/errors";

// SHA-256("abc"), FIPS 180-2 appendix B.1.
const ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const ABC_BUN = ABC.toUpperCase().match(/../g)?.join(":") ?? "";

function usageError(f: () => unknown): PairlinkError {
	try {
		f();
	} catch (e) {
		expect(e).toBeInstanceOf(PairlinkError);
		expect((e as PairlinkError).code).toBe("usage");
		return e as PairlinkError;
	}
	throw new Error("expected a PairlinkError");
}

describe("fingerprintOf", () => {
	test("is lowercase hex SHA-256 of the bytes", () => {
		expect(fingerprintOf(new TextEncoder().encode("abc"))).toBe(ABC);
	});

	test("agrees with Bun.CryptoHasher", () => {
		const bytes = crypto.getRandomValues(new Uint8Array(1000));
		expect(fingerprintOf(bytes)).toBe(new Bun.CryptoHasher("sha256").update(bytes).digest("hex"));
	});
});

describe("normalizeFingerprint", () => {
	test.each([
		["plain lowercase", ABC],
		["plain uppercase", ABC.toUpperCase()],
		["Bun fingerprint256 form", ABC_BUN],
		["our grouped form", formatFingerprint(ABC)],
		["our two-line form", formatFingerprint(ABC, { lines: 2 })],
		["surrounding whitespace", `  ${ABC}\n`],
	])("accepts %s", (_, input) => {
		expect(normalizeFingerprint(input)).toBe(ABC);
		expect(tryNormalizeFingerprint(input)).toBe(ABC);
	});

	test.each([
		["empty", ""],
		["63 digits", ABC.slice(1)],
		["65 digits", `${ABC}0`],
		["non-hex digit", `g${ABC.slice(1)}`],
		["hyphens", ABC.match(/..../g)?.join("-") ?? ""],
		["a name", "laptop"],
	])("rejects %s with a usage error", (_, input) => {
		expect(usageError(() => normalizeFingerprint(input)).message).toContain("64 hex digits");
		expect(tryNormalizeFingerprint(input)).toBeUndefined();
	});
});

describe("formatFingerprint", () => {
	test("16 groups of 4 on one line", () => {
		const s = formatFingerprint(ABC);
		expect(s).toBe(
			"ba78 16bf 8f01 cfea 4141 40de 5dae 2223 b003 61a3 9617 7a9c b410 ff61 f200 15ad",
		);
		expect(s.length).toBe(79);
	});

	test("two lines of 8 groups", () => {
		expect(formatFingerprint(ABC_BUN, { lines: 2 })).toBe(
			"ba78 16bf 8f01 cfea 4141 40de 5dae 2223\nb003 61a3 9617 7a9c b410 ff61 f200 15ad",
		);
	});

	test("rejects non-fingerprints", () => {
		usageError(() => formatFingerprint("abcd"));
	});
});

describe("fingerprintBytes", () => {
	test("32 raw bytes", () => {
		const bytes = fingerprintBytes(ABC_BUN);
		expect(bytes).toBeInstanceOf(Uint8Array);
		expect(bytes.length).toBe(32);
		expect(Buffer.from(bytes).toString("hex")).toBe(ABC);
	});

	test("rejects non-fingerprints", () => {
		usageError(() => fingerprintBytes("zz"));
	});
});

describe("isFingerprintPrefix", () => {
	test.each([
		["abcd", true, "abcd"],
		["ABCD", true, "abcd"],
		["AB:CD", true, "abcd"],
		["ab cd ef", true, "abcdef"],
		[ABC, true, ABC],
		[ABC_BUN, true, ABC],
		["abc", false, undefined],
		["ab:c", false, undefined],
		["abcg", false, undefined],
		[`${ABC}0`, false, undefined],
		["laptop", false, undefined],
		["", false, undefined],
	])("%p -> %p", (input, expected, normalized) => {
		expect(isFingerprintPrefix(input)).toBe(expected);
		expect(normalizeFingerprintPrefix(input)).toBe(normalized);
	});
});
