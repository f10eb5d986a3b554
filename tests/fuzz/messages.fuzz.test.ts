/**
 * Structure-aware fuzzing of the control-message decoder: start from a
 * schema-valid message of every type, mutate it the way a hostile peer
 * would (drop, add, retype fields; strings and arrays at and over their
 * caps; NaN, Infinity, 1e308, negative numbers; __proto__/constructor keys;
 * duplicate keys; deep nesting; truncated JSON; invalid UTF-8), and check
 * that decodeMessage only ever returns a schema-valid message — exactly
 * what was sent, no coercion, no prototype games — or throws a
 * PairlinkError("protocol") with a bounded message.
 *
 * Seeded: FUZZ_SEED replays a run; PAIRLINK_FUZZ_ITERATIONS=N runs N times
 * longer (the heavy variant).
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { entryJson, entryLine } from "../../src/cli/format.ts";
import { PairlinkError } from "../../src/errors.ts";
import { MAX_CONTROL_PAYLOAD } from "../../src/protocol/limits.ts";
import {
	decodeMessage,
	encodeMessage,
	type Message,
	MessageSchema,
} from "../../src/protocol/messages.ts";
import {
	fuzzBudget,
	fuzzLoop,
	isSchemaValid,
	MESSAGE_TYPES,
	validMessage,
} from "../helpers/bad-peers.ts";
import { makePrng, type Prng, seedFromEnv } from "../helpers/prng.ts";

// The heavy variant (PAIRLINK_FUZZ_ITERATIONS) runs longer than the CLI's default timeout.
setDefaultTimeout(fuzzBudget(1).testTimeoutMs);

// ---------------------------------------------------------------- a JSON tree we can break

/**
 * JSON as a tree whose leaves are raw text, so that a mutation can put
 * anything JSON.stringify would never write (NaN, 1e309, -0, a key named
 * __proto__, the same key twice) into the bytes a peer sends.
 */
type JNode =
	| { k: "obj"; e: [string, JNode][]; s?: AnySchema }
	| { k: "arr"; items: JNode[]; s?: AnySchema }
	| { k: "raw"; text: string; s?: AnySchema };

/** The bits of a valibot schema we read: type, object entries, array item, pipe, optional. */
interface AnySchema {
	type: string;
	entries?: Record<string, AnySchema>;
	item?: AnySchema;
	wrapped?: AnySchema;
	pipe?: { type: string; requirement?: unknown }[];
}

const unwrap = (s: AnySchema | undefined) => (s?.type === "optional" ? s.wrapped : s);

function toNode(value: unknown, schema?: AnySchema): JNode {
	const s = unwrap(schema);
	if (Array.isArray(value)) return { k: "arr", items: value.map((x) => toNode(x, s?.item)), s };
	if (value !== null && typeof value === "object") {
		return {
			k: "obj",
			e: Object.entries(value).map(([key, x]) => [key, toNode(x, s?.entries?.[key])]),
			s,
		};
	}
	return { k: "raw", text: JSON.stringify(value), s };
}

function text(n: JNode): string {
	if (n.k === "raw") return n.text;
	if (n.k === "arr") return `[${n.items.map(text).join(",")}]`;
	return `{${n.e.map(([key, x]) => `${JSON.stringify(key)}:${text(x)}`).join(",")}}`;
}

function requirement(s: AnySchema | undefined, type: string): number | undefined {
	const r = s?.pipe?.find((p) => p.type === type)?.requirement;
	return typeof r === "number" ? r : undefined;
}

interface Slot {
	node: JNode;
	replace(n: JNode): void;
	/** Set when the slot is a member of an object. */
	drop?(): void;
}

function slots(root: JNode): Slot[] {
	const out: Slot[] = [{ node: root, replace: () => undefined }];
	const walk = (n: JNode) => {
		if (n.k === "obj") {
			for (const pair of n.e) {
				out.push({
					node: pair[1],
					replace: (x) => {
						pair[1] = x;
					},
					drop: () => {
						n.e.splice(n.e.indexOf(pair), 1);
					},
				});
				walk(pair[1]);
			}
		} else if (n.k === "arr") {
			n.items.forEach((item, i) => {
				out.push({
					node: item,
					replace: (x) => {
						n.items[i] = x;
					},
				});
				walk(item);
			});
		}
	};
	walk(root);
	return out;
}

const raw = (t: string): JNode => ({ k: "raw", text: t });

const NUMBER_TOKENS = [
	"NaN",
	"Infinity",
	"-Infinity",
	"1e308",
	"-1e308",
	"1e309",
	"-1e309",
	"-1",
	"0",
	"-0",
	"0.5",
	"1.0",
	"1e0",
	"2e-324",
	"4294967295",
	"4294967296",
	"9007199254740991",
	"9007199254740992",
	"9007199254740993",
	"1e21",
	"0x10",
	"01",
	"+1",
	".5",
];
const OTHER_TYPES = [
	"null",
	"true",
	"false",
	'""',
	'"1"',
	"[]",
	"{}",
	"[1]",
	'{"t":"ping"}',
	'"ping"',
];
const KEYS = [
	"__proto__",
	"constructor",
	"prototype",
	"toString",
	"valueOf",
	"hasOwnProperty",
	"__defineGetter__",
	"",
	"T",
	"t\u0000",
	"t",
	"id",
	"name",
	"entries",
];
const STRETCH_UNITS = ["a", "A", "0", "é", "🙂", "\u0000", "\u001b", "\ud800", '"', "\\"];
const T_CONFUSION = [
	"PING",
	" ping",
	"ping\u0000",
	"",
	"pake",
	"hello\u200b",
	"__proto__",
	"constructor",
];
const BAD_UTF8 = [
	[0xff],
	[0xfe],
	[0x80],
	[0xc0, 0x80],
	[0xc1, 0xbf],
	[0xed, 0xa0, 0x80],
	[0xe2, 0x82],
	[0xf0, 0x80, 0x80, 0xaf],
	[0xf4, 0x90, 0x80, 0x80],
	[0xf8, 0x88, 0x80, 0x80, 0x80],
];

function stretchedString(rng: Prng, units: number): string {
	const unit = rng.pick(STRETCH_UNITS);
	return unit.repeat(Math.max(0, Math.ceil(units / unit.length)));
}

/** Lengths right below, at, and over the cap the schema puts on this node (or generic big ones). */
function lengthsFor(s: AnySchema | undefined): number[] {
	const cap = requirement(s, "max_length") ?? requirement(s, "length");
	const min = requirement(s, "min_length");
	const generic = [0, 1, 65, 4097, 40_000];
	if (cap === undefined) return generic;
	return [cap - 1, cap, cap + 1, cap * 2, ...(min !== undefined ? [min - 1, min] : []), 0];
}

function numberEdges(s: AnySchema | undefined): string[] {
	const out = [...NUMBER_TOKENS];
	for (const t of ["min_value", "max_value"]) {
		const r = requirement(s, t);
		if (r !== undefined) out.push(String(r - 1), String(r), String(r + 1), String(r + 0.5));
	}
	return out;
}

function deep(rng: Prng): JNode {
	const depth = rng.pick([64, 1000, 10_000, 30_000]);
	return rng.int(2) === 0
		? raw(`${"[".repeat(depth)}${"]".repeat(depth)}`)
		: raw(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`);
}

const OPERATORS = [
	"drop-field",
	"add-field",
	"duplicate-field",
	"retype",
	"number-edge",
	"stretch-string",
	"stretch-array",
	"t-confusion",
	"deep-nesting",
] as const;
type Operator = (typeof OPERATORS)[number];

/** Apply one structural mutation; returns its name (for the statistics). */
function mutateTree(rng: Prng, root: JNode): Operator {
	const all = slots(root);
	const op = rng.pick(OPERATORS);
	const slot = rng.pick(all);
	const s = slot.node.s;
	switch (op) {
		case "drop-field": {
			const members = all.filter((x) => x.drop);
			if (members.length > 0) rng.pick(members).drop?.();
			break;
		}
		case "add-field":
		case "duplicate-field": {
			const objects = all.filter((x) => x.node.k === "obj").map((x) => x.node);
			const obj = rng.pick(objects);
			if (obj.k !== "obj") break;
			let key = rng.pick(KEYS);
			let value: JNode = raw(rng.pick([...OTHER_TYPES, ...NUMBER_TOKENS.slice(0, 6)]));
			if (op === "duplicate-field" && obj.e.length > 0) {
				const [k, x] = rng.pick(obj.e);
				key = k;
				value = k === "t" ? raw(JSON.stringify(rng.pick(MESSAGE_TYPES))) : rng.int(2) ? x : value;
			}
			obj.e.splice(rng.int(obj.e.length + 1), 0, [key, value]);
			break;
		}
		case "retype":
			slot.replace(raw(rng.pick(OTHER_TYPES)));
			break;
		case "number-edge":
			slot.replace({ ...raw(rng.pick(numberEdges(s))), s });
			break;
		case "stretch-string": {
			const strings = all.filter((x) => x.node.k === "raw" && x.node.text.startsWith('"'));
			const target = strings.length > 0 ? rng.pick(strings) : slot;
			const n = rng.pick(lengthsFor(target.node.s));
			target.replace({ ...raw(JSON.stringify(stretchedString(rng, n))), s: target.node.s });
			break;
		}
		case "stretch-array": {
			const arrays = all.filter((x) => x.node.k === "arr");
			if (arrays.length === 0) {
				slot.replace({
					k: "arr",
					items: Array.from({ length: rng.pick([1, 129, 5000]) }, () => raw("0")),
				});
				break;
			}
			const target = rng.pick(arrays);
			const arr = target.node;
			if (arr.k !== "arr") break;
			const n = rng.pick(lengthsFor(arr.s));
			const item: JNode = arr.items[0] ?? raw('{"name":"a","type":"file","size":0,"mtime":0}');
			arr.items = Array.from({ length: Math.max(0, n) }, () => item);
			break;
		}
		case "t-confusion": {
			if (root.k !== "obj") break;
			const t = root.e.find(([k]) => k === "t");
			const value = rng.int(2) === 0 ? rng.pick(MESSAGE_TYPES) : rng.pick(T_CONFUSION);
			if (t) t[1] = raw(JSON.stringify(value));
			break;
		}
		case "deep-nesting":
			slot.replace(deep(rng));
			break;
	}
	return op;
}

const BYTE_OPS = ["truncate", "bad-utf8", "flip", "bom", "trailing", "none"] as const;

/** Byte-level damage on the encoded text. */
function mutateBytes(rng: Prng, bytes: Uint8Array): { bytes: Uint8Array; op: string } {
	const op = rng.pick(BYTE_OPS);
	const at = rng.int(bytes.length + 1);
	switch (op) {
		case "truncate":
			return { bytes: bytes.subarray(0, rng.int(Math.max(1, bytes.length))), op };
		case "bad-utf8": {
			// Inside a string literal when there is one: the JSON stays well formed around it.
			const quote = bytes.indexOf(0x22, 6);
			const pos = quote > 0 && rng.int(3) > 0 ? quote + 1 : at;
			const bad = Uint8Array.from(rng.pick(BAD_UTF8));
			return { bytes: Buffer.concat([bytes.subarray(0, pos), bad, bytes.subarray(pos)]), op };
		}
		case "flip": {
			const out = Uint8Array.from(bytes);
			const i = rng.int(out.length);
			if (out.length > 0) out[i] = (out[i] as number) ^ (1 << rng.int(8));
			return { bytes: out, op };
		}
		case "bom":
			return { bytes: Buffer.concat([Uint8Array.from([0xef, 0xbb, 0xbf]), bytes]), op };
		case "trailing":
			return {
				bytes: Buffer.concat([
					bytes,
					new TextEncoder().encode(rng.pick(["}", ",", "{}", " ", "\u0000", "\n"])),
				]),
				op,
			};
		default:
			return { bytes, op };
	}
}

// ---------------------------------------------------------------- the properties

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Everything an accepted message must satisfy. */
function checkAccepted(m: Message, input: Uint8Array): void {
	if (!isSchemaValid(m))
		throw new Error(`accepted a message the schema refuses: ${JSON.stringify(m)}`);
	// Exactly what the peer sent: no coercion, no defaults, no dropped keys.
	expect(m).toEqual(JSON.parse(strictUtf8.decode(input)));
	// A plain object all the way down: nothing reached a prototype.
	const plain = (x: unknown): void => {
		if (Array.isArray(x)) {
			x.forEach(plain);
			return;
		}
		if (x !== null && typeof x === "object") {
			if (Object.getPrototypeOf(x) !== Object.prototype)
				throw new Error("accepted an object with another prototype");
			if (Object.hasOwn(x, "__proto__")) throw new Error("accepted an own __proto__ key");
			Object.values(x).forEach(plain);
		}
	};
	plain(m);
	// What we accept we can send back and read again (compared as JSON: -0 comes back as 0).
	expect(JSON.stringify(decodeMessage(encodeMessage(m)))).toBe(JSON.stringify(m));
}

function checkRefused(e: unknown, input: Uint8Array): void {
	if (!(e instanceof PairlinkError)) {
		throw new Error(
			`non-PairlinkError ${String(e)} for ${JSON.stringify(new TextDecoder().decode(input.subarray(0, 200)))}`,
		);
	}
	expect(e.code).toBe("protocol");
	// The refusal ends up in the server's log: it must not echo a huge input.
	expect(e.message.length).toBeLessThan(300);
}

const MESSAGE_SCHEMAS = Object.fromEntries(
	MessageSchema.options.map((o) => [o.entries.t.literal, o as unknown as AnySchema]),
) as Record<Message["t"], AnySchema>;

describe("control messages: structure-aware fuzzing", () => {
	test("the generator covers every message type and only makes valid messages", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		const seen = new Set<string>();
		fuzzLoop("messages/generator", seed, fuzzBudget(3000, 500), () => {
			for (const t of MESSAGE_TYPES) {
				const m = validMessage(rng, t);
				seen.add(m.t);
				const bytes = encodeMessage(m);
				if (bytes.length > MAX_CONTROL_PAYLOAD) continue; // could never arrive in one frame
				expect(decodeMessage(bytes)).toEqual(m);
			}
		});
		expect([...seen].sort()).toEqual([...MESSAGE_TYPES].sort());
	});

	const budget = fuzzBudget(60_000);
	test(
		"mutated valid messages: accepted only when schema-valid, otherwise PairlinkError",
		() => {
			const seed = seedFromEnv();
			const rng = makePrng(seed);
			let accepted = 0;
			let refused = 0;
			const byType = new Map<string, { accepted: number; refused: number }>();
			const byOp = new Map<string, { accepted: number; refused: number }>();
			const count = (map: typeof byOp, key: string, ok: boolean) => {
				const c = map.get(key) ?? { accepted: 0, refused: 0 };
				if (ok) c.accepted++;
				else c.refused++;
				map.set(key, c);
			};
			const stats = fuzzLoop("messages/mutations", seed, budget, () => {
				const t = rng.pick(MESSAGE_TYPES);
				const root = toNode(validMessage(rng, t), MESSAGE_SCHEMAS[t]);
				const ops: string[] = [];
				for (let n = 1 + rng.int(3); n > 0; n--) ops.push(mutateTree(rng, root));
				let bytes: Uint8Array = new TextEncoder().encode(text(root));
				if (rng.int(3) === 0) {
					const b = mutateBytes(rng, bytes);
					bytes = b.bytes;
					ops.push(b.op);
				}
				let ok = false;
				try {
					const m = decodeMessage(bytes);
					ok = true;
					checkAccepted(m, bytes);
				} catch (e) {
					if (ok) throw e;
					checkRefused(e, bytes);
				}
				if (ok) accepted++;
				else refused++;
				count(byType, t, ok);
				for (const op of ops) count(byOp, op, ok);
			});
			// Nothing reached Object.prototype.
			expect(Object.keys(Object.prototype)).toEqual([]);
			expect(({} as Record<string, unknown>).polluted).toBeUndefined();
			const rate = (m: typeof byOp) =>
				[...m].map(([k, c]) => `${k} ${c.accepted}/${c.accepted + c.refused}`).join(", ");
			console.log(
				`FUZZ: messages/mutations: ${accepted} accepted, ${refused} refused of ${stats.iterations}; accepted by operator: ${rate(byOp)}`,
			);
			console.log(`FUZZ: messages/mutations: accepted by type: ${rate(byType)}`);
			expect(accepted).toBeGreaterThan(0);
			expect(refused).toBeGreaterThan(0);
			expect([...byType.keys()].sort()).toEqual([...MESSAGE_TYPES].sort());
		},
		budget.testTimeoutMs,
	);

	test("hand-picked hostile payloads are refused with a PairlinkError", () => {
		const cases = [
			'{"t":"ping","nonce":"1","__proto__":{"polluted":1}}',
			'{"__proto__":{"t":"ping"},"nonce":"1"}',
			'{"t":"ping","nonce":"1","constructor":{"prototype":{"polluted":1}}}',
			'{"t":"ok","id":NaN}',
			'{"t":"ok","id":1e309}',
			'{"t":"ok","id":-0.5}',
			'{"t":"ok","id":4294967296}',
			'{"t":"put","id":1,"path":"a","size":9007199254740992,"overwrite":false}',
			'{"t":"put","id":1,"path":"a","size":-1,"overwrite":false}',
			`{"t":"ping","nonce":"${"a".repeat(65)}"}`,
			`{"t":"hello","version":1,"mode":"pair","name":"${"n".repeat(65)}"}`,
			'{"t":"hello","version":1,"mode":"pair","name":"x\\u009b2J"}',
			`{"t":"pake3","ta":"${"A".repeat(128)}"}`,
			`{"t":"entries","id":1,"done":true,"entries":[${Array(129).fill('{"name":"a","type":"file","size":0,"mtime":0}').join(",")}]}`,
			'{"t":"error","code":"no-such-code"}',
			`{"t":"ping","nonce":${"[".repeat(30_000)}${"]".repeat(30_000)}}`,
			'{"t":"ping","nonce":"1"',
			"",
			"null",
			"[]",
			'"ping"',
		];
		for (const c of cases) {
			expect(() => decodeMessage(new TextEncoder().encode(c))).toThrow(PairlinkError);
		}
		const badUtf8 = Uint8Array.from([
			...new TextEncoder().encode('{"t":"ping","nonce":"'),
			0xc0,
			0x80,
			0x22,
			0x7d,
		]);
		expect(() => decodeMessage(badUtf8)).toThrow(PairlinkError);
		expect(Object.keys(Object.prototype)).toEqual([]);
	});

	// Regression (once a bug):
	test("a control message whose t is not a string is refused with a PairlinkError", () => {
		for (const c of ['{"t":{"toString":1}}', `{"t":${"[".repeat(10_000)}${"]".repeat(10_000)}}`]) {
			expect(() => decodeMessage(new TextEncoder().encode(c))).toThrow(PairlinkError);
		}
	});

	// Regression (once a bug):
	test("every listing entry the decoder accepts can be printed", () => {
		const seed = seedFromEnv();
		const rng = makePrng(seed);
		const corpus = [
			'{"t":"stat-ok","id":1,"entry":{"name":"a","type":"file","size":0,"mtime":1e300}}',
			'{"t":"entries","id":1,"done":true,"entries":[{"name":"a","type":"file","size":0,"mtime":-8640000000000001}]}',
		].map((s) => new TextEncoder().encode(s));
		const show = (m: Message) => {
			const list =
				m.t === "stat-ok"
					? [m.entry]
					: m.t === "entries" || m.t === "walk-entries"
						? m.entries
						: [];
			for (const e of list) {
				entryJson(e);
				entryLine(e, true);
			}
		};
		// Out-of-range times are refused by the schema: nothing unprintable gets through.
		for (const bytes of corpus) expect(() => show(decodeMessage(bytes))).toThrow(PairlinkError);
		fuzzLoop("messages/printable-entries", seed, fuzzBudget(20_000, 1000), () => {
			const t = rng.pick(["stat-ok", "entries", "walk-entries"] as const);
			const root = toNode(validMessage(rng, t), MESSAGE_SCHEMAS[t]);
			mutateTree(rng, root);
			let m: Message;
			try {
				m = decodeMessage(new TextEncoder().encode(text(root)));
			} catch {
				return;
			}
			show(m);
		});
	});
});
