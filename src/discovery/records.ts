/**
 * DNS-SD records of a pairlink server (RFC 6763 over RFC 6762), built and
 * read back. Pure: the DNS codec is dns-packet; this module only decides
 * what goes into the records and what a received packet may claim.
 *
 *   PTR  _pairlink._tcp.local         -> pairlink-<nonce prefix>._pairlink._tcp.local
 *   SRV  <instance>                   -> port, host pairlink-<nonce prefix>.local
 *   TXT  <instance>                   v=1 n=<nonce> id=<blinded id> pair=0|1 [name= fp=]
 *   A / AAAA pairlink-<nonce prefix>.local
 *
 * Instance and host labels come from the nonce, never from the machine's
 * name, so they change whenever the nonce does. `name` and `fp` are present
 * only while pairing is open. Nothing here ever carries a pairing code.
 */
import type { Answer, Packet, Question, StringAnswer } from "dns-packet";
import { type BlindedId, blindedIdFor } from "./blinded-id.ts";

export const SERVICE = "_pairlink._tcp.local";
export const SERVICE_ENUMERATION = "_services._dns-sd._udp.local";
/** Seconds. Short, since the nonce (and so every name) is renewed every few minutes. */
export const RECORD_TTL = 120;
/** RFC 6762 §6.7: answers to legacy unicast queries carry a TTL of at most 10 s. */
export const LEGACY_UNICAST_TTL = 10;
/** A received packet with more records than this is not from a pairlink server: ignored whole. */
export const MAX_RECORDS_PER_PACKET = 32;
/** At most this many pairlink instances are read from one packet. */
export const MAX_INSTANCES_PER_PACKET = 4;
/** A TXT string holds 255 bytes; "name=" takes 5 of them. */
const MAX_NAME_BYTES = 250;
const LABEL_NONCE_CHARS = 12;

export interface Announcement {
	blinded: BlindedId;
	port: number;
	pairingOpen: boolean;
	/** Only while pairing is open: what the person pairing checks before choosing. */
	clear?: { name: string; fingerprint: string };
	/** Addresses of the interface this copy of the records goes out on. */
	addresses: string[];
}

/** What one announcement told us, as heard from `address`. */
export interface Sighting {
	/** The packet's source address: where the server is reachable on this link. */
	address: string;
	port: number;
	pairingOpen: boolean;
	blinded: BlindedId;
	/** Announced only while pairing is open, and then consistent with the blinded id. */
	name?: string;
	fingerprint?: string;
}

export function instanceLabel(blinded: BlindedId): string {
	return `pairlink-${blinded.nonce.slice(0, LABEL_NONCE_CHARS)}`;
}

export function instanceName(blinded: BlindedId): string {
	return `${instanceLabel(blinded)}.${SERVICE}`;
}

export function hostName(blinded: BlindedId): string {
	return `${instanceLabel(blinded)}.local`;
}

function txtStrings(a: Announcement): string[] {
	const txt = [
		"v=1",
		`n=${a.blinded.nonce}`,
		`id=${a.blinded.id}`,
		`pair=${a.pairingOpen ? 1 : 0}`,
	];
	if (a.pairingOpen && a.clear) {
		txt.push(`name=${cutUtf8(a.clear.name, MAX_NAME_BYTES)}`, `fp=${a.clear.fingerprint}`);
	}
	return txt;
}

export interface RecordSet {
	/** The PTR record: the answer to "which pairlink servers are there?". */
	pointer: StringAnswer;
	/** SRV, TXT, A and AAAA: what a browser needs next. */
	details: Answer[];
}

/** The full record set; `ttl` 0 makes it the goodbye (RFC 6762 §10.1). */
export function announcementRecords(a: Announcement, ttl = RECORD_TTL): RecordSet {
	const instance = instanceName(a.blinded);
	const host = hostName(a.blinded);
	// The cache-flush bit marks records only this server owns: a new TXT
	// (pairing closed) replaces the old one in every cache at once.
	const details: Answer[] = [
		{
			name: instance,
			type: "SRV",
			ttl,
			flush: true,
			data: { port: a.port, target: host, priority: 0, weight: 0 },
		},
		{ name: instance, type: "TXT", ttl, flush: true, data: txtStrings(a) },
	];
	for (const address of a.addresses) {
		details.push({
			name: host,
			type: address.includes(":") ? "AAAA" : "A",
			ttl,
			flush: true,
			data: address,
		});
	}
	return { pointer: { name: SERVICE, type: "PTR", ttl, data: instance }, details };
}

/** Cuts a string to at most `max` UTF-8 bytes without splitting a character. */
function cutUtf8(s: string, max: number): string {
	let out = "";
	let bytes = 0;
	for (const ch of s) {
		bytes += Buffer.byteLength(ch);
		if (bytes > max) break;
		out += ch;
	}
	return out;
}

const lower = (s: string) => s.toLowerCase();

/**
 * The records answering `questions`, or an empty list when none concerns us.
 * Questions past the first 16 are not looked at.
 */
export function answersFor(questions: readonly Question[], set: RecordSet): Answer[] {
	const instance = lower(set.pointer.data);
	const host = lower(hostOf(set));
	const picked = new Set<Answer>();
	for (const q of questions.slice(0, 16)) {
		const name = lower(q.name);
		// dns-packet's RecordType leaves out the query-only type ANY.
		const any = (q.type as string) === "ANY";
		if (name === SERVICE && (any || q.type === "PTR")) {
			picked.add(set.pointer);
			for (const r of set.details) picked.add(r);
		} else if (name === SERVICE_ENUMERATION && (any || q.type === "PTR")) {
			picked.add({ name: SERVICE_ENUMERATION, type: "PTR", ttl: set.pointer.ttl, data: SERVICE });
		} else if (name === instance && (any || q.type === "SRV" || q.type === "TXT")) {
			for (const r of set.details) picked.add(r);
		} else if (name === host) {
			for (const r of set.details)
				if (lower(r.name) === host && (any || r.type === q.type)) picked.add(r);
		}
	}
	return [...picked];
}

function hostOf(set: RecordSet): string {
	const srv = set.details.find((r) => r.type === "SRV");
	return srv?.type === "SRV" ? srv.data.target : "";
}

/**
 * Every pairlink server a response packet announces, at each address it
 * announces that `onLink` accepts (else at the packet's source: a host with
 * several addresses may answer from another one than it listens on).
 * Anything malformed is dropped, never thrown.
 */
export function readSightings(
	packet: Packet,
	source: string,
	onLink: (address: string) => boolean = () => false,
): Sighting[] {
	const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
	if (records.length > MAX_RECORDS_PER_PACKET) return [];
	const instances = records
		.flatMap((r) =>
			r.type === "PTR" && lower(r.name) === SERVICE && typeof r.data === "string"
				? [lower(r.data)]
				: [],
		)
		.filter((name, i, all) => name.endsWith(`.${SERVICE}`) && all.indexOf(name) === i)
		.slice(0, MAX_INSTANCES_PER_PACKET);
	const found: Sighting[] = [];
	for (const instance of instances) {
		const own = records.filter((r) => lower(r.name) === instance);
		// A goodbye (TTL 0) says the server is gone: nothing to connect to.
		if (own.some((r) => "ttl" in r && r.ttl === 0)) continue;
		const srv = own.find((r) => r.type === "SRV");
		const txt = own.find((r) => r.type === "TXT");
		if (srv?.type !== "SRV" || txt?.type !== "TXT") continue;
		const sighting = readTxt(txt.data, srv.data.port, source);
		if (!sighting) continue;
		const host = lower(srv.data.target);
		const announced = records.flatMap((r) =>
			(r.type === "A" || r.type === "AAAA") && lower(r.name) === host && onLink(r.data)
				? [r.data]
				: [],
		);
		if (announced.length === 0) found.push(sighting);
		for (const address of new Set(announced)) found.push({ ...sighting, address });
	}
	return found;
}

function readTxt(data: unknown, port: number, address: string): Sighting | undefined {
	if (!Array.isArray(data) || data.length > 16) return undefined;
	const fields = new Map<string, string>();
	for (const entry of data) {
		const text = typeof entry === "string" ? entry : Buffer.from(entry as Uint8Array).toString();
		const eq = text.indexOf("=");
		if (eq > 0 && !fields.has(text.slice(0, eq))) fields.set(text.slice(0, eq), text.slice(eq + 1));
	}
	const nonce = fields.get("n") ?? "";
	const id = fields.get("id") ?? "";
	const pair = fields.get("pair");
	if (
		fields.get("v") !== "1" ||
		!/^[0-9a-f]{32}$/.test(nonce) ||
		!/^[0-9a-f]{32}$/.test(id) ||
		(pair !== "0" && pair !== "1") ||
		!Number.isInteger(port) ||
		port < 1 ||
		port > 65535
	) {
		return undefined;
	}
	const sighting: Sighting = { address, port, pairingOpen: pair === "1", blinded: { nonce, id } };
	const name = fields.get("name");
	const fp = fields.get("fp");
	if (sighting.pairingOpen && name !== undefined && fp !== undefined) {
		// A fingerprint that does not match the blinded id is a lie about one of them.
		if (!/^[0-9a-f]{64}$/.test(fp) || blindedIdFor(nonce, fp) !== id) return undefined;
		if (name.length === 0 || Buffer.byteLength(name) > MAX_NAME_BYTES) return undefined;
		sighting.name = name;
		sighting.fingerprint = fp;
	}
	return sighting;
}
