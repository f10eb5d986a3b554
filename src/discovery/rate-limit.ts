/**
 * Token buckets keyed by source, with a bounded number of keys: what keeps
 * a responder from becoming an amplifier or a CPU sink for a querier that
 * floods it. Pure: the clock is passed in.
 */
export class RateLimit {
	private readonly buckets = new Map<string, { tokens: number; at: number }>();

	constructor(
		/** Tokens regained per second. */
		private readonly perSecond: number,
		/** The bucket's size: how many may come at once. */
		private readonly burst: number,
		/** Sources remembered; the oldest is forgotten first. */
		private readonly maxKeys = 256,
	) {}

	allow(key: string, nowMs: number): boolean {
		const b = this.buckets.get(key) ?? { tokens: this.burst, at: nowMs };
		b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.at) / 1000) * this.perSecond);
		b.at = nowMs;
		this.buckets.delete(key);
		if (this.buckets.size >= this.maxKeys) {
			const oldest = this.buckets.keys().next().value;
			if (oldest !== undefined) this.buckets.delete(oldest);
		}
		this.buckets.set(key, b);
		if (b.tokens < 1) return false;
		b.tokens -= 1;
		return true;
	}
}
