/**
 * The trust store: the devices this device accepts, pinned by certificate
 * fingerprint. Kept in `trusted.json` in the state directory:
 *
 *   { "version": 1, "devices": [ { name, fingerprint, address, pairedAt, lastSeen } ] }
 *
 * Every mutation re-reads the file under its lock, applies the change and
 * writes it back atomically, so concurrent processes never see a torn file
 * nor lose a change. A running server and an open client session watch
 * the file (trust-watch.ts), so a removal ends the device's open sessions at once.
 *
 * Device names are chosen by people (`--name`, `devices rename`) or
 * announced by the peer, so they are validated here: 1..64 characters, no
 * control, format (bidi) or line-separator characters, no surrounding
 * whitespace, and never a full fingerprint (which would let a device named
 * after another's fingerprint capture it in `resolve`).
 */

import { isIP } from "node:net";
import path from "node:path";
import {
	MIN_FINGERPRINT_PREFIX,
	normalizeFingerprintPrefix,
	tryNormalizeFingerprint,
} from "../crypto/fingerprint";
import { PairlinkError } from "../errors";
import { DEVICE_NAME_UNSAFE, DEVICE_NAME_UNSAFE_ALL } from "../protocol/characters";
import { ensureStateDir, readJsonFile, withFileLock, writeFileAtomic } from "./state-dir";

export const TRUST_FILE = "trusted.json";
export const MAX_DEVICE_NAME_LENGTH = 64;
const MAX_ADDRESS_LENGTH = 300;
const FORMAT_VERSION = 1;

export interface TrustedDevice {
	name: string;
	/** 64 lowercase hex digits: SHA-256 of the device's certificate DER. */
	fingerprint: string;
	/** "host:port" (IPv6 as "[::1]:47070") where the device was last reached. */
	address: string;
	/** ISO 8601. */
	pairedAt: string;
	/** ISO 8601. */
	lastSeen: string;
}

export interface TrustStoreOptions {
	now?: () => Date;
}

/** Why `name` is not acceptable as a device name, or undefined if it is. */
export function deviceNameProblem(name: string): string | undefined {
	const length = [...name].length;
	if (length === 0) return "a device name cannot be empty";
	if (length > MAX_DEVICE_NAME_LENGTH)
		return `a device name has at most ${MAX_DEVICE_NAME_LENGTH} characters`;
	if (DEVICE_NAME_UNSAFE.test(name)) return "a device name cannot contain control characters";
	if (name.trim() !== name) return "a device name cannot start or end with whitespace";
	if (tryNormalizeFingerprint(name) !== undefined) return "a device name cannot be a fingerprint";
	return undefined;
}

/**
 * Stricter, for names given from now on: `pairlink ls NAME` looks NAME up as
 * a device before it reads it as an address, so a device called `::1` or
 * `printer:47070` would silently take that address's place. Names saved
 * before this rule still load (deviceNameProblem).
 */
export function newDeviceNameProblem(name: string): string | undefined {
	if (name.includes("/")) return "a device name cannot contain /";
	if (isIP(name) !== 0 || name.startsWith("[") || /:\d*$/.test(name))
		return "it looks like an address (HOST, HOST:PORT or [IPv6]), which the name would hide";
	return deviceNameProblem(name);
}

/** Throws PairlinkError "usage" unless `name` is a valid name for a device saved now. */
export function validateDeviceName(name: string): string {
	const problem = newDeviceNameProblem(name);
	if (problem !== undefined) {
		throw new PairlinkError("usage", `Invalid device name ${JSON.stringify(name)}: ${problem}.`);
	}
	return name;
}

/**
 * Turns any string (a host name, a name a peer announced) into a valid
 * device name: forbidden characters become "_", whitespace is trimmed, the
 * result is cut to 64 characters; `fallback` if nothing usable remains.
 */
export function sanitizeDeviceName(raw: string, fallback = "device"): string {
	const cleaned = [...raw.replace(DEVICE_NAME_UNSAFE_ALL, "_").replaceAll("/", "_").trim()]
		.slice(0, MAX_DEVICE_NAME_LENGTH)
		.join("")
		.trim();
	return newDeviceNameProblem(cleaned) === undefined ? cleaned : fallback;
}

export class TrustStore {
	readonly file: string;
	private devices: TrustedDevice[];
	private readonly now: () => Date;

	private constructor(file: string, devices: TrustedDevice[], now: () => Date) {
		this.file = file;
		this.devices = devices;
		this.now = now;
	}

	/** Reads `trusted.json`; a missing file (or state directory) is an empty store. */
	static async load(stateDir: string, options: TrustStoreOptions = {}): Promise<TrustStore> {
		const file = path.join(stateDir, TRUST_FILE);
		const store = new TrustStore(file, [], options.now ?? (() => new Date()));
		await store.reload();
		return store;
	}

	/** Re-reads the file, picking up changes made by other processes. */
	async reload(): Promise<void> {
		this.devices = (await readJsonFile(this.file, parseTrustFile)) ?? [];
	}

	/** Snapshot as of the last load or mutation, in file order (pairing order). */
	list(): TrustedDevice[] {
		return this.devices.map((d) => ({ ...d }));
	}

	/** Exact match; accepts any form normalizeFingerprint accepts. */
	findByFingerprint(fingerprint: string): TrustedDevice | undefined {
		const fp = tryNormalizeFingerprint(fingerprint);
		if (fp === undefined) return undefined;
		const d = this.devices.find((x) => x.fingerprint === fp);
		return d && { ...d };
	}

	/** Exact, case-sensitive match. */
	findByName(name: string): TrustedDevice | undefined {
		const d = this.devices.find((x) => x.name === name);
		return d && { ...d };
	}

	/**
	 * What a user typed to name a device: an exact name first, then an exact
	 * fingerprint, then a unique fingerprint prefix of at least 4 hex digits
	 * (colons and spaces ignored). PairlinkError "unknown-device" /
	 * "ambiguous-device" otherwise.
	 */
	resolve(nameOrFingerprint: string): TrustedDevice {
		return { ...resolveDevice(this.devices, nameOrFingerprint) };
	}

	/**
	 * Trusts a device after pairing. The same fingerprint again updates the
	 * entry (name, address, pairedAt). A name already used by a different
	 * device gets a suffix ("laptop-2") so an existing pin is never replaced
	 * by name. Returns the stored entry, with its final name.
	 */
	async add(device: {
		name: string;
		fingerprint: string;
		address: string;
	}): Promise<TrustedDevice> {
		validateDeviceName(device.name);
		const fingerprint = tryNormalizeFingerprint(device.fingerprint);
		if (fingerprint === undefined) {
			throw new PairlinkError("internal", "TrustStore.add needs a full SHA-256 fingerprint.");
		}
		const address = validateAddress(device.address);
		return this.mutate((devices) => {
			const stamp = this.now().toISOString();
			const others = devices.filter((d) => d.fingerprint !== fingerprint);
			const entry: TrustedDevice = {
				name: uniqueName(device.name, new Set(others.map((d) => d.name))),
				fingerprint,
				address,
				pairedAt: stamp,
				lastSeen: stamp,
			};
			const index = devices.findIndex((d) => d.fingerprint === fingerprint);
			const next = [...devices];
			if (index >= 0) next[index] = entry;
			else next.push(entry);
			return { devices: next, result: entry };
		});
	}

	/** Revokes a device (resolved like `resolve`). Returns the removed entry. */
	async remove(nameOrFingerprint: string): Promise<TrustedDevice> {
		return this.mutate((devices) => {
			const target = resolveDevice(devices, nameOrFingerprint);
			return {
				devices: devices.filter((d) => d.fingerprint !== target.fingerprint),
				result: target,
			};
		});
	}

	/** Renames a device; a name taken by another device is refused ("usage"). */
	async rename(oldNameOrFingerprint: string, newName: string): Promise<TrustedDevice> {
		validateDeviceName(newName);
		return this.mutate((devices) => {
			const target = resolveDevice(devices, oldNameOrFingerprint);
			const holder = devices.find((d) => d.name === newName);
			if (holder && holder.fingerprint !== target.fingerprint) {
				throw new PairlinkError(
					"usage",
					`A trusted device is already named ${JSON.stringify(newName)}.`,
				);
			}
			const renamed = { ...target, name: newName };
			return {
				devices: devices.map((d) => (d.fingerprint === target.fingerprint ? renamed : d)),
				result: renamed,
			};
		});
	}

	/**
	 * Records a successful connection: lastSeen = now, address = where it was
	 * reached. Undefined (and no write) if the device is no longer trusted —
	 * e.g. removed by another process meanwhile; the caller decides.
	 */
	async touch(fingerprint: string, address: string): Promise<TrustedDevice | undefined> {
		const fp = tryNormalizeFingerprint(fingerprint);
		if (fp === undefined) return undefined;
		const addr = validateAddress(address);
		// A "last seen" note, sent off without waiting: it must not make a state directory
		// that was removed meanwhile (a device reset, a test's cleanup) exist again, empty.
		return this.mutate(
			(devices) => {
				const index = devices.findIndex((d) => d.fingerprint === fp);
				const current = devices[index];
				if (!current) return { devices, result: undefined, unchanged: true };
				const updated = { ...current, address: addr, lastSeen: this.now().toISOString() };
				const next = [...devices];
				next[index] = updated;
				return { devices: next, result: updated };
			},
			{ existing: true },
		).catch((e: unknown) => {
			if ((e as { code?: unknown }).code === "ENOENT") return undefined;
			throw e;
		});
	}

	private async mutate<R>(
		change: (devices: TrustedDevice[]) => {
			devices: TrustedDevice[];
			result: R;
			unchanged?: boolean;
		},
		opts: { existing?: boolean } = {},
	): Promise<R> {
		if (!opts.existing) await ensureStateDir(path.dirname(this.file));
		return withFileLock(
			this.file,
			async () => {
				const current = (await readJsonFile(this.file, parseTrustFile)) ?? [];
				const { devices, result, unchanged } = change(current);
				if (!unchanged) {
					const body = { version: FORMAT_VERSION, devices };
					await writeFileAtomic(this.file, `${JSON.stringify(body, null, "\t")}\n`);
				}
				// Copies, so callers holding a returned entry cannot alter the cache.
				this.devices = devices.map((d) => ({ ...d }));
				return result;
			},
			{ createDir: !opts.existing },
		);
	}
}

/** TrustStore#resolve over any list (pure). */
export function resolveDevice(
	devices: readonly TrustedDevice[],
	nameOrFingerprint: string,
): TrustedDevice {
	const byName = devices.find((d) => d.name === nameOrFingerprint);
	if (byName) return byName;
	const fp = tryNormalizeFingerprint(nameOrFingerprint);
	const byFingerprint = fp === undefined ? undefined : devices.find((d) => d.fingerprint === fp);
	if (byFingerprint) return byFingerprint;
	const prefix = normalizeFingerprintPrefix(nameOrFingerprint);
	if (prefix !== undefined) {
		const matches = devices.filter((d) => d.fingerprint.startsWith(prefix));
		const [only] = matches;
		if (matches.length === 1 && only) return only;
		if (matches.length > 1) {
			throw new PairlinkError(
				"ambiguous-device",
				`${JSON.stringify(nameOrFingerprint)} matches ${matches.length} trusted devices (${matches.map((d) => d.name).join(", ")}).`,
			);
		}
	}
	// "1d9" could be meant as a prefix: say what is missing rather than "no match".
	const short = nameOrFingerprint.replace(/[\s:]/g, "").toLowerCase();
	if (/^[0-9a-f]{1,3}$/.test(short) && devices.some((d) => d.fingerprint.startsWith(short))) {
		throw new PairlinkError(
			"unknown-device",
			`${JSON.stringify(nameOrFingerprint)} is too short a fingerprint prefix (${MIN_FINGERPRINT_PREFIX} digits at least).`,
			{ advice: "fingerprint-prefix" },
		);
	}
	throw new PairlinkError(
		"unknown-device",
		`No trusted device matches ${JSON.stringify(nameOrFingerprint)}.`,
	);
}

function uniqueName(wanted: string, taken: Set<string>): string {
	if (!taken.has(wanted)) return wanted;
	for (let n = 2; ; n++) {
		const suffix = `-${n}`;
		const base = [...wanted]
			.slice(0, MAX_DEVICE_NAME_LENGTH - suffix.length)
			.join("")
			.trimEnd();
		const candidate = `${base}${suffix}`;
		if (!taken.has(candidate) && deviceNameProblem(candidate) === undefined) return candidate;
	}
}

function validateAddress(address: string): string {
	if (
		address.length === 0 ||
		address.length > MAX_ADDRESS_LENGTH ||
		DEVICE_NAME_UNSAFE.test(address)
	) {
		throw new PairlinkError(
			"internal",
			`Not a device address: ${JSON.stringify(address.slice(0, 100))}.`,
		);
	}
	return address;
}

function parseTrustFile(value: unknown): TrustedDevice[] {
	if (!isRecord(value) || value.version !== FORMAT_VERSION || !Array.isArray(value.devices)) {
		throw new Error(`expected {"version": ${FORMAT_VERSION}, "devices": [...]}`);
	}
	const names = new Set<string>();
	const fingerprints = new Set<string>();
	return value.devices.map((raw, i) => {
		const d = parseDevice(raw, i);
		if (names.has(d.name)) throw new Error(`device name ${JSON.stringify(d.name)} appears twice`);
		if (fingerprints.has(d.fingerprint))
			throw new Error(`fingerprint ${d.fingerprint} appears twice`);
		names.add(d.name);
		fingerprints.add(d.fingerprint);
		return d;
	});
}

function parseDevice(raw: unknown, i: number): TrustedDevice {
	const where = `devices[${i}]`;
	if (!isRecord(raw)) throw new Error(`${where} is not an object`);
	const { name, fingerprint, address, pairedAt, lastSeen } = raw;
	if (typeof name !== "string" || deviceNameProblem(name) !== undefined)
		throw new Error(`${where}.name is invalid`);
	if (typeof fingerprint !== "string" || !/^[0-9a-f]{64}$/.test(fingerprint)) {
		throw new Error(`${where}.fingerprint is not 64 lowercase hex digits`);
	}
	if (
		typeof address !== "string" ||
		address.length === 0 ||
		address.length > MAX_ADDRESS_LENGTH ||
		DEVICE_NAME_UNSAFE.test(address)
	) {
		throw new Error(`${where}.address is invalid`);
	}
	if (!isIsoDate(pairedAt)) throw new Error(`${where}.pairedAt is not a date`);
	if (!isIsoDate(lastSeen)) throw new Error(`${where}.lastSeen is not a date`);
	return { name, fingerprint, address, pairedAt, lastSeen };
}

function isIsoDate(v: unknown): v is string {
	return typeof v === "string" && !Number.isNaN(Date.parse(v));
}

function isRecord(v: unknown): v is Record<string, unknown> {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}
