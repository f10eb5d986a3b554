/**
 * Several clients at once (issue 18): four clients each getting a different
 * file from one `serve`, against one client getting one such file. Total
 * throughput must not collapse, and serve's memory must stay flat.
 */
export interface ManyClientsRow {
	clients: number;
	mibEach: number;
	/** Median wall seconds of a single client's get. */
	singleSeconds: number;
	/** Wall seconds until all four finished. */
	allSeconds: number;
	/** Total MiB/s of all clients over MiB/s of one. */
	throughputRatio: number;
	/** serve's resident memory after the single runs, and after the four at once. */
	serveRssKb: { afterSingle: number; afterMany: number; peak: number };
}

export interface ManyClientsContext {
	runs: number;
	mibEach: number;
	names: string[];
	/** Wall seconds of one get of served `name` from `port` into a fresh directory. */
	get(port: number, name: string, index: number): Promise<number>;
	/** Check what get `index` wrote; outside the timed window (hashing 256 MiB is not the transfer's). */
	verify(name: string, index: number): Promise<void>;
	serve(): Promise<{
		port: number;
		rssKb(): Promise<number>;
		peakRssKb(): Promise<number>;
		stop(): Promise<void>;
	}>;
	median(xs: number[]): number;
}

export async function manyClients(ctx: ManyClientsContext): Promise<ManyClientsRow> {
	const d = await ctx.serve();
	try {
		const single: number[] = [];
		for (let i = 0; i < ctx.runs; i++) {
			single.push(await ctx.get(d.port, ctx.names[0] as string, 0));
			await ctx.verify(ctx.names[0] as string, 0);
		}
		const afterSingle = await d.rssKb();
		const started = performance.now();
		await Promise.all(ctx.names.map((name, i) => ctx.get(d.port, name, i)));
		const allSeconds = (performance.now() - started) / 1000;
		for (const [i, name] of ctx.names.entries()) await ctx.verify(name, i);
		const singleSeconds = ctx.median(single);
		return {
			clients: ctx.names.length,
			mibEach: ctx.mibEach,
			singleSeconds,
			allSeconds,
			throughputRatio: (ctx.names.length * singleSeconds) / allSeconds,
			serveRssKb: { afterSingle, afterMany: await d.rssKb(), peak: await d.peakRssKb() },
		};
	} finally {
		await d.stop();
	}
}
