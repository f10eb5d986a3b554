/** Open a TLS connection; resolves once the TLS handshake is done. */

import type { Socket } from "bun";
import { type Clock, systemClock } from "../clock.ts";
import { PairlinkError } from "../errors.ts";
import type { Timeouts } from "../protocol/limits.ts";
import { FrameSocket, type TlsInfo } from "./frame-socket.ts";
import { readTlsInfo } from "./tls-info.ts";
import { type Credentials, tlsOptions } from "./tls-options.ts";

export interface DialOptions {
	hostname: string;
	port: number;
	credentials: Credentials;
	timeouts: Timeouts;
	/** Every timer of the connection runs on it (default: the system's). */
	clock?: Clock;
}

export interface Dialed {
	socket: FrameSocket;
	tls: TlsInfo;
}

type Slot = { fs: FrameSocket | undefined };

export function dialTls(opts: DialOptions): Promise<Dialed> {
	const where = `${opts.hostname.includes(":") ? `[${opts.hostname}]` : opts.hostname}:${opts.port}`;
	const clock = opts.clock ?? systemClock;
	return new Promise<Dialed>((resolve, reject) => {
		let settled = false;
		const settle = (e: PairlinkError | undefined, value?: Dialed) => {
			if (settled) return;
			settled = true;
			clock.clearTimeout(timer);
			if (e) reject(e);
			else if (value) resolve(value);
		};
		// Covers TCP connect too: an address that never answers must not hang us.
		const timer = clock.setTimeout(
			() =>
				settle(
					new PairlinkError(
						"timeout",
						`no answer from ${where} within ${opts.timeouts.handshakeMs} ms`,
					),
				),
			opts.timeouts.handshakeMs,
		);
		const slot: Slot = { fs: undefined };
		Bun.connect<Slot>({
			hostname: opts.hostname,
			port: opts.port,
			tls: tlsOptions(opts.credentials, "client"),
			data: slot,
			socket: {
				binaryType: "uint8array",
				open(socket) {
					slot.fs = new FrameSocket(socket, opts.timeouts, clock);
					socket.data = slot;
				},
				handshake(socket) {
					const fs = slot.fs;
					if (!fs) return;
					let tls: TlsInfo;
					try {
						tls = readTlsInfo(socket as Socket<unknown>);
					} catch (e) {
						fs.fail(new PairlinkError("protocol", `TLS handshake inspection failed: ${String(e)}`));
						settle(new PairlinkError("protocol", `TLS handshake with ${where} failed`));
						return;
					}
					fs.handleHandshake(tls);
					if (settled) {
						fs.fail(new PairlinkError("timeout", "handshake finished too late"));
						return;
					}
					settle(undefined, { socket: fs, tls });
				},
				data(_socket, data) {
					slot.fs?.handleData(data);
				},
				drain() {
					slot.fs?.handleDrain();
				},
				close(_socket, error) {
					slot.fs?.handleClose(error);
					settle(
						new PairlinkError(
							"connect-failed",
							`the TLS handshake with ${where} failed${error ? `: ${error.message}` : ""}; is pairlink serving there?`,
						),
					);
				},
				error(_socket, error) {
					slot.fs?.handleClose(error);
					settle(
						new PairlinkError("connect-failed", `connection to ${where} failed: ${error.message}`),
					);
				},
				connectError(_socket, error) {
					settle(
						new PairlinkError("connect-failed", `cannot connect to ${where}: ${error.message}`),
					);
				},
			},
		}).catch((error: Error) =>
			settle(new PairlinkError("connect-failed", `cannot connect to ${where}: ${error.message}`)),
		);
	});
}
