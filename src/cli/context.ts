/** What every command needs from the environment: the state dir and this device. */
import { homedir, hostname } from "node:os";
import type { Identity } from "../store/identity.ts";
import { loadOrCreateIdentity } from "../store/identity.ts";
import { ensureStateDir, resolveStateDir } from "../store/state-dir.ts";
import { TrustStore } from "../store/trust-store.ts";

export function stateDir(): string {
	return resolveStateDir(process.env, process.platform, homedir());
}

export async function deviceIdentity(): Promise<Identity> {
	return loadOrCreateIdentity(stateDir(), { defaultName: hostname() });
}

export async function trustStore(): Promise<TrustStore> {
	const dir = stateDir();
	await ensureStateDir(dir);
	return TrustStore.load(dir);
}

/** Shared flag definitions, so every command spells them the same way. */
export const jsonArg = {
	json: { type: "boolean", description: "Print machine-readable NDJSON on stdout" },
} as const;
