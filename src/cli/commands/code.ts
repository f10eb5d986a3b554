import { defineCommand } from "citty";
import { DEFAULT_CODE_WORDS, generateCode } from "../../crypto/pairing-code.ts";
import { PairlinkError } from "../../errors.ts";
import { savePendingCode } from "../../store/pending-code.ts";
import { deviceIdentity, jsonArg, stateDir } from "../context.ts";
import { describeDuration, parseDuration } from "../duration.ts";
import { formatLocalTime } from "../format.ts";
import { out, outJson } from "../terminal.ts";

export const DEFAULT_CODE_TTL = "10m";

/** Make a code, store it as this device's pending code, and return it. */
export async function createPendingCode(words: number, ttl: string) {
	const ttlMs = parseDuration(ttl);
	if (ttlMs <= 0 || ttlMs > 7 * 86_400_000) {
		throw new PairlinkError("usage", "--ttl must be between 1 second and 7 days");
	}
	await deviceIdentity(); // the code is useless without an identity to pair
	const code = generateCode(words);
	const pending = await savePendingCode(stateDir(), { code, ttlMs });
	return { code, expiresAt: pending.expiresAt, ttlMs };
}

export function parseWords(text: string | undefined): number {
	if (text === undefined) return DEFAULT_CODE_WORDS;
	const n = Number(text);
	if (!/^\d+$/.test(text) || n < 4 || n > 8) {
		throw new PairlinkError(
			"usage",
			"--words must be a whole number from 4 to 8 (4 words = 44 bits)",
		);
	}
	return n;
}

export const codeCommand = defineCommand({
	meta: {
		name: "code",
		description: "Create a one-time pairing code for this device (replaces any pending one)",
	},
	args: {
		words: {
			type: "string",
			description: `Number of words (4-8; 11 bits each; default: ${DEFAULT_CODE_WORDS})`,
			valueHint: "N",
		},
		ttl: {
			type: "string",
			description: "How long the code stays valid",
			default: DEFAULT_CODE_TTL,
			valueHint: "DURATION",
		},
		...jsonArg,
	},
	async run({ args }) {
		const { code, expiresAt, ttlMs } = await createPendingCode(parseWords(args.words), args.ttl);
		if (args.json) {
			outJson({ code, expiresAt });
			return;
		}
		out(`Pairing code: ${code}`);
		out(
			`It works once and expires in ${describeDuration(ttlMs)} (at ${formatLocalTime(expiresAt, true)}).`,
		);
		out(
			"`pairlink serve` must run here without --no-pair (start it if it does not); then run `pairlink pair HOST` on the other device and type the code.",
		);
	},
});
