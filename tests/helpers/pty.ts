/** Run a program in a pseudo-terminal through tests/helpers/pty-drive.py, typing as a person would. */
import { join } from "node:path";
import { REPO_ROOT } from "./cli.ts";

export interface PtyResult {
	exit: number | null;
	signal: number | null;
	transcript: string;
	failed_step: number | null;
}

export interface PtyScript {
	argv: string[];
	env: Record<string, string>;
	cwd: string;
	/** Seconds each step may wait for its `expect`. */
	timeout: number;
	/** Terminal width (the driver's default when absent). */
	cols?: number;
	steps: { expect?: string; send?: string }[];
}

export async function drivePty(script: PtyScript): Promise<PtyResult> {
	const p = Bun.spawn(["python3", join(REPO_ROOT, "tests", "helpers", "pty-drive.py")], {
		stdin: "pipe",
		stdout: "pipe",
		stderr: "pipe",
	});
	p.stdin.write(JSON.stringify(script));
	await p.stdin.end();
	const [text, err] = await Promise.all([
		new Response(p.stdout).text(),
		new Response(p.stderr).text(),
	]);
	await p.exited;
	if (!text.trim()) throw new Error(`pty driver failed: ${err}`);
	return JSON.parse(text) as PtyResult;
}
