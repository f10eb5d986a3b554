/**
 * The session's connection: opened lazily, reopened after it drops, and
 * closed on Ctrl-C to cancel a running transfer (the partial file stays
 * resumable, and the next command reconnects).
 */
import type { Connection } from "../../client/connect.ts";
import type { PairlinkError } from "../../errors.ts";
import type { ClientSession } from "../../session/client-session.ts";
import { type OpenOptions, openConnection } from "../open-connection.ts";
import { logger, safe } from "../terminal.ts";

export class RemoteLink {
	private conn: Connection | undefined;
	private cancelled = false;
	/** How news that arrives between commands is shown (the prompt redraws itself after it). */
	notice: (text: string) => void = (text) => logger.warn(text);

	constructor(
		private readonly host: string,
		private readonly opts: OpenOptions,
	) {}

	/** The device's name once connected (for the prompt). */
	get peerName(): string {
		return this.conn?.peer.name ?? this.host;
	}

	async session(): Promise<ClientSession> {
		if (this.conn && !this.conn.session.closed) return this.conn.session;
		if (this.conn) logger.info(`Reconnecting to ${safe(this.host)}…`);
		// A reconnect never asks for a code: the shell's own prompt owns the
		// terminal (a second reader echoed every key twice and ran the code as
		// a command), and a device that changed or removed us must meet the
		// identity-changed warning or the refusal, not an offer to pair.
		const conn = await openConnection(
			this.host,
			this.conn ? { ...this.opts, prompt: false } : this.opts,
		);
		this.conn = conn;
		this.cancelled = false;
		void conn.closed.then((reason) => this.onDropped(conn, reason));
		return conn.session;
	}

	/** Ctrl-C during a command: drop the connection, which fails the transfer in flight. */
	cancel(): void {
		this.cancelled = true;
		this.conn?.close();
	}

	close(): void {
		this.cancelled = true;
		this.conn?.close();
	}

	private onDropped(conn: Connection, reason: PairlinkError | undefined): void {
		if (this.conn !== conn || this.cancelled) return;
		this.notice(
			`The connection to ${safe(this.peerName)} was lost${reason ? ` (${safe(reason.message)})` : ""}; the next command reconnects.`,
		);
	}
}
