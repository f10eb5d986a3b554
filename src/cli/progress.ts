/**
 * Live progress on stderr for transfers that last long enough to matter:
 * one bar, labelled with the file's name when one file moves and "total"
 * when several do (bytes, rate, ETA). Only on a terminal and never with
 * --json. The bar is sized to the terminal on every redraw and never wider
 * than a line, and line wrap stays on, so result lines printed above it are
 * never cut or mixed with bar fragments. Rendering uses cli-progress: it
 * redraws in place and has no native parts, so it works in the compiled binary.
 *
 * Ctrl-C while a transfer runs restores the terminal, says that running
 * the same command again resumes, and exits with the "interrupted" code.
 */
import cliProgress from "cli-progress";
import type { TransferHooks } from "../client/transfer.ts";
import { PairlinkError } from "../errors.ts";
import { reportError } from "./error-report.ts";
import { cliFlags } from "./flags.ts";
import { formatBytes } from "./format.ts";
import { out, safe } from "./terminal.ts";

/** Transfers shorter than this show no bar at all. */
const SHOW_AFTER_MS = 300;
const MIN_BAR = 10;
const MAX_BAR = 30;

export interface Progress {
	hooks: Pick<TransferHooks, "onProgress" | "onFileProgress">;
	/** A result line for stdout that must not tear the bar when both share a terminal. */
	print(line: string): void;
	stop(): void;
}

export function progressFor(json: boolean, stream: NodeJS.WriteStream = process.stderr): Progress {
	let multi: cliProgress.MultiBar | undefined;
	const clear = () => {
		if (!multi) return;
		// Lines logged above the bar are flushed on the next redraw: force one before clearing.
		multi.update();
		multi.stop();
		multi = undefined;
	};
	const onInterrupt = () => {
		clear();
		process.exit(
			reportError(
				new PairlinkError("interrupted", "Interrupted by Ctrl-C", { advice: "user-cancelled" }),
				cliFlags.debug,
			),
		);
	};
	process.on("SIGINT", onInterrupt);
	const stop = () => {
		process.off("SIGINT", onInterrupt);
		clear();
	};
	if (json || !stream.isTTY) return { hooks: {}, print: out, stop };

	const started = performance.now();
	let bar: cliProgress.SingleBar | undefined;
	const inFlight = new Set<string>();
	const seen = new Set<string>();
	let label = "total";
	const ensure = () => {
		if (multi || performance.now() - started < SHOW_AFTER_MS) return multi !== undefined;
		multi = new cliProgress.MultiBar({
			stream,
			format: (_options, params, payload) =>
				renderLine(stream.columns || 80, params.progress, payload as Shown),
			hideCursor: true,
			// true: cli-progress leaves the terminal's line wrap alone (false turns it off).
			linewrap: true,
			clearOnComplete: true,
			stopOnComplete: false,
			fps: 10,
			noTTYOutput: false,
			// Ctrl-C is handled above: terminal restored, then a sentence.
			gracefulExit: false,
		});
		bar = multi.create(1, 0, shown(0, 0));
		return true;
	};
	const shown = (done: number, size: number): Shown => {
		const seconds = (performance.now() - started) / 1000;
		const rate = seconds > 0 ? done / seconds : 0;
		return {
			name: label,
			doneText: formatBytes(done),
			totalText: formatBytes(size),
			rateText: rate > 0 ? `${formatBytes(rate)}/s` : "-",
			etaText: rate > 0 && size >= done ? formatEta((size - done) / rate) : "-",
		};
	};
	return {
		hooks: {
			onProgress(done, size) {
				if (!ensure() || !bar) return;
				bar.setTotal(Math.max(size, 1));
				bar.update(done, shown(done, size));
			},
			onFileProgress(path, done, size) {
				seen.add(path);
				if (done >= size) inFlight.delete(path);
				else inFlight.add(path);
				// One file: its name. Several: the total, and how many are done.
				const only = seen.size === 1 ? [...seen][0] : undefined;
				label = only !== undefined ? safe(only) : `total (${seen.size - inFlight.size} done)`;
			},
		},
		print(line) {
			if (multi && process.stdout.isTTY) multi.log(`${line}\n`);
			else out(line);
		},
		stop,
	};
}

interface Shown {
	name: string;
	doneText: string;
	totalText: string;
	rateText: string;
	etaText: string;
}

export function formatEta(seconds: number): string {
	const s = Math.ceil(seconds);
	if (!Number.isFinite(s) || s < 0) return "-";
	if (s < 60) return `${s}s`;
	if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
	return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * One line, at most width-1 columns (the last column would make some
 * terminals wrap): the numbers first, then the bar, then as much of the name
 * as fits, shortened in the middle so both its start and its extension show.
 */
export function renderLine(width: number, ratio: number, p: Shown): string {
	const room = Math.max(width - 1, 20);
	const pct = `${Math.floor(Math.min(Math.max(ratio, 0), 1) * 100)}%`.padStart(4);
	const info = `${pct} ${p.doneText}/${p.totalText} ${p.rateText} ETA ${p.etaText}`;
	const barSize = Math.max(MIN_BAR, Math.min(MAX_BAR, room - info.length - 3 - 12));
	const filled = Math.round(barSize * Math.min(Math.max(ratio, 0), 1));
	const bar = `${"█".repeat(filled)}${"░".repeat(barSize - filled)}`;
	const head = `${bar} ${info}`;
	const nameRoom = room - head.length - 2;
	if (nameRoom < 4) return head.slice(0, room);
	return `${head}  ${shorten(p.name, nameRoom)}`;
}

function shorten(name: string, room: number): string {
	if (name.length <= room) return name;
	const keep = room - 1;
	const tail = Math.ceil(keep / 2);
	return `${name.slice(0, keep - tail)}…${name.slice(name.length - tail)}`;
}
