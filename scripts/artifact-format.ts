/**
 * What an executable is, read from its first bytes: ELF, Mach-O or PE, and
 * for which CPU. One checker for the build (which refuses to report an
 * artifact of the wrong kind) and for tests/e2e/artifacts.test.ts.
 */
import { closeSync, openSync, readSync } from "node:fs";

export interface ExecutableKind {
	format: "elf" | "macho" | "pe" | "mz" | "unknown";
	arch: string;
	/** ELF only: the program interpreter is musl's loader (Alpine), not glibc's. */
	musl?: boolean;
}

/** Reads the first 4 KiB of `path`: enough for the ELF interpreter, the Mach-O header and the PE header. */
export function identifyExecutable(path: string): ExecutableKind {
	const head = new Uint8Array(4096);
	const fd = openSync(path, "r");
	try {
		readSync(fd, head, 0, head.length, 0);
	} finally {
		closeSync(fd);
	}
	return identifyHead(head);
}

export function identifyHead(head: Uint8Array): ExecutableKind {
	const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
	if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) {
		const machine = view.getUint16(18, true);
		return {
			format: "elf",
			arch: machine === 0x3e ? "x64" : machine === 0xb7 ? "arm64" : hex(machine),
			// PT_INTERP lies within the first page; its path names the C library.
			musl: new TextDecoder().decode(head).includes("ld-musl"),
		};
	}
	if (head.length >= 8 && view.getUint32(0, true) === 0xfeedfacf) {
		const cpu = view.getUint32(4, true);
		return {
			format: "macho",
			arch: cpu === 0x01000007 ? "x64" : cpu === 0x0100000c ? "arm64" : hex(cpu),
		};
	}
	if (head[0] === 0x4d && head[1] === 0x5a && head.length >= 0x40) {
		const pe = view.getUint32(0x3c, true);
		if (pe + 6 > head.length) return { format: "mz", arch: "unknown" };
		const machine = view.getUint16(pe + 4, true);
		return {
			format: view.getUint32(pe, true) === 0x4550 ? "pe" : "mz",
			arch: machine === 0x8664 ? "x64" : machine === 0xaa64 ? "arm64" : hex(machine),
		};
	}
	return { format: "unknown", arch: "unknown" };
}

/** What an executable for this machine looks like (musl left open: the host's libc is not checked). */
export function hostKind(): ExecutableKind {
	const format =
		process.platform === "darwin" ? "macho" : process.platform === "win32" ? "pe" : "elf";
	return { format, arch: process.arch };
}

/** Undefined when `actual` is what was `expected`; otherwise a sentence saying how it differs. */
export function kindMismatch(actual: ExecutableKind, expected: ExecutableKind): string | undefined {
	const want = describeKind(expected);
	const got = describeKind({
		...actual,
		...(expected.musl === undefined ? { musl: undefined } : {}),
	});
	return want === got ? undefined : `expected ${want}, found ${got}`;
}

export function describeKind(k: ExecutableKind): string {
	const libc = k.musl === undefined ? "" : k.musl ? " (musl)" : " (glibc)";
	return `${k.format} ${k.arch}${libc}`;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
