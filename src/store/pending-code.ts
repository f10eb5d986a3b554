/**
 * Persistence of this device's pending pairing code, in `pending-code.json`
 * (0600, atomic):
 *
 *   { "version": 1, code, createdAt, expiresAt, attempts, state }
 *
 * Only storage and the counting rule live here; the pairing protocol decides
 * when to call what. Attempts are counted when a pairing run *starts*
 * (DESIGN §3): `recordAttempt` admits a run or refuses it, and the third
 * admitted run burns the code — that run itself may still finish and call
 * `markUsed`.
 *
 * Every mutation re-reads the file under its lock (withFileLock), so
 * several `serve` processes sharing one state directory count every
 * attempt, and `markUsed` is the one atomic consumption: the server calls
 * it before it trusts the peer, and only one run can win it.
 */

import path from "node:path";
import { PairlinkError } from "../errors";
import {
	ensureStateDir,
	readJsonFile,
	removeFile,
	withFileLock,
	writeFileAtomic,
} from "./state-dir";

export const PENDING_CODE_FILE = "pending-code.json";
/** Started pairing runs a code allows (SPEC: burned after 3 failed attempts). */
export const MAX_PAIRING_ATTEMPTS = 3;
const FORMAT_VERSION = 1;

export type PendingCodeState = "pending" | "used" | "burned";

export interface PendingCode {
	/** Canonical form (normalised words), exactly what CPace uses as PRS. */
	code: string;
	/** ISO 8601. */
	createdAt: string;
	/** ISO 8601. */
	expiresAt: string;
	/** Pairing runs started with this code. */
	attempts: number;
	state: PendingCodeState;
}

export interface PendingCodeOptions {
	now?: () => Date;
}

/** What a code can do right now: "pending" means it can admit a run. */
export type PendingCodeStatus = PendingCodeState | "expired";

/** Pure. A used or burned code stays so even after its expiry. */
export function pendingCodeStatus(pending: PendingCode, now: Date): PendingCodeStatus {
	if (pending.state !== "pending") return pending.state;
	return now.getTime() >= Date.parse(pending.expiresAt) ? "expired" : "pending";
}

/** Stores a fresh code (replacing any previous one): 0 attempts, "pending". */
export async function savePendingCode(
	stateDir: string,
	params: { code: string; ttlMs: number },
	options: PendingCodeOptions = {},
): Promise<PendingCode> {
	if (params.code.length === 0)
		throw new PairlinkError("internal", "A pairing code cannot be empty.");
	if (!Number.isFinite(params.ttlMs) || params.ttlMs <= 0) {
		throw new PairlinkError("usage", "A pairing code's lifetime must be a positive duration.");
	}
	const now = (options.now ?? defaultNow)();
	const pending: PendingCode = {
		code: params.code,
		createdAt: now.toISOString(),
		expiresAt: new Date(now.getTime() + params.ttlMs).toISOString(),
		attempts: 0,
		state: "pending",
	};
	await withFileLock(fileIn(stateDir), () => write(stateDir, pending));
	return pending;
}

/** The stored code as is (whatever its status), or undefined if none. */
export async function loadPendingCode(stateDir: string): Promise<PendingCode | undefined> {
	return readJsonFile(fileIn(stateDir), parsePendingCode);
}

export async function clearPendingCode(stateDir: string): Promise<void> {
	await removeFile(fileIn(stateDir));
}

/**
 * Admits one pairing run: increments `attempts` and burns the code when it
 * reaches MAX_PAIRING_ATTEMPTS. Returns the updated record (possibly already
 * "burned": this run was the last one allowed). Throws PairlinkError and
 * changes nothing when no run may start: "no-code", "code-used" (used or
 * burned), "code-expired".
 */
export async function recordAttempt(
	stateDir: string,
	options: PendingCodeOptions = {},
): Promise<PendingCode> {
	return withFileLock(fileIn(stateDir), async () => {
		const current = await loadPendingCode(stateDir);
		assertAdmissible(current, (options.now ?? defaultNow)());
		const attempts = current.attempts + 1;
		const updated: PendingCode = {
			...current,
			attempts,
			state: attempts >= MAX_PAIRING_ATTEMPTS ? "burned" : "pending",
		};
		await write(stateDir, updated);
		return updated;
	});
}

/**
 * Marks the code used after a successful pairing. Also allowed on a code
 * burned by the run that just succeeded. Throws "no-code" if the code is
 * gone, and "code-used" if it was replaced by a different one meanwhile
 * (pass the code the run used) or already used.
 */
export async function markUsed(stateDir: string, code: string): Promise<PendingCode> {
	return withFileLock(fileIn(stateDir), async () => {
		const current = await loadPendingCode(stateDir);
		if (current === undefined)
			throw new PairlinkError("no-code", "There is no pending pairing code.");
		if (current.code !== code || current.state === "used") {
			throw new PairlinkError("code-used", "This pairing code has already been used or replaced.");
		}
		const updated: PendingCode = { ...current, state: "used" };
		await write(stateDir, updated);
		return updated;
	});
}

function assertAdmissible(
	current: PendingCode | undefined,
	now: Date,
): asserts current is PendingCode {
	if (current === undefined)
		throw new PairlinkError("no-code", "There is no pending pairing code.");
	switch (pendingCodeStatus(current, now)) {
		case "pending":
			return;
		case "expired":
			throw new PairlinkError("code-expired", "The pairing code has expired.");
		case "used":
			throw new PairlinkError("code-used", "The pairing code has already been used.");
		case "burned":
			throw new PairlinkError("code-used", "The pairing code was burned after too many attempts.");
	}
}

function fileIn(stateDir: string): string {
	return path.join(stateDir, PENDING_CODE_FILE);
}

function defaultNow(): Date {
	return new Date();
}

async function write(stateDir: string, pending: PendingCode): Promise<void> {
	await ensureStateDir(stateDir);
	const body = { version: FORMAT_VERSION, ...pending };
	await writeFileAtomic(fileIn(stateDir), `${JSON.stringify(body, null, "\t")}\n`);
}

function parsePendingCode(value: unknown): PendingCode {
	if (typeof value !== "object" || value === null || Array.isArray(value))
		throw new Error("not an object");
	const v = value as Record<string, unknown>;
	if (v.version !== FORMAT_VERSION) throw new Error(`unknown version ${JSON.stringify(v.version)}`);
	const { code, createdAt, expiresAt, attempts, state } = v;
	if (typeof code !== "string" || code.length === 0) throw new Error("code is missing");
	if (typeof createdAt !== "string" || Number.isNaN(Date.parse(createdAt)))
		throw new Error("createdAt is not a date");
	if (typeof expiresAt !== "string" || Number.isNaN(Date.parse(expiresAt)))
		throw new Error("expiresAt is not a date");
	if (typeof attempts !== "number" || !Number.isInteger(attempts) || attempts < 0) {
		throw new Error("attempts is not a count");
	}
	if (state !== "pending" && state !== "used" && state !== "burned")
		throw new Error("state is invalid");
	return { code, createdAt, expiresAt, attempts, state };
}
