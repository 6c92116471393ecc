/**
 * Work that runs after the client has its last byte (settlement, ledger, metrics). The Lambda
 * entry awaits `drain()` after the response stream ends, so nothing is frozen half-done.
 */
export class BackgroundTasks {
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly onError: (err: unknown) => void) {}

  run(task: () => Promise<unknown>): void {
    // Starts on the next turn of the event loop, not in a microtask: the answer's last bytes are
    // written to the socket first, and the SDK's CPU work for the settlement does not delay them.
    const promise = new Promise<void>((resolve) => setImmediate(resolve))
      .then(task)
      .catch(this.onError)
      .finally(() => this.pending.delete(promise));
    this.pending.add(promise);
  }

  async drain(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  get size(): number {
    return this.pending.size;
  }
}
