import { describe, expect, test } from "bun:test";
import { ERROR_TABLE, type ErrorCode, PairlinkError } from "../../src/errors.ts";
import { errorFromWire, WIRE_ERROR_CODES } from "../../src/protocol/wire-errors.ts";

describe("one error table: exit code, hint and wire code per error", () => {
	test("every error code names a wire code the protocol knows", () => {
		for (const [code, info] of Object.entries(ERROR_TABLE)) {
			expect({ code, known: WIRE_ERROR_CODES.includes(info.wire) }).toEqual({ code, known: true });
		}
	});

	test("an error is sent as its table's wire code", () => {
		const sent = (code: ErrorCode) => new PairlinkError(code, "x").wire;
		expect(sent("busy")).toBe("in-use");
		expect(sent("code-used")).toBe("code-expired");
		expect(sent("frame-too-large")).toBe("protocol");
		expect(sent("interrupted")).toBe("io");
		// Local-only situations tell the peer nothing more than "internal".
		expect(sent("state-corrupt")).toBe("internal");
	});

	test("a refusal with an exact reason is sent with it, and with the room left on a full disk", () => {
		const e = new PairlinkError("refused", "policy", { wire: "read-only" });
		expect([e.wire, e.exitCode]).toEqual(["read-only", ERROR_TABLE.refused.exit]);
		const full = new PairlinkError("refused", "full", { wire: "disk-full", free: 12 });
		expect([full.wire, full.free]).toEqual(["disk-full", 12]);
	});

	test("a peer's refusal keeps the code the peer sent", () => {
		const e = errorFromWire("overwrite-forbidden", '"a.txt"');
		expect([e.code, e.wire]).toEqual(["permission", "overwrite-forbidden"]);
	});
});
