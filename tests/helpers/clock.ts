import type { Clock, TimerId } from "../../src/clock.ts";

/** A clock that moves only when the test says so: timers fire inside advance(), in order. */
export class ManualClock implements Clock {
	private at = 0;
	private nextId = 1;
	private readonly timers = new Map<number, { due: number; fn: () => void }>();

	now(): number {
		return this.at;
	}

	setTimeout(fn: () => void, ms: number): TimerId {
		const id = this.nextId++;
		this.timers.set(id, { due: this.at + Math.max(0, ms), fn });
		return id;
	}

	clearTimeout(timer: TimerId): void {
		this.timers.delete(timer as number);
	}

	/** Timers waiting to fire. */
	get pending(): number {
		return this.timers.size;
	}

	/** Move time forward by `ms`, firing every timer that falls due (including ones set meanwhile). */
	advance(ms: number): void {
		const until = this.at + ms;
		// Bounded: a timer that keeps re-arming itself at zero delay is a bug worth a loud failure.
		for (let fired = 0; ; fired++) {
			if (fired > 100_000) throw new Error("ManualClock: timers keep firing without end");
			let next: [number, { due: number; fn: () => void }] | undefined;
			for (const entry of this.timers) {
				if (entry[1].due <= until && (!next || entry[1].due < next[1].due)) next = entry;
			}
			if (!next) break;
			this.timers.delete(next[0]);
			this.at = next[1].due;
			next[1].fn();
		}
		this.at = until;
	}
}
