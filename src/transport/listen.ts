/** Accept TLS connections and hand each one over as a FrameSocket. */
import type { Socket, TCPSocketListener } from "bun";
import { PairlinkError } from "../errors.ts";
import type { Timeouts } from "../protocol/limits.ts";
import { FrameSocket } from "./frame-socket.ts";
import { readTlsInfo } from "./tls-info.ts";
import { type Credentials, tlsOptions } from "./tls-options.ts";

/**
 * Every address, IPv4 and IPv6, on one socket (IPv4 arrives as ::ffff:a.b.c.d;
 * Linux's default net.ipv6.bindv6only=0): `ls '[::1]:PORT'` and
 * `ls 127.0.0.1:PORT` reach the same server.
 */
export const ANY_ADDRESS = "::";
const ANY_IPV4 = "0.0.0.0";

export interface ListenOptions {
	/** An address (brackets around IPv6 allowed, as typed in `[::1]:PORT`). */
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
	const hostname = opts.hostname.replace(/^\[(.*)\]$/, "$1");
	try {
		return listenOn(hostname, opts);
	} catch (e) {
		// A host without IPv6 cannot bind "::": every IPv4 address is the next best.
		if (hostname === ANY_ADDRESS) {
			try {
				return listenOn(ANY_IPV4, opts);
			} catch {
				// report the first failure below
			}
		}
		const where = hostname.includes(":")
			? `[${hostname}]:${opts.port}`
			: `${hostname}:${opts.port}`;
		// A typo'd or foreign --host is not a busy port: say which it is.
		if ((e as { code?: unknown }).code === "EADDRNOTAVAIL")
			throw new PairlinkError(
				"listen-failed",
				`cannot listen on ${where}: this machine has no such address`,
				{ cause: e, advice: "no-such-address" },
			);
		throw new PairlinkError("listen-failed", `cannot listen on ${where}: ${(e as Error).message}`, {
			cause: e,
		});
	}
}

function listenOn(hostname: string, opts: ListenOptions): Listener {
	const server: TCPSocketListener<Slot> = Bun.listen<Slot>({
		hostname,
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
	return {
		hostname: server.hostname,
		port: server.port,
		stop: (closeActive = false) => server.stop(closeActive),
	};
}
