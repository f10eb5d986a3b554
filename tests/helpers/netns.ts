/**
 * Network namespaces for tests: a private bridge and hosts on documentation
 * addresses only (192.0.2.0/24, 2001:db8::/32), so multicast between them
 * never touches a real network; and `Peer`, a stand-in host running
 * tests/helpers/mdns-peer.ts inside one of them. Root and `ip` only.
 */
import { join } from "node:path";
import type { Subprocess } from "bun";
import { decode, type Packet } from "dns-packet";
import { REPO_ROOT } from "./cli.ts";

const PEER_SCRIPT = join(REPO_ROOT, "tests", "helpers", "mdns-peer.ts");

export const canUseNetns = (): boolean =>
	process.platform === "linux" && process.getuid?.() === 0 && Bun.which("ip") !== null;

export function ip(...args: string[]): void {
	const r = Bun.spawnSync(["ip", ...args], { stderr: "pipe" });
	if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString()}`);
}

export interface TestNetwork {
	/** Namespace names: a hub holding the bridge, and one per host. */
	ns: { hub: string } & Record<string, string>;
}

/**
 * A bridge in its own namespace, and one namespace per host joined to it by a
 * veth pair, each host's end renamed eth0 and given `v4`/24 and `v6`/64.
 */
export function buildNetwork(
	id: string,
	hosts: Record<string, { v4: string; v6: string }>,
): TestNetwork["ns"] {
	const NS: TestNetwork["ns"] = { hub: `${id}h` };
	for (const key of Object.keys(hosts)) NS[key] = `${id}${key.slice(0, 4)}`;
	removeNetwork(NS);
	for (const ns of Object.values(NS)) ip("netns", "add", ns);
	ip("-n", NS.hub, "link", "add", "br0", "type", "bridge");
	ip("-n", NS.hub, "link", "set", "br0", "up");
	for (const [key, { v4, v6 }] of Object.entries(hosts)) {
		const ns = NS[key] as string;
		ip("link", "add", ns, "type", "veth", "peer", "name", `p${key}`, "netns", NS.hub);
		ip("link", "set", ns, "netns", ns);
		ip("-n", NS.hub, "link", "set", `p${key}`, "master", "br0", "up");
		ip("-n", ns, "link", "set", ns, "name", "eth0");
		ip("-n", ns, "addr", "add", `${v4}/24`, "dev", "eth0");
		// nodad: usable at once, without duplicate address detection's delay.
		ip("-n", ns, "addr", "add", `${v6}/64`, "dev", "eth0", "nodad");
		ip("-n", ns, "link", "set", "eth0", "up");
		ip("-n", ns, "link", "set", "lo", "up");
	}
	return NS;
}

export function removeNetwork(NS: TestNetwork["ns"]): void {
	for (const ns of Object.values(NS)) Bun.spawnSync(["ip", "netns", "del", ns], { stderr: "pipe" });
}

/** A `bun tests/helpers/mdns-peer.ts …` process inside a namespace, read line by line. */
export class Peer {
	readonly lines: string[] = [];
	private readonly proc: Subprocess<"ignore", "pipe", "pipe">;
	private wake: (() => void) | undefined;
	private done = false;

	constructor(ns: string, args: string[]) {
		this.proc = Bun.spawn(["ip", "netns", "exec", ns, process.execPath, PEER_SCRIPT, ...args], {
			cwd: REPO_ROOT,
			stdin: "ignore",
			stdout: "pipe",
			stderr: "pipe",
		});
		void this.pump();
	}

	private async pump(): Promise<void> {
		let partial = "";
		const decoder = new TextDecoder();
		for await (const chunk of this.proc.stdout) {
			partial += decoder.decode(chunk, { stream: true });
			const parts = partial.split("\n");
			partial = parts.pop() ?? "";
			this.lines.push(...parts);
			this.wake?.();
		}
		this.done = true;
		this.wake?.();
	}

	/** Waits (a bounded time: the peer is killed after 10 s) until `check` holds. */
	private async until(check: () => boolean): Promise<void> {
		const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
		try {
			while (!check()) {
				if (this.done)
					throw new Error(`peer exited: ${await new Response(this.proc.stderr).text()}`);
				await new Promise<void>((r) => {
					this.wake = r;
				});
			}
		} finally {
			clearTimeout(timer);
		}
	}

	ready(): Promise<void> {
		return this.until(() => this.lines.includes("ready"));
	}

	/** The first packet heard (sniff mode) that satisfies `match`, waiting for it if needed. */
	async heard(match: (p: ReturnType<Peer["packets"]>[number], index: number) => boolean) {
		await this.until(() => this.packets().some(match));
		return this.packets().find(match);
	}

	/** Packets heard so far (sniff mode). */
	packets(): { from: string; port: number; packet: Packet; raw: string }[] {
		return this.lines
			.filter((l) => l.startsWith("{"))
			.map((l) => JSON.parse(l) as { from: string; port: number; hex: string })
			.map(({ from, port, hex }) => ({
				from,
				port,
				packet: decode(Buffer.from(hex, "hex")),
				raw: Buffer.from(hex, "hex").toString("latin1"),
			}));
	}

	async stop(): Promise<void> {
		this.proc.kill("SIGTERM");
		const guard = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
		await this.proc.exited;
		clearTimeout(guard);
	}
}
