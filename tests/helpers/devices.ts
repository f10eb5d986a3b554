/** Test devices: each a PAIRLINK_HOME of its own in a temp dir, as SPEC.md promises. */
import { mkdtempSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectOptions, connect } from "../../src/client/connect.ts";
import type { Target } from "../../src/client/target.ts";
import { SandboxRoot } from "../../src/fs/root.ts";
import {
	type RunningServer,
	type ServerEvent,
	type ServerOptions,
	startServer,
} from "../../src/server/server.ts";
import { type Identity, loadOrCreateIdentity } from "../../src/store/identity.ts";
import { TrustStore } from "../../src/store/trust-store.ts";
import { makeTempDir, removeTempDirs, trackTempDir } from "./cli.ts";

export interface TestDevice {
	home: string;
	identity: Identity;
	trust: TrustStore;
}

export const tempDir = (prefix = "pairlink-test-"): Promise<string> => makeTempDir(prefix);
export { removeTempDirs };

export async function makeDevice(name: string): Promise<TestDevice> {
	const home = await tempDir(`pairlink-${name}-`);
	const identity = await loadOrCreateIdentity(home, { defaultName: name });
	return { home, identity, trust: await TrustStore.load(home) };
}

/** Trust each other directly, as a completed pairing would leave them. */
export async function trustEachOther(
	a: TestDevice,
	b: TestDevice,
	serverAddress = "127.0.0.1:1",
): Promise<void> {
	await a.trust.add({
		name: b.identity.name,
		fingerprint: b.identity.fingerprint,
		address: serverAddress,
	});
	await b.trust.add({
		name: a.identity.name,
		fingerprint: a.identity.fingerprint,
		address: "127.0.0.1:1",
	});
}

export interface TestServer {
	server: RunningServer;
	events: ServerEvent[];
	/** Resolves with the first event (past or future) that matches. */
	waitFor(match: (e: ServerEvent) => boolean): Promise<ServerEvent>;
	target(): Target;
}

export const OPEN_POLICY = { readOnly: false, allowOverwrite: false, allowDelete: false };

/** A fresh shared directory (removed with the other temp dirs). */
export function tempRoot(): SandboxRoot {
	const dir = trackTempDir(realpathSync(mkdtempSync(join(tmpdir(), "pairlink-root-"))));
	return SandboxRoot.fromRealPath(dir);
}

export function serve(dev: TestDevice, opts: Partial<ServerOptions> = {}): TestServer {
	const events: ServerEvent[] = [];
	const waiters: { match: (e: ServerEvent) => boolean; resolve: (e: ServerEvent) => void }[] = [];
	const server = startServer({
		hostname: "127.0.0.1",
		port: 0,
		identity: dev.identity,
		trust: dev.trust,
		root: opts.root ?? tempRoot(),
		policy: OPEN_POLICY,
		...opts,
		onEvent(e) {
			events.push(e);
			for (const w of waiters.splice(0)) {
				if (w.match(e)) w.resolve(e);
				else waiters.push(w);
			}
			opts.onEvent?.(e);
		},
	});
	return {
		server,
		events,
		waitFor(match) {
			const seen = events.find(match);
			if (seen) return Promise.resolve(seen);
			return new Promise((resolve) => waiters.push({ match, resolve }));
		},
		target: () => ({
			display: `127.0.0.1:${server.port}`,
			hostname: "127.0.0.1",
			port: server.port,
			named: undefined,
		}),
	};
}

export function connectTo(dev: TestDevice, target: Target, opts: Partial<ConnectOptions> = {}) {
	return connect({ target, identity: dev.identity, trust: dev.trust, ...opts });
}
