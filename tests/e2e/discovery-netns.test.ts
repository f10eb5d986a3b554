/**
 * Finding devices on a real (virtual) network: the compiled binary runs in
 * network namespaces this test creates — a bridge joining a server, a
 * client and an attacker, on documentation addresses only (192.0.2.0/24) —
 * and real multicast DNS flows between them. Nothing here touches the
 * host's own network. Needs root and `ip` (CI has both); elsewhere it is
 * skipped with a message.
 */
import {
	afterAll,
	afterEach,
	beforeAll,
	describe,
	expect,
	setDefaultTimeout,
	test,
} from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateCode } from "../../src/crypto/pairing-code.ts";
import { savePendingCode } from "../../src/store/pending-code.ts";
import { ensureStateDir } from "../../src/store/state-dir.ts";
import {
	BINARY,
	binaryExists,
	type CliResult,
	describeResult,
	killAllChildren,
	makeHome,
	makeTempDir,
	parseNdjson,
	REPO_ROOT,
	removeTempDirs,
	runPairlink,
	type SpawnOptions,
	type StartedServe,
	startServe,
} from "../helpers/cli.ts";
import { buildNetwork, canUseNetns, ip, Peer, removeNetwork } from "../helpers/netns.ts";
import { drivePty } from "../helpers/pty.ts";

const canRun = canUseNetns() && binaryExists();
if (!canRun) {
	console.warn(
		"discovery-netns.test.ts: skipped — needs Linux, root, `ip` and dist/pairlink (npx bun scripts/build-binaries.ts --host)",
	);
}

// Each test starts binaries and listens for 2 s at a time, sometimes twice.
setDefaultTimeout(30_000);

const ID = `pl${(Date.now() % 1e6).toString(36)}${process.pid % 100}`;
const ADDR = { srv: "192.0.2.1", srvMoved: "192.0.2.11", cli: "192.0.2.2", evil: "192.0.2.66" };
const ADDR6 = { srv: "2001:db8::1", cli: "2001:db8::2", evil: "2001:db8::66" };
const HOSTS = {
	srv: { v4: ADDR.srv, v6: ADDR6.srv },
	cli: { v4: ADDR.cli, v6: ADDR6.cli },
	evil: { v4: ADDR.evil, v6: ADDR6.evil },
};
/** Filled in by beforeAll; unique per run, so parallel or leftover runs never collide. */
let NS = { hub: "", srv: "", cli: "", evil: "" };

/** A question from a client's `find` (an ephemeral port; the sniffer itself asks from 5353). */
const asked = (p: { from: string; port: number }) => p.from === ADDR.cli && p.port !== 5353;

const peers: Peer[] = [];
async function startPeer(ns: string, args: string[]): Promise<Peer> {
	const p = new Peer(ns, args);
	peers.push(p);
	await p.ready();
	return p;
}

const pl = (ns: string, home: string, args: string[], opts: SpawnOptions = {}) =>
	runPairlink(args, { mode: "binary", netns: ns, home, ...opts });

function ok(r: CliResult): CliResult {
	if (r.exitCode !== 0) throw new Error(describeResult(r));
	return r;
}

async function find(home: string, timeout = "2s"): Promise<Record<string, unknown>[]> {
	return parseNdjson(ok(await pl(NS.cli, home, ["find", "--timeout", timeout, "--json"])).stdout);
}

async function devices(home: string): Promise<Record<string, unknown>[]> {
	return parseNdjson(ok(await pl(NS.cli, home, ["devices", "--json"])).stdout);
}

/** What each serve in the server's namespace shares. */
const share = { dir: "", file: "report.txt", body: "quarterly figures\n" };

async function serveDesk(host: string, args: string[] = []): Promise<StartedServe> {
	return startServe({
		mode: "binary",
		netns: NS.srv,
		home: homes.desk,
		dir: share.dir,
		host,
		args: ["--name", "desk", ...args],
	});
}

const homes = { desk: "", laptop: "", stranger: "", evil: "" };

describe.skipIf(!canRun)("discovery between network namespaces (compiled binary)", () => {
	let desk: StartedServe | undefined;
	let deskFingerprint = "";

	beforeAll(async () => {
		NS = buildNetwork(ID, HOSTS) as typeof NS;
		for (const k of Object.keys(homes) as (keyof typeof homes)[]) homes[k] = await makeHome(k);
		share.dir = await makeTempDir("pairlink-desk-share-");
		writeFileSync(join(share.dir, share.file), share.body);
	});

	afterEach(async () => {
		await Promise.all(peers.splice(0).map((p) => p.stop()));
	});

	afterAll(async () => {
		await desk?.serve.stop();
		await killAllChildren();
		removeNetwork(NS);
		await removeTempDirs();
	});

	test("find lists the server with its name and fingerprint while pairing is open, never the code", async () => {
		const sniffer = await startPeer(NS.cli, ["sniff"]);
		desk = await serveDesk("0.0.0.0");
		deskFingerprint = desk.listening.fingerprint;
		const code = desk.listening.code as string;
		const started = performance.now();
		const found = await find(homes.stranger);
		const ms = performance.now() - started;
		expect(found).toEqual([
			{
				addresses: [ADDR.srv],
				port: desk.port,
				pairing: true,
				trusted: false,
				name: "desk",
				fingerprint: deskFingerprint,
			},
		]);
		expect(ms).toBeLessThan(2000 + 1500); // the timeout, plus starting the binary
		const fromDesk = sniffer.packets().filter((p) => p.from === ADDR.srv);
		expect(fromDesk.length).toBeGreaterThan(0); // the sniffer hears the announcements…
		for (const { raw } of fromDesk) {
			for (const word of code.split("-")) expect(raw.toLowerCase()).not.toContain(word);
		}
	});

	test("pair without HOST pairs with the one server that has pairing open", async () => {
		const r = ok(
			await pl(NS.cli, homes.laptop, ["pair"], { code: desk?.listening.code as string }),
		);
		expect(r.stdout).toContain("Paired with desk");
		const [saved] = await devices(homes.laptop);
		expect(saved).toMatchObject({
			name: "desk",
			fingerprint: deskFingerprint,
			address: `${ADDR.srv}:${desk?.port}`,
		});
		await desk?.serve.waitForEvent("paired");
	});

	test("pair without HOST and without a code is a usage error before any question goes out", async () => {
		const sniffer = await startPeer(NS.cli, ["sniff"]);
		const r = await pl(NS.cli, homes.stranger, ["pair"]);
		expect(r.exitCode).toBe(2);
		expect(r.stderr).toContain("Pairing needs the code");
		const before = sniffer.packets().length;
		await find(homes.stranger, "1s"); // its questions mark how far the sniffer has read
		await sniffer.heard((p, i) => asked(p) && i >= before);
		expect(sniffer.packets().slice(0, before).filter(asked)).toEqual([]);
	});

	test("a device that never paired sees a closed server, but not its name or fingerprint", async () => {
		const sniffer = await startPeer(NS.cli, ["sniff"]);
		const seen = await find(homes.stranger);
		expect(seen).toEqual([
			{ addresses: [ADDR.srv], port: desk?.port, pairing: false, trusted: false },
		]);
		// Nothing on the wire gives it away either: the fingerprint is only in blinded form.
		const raw = sniffer
			.packets()
			.filter((p) => p.from === ADDR.srv)
			.map((p) => p.raw);
		expect(raw.length).toBeGreaterThan(0);
		for (const r of raw) expect(r).not.toContain(deskFingerprint);
		// The paired device recognises it all the same.
		expect(await find(homes.laptop)).toEqual([
			{
				addresses: [ADDR.srv],
				port: desk?.port,
				pairing: false,
				trusted: true,
				name: "desk",
				fingerprint: deskFingerprint,
			},
		]);
	});

	test("the server moves to another address: get by name finds it, and saves the new address", async () => {
		const sniffer = await startPeer(NS.cli, ["sniff"]);
		const oldPort = desk?.port;
		await desk?.serve.stop();
		// Stopping said goodbye: the records again, with TTL 0.
		const goodbye = await sniffer.heard(
			(p) =>
				p.from === ADDR.srv &&
				(p.packet.answers ?? []).some((a) => a.type === "SRV" && a.ttl === 0),
		);
		expect(goodbye?.packet.answers?.map((a) => a.type)).toEqual(["PTR", "SRV", "TXT", "A"]);

		ip("-n", NS.srv, "addr", "add", `${ADDR.srvMoved}/24`, "dev", "eth0");
		desk = await serveDesk(ADDR.srvMoved, ["--no-pair"]);
		expect(desk.port).not.toBe(oldPort);
		const dest = join(await makeTempDir("pairlink-laptop-"), "got.txt");
		ok(await pl(NS.cli, homes.laptop, ["get", "desk", share.file, "-o", dest]));
		expect(readFileSync(dest, "utf8")).toBe(share.body);
		const [saved] = await devices(homes.laptop);
		expect(saved?.address).toBe(`${ADDR.srvMoved}:${desk.port}`);
	});

	test("--no-announce is silent: nothing on the wire, nothing found", async () => {
		await desk?.serve.stop();
		const sniffer = await startPeer(NS.cli, ["sniff"]);
		desk = await serveDesk("0.0.0.0", ["--no-announce", "--no-pair"]);
		expect(await find(homes.laptop)).toEqual([]);
		await desk.serve.stop();
		desk = undefined;
		// Questions asked after the stop mark the point up to which the sniffer
		// has surely read everything, a goodbye included: it heard them, and
		// nothing from the server.
		const before = sniffer.packets().length;
		await find(homes.laptop, "1s");
		await sniffer.heard((p, i) => asked(p) && i >= before);
		const heard = sniffer.packets();
		expect(heard.filter((p) => p.from === ADDR.srv || p.from === ADDR.srvMoved)).toEqual([]);
	});

	test("bound to 127.0.0.1: found on the same machine over loopback, and nothing reaches the network", async () => {
		await desk?.serve.stop();
		const sniffer = await startPeer(NS.cli, ["sniff"]);
		desk = await serveDesk("127.0.0.1", ["--no-pair"]);
		const here = parseNdjson(
			ok(await pl(NS.srv, homes.laptop, ["find", "--timeout", "2s", "--json"])).stdout,
		);
		expect(here).toEqual([
			{
				addresses: ["127.0.0.1"],
				port: desk.port,
				pairing: false,
				trusted: true,
				name: "desk",
				fingerprint: deskFingerprint,
			},
		]);
		await desk.serve.stop();
		desk = undefined;
		// As for --no-announce: questions asked afterwards mark how far the sniffer has read.
		const before = sniffer.packets().length;
		await find(homes.laptop, "1s");
		await sniffer.heard((p, i) => asked(p) && i >= before);
		// Questions, from the finds, are all the link carried: not one answer or announcement.
		expect(sniffer.packets().filter((p) => p.packet.type === "response")).toEqual([]);
		expect(sniffer.packets().some((p) => p.from === ADDR.srv)).toBe(true); // srv's own find asked
	});

	describe("a forged announcement gains nothing", () => {
		let evil: StartedServe;
		let evilShare = "";

		beforeAll(async () => {
			evilShare = await makeTempDir("pairlink-evil-share-");
			evil = await startServe({
				mode: "binary",
				netns: NS.evil,
				home: homes.evil,
				dir: evilShare,
				host: ADDR.evil,
				args: ["--no-announce", "--allow-overwrite"],
			});
		});

		afterAll(async () => {
			await evil.serve.stop();
		});

		const deskBefore = async () => (await devices(homes.laptop)).find((d) => d.name === "desk");

		test("another fingerprint under the trusted device's name: listed as a stranger, never tried", async () => {
			const before = await deskBefore();
			const fake = "e".repeat(64);
			await startPeer(NS.evil, ["forge", ADDR.evil, String(evil.port), fake, "desk", "1"]);
			expect(await find(homes.laptop)).toEqual([
				{
					addresses: [ADDR.evil],
					port: evil.port,
					pairing: true,
					trusted: false,
					name: "desk",
					fingerprint: fake,
				},
			]);
			// desk is down: its name falls back to the network, which offers only the forgery.
			const dest = join(await makeTempDir("pairlink-laptop-"), "got.txt");
			const r = await pl(NS.cli, homes.laptop, ["get", "desk", share.file, "-o", dest]);
			expect(r.exitCode).toBe(3);
			expect(existsSync(dest)).toBe(false);
			expect(evil.serve.events.map((e) => e.event)).toEqual(["listening"]);
			expect(await deskBefore()).toEqual(before);
		});

		test("the right fingerprint at the attacker's address: the pin refuses it before any data", async () => {
			const before = await deskBefore();
			await startPeer(NS.evil, ["forge", ADDR.evil, String(evil.port), deskFingerprint, "x", "0"]);
			const secret = join(await makeTempDir("pairlink-laptop-"), "tax-return.pdf");
			writeFileSync(secret, "private\n");
			const r = await pl(NS.cli, homes.laptop, ["put", "desk", secret]);
			expect(r.exitCode).toBe(4);
			expect(r.stderr).toMatch(/IDENTITY OF DESK HAS CHANGED/);
			expect(readdirSync(evilShare)).toEqual([]);
			expect(evil.serve.events.filter((e) => e.event === "connected")).toEqual([]);
			// …and the attacker's address was not saved as desk's.
			expect(await deskBefore()).toEqual(before);
		});

		test("a forger answering for desk does not hide the real desk: both are tried, the pin picks desk", async () => {
			await startPeer(NS.evil, ["forge", ADDR.evil, String(evil.port), deskFingerprint, "x", "0"]);
			// desk is up again at its moved address, on a new port: the saved one is refused.
			desk = await serveDesk(ADDR.srvMoved, ["--no-pair"]);
			try {
				const dest = join(await makeTempDir("pairlink-laptop-"), "got.txt");
				ok(await pl(NS.cli, homes.laptop, ["get", "desk", share.file, "-o", dest]));
				expect(readFileSync(dest, "utf8")).toBe(share.body);
				expect((await deskBefore())?.address).toBe(`${ADDR.srvMoved}:${desk.port}`);
				expect(evil.serve.events.filter((e) => e.event === "connected")).toEqual([]);
			} finally {
				await desk.serve.stop();
				desk = undefined;
			}
		});
	});

	test("several servers with pairing open: a script gets exit 2 and the list, a terminal asks which; IPv6 is heard too", async () => {
		await desk?.serve.stop();
		// Both servers wait for the same code, so whichever is picked, typing it pairs.
		const code = generateCode();
		const atticHome = await makeHome("attic");
		await ensureStateDir(atticHome);
		for (const home of [homes.desk, atticHome])
			await savePendingCode(home, { code, ttlMs: 600_000 });
		desk = await serveDesk("::");
		const attic = await startServe({
			mode: "binary",
			netns: NS.evil,
			home: atticHome,
			host: "0.0.0.0",
			args: ["--name", "attic"],
		});
		try {
			const found = await find(homes.stranger);
			expect(found.find((e) => e.name === "desk")?.addresses).toEqual([ADDR.srv, ADDR6.srv]);
			expect(found.map((e) => e.name).sort()).toEqual(["attic", "desk"]);

			const script = await pl(NS.cli, homes.stranger, ["pair"], { code });
			expect(script.exitCode).toBe(2);
			expect(script.stderr).toContain(`${ADDR.srv}:${desk.port}`);
			expect(script.stderr).toContain(`${ADDR.evil}:${attic.port}`);
			expect(await devices(homes.stranger)).toEqual([]);

			const tty = await drivePty({
				argv: ["ip", "netns", "exec", NS.cli, BINARY, "pair"],
				env: { PATH: process.env.PATH ?? "", HOME: homes.stranger, PAIRLINK_HOME: homes.stranger },
				cwd: REPO_ROOT,
				timeout: 15,
				steps: [
					{ expect: "Pair with which one\\? \\[1-2\\]", send: "2\r" },
					{ expect: "Pairing code", send: `${code}\r` },
					{ expect: "Paired with" },
				],
			});
			expect(tty.failed_step).toBeNull();
			expect(tty.exit).toBe(0);
			// The second entry of the list it showed is the one it paired with.
			const second = /^ {2}2\. .*announces (\S+)/m.exec(tty.transcript)?.[1];
			expect(["desk", "attic"]).toContain(second as string);
			expect(tty.transcript).toContain(`Paired with ${second}`);
			expect((await devices(homes.stranger)).map((d) => d.name)).toEqual([second]);
		} finally {
			await attic.serve.stop();
		}
	});
});
