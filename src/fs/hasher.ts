/**
 * The SHA-256 that checks file contents end to end. Bun's native hasher
 * (SHA-NI where the CPU has it) is named here once, so session/ stays free
 * of runtime globals and reaches hashing the way it reaches files: through fs/.
 */
export interface Hasher {
	update(data: Uint8Array | string): Hasher;
	/** A hasher in the same state, for a digest of the prefix that keeps the original going. */
	copy(): Hasher;
	digest(encoding: "hex"): string;
}

export function newHasher(): Hasher {
	return new Bun.CryptoHasher("sha256");
}

/** SHA-256 of one buffer, in hex. */
export function sha256Hex(data: Uint8Array): string {
	return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}
