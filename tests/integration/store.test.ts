import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fingerprintOf } from "../../src/crypto/fingerprint";
import { type ErrorCode, PairlinkError } from "../../src/errors";
import {
	IDENTITY_FILE,
	loadIdentity,
	loadOrCreateIdentity,
	setDeviceName,
} from "../../src/store/identity";
import {
	clearPendingCode,
	loadPendingCode,
	MAX_PAIRING_ATTEMPTS,
	markUsed,
	PENDING_CODE_FILE,
	pendingCodeStatus,
	recordAttempt,
	savePendingCode,
} from "../../src/store/pending-code";
import {
	createFileExclusive,
	ensureStateDir,
	readJsonFile,
	writeFileAtomic,
} from "../../src/store/state-dir";
import { sanitizeDeviceName, TRUST_FILE, TrustStore } from "../../src/store/trust-store";

const posix = process.platform !== "win32";
let root = "";

beforeEach(async () => {
	root = await mkdtemp(path.join(tmpdir(), "pairlink-store-"));
});

afterEach(async () => {
	await rm(root, { recursive: true, force: true });
});

async function mode(p: string): Promise<number> {
	return (await stat(p)).mode & 0o7777;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<PairlinkError> {
	try {
		await promise;
	} catch (e) {
		if (!(e instanceof PairlinkError)) throw e;
		expect(e.code).toBe(code);
		return e;
	}
	throw new Error(`expected PairlinkError ${code}`);
}

function throwsWith(f: () => unknown, code: ErrorCode): PairlinkError {
	try {
		f();
	} catch (e) {
		if (!(e instanceof PairlinkError)) throw e;
		expect(e.code).toBe(code);
		return e;
	}
	throw new Error(`expected PairlinkError ${code}`);
}

function fakeFingerprint(head: string): string {
	return head.padEnd(64, "0");
}

describe("state directory", () => {
	test.if(posix)("is created 0700 with missing parents", async () => {
		const dir = path.join(root, "a", "b", "pairlink");
		await ensureStateDir(dir);
		expect(await mode(dir)).toBe(0o700);
	});

	test.if(posix)("an existing loose directory is tightened to 0700", async () => {
		const dir = path.join(root, "loose");
		await mkdir(dir);
		await chmod(dir, 0o755);
		await ensureStateDir(dir);
		expect(await mode(dir)).toBe(0o700);
	});

	test.if(posix)("a shared sticky directory is refused, not chmod-ed", async () => {
		const dir = path.join(root, "shared");
		await mkdir(dir);
		await chmod(dir, 0o1777);
		await rejectsWith(ensureStateDir(dir), "usage");
		expect(await mode(dir)).toBe(0o1777);
	});

	test("a file where the directory should be is a usage error (a setting to fix, not a bug)", async () => {
		const file = path.join(root, "file");
		await writeFile(file, "x");
		await rejectsWith(ensureStateDir(file), "usage");
	});

	test.if(posix)(
		"everything is private after identity + trust + pending code, even with umask 0",
		async () => {
			const dir = path.join(root, "home");
			const savedUmask = process.umask(0);
			try {
				await loadOrCreateIdentity(dir, { defaultName: "host" });
				const store = await TrustStore.load(dir);
				await store.add({
					name: "peer",
					fingerprint: fakeFingerprint("ab"),
					address: "127.0.0.1:47070",
				});
				await store.touch(fakeFingerprint("ab"), "127.0.0.1:47071");
				await savePendingCode(dir, { code: "apple-banana-cherry-delta", ttlMs: 600_000 });
				await recordAttempt(dir);
				await setDeviceName(dir, "renamed");
			} finally {
				process.umask(savedUmask);
			}
			expect(await mode(dir)).toBe(0o700);
			const names = (await readdir(dir)).sort();
			expect(names).toEqual([IDENTITY_FILE, PENDING_CODE_FILE, TRUST_FILE].sort());
			for (const name of names)
				expect({ name, mode: await mode(path.join(dir, name)) }).toEqual({ name, mode: 0o600 });
		},
	);
});

describe("writeFileAtomic", () => {
	test("writes, replaces, and leaves no temp file", async () => {
		const file = path.join(root, "f.json");
		await writeFileAtomic(file, "one");
		await writeFileAtomic(file, new TextEncoder().encode("two"));
		expect(await readFile(file, "utf8")).toBe("two");
		expect(await readdir(root)).toEqual(["f.json"]);
		if (posix) expect(await mode(file)).toBe(0o600);
	});

	test("a failure before commit leaves the old content whole and removes the temp file", async () => {
		const file = path.join(root, "f.json");
		const old = JSON.stringify({ keep: "x".repeat(100_000) });
		await writeFileAtomic(file, old);
		let seenTemp = "";
		const failing = writeFileAtomic(file, "new content that must never appear", {
			beforeCommit: async (temp) => {
				seenTemp = temp;
				// The temp file is complete and private before it is committed.
				expect(await readFile(temp, "utf8")).toBe("new content that must never appear");
				if (posix) expect(await mode(temp)).toBe(0o600);
				expect(path.dirname(temp)).toBe(root);
				throw new Error("simulated crash before rename");
			},
		});
		await expect(failing).rejects.toThrow("simulated crash before rename");
		expect(seenTemp).not.toBe("");
		expect(await readFile(file, "utf8")).toBe(old);
		expect(await readdir(root)).toEqual(["f.json"]);
	});

	test("a failing rename removes the temp file", async () => {
		const target = path.join(root, "dir-target");
		await mkdir(target);
		await writeFile(path.join(target, "inside"), "x");
		await expect(writeFileAtomic(target, "data")).rejects.toThrow();
		expect((await readdir(root)).sort()).toEqual(["dir-target"]);
	});

	test("concurrent writers: the file is always one complete version", async () => {
		const file = path.join(root, "race.json");
		const versions = Array.from({ length: 20 }, (_, i) =>
			JSON.stringify({ i, pad: String(i).repeat(5000) }),
		);
		await Promise.all(versions.map((v) => writeFileAtomic(file, v)));
		expect(versions).toContain(await readFile(file, "utf8"));
		expect(await readdir(root)).toEqual(["race.json"]);
	});
});

describe("createFileExclusive", () => {
	test("first writer wins; the loser writes nothing and leaves no temp file", async () => {
		const file = path.join(root, "x.json");
		expect(await createFileExclusive(file, "first")).toBe(true);
		expect(await createFileExclusive(file, "second")).toBe(false);
		expect(await readFile(file, "utf8")).toBe("first");
		expect(await readdir(root)).toEqual(["x.json"]);
		if (posix) expect(await mode(file)).toBe(0o600);
	});
});

describe("readJsonFile", () => {
	const validate = (v: unknown): { n: number } => {
		if (typeof v !== "object" || v === null || typeof (v as { n?: unknown }).n !== "number") {
			throw new Error("n must be a number");
		}
		return v as { n: number };
	};

	test("missing file is undefined", async () => {
		expect(await readJsonFile(path.join(root, "nope.json"), validate)).toBeUndefined();
	});

	test("valid file is returned", async () => {
		await writeFile(path.join(root, "ok.json"), '{"n": 3}');
		expect(await readJsonFile(path.join(root, "ok.json"), validate)).toEqual({ n: 3 });
	});

	test("broken JSON is state-corrupt naming the file", async () => {
		const file = path.join(root, "bad.json");
		await writeFile(file, '{"n": ');
		const e = await rejectsWith(readJsonFile(file, validate), "state-corrupt");
		expect(e.message).toContain(file);
	});

	test("invalid content is state-corrupt naming the file and the reason", async () => {
		const file = path.join(root, "bad.json");
		await writeFile(file, '{"n": "three"}');
		const e = await rejectsWith(readJsonFile(file, validate), "state-corrupt");
		expect(e.message).toContain(file);
		expect(e.message).toContain("n must be a number");
	});

	test("a directory in place of the file is state-corrupt", async () => {
		await mkdir(path.join(root, "d.json"));
		await rejectsWith(readJsonFile(path.join(root, "d.json"), validate), "state-corrupt");
	});
});

describe("identity", () => {
	test("created once, then reloaded with the same fingerprint", async () => {
		const dir = path.join(root, "home");
		expect(await loadIdentity(dir)).toBeUndefined();
		const created = await loadOrCreateIdentity(dir, { defaultName: "my-host" });
		expect(created.name).toBe("my-host");
		expect(created.fingerprint).toMatch(/^[0-9a-f]{64}$/);
		expect(created.fingerprint).toBe(fingerprintOf(created.certDer));
		expect(created.keyPem).toStartWith("-----BEGIN PRIVATE KEY-----");
		expect(created.certPem).toStartWith("-----BEGIN CERTIFICATE-----");

		const again = await loadOrCreateIdentity(dir, { defaultName: "other-host" });
		expect(again).toEqual(created);
		expect(await loadIdentity(dir)).toEqual(created);

		const onDisk = JSON.parse(await readFile(path.join(dir, IDENTITY_FILE), "utf8"));
		expect(Object.keys(onDisk).sort()).toEqual(["cert", "key", "name", "version"]);
	});

	test("the certificate is an Ed25519 self-signed cert that x509 parses", async () => {
		const id = await loadOrCreateIdentity(root, { defaultName: "h" });
		const { X509Certificate } = await import("node:crypto");
		const cert = new X509Certificate(id.certPem);
		expect(cert.subject).toBe("CN=pairlink device");
		expect(cert.issuer).toBe("CN=pairlink device");
		expect(cert.publicKey.asymmetricKeyType).toBe("ed25519");
		expect(cert.verify(cert.publicKey)).toBe(true);
		expect(new Date(cert.validTo).getFullYear()).toBeGreaterThan(new Date().getFullYear() + 90);
		expect(new Date(cert.validFrom).getTime()).toBeLessThan(Date.now());
		const { createPrivateKey, createPublicKey } = await import("node:crypto");
		const pub = createPublicKey(createPrivateKey(id.keyPem)).export({
			format: "der",
			type: "spki",
		});
		expect(
			Buffer.from(pub).equals(Buffer.from(cert.publicKey.export({ format: "der", type: "spki" }))),
		).toBe(true);
	});

	test("two state directories are two devices", async () => {
		const a = await loadOrCreateIdentity(path.join(root, "a"), { defaultName: "h" });
		const b = await loadOrCreateIdentity(path.join(root, "b"), { defaultName: "h" });
		expect(a.fingerprint).not.toBe(b.fingerprint);
	});

	test("concurrent first use agrees on one identity", async () => {
		const dir = path.join(root, "home");
		const all = await Promise.all(
			Array.from({ length: 6 }, (_, i) => loadOrCreateIdentity(dir, { defaultName: `h${i}` })),
		);
		const first = all[0];
		for (const id of all) expect(id).toEqual(first as (typeof all)[number]);
		expect(await loadIdentity(dir)).toEqual(first);
		expect(await readdir(dir)).toEqual([IDENTITY_FILE]);
	});

	test("concurrent first use by separate processes agrees on one identity", async () => {
		const dir = path.join(root, "home");
		const module = path.resolve(import.meta.dir, "../../src/store/identity.ts");
		const script = `const { loadOrCreateIdentity } = await import(${JSON.stringify(module)});
			const id = await loadOrCreateIdentity(process.argv[1], { defaultName: "p" });
			console.log(id.fingerprint);`;
		const procs = Array.from({ length: 3 }, () =>
			Bun.spawn([process.execPath, "-e", script, dir], { stdout: "pipe", stderr: "pipe" }),
		);
		const outputs = await Promise.all(procs.map((p) => new Response(p.stdout).text()));
		const codes = await Promise.all(procs.map((p) => p.exited));
		expect(codes).toEqual([0, 0, 0]);
		const stored = await loadIdentity(dir);
		expect(outputs.map((o) => o.trim())).toEqual(
			[0, 1, 2].map(() => stored?.fingerprint ?? "missing"),
		);
		expect(await readdir(dir)).toEqual([IDENTITY_FILE]);
	}, 20_000);

	test("works bundled, and reading never loads the X.509 stack", async () => {
		// Bun's bundler reorders a lazy module's imports (see certificate.ts);
		// the compiled binary is what users run, so test the bundled form.
		const entry = path.join(root, "entry.ts");
		const module = path.resolve(import.meta.dir, "../../src/store/identity.ts");
		await writeFile(
			entry,
			`import { loadOrCreateIdentity } from ${JSON.stringify(module)};
			const id = await loadOrCreateIdentity(process.argv[2], { defaultName: "bundled" });
			console.log(id.fingerprint, typeof Reflect.getMetadata);`,
		);
		const built = await Bun.build({
			entrypoints: [entry],
			outdir: path.join(root, "out"),
			target: "bun",
			minify: true,
		});
		expect(built.success).toBe(true);
		const run = async () => {
			const proc = Bun.spawn(
				[process.execPath, path.join(root, "out", "entry.js"), path.join(root, "home")],
				{
					stdout: "pipe",
					stderr: "pipe",
				},
			);
			const [out, err, code] = await Promise.all([
				new Response(proc.stdout).text(),
				new Response(proc.stderr).text(),
				proc.exited,
			]);
			expect({ code, err }).toEqual({ code: 0, err: "" });
			return out.trim().split(" ");
		};
		const [createdFp, createdReflect] = await run();
		const [readFp, readReflect] = await run();
		expect(createdFp).toMatch(/^[0-9a-f]{64}$/);
		expect(readFp).toBe(createdFp as string);
		expect(createdReflect).toBe("function");
		expect(readReflect).toBe("undefined");
	}, 20_000);

	test("the default name is sanitised", async () => {
		const id = await loadOrCreateIdentity(root, { defaultName: " evil\u001b[31mhost\u202e " });
		expect(id.name).toBe("evil_[31mhost_");
		expect(sanitizeDeviceName("")).toBe("device");
		expect(sanitizeDeviceName("x".repeat(100))).toBe("x".repeat(64));
	});

	test("setDeviceName renames and keeps the key", async () => {
		const before = await loadOrCreateIdentity(root, { defaultName: "h" });
		const after = await setDeviceName(root, "Desk PC");
		expect(after.name).toBe("Desk PC");
		expect(after.fingerprint).toBe(before.fingerprint);
		expect(after.keyPem).toBe(before.keyPem);
		expect((await loadIdentity(root))?.name).toBe("Desk PC");
		await rejectsWith(setDeviceName(root, "bad\nname"), "usage");
		await rejectsWith(setDeviceName(root, ""), "usage");
		await rejectsWith(setDeviceName(path.join(root, "none"), "x"), "usage");
	});

	test("a corrupt identity file is state-corrupt, never silently replaced", async () => {
		const file = path.join(root, IDENTITY_FILE);
		for (const content of [
			"{not json",
			"[]",
			JSON.stringify({ version: 2, name: "h", key: "k", cert: "c" }),
			JSON.stringify({ version: 1, name: "h", key: "not a key", cert: "not a cert" }),
		]) {
			await writeFile(file, content);
			const e = await rejectsWith(
				loadOrCreateIdentity(root, { defaultName: "h" }),
				"state-corrupt",
			);
			expect(e.message).toContain(file);
			expect(await readFile(file, "utf8")).toBe(content);
		}
	});
});

describe("trust store", () => {
	const A1 = fakeFingerprint("aaaa1111");
	const A2 = fakeFingerprint("aaaa2222");
	const B = fakeFingerprint("bbbb");

	async function seeded(now = () => new Date("2030-01-02T03:04:05.000Z")): Promise<TrustStore> {
		const store = await TrustStore.load(root, { now });
		await store.add({ name: "laptop", fingerprint: A1, address: "10.0.0.1:47070" });
		await store.add({ name: "phone", fingerprint: A2, address: "10.0.0.2:47070" });
		await store.add({ name: "server", fingerprint: B, address: "[::1]:47070" });
		return store;
	}

	test("a late 'last seen' touch does not make a removed state dir exist again (empty)", async () => {
		const dir = path.join(root, "gone");
		const store = await TrustStore.load(dir);
		await store.add({ name: "laptop", fingerprint: A1, address: "10.0.0.1:47070" });
		await rm(dir, { recursive: true });
		expect(await store.touch(A1, "10.0.0.9:47070")).toBeUndefined();
		expect(await stat(dir).catch(() => undefined)).toBeUndefined();
	});

	test("a missing file is an empty store; the first write creates the state dir", async () => {
		expect((await TrustStore.load(root)).list()).toEqual([]);
		const dir = path.join(root, "fresh", "pairlink");
		const store = await TrustStore.load(dir);
		expect(store.list()).toEqual([]);
		await store.add({ name: "x", fingerprint: A1, address: "h:1" });
		if (posix) expect(await mode(dir)).toBe(0o700);
		expect(await readdir(dir)).toEqual([TRUST_FILE]);
	});

	test("add stores every field, with the injected clock", async () => {
		const store = await seeded();
		expect(store.list()).toEqual([
			{
				name: "laptop",
				fingerprint: A1,
				address: "10.0.0.1:47070",
				pairedAt: "2030-01-02T03:04:05.000Z",
				lastSeen: "2030-01-02T03:04:05.000Z",
			},
			expect.objectContaining({ name: "phone", fingerprint: A2 }),
			expect.objectContaining({ name: "server", fingerprint: B, address: "[::1]:47070" }),
		]);
		expect((await TrustStore.load(root)).list()).toEqual(store.list());
	});

	test("resolve: name, full fingerprint, unique prefix, ambiguous, unknown", async () => {
		const store = await seeded();
		expect(store.resolve("phone").fingerprint).toBe(A2);
		expect(store.resolve(A1).name).toBe("laptop");
		expect(store.resolve(A1.toUpperCase().match(/../g)?.join(":") ?? "").name).toBe("laptop");
		expect(store.resolve("bbbb").name).toBe("server");
		expect(store.resolve("BB:BB").name).toBe("server");
		expect(store.resolve("aaaa 2").name).toBe("phone");
		expect(throwsWith(() => store.resolve("aaaa"), "ambiguous-device").message).toContain("laptop");
		throwsWith(() => store.resolve("bbb"), "unknown-device"); // shorter than 4 digits
		throwsWith(() => store.resolve("cccc"), "unknown-device");
		throwsWith(() => store.resolve("Laptop"), "unknown-device");
		throwsWith(() => store.resolve(fakeFingerprint("ff")), "unknown-device");
		expect(store.findByName("server")?.fingerprint).toBe(B);
		expect(store.findByFingerprint(B)?.name).toBe("server");
		expect(store.findByFingerprint("bbbb")).toBeUndefined();
	});

	test("an exact name beats a fingerprint prefix", async () => {
		const store = await seeded();
		await store.add({ name: "bbbb0", fingerprint: fakeFingerprint("cc"), address: "h:1" });
		expect(store.resolve("bbbb0").fingerprint).toBe(fakeFingerprint("cc"));
		expect(store.resolve("bbbb").fingerprint).toBe(B);
	});

	test("add: a name taken by another device gets a suffix; the same fingerprint updates", async () => {
		const store = await seeded();
		const second = await store.add({
			name: "laptop",
			fingerprint: fakeFingerprint("c1"),
			address: "h:1",
		});
		expect(second.name).toBe("laptop-2");
		const third = await store.add({
			name: "laptop",
			fingerprint: fakeFingerprint("c2"),
			address: "h:1",
		});
		expect(third.name).toBe("laptop-3");

		const later = await TrustStore.load(root, { now: () => new Date("2031-01-01T00:00:00.000Z") });
		const updated = await later.add({
			name: "work laptop",
			fingerprint: A1,
			address: "10.0.0.9:47070",
		});
		expect(updated).toEqual({
			name: "work laptop",
			fingerprint: A1,
			address: "10.0.0.9:47070",
			pairedAt: "2031-01-01T00:00:00.000Z",
			lastSeen: "2031-01-01T00:00:00.000Z",
		});
		expect(later.list().length).toBe(5);
		// Re-adding a device under its own name does not suffix it.
		expect((await later.add({ name: "work laptop", fingerprint: A1, address: "x:1" })).name).toBe(
			"work laptop",
		);
		// A long taken name stays within 64 characters when suffixed.
		const long = "n".repeat(64);
		await later.add({ name: long, fingerprint: fakeFingerprint("d1"), address: "h:1" });
		const suffixed = await later.add({
			name: long,
			fingerprint: fakeFingerprint("d2"),
			address: "h:1",
		});
		expect(suffixed.name).toBe(`${"n".repeat(62)}-2`);
	});

	test("add refuses invalid names", async () => {
		const store = await TrustStore.load(root);
		for (const name of ["", "a\u0000b", "x".repeat(65), " padded", "rtl\u202eoverride", A1]) {
			await rejectsWith(store.add({ name, fingerprint: A1, address: "h:1" }), "usage");
		}
		expect(store.list()).toEqual([]);
	});

	test("rename: collision refused, invalid refused, success persisted", async () => {
		const store = await seeded();
		const e = await rejectsWith(store.rename("laptop", "phone"), "usage");
		expect(e.message).toContain("phone");
		await rejectsWith(store.rename("laptop", "tab\there"), "usage");
		await rejectsWith(store.rename("nobody", "x"), "unknown-device");
		expect((await store.rename("laptop", "laptop")).name).toBe("laptop");
		const renamed = await store.rename("bbbb", "nas");
		expect(renamed).toEqual(expect.objectContaining({ name: "nas", fingerprint: B }));
		const reloaded = await TrustStore.load(root);
		expect(reloaded.resolve("nas").fingerprint).toBe(B);
		throwsWith(() => reloaded.resolve("server"), "unknown-device");
	});

	test("remove revokes by name or prefix", async () => {
		const store = await seeded();
		expect((await store.remove("aaaa2")).name).toBe("phone");
		expect((await store.remove("server")).fingerprint).toBe(B);
		await rejectsWith(store.remove("server"), "unknown-device");
		const reloaded = await TrustStore.load(root);
		expect(reloaded.list().map((d) => d.name)).toEqual(["laptop"]);
		expect(reloaded.findByFingerprint(B)).toBeUndefined();
		// With one "aaaa" left the prefix is no longer ambiguous.
		expect(reloaded.resolve("aaaa").name).toBe("laptop");
	});

	test("touch updates lastSeen and address only", async () => {
		let clock = new Date("2030-01-01T00:00:00.000Z");
		const store = await seeded(() => clock);
		clock = new Date("2030-06-01T12:00:00.000Z");
		const touched = await store.touch(B.toUpperCase(), "192.168.1.5:47070");
		expect(touched).toEqual({
			name: "server",
			fingerprint: B,
			address: "192.168.1.5:47070",
			pairedAt: "2030-01-01T00:00:00.000Z",
			lastSeen: "2030-06-01T12:00:00.000Z",
		});
		expect((await TrustStore.load(root)).findByName("server")).toEqual(
			touched as NonNullable<typeof touched>,
		);
		expect(await store.touch(fakeFingerprint("ee"), "h:1")).toBeUndefined();
		expect(await store.touch("not a fingerprint", "h:1")).toBeUndefined();
	});

	test("mutations re-read the file: two stale instances do not clobber each other", async () => {
		const one = await TrustStore.load(root);
		const two = await TrustStore.load(root);
		await one.add({ name: "a", fingerprint: A1, address: "h:1" });
		await two.add({ name: "b", fingerprint: B, address: "h:2" });
		await one.rename("b", "bee");
		expect((await TrustStore.load(root)).list().map((d) => d.name)).toEqual(["a", "bee"]);
		expect(one.list().map((d) => d.name)).toEqual(["a", "bee"]);
	});

	test("returned entries are copies", async () => {
		const store = await seeded();
		const d = store.resolve("laptop");
		d.fingerprint = B;
		expect(store.resolve("laptop").fingerprint).toBe(A1);
	});

	test("a corrupt trust file is state-corrupt", async () => {
		const file = path.join(root, TRUST_FILE);
		const good = {
			name: "x",
			fingerprint: A1,
			address: "h:1",
			pairedAt: "2030-01-01T00:00:00Z",
			lastSeen: "2030-01-01T00:00:00Z",
		};
		for (const content of [
			"",
			"{",
			JSON.stringify({ devices: [] }),
			JSON.stringify({ version: 1, devices: [{ ...good, fingerprint: "AB" }] }),
			JSON.stringify({ version: 1, devices: [{ ...good, pairedAt: "yesterday" }] }),
			JSON.stringify({ version: 1, devices: [good, { ...good, fingerprint: B }] }),
		]) {
			await writeFile(file, content);
			const e = await rejectsWith(TrustStore.load(root), "state-corrupt");
			expect(e.message).toContain(file);
		}
	});
});

describe("pending code", () => {
	const t0 = new Date("2030-01-01T00:00:00.000Z");
	const at = (ms: number) => () => new Date(t0.getTime() + ms);
	const CODE = "apple-banana-cherry-delta";

	test("save, load, clear", async () => {
		expect(await loadPendingCode(root)).toBeUndefined();
		const saved = await savePendingCode(root, { code: CODE, ttlMs: 600_000 }, { now: at(0) });
		expect(saved).toEqual({
			code: CODE,
			createdAt: "2030-01-01T00:00:00.000Z",
			expiresAt: "2030-01-01T00:10:00.000Z",
			attempts: 0,
			state: "pending",
		});
		expect(await loadPendingCode(root)).toEqual(saved);
		await clearPendingCode(root);
		expect(await loadPendingCode(root)).toBeUndefined();
		await clearPendingCode(root); // already gone is fine
	});

	test("the third started run burns the code; a fourth is refused", async () => {
		await savePendingCode(root, { code: CODE, ttlMs: 600_000 }, { now: at(0) });
		const runs = [];
		for (let i = 0; i < MAX_PAIRING_ATTEMPTS; i++)
			runs.push(await recordAttempt(root, { now: at(1000) }));
		expect(runs.map((r) => [r.attempts, r.state])).toEqual([
			[1, "pending"],
			[2, "pending"],
			[3, "burned"],
		]);
		await rejectsWith(recordAttempt(root, { now: at(1000) }), "code-used");
		expect((await loadPendingCode(root))?.attempts).toBe(3);
	});

	test("the last admitted run may still succeed", async () => {
		await savePendingCode(root, { code: CODE, ttlMs: 600_000 }, { now: at(0) });
		for (let i = 0; i < MAX_PAIRING_ATTEMPTS; i++) await recordAttempt(root, { now: at(0) });
		expect((await markUsed(root, CODE)).state).toBe("used");
	});

	test("expired and used codes admit no run", async () => {
		await savePendingCode(root, { code: CODE, ttlMs: 600_000 }, { now: at(0) });
		await rejectsWith(recordAttempt(root, { now: at(600_000) }), "code-expired");
		const stored = await loadPendingCode(root);
		expect(stored?.attempts).toBe(0);
		if (stored) {
			expect(pendingCodeStatus(stored, new Date(t0.getTime() + 599_999))).toBe("pending");
			expect(pendingCodeStatus(stored, new Date(t0.getTime() + 600_000))).toBe("expired");
		}

		await recordAttempt(root, { now: at(1) });
		await markUsed(root, CODE);
		await rejectsWith(recordAttempt(root, { now: at(2) }), "code-used");
		await rejectsWith(markUsed(root, CODE), "code-used");
	});

	test("markUsed refuses a code that was replaced or removed", async () => {
		await savePendingCode(root, { code: CODE, ttlMs: 600_000 });
		await rejectsWith(markUsed(root, "other-code"), "code-used");
		await clearPendingCode(root);
		await rejectsWith(markUsed(root, CODE), "no-code");
		await rejectsWith(recordAttempt(root), "no-code");
	});

	test("a corrupt pending-code file is state-corrupt", async () => {
		const file = path.join(root, PENDING_CODE_FILE);
		await writeFile(file, JSON.stringify({ version: 1, code: CODE, attempts: -1 }));
		const e = await rejectsWith(loadPendingCode(root), "state-corrupt");
		expect(e.message).toContain(file);
	});
});

describe("concurrent writers (several pairlink processes share a state dir)", () => {
	test("a last-seen update racing a removal never brings the revoked device back", async () => {
		const fp = fakeFingerprint("abcd");
		for (let i = 0; i < 40; i++) {
			const admin = await TrustStore.load(root);
			await admin.add({ name: "phone", fingerprint: fp, address: "127.0.0.1:1" });
			// Two instances, as two processes would have: serve touching, `devices remove` revoking.
			const server = await TrustStore.load(root);
			await Promise.all([
				server.touch(fp, "127.0.0.1:2"),
				admin.remove("phone"),
				server.touch(fp, "127.0.0.1:3"),
			]);
			const after = await TrustStore.load(root);
			expect(after.findByFingerprint(fp)).toBeUndefined();
		}
		expect((await readdir(root)).filter((n) => n.endsWith(".lock"))).toEqual([]);
	});

	test("attempts counted by racing runs are never lost: the code burns after 3", async () => {
		await savePendingCode(root, { code: "abandon-ability-able-about", ttlMs: 60_000 });
		const results = await Promise.allSettled(Array.from({ length: 6 }, () => recordAttempt(root)));
		expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
		expect(await loadPendingCode(root)).toMatchObject({ attempts: 3, state: "burned" });
	});

	test("a stale lock left by a crashed process does not block for ever", async () => {
		const file = path.join(root, TRUST_FILE);
		await writeFile(`${file}.lock`, "");
		const old = new Date(Date.now() - 60_000);
		const { utimes } = await import("node:fs/promises");
		await utimes(`${file}.lock`, old, old);
		const store = await TrustStore.load(root);
		await store.add({ name: "x", fingerprint: fakeFingerprint("beef"), address: "127.0.0.1:1" });
		expect(store.list()).toHaveLength(1);
	});
});
