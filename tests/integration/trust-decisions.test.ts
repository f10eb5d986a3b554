/**
 * Trust decisions that hold (issue 14, items 3 and 5): a code pairs one
 * device however many `serve` processes share it and whatever the client
 * limit; removing a device ends its open sessions at once; a failure while
 * saving trust ends one pairing run, never the server.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { generateCode } from "../../src/crypto/pairing-code.ts";
import { PairlinkError } from "../../src/errors.ts";
import type { Timeouts } from "../../src/protocol/limits.ts";
import { stateDirPairingGate } from "../../src/server/pairing-gate.ts";
import { loadPendingCode, savePendingCode } from "../../src/store/pending-code.ts";
import { TrustStore } from "../../src/store/trust-store.ts";
import { figure } from "../helpers/bad-peers.ts";
import { makeHome, runPairlink, startServe } from "../helpers/cli.ts";
import {
	connectTo,
	makeDevice,
	removeTempDirs,
	serve,
	trustEachOther,
} from "../helpers/devices.ts";
import { within } from "../helpers/files.ts";

const TIMEOUTS: Timeouts = { handshakeMs: 5000, idleMs: 10_000 };
const TTL_MS = 10 * 60_000;

afterAll(async () => {
	await removeTempDirs();
});

describe("a code pairs one device", () => {
	test("a pairing that succeeds at --max-clients still uses up the code and frees the gate", async () => {
		const desk = await makeDevice("desk");
		const holder = await makeDevice("holder");
		await trustEachOther(holder, desk);
		const code = generateCode();
		await savePendingCode(desk.home, { code, ttlMs: TTL_MS });
		const srv = serve(desk, {
			timeouts: TIMEOUTS,
			maxClients: 1,
			pairing: stateDirPairingGate(desk.home),
		});
		try {
			const held = await connectTo(holder, srv.target(), { timeouts: TIMEOUTS });
			await held.session.ping();
			const newcomer = await makeDevice("newcomer");
			const first = await connectTo(newcomer, srv.target(), {
				timeouts: TIMEOUTS,
				code: async () => code,
			}).then(
				(c) => c.closed,
				(e) => e,
			);
			// Paired, then turned away by the client limit.
			expect((first as PairlinkError | undefined)?.code).toBe("connect-failed");
			expect(await loadPendingCode(desk.home)).toMatchObject({ state: "used", attempts: 1 });
			expect((await TrustStore.load(desk.home)).list().map((d) => d.name)).toEqual([
				"holder",
				"newcomer",
			]);
			// The gate is free: a second device is told the code is used, not that pairing is busy.
			held.close();
			await held.closed;
			const second = await makeDevice("second");
			const err = await connectTo(second, srv.target(), {
				timeouts: TIMEOUTS,
				code: async () => code,
			}).catch((e) => e);
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).code).toBe("code-expired");
			expect((await TrustStore.load(desk.home)).list()).toHaveLength(2);
		} finally {
			await srv.server.stop(0);
		}
	});

	test("two serve processes sharing one state directory: concurrent pairings with one code pair exactly one device", async () => {
		const ROUNDS = 4;
		const home = await makeHome("desk");
		const a = await startServe({ home, timeoutMs: 120_000 });
		const b = await startServe({ home, timeoutMs: 120_000 });
		const outcomes: string[] = [];
		try {
			for (let round = 1; round <= ROUNDS; round++) {
				const code = generateCode();
				await savePendingCode(home, { code, ttlMs: TTL_MS });
				const clients = await Promise.all([makeHome(`c${round}a`), makeHome(`c${round}b`)]);
				const results = await Promise.all([
					runPairlink(["pair", a.address, "--name", "desk"], { home: clients[0], code }),
					runPairlink(["pair", b.address, "--name", "desk"], { home: clients[1], code }),
				]);
				const codes = results.map((r) => r.exitCode);
				outcomes.push(codes.join("/"));
				expect(codes.filter((c) => c === 0)).toHaveLength(1);
				expect(codes.filter((c) => c === 4)).toHaveLength(1);
				const stored = await loadPendingCode(home);
				expect(stored?.state).toBe("used");
				// Exactly one device more per round, on the shared trust store.
				expect((await TrustStore.load(home)).list()).toHaveLength(round);
				// The loser trusts nobody either.
				const loser = clients[codes.indexOf(4)] as string;
				expect((await TrustStore.load(loser)).list()).toHaveLength(0);
			}
		} finally {
			await a.serve.stop();
			await b.serve.stop();
		}
		figure(
			`two serve processes, one code, concurrent pair per round (exit codes): ${outcomes.join(", ")}`,
		);
	}, 120_000);
});

describe("trust changes take effect at once", () => {
	test("`pairlink devices remove` in another process ends the device's open session: its next ls fails", async () => {
		const desk = await makeDevice("desk");
		const laptop = await makeDevice("laptop");
		const other = await makeDevice("other");
		await trustEachOther(laptop, desk);
		await trustEachOther(other, desk);
		const srv = serve(desk, { timeouts: TIMEOUTS });
		try {
			const conn = await connectTo(laptop, srv.target(), { timeouts: TIMEOUTS });
			const kept = await connectTo(other, srv.target(), { timeouts: TIMEOUTS });
			expect(await conn.session.list("")).toEqual([]);
			const gone = srv.waitFor(
				(e) => e.event === "disconnected" && e.fingerprint === laptop.identity.fingerprint,
			);
			const removed = await runPairlink(["devices", "remove", "laptop"], { home: desk.home });
			expect(removed.exitCode).toBe(0);
			await within(5000, gone, "the removed device's session to end");
			const err = await conn.session.list("").catch((e) => e);
			expect(err).toBeInstanceOf(PairlinkError);
			expect((err as PairlinkError).code).toBe("not-trusted");
			// The device that was not removed is still served on its open session.
			expect(await kept.session.list("")).toEqual([]);
			kept.close();
		} finally {
			await srv.server.stop(0);
		}
	}, 30_000);
});

describe("an error boundary per connection", () => {
	test.each(["EACCES", "ENOSPC", "state-locked"])(
		"saving trust during pairing fails with %s: that run fails, serve keeps serving its other clients",
		async (failure) => {
			const desk = await makeDevice("desk");
			const laptop = await makeDevice("laptop");
			await trustEachOther(laptop, desk);
			const code = generateCode();
			await savePendingCode(desk.home, { code, ttlMs: TTL_MS });
			// Injected: the trust store's write fails the way the disk or another process would make it.
			desk.trust.add = async () => {
				if (failure === "state-locked")
					throw new PairlinkError("state-locked", "trusted.json.lock is held by another process");
				throw Object.assign(new Error(`${failure}: injected`), { code: failure });
			};
			const srv = serve(desk, { timeouts: TIMEOUTS, pairing: stateDirPairingGate(desk.home) });
			try {
				const open = await connectTo(laptop, srv.target(), { timeouts: TIMEOUTS });
				const newcomer = await makeDevice("newcomer");
				const err = await connectTo(newcomer, srv.target(), {
					timeouts: TIMEOUTS,
					code: async () => code,
				}).catch((e) => e);
				expect(err).toBeInstanceOf(PairlinkError);
				const refused = await srv.waitFor(
					(e) => e.event === "refused" && e.fingerprint === newcomer.identity.fingerprint,
				);
				expect(refused).toMatchObject({ event: "refused" });
				// The open session and a new one are both served.
				expect(await open.session.list("")).toEqual([]);
				const again = await connectTo(laptop, srv.target(), { timeouts: TIMEOUTS });
				expect(typeof (await again.session.ping())).toBe("number");
				expect((await TrustStore.load(desk.home)).list().map((d) => d.name)).toEqual(["laptop"]);
				expect((await TrustStore.load(newcomer.home)).list()).toHaveLength(0);
				open.close();
				again.close();
			} finally {
				await srv.server.stop(0);
			}
		},
	);
});
