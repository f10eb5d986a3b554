/** What every command needs from the environment: the state dir and this device. */
import { homedir, hostname } from "node:os";
import type { Identity } from "../store/identity.ts";
import { loadOrCreateIdentity } from "../store/identity.ts";
import { ensureStateDir, portableStateDir, resolveStateDir } from "../store/state-dir.ts";
import { TrustStore } from "../store/trust-store.ts";
import { logger } from "./terminal.ts";

export function stateDir(): string {
	return resolveStateDir(
		process.env,
		process.platform,
		homedir(),
		portableStateDir(process.execPath),
	);
}

export async function deviceIdentity(): Promise<Identity> {
	const dir = await preparedStateDir();
	return loadOrCreateIdentity(dir, { defaultName: hostname() });
}

export async function trustStore(): Promise<TrustStore> {
	return TrustStore.load(await preparedStateDir());
}

let warned = false;
/** The state directory, created; on a disk without Unix permissions, says so (once per run). */
async function preparedStateDir(): Promise<string> {
	const dir = stateDir();
	const status = await ensureStateDir(dir);
	if (!status.private && !warned) {
		warned = true;
		logger.warn(
			`${dir} is on a file system without Unix permissions (FAT or exFAT?): anyone who can read this disk can read this device's private key and act as this device.`,
		);
	}
	return dir;
}

/** Shared flag definitions, so every command spells them the same way. */
export const jsonArg = {
	json: { type: "boolean", description: "Print machine-readable NDJSON on stdout" },
} as const;
