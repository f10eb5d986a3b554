/**
 * Live progress on stderr for transfers that last long enough to matter:
 * one bar per file in flight and one for the total (bytes, rate, ETA).
 * Only on a terminal and never with --json. Rendering uses cli-progress:
 * it writes to stderr, redraws in place, handles several bars at once and
 * has no native parts, so it works unchanged in the compiled binary.
 */
import cliProgress from "cli-progress";
import type { TransferHooks } from "../client/transfer.ts";
import { formatBytes } from "./format.ts";
import { out, safe } from "./terminal.ts";

/** Transfers shorter than this show no bars at all. */
const SHOW_AFTER_MS = 300;
const MAX_FILE_BARS = 4;

export interface Progress {
	hooks: Pick<TransferHooks, "onProgress" | "onFileProgress">;
	/** A result line for stdout that must not tear the bars when both share a terminal. */
	print(line: string): void;
	stop(): void;
}

export function progressFor(json: boolean, stream: NodeJS.WriteStream = process.stderr): Progress {
	if (json || !stream.isTTY) return { hooks: {}, print: out, stop: () => undefined };
	const started = performance.now();
	let multi: cliProgress.MultiBar | undefined;
	let total: cliProgress.SingleBar | undefined;
	const files = new Map<string, cliProgress.SingleBar>();
	const ensure = () => {
		if (multi || performance.now() - started < SHOW_AFTER_MS) return multi !== undefined;
		multi = new cliProgress.MultiBar(
			{
				stream,
				format:
					" {bar} {percentage}% | {doneText} of {totalText} | {rateText} | ETA {eta_formatted} | {name}",
				barsize: 24,
				hideCursor: true,
				clearOnComplete: true,
				stopOnComplete: false,
				etaBuffer: 50,
				fps: 10,
				noTTYOutput: false,
				// Ctrl-C belongs to the session (cancel) and to serve (stop), not to the bars.
				gracefulExit: false,
				formatValue: (v, _o, type) => (type === "percentage" ? String(v).padStart(3) : String(v)),
			},
			cliProgress.Presets.shades_classic,
		);
		total = multi.create(1, 0, { name: "total", doneText: "0 B", totalText: "?", rateText: "-" });
		return true;
	};
	const payload = (done: number, size: number, name: string) => {
		const seconds = (performance.now() - started) / 1000;
		return {
			name,
			doneText: formatBytes(done),
			totalText: formatBytes(size),
			rateText: seconds > 0 ? `${formatBytes(done / seconds)}/s` : "-",
		};
	};
	return {
		hooks: {
			onProgress(done, size) {
				if (!ensure()) return;
				total?.setTotal(Math.max(size, 1));
				total?.update(done, payload(done, size, "total"));
			},
			onFileProgress(path, done, size) {
				if (!ensure() || !multi) return;
				let bar = files.get(path);
				if (done >= size) {
					if (bar) multi.remove(bar);
					files.delete(path);
					return;
				}
				if (!bar) {
					if (files.size >= MAX_FILE_BARS) return;
					bar = multi.create(Math.max(size, 1), 0, payload(0, size, safe(path)));
					files.set(path, bar);
				}
				bar.update(done, payload(done, size, safe(path)));
			},
		},
		print(line) {
			if (multi && process.stdout.isTTY) multi.log(`${line}\n`);
			else out(line);
		},
		stop() {
			if (!multi) return;
			// Lines logged above the bars are flushed on the next redraw: force one before clearing.
			multi.update();
			multi.stop();
			multi = undefined;
		},
	};
}
