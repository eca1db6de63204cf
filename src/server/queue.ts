// One generation at a time (each model holds one KV sequence); the requests behind it wait in a bounded FIFO.

export class QueueFullError extends Error {}

export class GenerationQueue {
  private running = false;
  /** Each waiter's wake-up call, in arrival order. */
  private readonly waiting: (() => void)[] = [];

  constructor(readonly maxWaiting: number) {}

  get state() {
    return { running: this.running ? 1 : 0, waiting: this.waiting.length, maxWaiting: this.maxWaiting };
  }

  /**
   * Resolves with a release function once it is this caller's turn. Throws QueueFullError at once when
   * `maxWaiting` callers already wait; rejects with the signal's reason if it aborts while waiting.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.running) {
      if (this.waiting.length >= this.maxWaiting) throw new QueueFullError();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(signal!.reason);
        };
        const waiter = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        this.waiting.push(waiter);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    this.running = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Hand the turn straight to the next waiter, so nobody can slip in between.
      const next = this.waiting.shift();
      if (next) next();
      else this.running = false;
    };
  }
}
