/**
 * A man in the middle with certificates of his own: accepts TLS with the
 * `front` credentials, dials the real server with the `back` credentials,
 * and forwards every frame verbatim both ways. Each leg is a separate TLS
 * session, so each end sees the relay's certificate and its own exporter.
 */
import { type Frame, FrameType, frameBytes } from "../../src/protocol/frame.ts";
import type { Timeouts } from "../../src/protocol/limits.ts";
import { decodeMessage } from "../../src/protocol/messages.ts";
import { dialTls } from "../../src/transport/dial.ts";
import type { FrameSocket } from "../../src/transport/frame-socket.ts";
import { listenTls } from "../../src/transport/listen.ts";
import type { Credentials } from "../../src/transport/tls-options.ts";

export interface RelayOptions {
	/** What the client sees. */
	front: Credentials;
	/** What the server sees. */
	back: Credentials;
	target: { hostname: string; port: number };
	timeouts: Timeouts;
}

export interface Relay {
	readonly port: number;
	/** Frames forwarded, by direction. */
	readonly forwarded: { toServer: number; toClient: number };
	stop(): void;
}

function forward(frame: Frame, to: FrameSocket): void {
	const sent =
		frame.type === FrameType.data
			? to.sendData(frame.stream, frameBytes(frame))
			: to.send(decodeMessage(frameBytes(frame)), frame.stream);
	void sent.catch(() => undefined);
}

export function startRelay(opts: RelayOptions): Relay {
	const forwarded = { toServer: 0, toClient: 0 };
	const listener = listenTls({
		hostname: "127.0.0.1",
		port: 0,
		credentials: opts.front,
		timeouts: opts.timeouts,
		onConnection(front) {
			let back: FrameSocket | undefined;
			let frontClosed = false;
			const queued: Frame[] = [];
			front.attach({
				onHandshake() {
					front.markEstablished();
					dialTls({
						hostname: opts.target.hostname,
						port: opts.target.port,
						credentials: opts.back,
						timeouts: opts.timeouts,
					}).then(
						({ socket }) => {
							if (frontClosed) {
								socket.close();
								return;
							}
							back = socket;
							socket.markEstablished();
							socket.attach({
								onHandshake: () => undefined,
								onFrame(frame) {
									forwarded.toClient++;
									forward(frame, front);
								},
								onClose: () => front.close(),
							});
							for (const frame of queued.splice(0)) {
								forwarded.toServer++;
								forward(frame, socket);
							}
						},
						() => front.close(),
					);
				},
				onFrame(frame) {
					if (!back) {
						queued.push(frame);
						return;
					}
					forwarded.toServer++;
					forward(frame, back);
				},
				onClose() {
					frontClosed = true;
					back?.close();
				},
			});
		},
	});
	return { port: listener.port, forwarded, stop: () => listener.stop(true) };
}
