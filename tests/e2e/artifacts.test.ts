/**
 * The cross-compiled executables: right format and CPU for each target, and
 * SHA256SUMS that match. Runs when `bun scripts/build-binaries.ts --all`
 * has been run (CI builds only the host binary: six ~100 MB files are not
 * worth its time).
 */
import { describe, expect, test } from "bun:test";
import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { artifactName, TARGETS } from "../../scripts/build-binaries.ts";

const DIST = join(import.meta.dir, "..", "..", "dist");
const present = TARGETS.every((t) => existsSync(join(DIST, artifactName(t))));
if (!present)
	console.warn("artifacts.test.ts: SKIPPING, run `bun scripts/build-binaries.ts --all` first");

/** What the first bytes say: format and CPU. */
function identify(path: string): { format: string; arch: string; musl?: boolean } {
	const head = new Uint8Array(4096);
	const fd = openSync(path, "r");
	readSync(fd, head, 0, head.length, 0);
	closeSync(fd);
	const view = new DataView(head.buffer);
	if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) {
		const machine = view.getUint16(18, true);
		const interp = new TextDecoder().decode(head);
		return {
			format: "elf",
			arch: machine === 0x3e ? "x64" : machine === 0xb7 ? "arm64" : `0x${machine.toString(16)}`,
			musl: interp.includes("ld-musl"),
		};
	}
	if (view.getUint32(0, true) === 0xfeedfacf) {
		const cpu = view.getUint32(4, true);
		return {
			format: "macho",
			arch: cpu === 0x01000007 ? "x64" : cpu === 0x0100000c ? "arm64" : `0x${cpu.toString(16)}`,
		};
	}
	if (head[0] === 0x4d && head[1] === 0x5a) {
		const pe = view.getUint32(0x3c, true);
		const sig = view.getUint32(pe, true);
		const machine = view.getUint16(pe + 4, true);
		return {
			format: sig === 0x4550 ? "pe" : "mz",
			arch: machine === 0x8664 ? "x64" : `0x${machine.toString(16)}`,
		};
	}
	return { format: "unknown", arch: "unknown" };
}

const EXPECTED: Record<string, { format: string; arch: string; musl?: boolean }> = {
	"linux-x64": { format: "elf", arch: "x64", musl: false },
	"linux-arm64": { format: "elf", arch: "arm64", musl: false },
	"linux-x64-musl": { format: "elf", arch: "x64", musl: true },
	"darwin-x64": { format: "macho", arch: "x64" },
	"darwin-arm64": { format: "macho", arch: "arm64" },
	"windows-x64": { format: "pe", arch: "x64" },
};

describe.if(present)("release artifacts", () => {
	for (const t of TARGETS) {
		test(`${artifactName(t)} is a ${EXPECTED[t.name]?.format} ${EXPECTED[t.name]?.arch} executable`, () => {
			expect(identify(join(DIST, artifactName(t)))).toEqual(EXPECTED[t.name] as never);
		});
	}

	test("SHA256SUMS lists every artifact with its real hash (sha256sum -c format)", async () => {
		const sums = new Map<string, string>();
		for (const line of readFileSync(join(DIST, "SHA256SUMS"), "utf8").trim().split("\n")) {
			const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
			expect(m).not.toBeNull();
			sums.set(m?.[2] as string, m?.[1] as string);
		}
		for (const t of TARGETS) {
			const name = artifactName(t);
			const h = new Bun.CryptoHasher("sha256");
			for await (const chunk of Bun.file(join(DIST, name)).stream()) h.update(chunk);
			expect(sums.get(name)).toBe(h.digest("hex"));
		}
	}, 60_000);
});
