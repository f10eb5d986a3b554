/**
 * The linux-arm64 release binary, run on this x64 machine under user-mode
 * QEMU (Debian: `qemu-user-static`, plus `libc6:arm64` for the dynamic
 * loader and libc it links against). The binary is built from the current
 * sources on first use (a few seconds: only the embedded runtime differs per
 * target), so the test never runs a stale one.
 *
 * Every reason the binary cannot run is returned as a sentence to skip with,
 * never thrown: a machine without QEMU is a machine where this is not tested.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { artifactName, TARGETS } from "../../scripts/build-binaries.ts";
import { REPO_ROOT } from "./cli.ts";

const TARGET = TARGETS.find((t) => t.name === "linux-arm64");
export const ARM64_BINARY = join(REPO_ROOT, "dist", TARGET ? artifactName(TARGET) : "missing");
const BUILD_TIMEOUT_MS = 300_000;

export type Arm64Runner = { argv: string[] } | { skip: string };

let cached: Promise<Arm64Runner> | undefined;

/** The argv prefix that runs the arm64 binary here, or why it cannot. */
export function arm64Pairlink(): Promise<Arm64Runner> {
	cached ??= prepare();
	return cached;
}

async function prepare(): Promise<Arm64Runner> {
	if (process.platform !== "linux" || process.arch !== "x64")
		return { skip: `this is ${process.platform}-${process.arch}, not a linux-x64 host` };
	const qemu = Bun.which("qemu-aarch64-static") ?? Bun.which("qemu-aarch64");
	if (!qemu)
		return {
			skip: "QEMU is not installed (Debian: `apt-get install qemu-user-static libc6:arm64` after `dpkg --add-architecture arm64`)",
		};
	const build = Bun.spawn(
		[process.execPath, join(REPO_ROOT, "scripts", "build-binaries.ts"), "--target", "linux-arm64"],
		{ cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe", timeout: BUILD_TIMEOUT_MS },
	);
	const [, buildErr] = await Promise.all([
		new Response(build.stdout).text(),
		new Response(build.stderr).text(),
	]);
	if ((await build.exited) !== 0 || !existsSync(ARM64_BINARY))
		return { skip: `the linux-arm64 build failed: ${buildErr.trim() || `exit ${build.exitCode}`}` };
	// A missing arm64 loader shows up as QEMU failing to open /lib/ld-linux-aarch64.so.1.
	const probe = Bun.spawnSync([qemu, ARM64_BINARY, "--version"], { timeout: 60_000 });
	if (probe.exitCode !== 0) {
		const why = probe.stderr.toString().trim() || `exit ${probe.exitCode}`;
		return {
			skip: `the arm64 binary does not start under ${qemu} (${why}); is libc6:arm64 installed?`,
		};
	}
	return { argv: [qemu, ARM64_BINARY] };
}
