/** Revocation that takes effect at once, for sessions already open (server and client side). */
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { TrustStore } from "./trust-store.ts";

/**
 * `pairlink devices remove` in another process must end the removed
 * device's open sessions at once (SPEC), on either side: watch the trust store's directory
 * (the file is replaced on every write, so watching the file itself would
 * lose it) and re-read it on every change.
 */
export function watchTrustStore(trust: TrustStore, onChange: () => void): FSWatcher | undefined {
	let reloading: Promise<void> | undefined;
	let again = false;
	const reload = (): void => {
		if (reloading) {
			again = true;
			return;
		}
		reloading = trust
			.reload()
			.then(onChange, () => undefined)
			.finally(() => {
				reloading = undefined;
				if (again) {
					again = false;
					reload();
				}
			});
	};
	try {
		const name = basename(trust.file);
		const watcher = watch(dirname(trust.file), (_event, file) => {
			// Every write renames a complete temp file onto this name: that is the event to act on.
			if (file === null || file === name) reload();
		});
		watcher.on("error", () => undefined);
		return watcher;
	} catch {
		// No state directory to watch yet: nothing can be revoked from it either.
		return undefined;
	}
}
