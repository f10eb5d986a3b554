/** Accept TLS connections and hand each one over as a FrameSocket. */
import type { Socket, TCPSocketListener } from "bun";
import { PairlinkError } from "../errors.ts";
import type { Timeouts } from "../protocol/limits.ts";
import { FrameSocket } from "./frame-socket.ts";
import { readTlsInfo } from "./tls-info.ts";
import { type Credentials, tlsOptions } from "./tls-options.ts";

export interface ListenOptions {
	hostname: string;
	port: number;
	credentials: Credentials;
	timeouts: Timeouts;
	/** Called for every accepted TCP connection, before its TLS handshake. */
	onConnection(socket: FrameSocket): void;
}

export interface Listener {
	readonly hostname: string;
	readonly port: number;
	/** Stop accepting; with `closeActive`, also drop open connections. */
	stop(closeActive?: boolean): void;
}

type Slot = { fs: FrameSocket | undefined };

export function listenTls(opts: ListenOptions): Listener {
	let server: TCPSocketListener<Slot>;
	try {
		server = Bun.listen<Slot>({
			hostname: opts.hostname,
			port: opts.port,
			tls: tlsOptions(opts.credentials, "server"),
			data: { fs: undefined },
			socket: {
				binaryType: "uint8array",
				open(socket) {
					const fs = new FrameSocket(socket, opts.timeouts);
					socket.data = { fs };
					opts.onConnection(fs);
				},
				handshake(socket) {
					const fs = socket.data.fs;
					if (!fs) return;
					try {
						fs.handleHandshake(readTlsInfo(socket as Socket<unknown>));
					} catch (e) {
						fs.fail(new PairlinkError("protocol", `TLS handshake inspection failed: ${String(e)}`));
					}
				},
				data(socket, data) {
					socket.data.fs?.handleData(data);
				},
				drain(socket) {
					socket.data.fs?.handleDrain();
				},
				close(socket, error) {
					socket.data.fs?.handleClose(error);
				},
				error(socket, error) {
					socket.data.fs?.handleClose(error);
				},
			},
		});
	} catch (e) {
		throw new PairlinkError(
			"listen-failed",
			`cannot listen on ${opts.hostname}:${opts.port}: ${(e as Error).message}`,
			{ cause: e },
		);
	}
	return {
		hostname: server.hostname,
		port: server.port,
		stop: (closeActive = false) => server.stop(closeActive),
	};
}
