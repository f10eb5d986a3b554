/**
 * Every timer in pairlink's connection code goes through a Clock, so a
 * timeout is tested by advancing time (tests/helpers/clock.ts) rather than
 * by waiting for it. Shared by transport, session, server and client, like
 * errors.ts: it holds no state of its own.
 */
export type TimerId = unknown;

export interface Clock {
	/** Milliseconds on a monotonic scale; only differences mean anything. */
	now(): number;
	setTimeout(fn: () => void, ms: number): TimerId;
	clearTimeout(timer: TimerId): void;
}

export const systemClock: Clock = {
	now: () => performance.now(),
	setTimeout: (fn, ms) => setTimeout(fn, ms),
	clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
};

/** Resolves after `ms` on `clock`; the timer is cleared by `cancel`. */
export function delay(clock: Clock, ms: number): { done: Promise<void>; cancel(): void } {
	let timer: TimerId;
	const done = new Promise<void>((resolve) => {
		timer = clock.setTimeout(resolve, ms);
	});
	return { done, cancel: () => clock.clearTimeout(timer) };
}
