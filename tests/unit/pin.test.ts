/** SPEC's rule for names versus addresses, as the client's pin decision applies it. */
import { describe, expect, test } from "bun:test";
import { decidePin, type PinInput } from "../../src/session/pin.ts";

const desk = { name: "desk", fingerprint: "a".repeat(64) };
const phone = { name: "phone", fingerprint: "b".repeat(64) };
const stranger = "c".repeat(64);

const base: PinInput = {
	peerFingerprint: desk.fingerprint,
	host: "192.0.2.1",
	trusted: desk,
	named: undefined,
	lastAtAddress: desk,
	canPair: false,
	wantPair: false,
};

const errorCode = (p: Partial<PinInput>) => {
	const d = decidePin({ ...base, ...p });
	return d.ok ? d.mode : d.error.code;
};

describe("by address", () => {
	test("the certificate last seen there: a session", () => {
		expect(errorCode({})).toBe("session");
	});

	test("another trusted device's certificate where desk was last seen: the identity-changed warning", () => {
		const d = decidePin({ ...base, peerFingerprint: phone.fingerprint, trusted: phone });
		expect(d.ok).toBe(false);
		if (!d.ok) {
			expect(d.error.code).toBe("fingerprint-changed");
			expect(d.error.exitCode).toBe(4);
			expect(d.error.message).toMatch(/IDENTITY OF DESK HAS CHANGED/);
		}
	});

	test("the warning wins over any pairing prompt, asked for or offered", () => {
		const changed = { peerFingerprint: stranger, trusted: undefined };
		expect(errorCode({ ...changed, canPair: true })).toBe("fingerprint-changed");
		expect(errorCode({ ...changed, canPair: true, wantPair: true })).toBe("fingerprint-changed");
	});

	test("an address nobody was seen at: a stranger pairs with a code, or is refused without one", () => {
		const fresh = { peerFingerprint: stranger, trusted: undefined, lastAtAddress: undefined };
		expect(errorCode({ ...fresh, canPair: true })).toBe("pair");
		expect(errorCode(fresh)).toBe("not-trusted");
	});
});

describe("by name", () => {
	test("the named device's certificate is accepted wherever it is, even where another was last seen", () => {
		expect(errorCode({ named: desk, lastAtAddress: phone })).toBe("session");
	});

	test("another certificate under the name: the identity-changed warning, before any prompt", () => {
		expect(
			errorCode({ named: desk, peerFingerprint: phone.fingerprint, trusted: phone, canPair: true }),
		).toBe("fingerprint-changed");
	});
});

describe("picked from an announcement (pair without HOST)", () => {
	test("the certificate must be the one the announcement showed, before any prompt", () => {
		const forged = { announced: stranger, trusted: undefined, canPair: true, wantPair: true };
		const d = decidePin({ ...base, ...forged, peerFingerprint: phone.fingerprint });
		expect(d.ok).toBe(false);
		if (!d.ok) {
			expect(d.error.code).toBe("fingerprint-changed");
			expect(d.error.message).toContain("announced certificate");
		}
	});

	test("a new device at an address another one was last seen at (DHCP) pairs: the user picked it by its fingerprint", () => {
		const fresh = { peerFingerprint: stranger, trusted: undefined, lastAtAddress: desk };
		expect(errorCode({ ...fresh, announced: stranger, canPair: true, wantPair: true })).toBe(
			"pair",
		);
		// Typed as an address instead, the same situation is the loud warning.
		expect(errorCode({ ...fresh, canPair: true, wantPair: true })).toBe("fingerprint-changed");
	});
});
