/**
 * The server's side of "may a pairing run start now?": a pending,
 * unexpired code in the state directory, and no other run under way.
 * The code file is read on every question, so `pairlink code` in another
 * process opens pairing for a server that is already running.
 */
import { PairlinkError } from "../errors.ts";
import {
	loadPendingCode,
	MAX_PAIRING_ATTEMPTS,
	markUsed,
	recordAttempt,
} from "../store/pending-code.ts";

export interface PairingGate {
	/**
	 * A code exists, usable or not: the peer may start pairing and will be
	 * told precisely why it cannot (expired, used up) instead of a bare "not
	 * trusted". Only `admit` decides whether a run really starts.
	 */
	isOpen(): Promise<boolean>;
	/**
	 * Count one attempt and hand out the code for this run, with how many
	 * attempts remain after it; throws when no run may start.
	 */
	admit(): Promise<{ code: string; left: number }>;
	/**
	 * The run that `admit` started proved the code: mark it used, atomically
	 * under the code file's lock, before the peer is trusted. Throws
	 * "code-used" when another process sharing the state directory consumed
	 * it first: a code pairs one device, however many `serve` share it.
	 */
	consume(): Promise<void>;
	/** The run that `admit` started is over: another may start. */
	release(): Promise<void>;
}

export function stateDirPairingGate(
	stateDir: string,
	now: () => Date = () => new Date(),
): PairingGate {
	let running: string | undefined;
	return {
		async isOpen() {
			return (await loadPendingCode(stateDir)) !== undefined;
		},
		async admit() {
			if (running !== undefined) {
				throw new PairlinkError("pairing-busy", "another device is pairing right now");
			}
			// Claimed before the await, so two PAKE1s arriving together cannot both start.
			running = "";
			try {
				const record = await recordAttempt(stateDir, { now });
				running = record.code;
				return { code: record.code, left: Math.max(MAX_PAIRING_ATTEMPTS - record.attempts, 0) };
			} catch (e) {
				running = undefined;
				throw e;
			}
		},
		async consume() {
			if (!running) throw new PairlinkError("internal", "no pairing run was admitted");
			await markUsed(stateDir, running);
		},
		async release() {
			running = undefined;
		},
	};
}
