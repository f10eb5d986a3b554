/**
 * The built executables. The checker the build relies on (format and CPU
 * from the first bytes) is tested on headers of every kind and on files that
 * must be refused. Each cross-compiled artifact present in dist/ is checked
 * against its target, SHA256SUMS against the files, and every artifact this
 * machine can run natively must report package.json's version (the arm64 one
 * under QEMU: tests/e2e/qemu.test.ts). `npm test` builds only dist/pairlink;
 * `bun scripts/build-binaries.ts --all` builds the rest.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { version } from "../../package.json" with { type: "json" };
import {
	type ExecutableKind,
	hostKind,
	identifyExecutable,
	identifyHead,
} from "../../scripts/artifact-format.ts";
import { artifactName, checkArtifact, TARGETS } from "../../scripts/build-binaries.ts";
import { BINARY, makeTempDir, removeTempDirs, runPairlink } from "../helpers/cli.ts";
import { fileSha256 } from "../helpers/faults.ts";

afterAll(removeTempDirs);

const DIST = join(import.meta.dir, "..", "..", "dist");
const built = TARGETS.filter((t) => existsSync(join(DIST, artifactName(t))));
if (built.length < TARGETS.length)
	console.warn(
		`artifacts.test.ts: checking ${built.length} of ${TARGETS.length} targets; \`bun scripts/build-binaries.ts --all\` builds them all`,
	);

/** bun prints no reason for a skip: the test's name carries it. */
const unbuilt = (t: (typeof TARGETS)[number]) =>
	built.includes(t)
		? ""
		: ` (skipped: not built; \`bun scripts/build-binaries.ts --all\` builds it)`;

/** A 4 KiB header with the given bytes written at the given offsets. */
function head(fields: [offset: number, bytes: number[]][]): Uint8Array {
	const h = new Uint8Array(4096);
	for (const [offset, bytes] of fields) h.set(bytes, offset);
	return h;
}
const le16 = (n: number) => [n & 0xff, n >> 8];
const le32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24];
const ELF = [0x7f, 0x45, 0x4c, 0x46];
const GLIBC_INTERP = [..."/lib/ld-linux-aarch64.so.1"].map((c) => c.charCodeAt(0));
const MUSL_INTERP = [..."/lib/ld-musl-x86_64.so.1"].map((c) => c.charCodeAt(0));

describe("the executable checker", () => {
	const cases: [string, Uint8Array, ExecutableKind][] = [
		[
			"ELF x86-64, glibc",
			head([
				[0, ELF],
				[18, le16(0x3e)],
			]),
			{ format: "elf", arch: "x64", musl: false },
		],
		[
			"ELF aarch64, glibc loader",
			head([
				[0, ELF],
				[18, le16(0xb7)],
				[0x238, GLIBC_INTERP],
			]),
			{ format: "elf", arch: "arm64", musl: false },
		],
		[
			"ELF x86-64, musl loader",
			head([
				[0, ELF],
				[18, le16(0x3e)],
				[0x238, MUSL_INTERP],
			]),
			{ format: "elf", arch: "x64", musl: true },
		],
		[
			"Mach-O x86-64",
			head([
				[0, le32(0xfeedfacf)],
				[4, le32(0x01000007)],
			]),
			{ format: "macho", arch: "x64" },
		],
		[
			"Mach-O arm64",
			head([
				[0, le32(0xfeedfacf)],
				[4, le32(0x0100000c)],
			]),
			{ format: "macho", arch: "arm64" },
		],
		[
			"PE x86-64",
			head([
				[0, [0x4d, 0x5a]],
				[0x3c, le32(0x80)],
				[0x80, le32(0x4550)],
				[0x84, le16(0x8664)],
			]),
			{ format: "pe", arch: "x64" },
		],
		[
			"MZ with its PE offset out of range",
			head([
				[0, [0x4d, 0x5a]],
				[0x3c, le32(0xffff)],
			]),
			{ format: "mz", arch: "unknown" },
		],
		[
			"a shell script",
			new TextEncoder().encode("#!/bin/sh\necho hi\n"),
			{
				format: "unknown",
				arch: "unknown",
			},
		],
	];
	for (const [what, bytes, kind] of cases) {
		test(`identifies ${what}`, () => {
			expect(identifyHead(bytes)).toEqual(kind);
		});
	}

	test("the build refuses a missing file, an empty one, and one of the wrong CPU", async () => {
		const dir = await makeTempDir("pairlink-artifacts-");
		const arm = TARGETS.find((t) => t.name === "linux-arm64")?.kind as ExecutableKind;
		const x64 = TARGETS.find((t) => t.name === "linux-x64")?.kind as ExecutableKind;
		await expect(checkArtifact(join(dir, "absent"), arm)).rejects.toThrow("produced no file");
		writeFileSync(join(dir, "empty"), "");
		await expect(checkArtifact(join(dir, "empty"), arm)).rejects.toThrow("produced no file");
		const armHead = head([
			[0, ELF],
			[18, le16(0xb7)],
		]);
		writeFileSync(join(dir, "arm"), armHead);
		await expect(checkArtifact(join(dir, "arm"), x64)).rejects.toThrow(
			"expected elf x64 (glibc), found elf arm64 (glibc)",
		);
		const ok = await checkArtifact(join(dir, "arm"), arm);
		expect(ok).toMatchObject({ bytes: 4096, sha256: await fileSha256(join(dir, "arm")) });
	});
});

describe("release artifacts", () => {
	for (const t of TARGETS) {
		test.skipIf(!built.includes(t))(
			`${artifactName(t)} is a ${t.kind.format} ${t.kind.arch} executable${unbuilt(t)}`,
			() => {
				expect(identifyExecutable(join(DIST, artifactName(t)))).toEqual(t.kind);
			},
		);
	}

	test.skipIf(built.length === 0)(
		`SHA256SUMS lists every built artifact with its real hash (sha256sum -c format)${built.length === 0 ? " (skipped: no release artifact built)" : ""}`,
		async () => {
			const sums = new Map<string, string>();
			for (const line of readFileSync(join(DIST, "SHA256SUMS"), "utf8").trim().split("\n")) {
				const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
				expect(m).not.toBeNull();
				sums.set(m?.[2] as string, m?.[1] as string);
			}
			for (const t of built) {
				const name = artifactName(t);
				expect(sums.get(name)).toBe(await fileSha256(join(DIST, name)));
			}
		},
		60_000,
	);

	// Natively runnable: same format and CPU as this machine, and not musl (a
	// glibc host lacks musl's libstdc++; README says what Alpine needs).
	const host = hostKind();
	const runnable = [
		BINARY,
		...built
			.filter((t) => t.kind.format === host.format && t.kind.arch === host.arch && !t.kind.musl)
			.map((t) => join(DIST, artifactName(t))),
	].filter((f) => existsSync(f));
	for (const file of runnable) {
		test(`${file.slice(DIST.length + 1)} --version is package.json's version`, async () => {
			// A copy in a fresh directory: the binary needs nothing from the repository.
			const dir = await makeTempDir("pairlink-version-");
			const copy = join(dir, "pairlink");
			copyFileSync(file, copy);
			const r = await runPairlink(["--version"], { exe: [copy], home: join(dir, "state") });
			expect({ exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr }).toEqual({
				exitCode: 0,
				stdout: `pairlink ${version}\n`,
				stderr: "",
			});
		});
	}
});
