/**
 * Drives a pure `step(state, event) -> {state, actions}` reducer one event at
 * a time. Actions may wait for I/O (counting an attempt, saving a device)
 * before the next event is stepped, so events are queued, never interleaved.
 */
export class MachineRunner<S, E, A> {
	private queue: Promise<void> = Promise.resolve();
	private halted = false;

	constructor(
		private state: S,
		private readonly step: (state: S, event: E) => { state: S; actions: A[] },
		private readonly perform: (action: A) => Promise<void> | void,
	) {}

	get stopped(): boolean {
		return this.halted;
	}

	/** Step `event` once every earlier event and its actions are done. */
	dispatch(event: E): void {
		this.queue = this.queue.then(async () => {
			if (this.halted) return;
			const next = this.step(this.state, event);
			this.state = next.state;
			for (const action of next.actions) {
				if (this.halted) return;
				await this.perform(action);
			}
		});
	}

	/** Wait for `work` before the next event (e.g. asking the user for the code). */
	after(work: Promise<unknown>): void {
		this.queue = this.queue
			.then(() => work)
			.then(
				() => undefined,
				() => undefined,
			);
	}

	/** Nothing more is stepped or performed. */
	stop(): void {
		this.halted = true;
	}
}
