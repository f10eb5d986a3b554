/**
 * A small seeded PRNG (mulberry32) for fuzz tests: fast, reproducible from a
 * printed 32-bit seed, and never used for anything secret.
 */

export interface Prng {
	readonly seed: number;
	/** Uniform 32-bit unsigned integer. */
	u32(): number;
	/** Uniform integer in [0, n). */
	int(n: number): number;
	/** Uniform float in [0, 1). */
	float(): number;
	bytes(n: number): Uint8Array;
	pick<T>(items: readonly T[]): T;
}

export function makePrng(seed: number): Prng {
	let state = seed >>> 0;
	const u32 = (): number => {
		state = (state + 0x6d2b79f5) >>> 0;
		let t = state;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return (t ^ (t >>> 14)) >>> 0;
	};
	const float = (): number => u32() / 2 ** 32;
	const int = (n: number): number => Math.floor(float() * n);
	return {
		seed: seed >>> 0,
		u32,
		int,
		float,
		bytes(n) {
			const out = new Uint8Array(n);
			for (let i = 0; i < n; i++) out[i] = u32() & 0xff;
			return out;
		},
		pick(items) {
			if (items.length === 0) throw new Error("pick from an empty list");
			return items[int(items.length)] as (typeof items)[number];
		},
	};
}

/** FUZZ_SEED from the environment (to replay a failure), else the clock. */
export function seedFromEnv(): number {
	const raw = process.env.FUZZ_SEED;
	if (raw !== undefined && raw.trim() !== "") {
		const seed = Number(raw);
		if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${raw}`);
		return seed >>> 0;
	}
	return Date.now() >>> 0;
}
