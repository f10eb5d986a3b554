/**
 * The CPU floor of moving one GiB through pairlink on one side, measured on
 * this machine: SHA-256 (every byte is hashed end to end), AES-128-GCM (the
 * TLS record protection; AES-256-GCM is within a few percent) and one copy
 * of the bytes. Prints CPU seconds per GiB as JSON. Run by bench/cpu.ts.
 */
import { createCipheriv } from "node:crypto";

const MIB = 1024 * 1024;
const block = crypto.getRandomValues(new Uint8Array(MIB));
const cpu = () => {
	const u = process.cpuUsage();
	return (u.user + u.system) / 1e6;
};
/** Best of three passes over 1 GiB: the floor is what the work costs, not what a busy machine adds. */
function best(pass: () => void): number {
	let min = Number.POSITIVE_INFINITY;
	for (let i = 0; i < 3; i++) {
		const t = cpu();
		pass();
		min = Math.min(min, cpu() - t);
	}
	return min;
}
const sha256 = best(() => {
	const h = new Bun.CryptoHasher("sha256");
	for (let i = 0; i < 1024; i++) h.update(block);
	h.digest();
});
const aesGcm = best(() => {
	const c = createCipheriv("aes-128-gcm", new Uint8Array(16), new Uint8Array(12));
	for (let i = 0; i < 1024; i++) c.update(block);
	c.final();
});
const dst = new Uint8Array(MIB);
const copy = best(() => {
	for (let i = 0; i < 1024; i++) dst.set(block);
});
console.log(JSON.stringify({ sha256, aesGcm, copy }));
