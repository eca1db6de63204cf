// Long synchronous work (decoding with evaluation "sync", calibration) gives the event loop a turn between passes,
// so that a signal (Ctrl-C), a timer, an AbortSignal, a closed pipe or a socket is handled within one pass instead
// of after the whole run.

import { AbortedError } from "../errors.js";

/** Resolves after the event loop has gone round once: pending signals, timers and I/O callbacks have run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** yieldToEventLoop, then an AbortedError naming `what` if the signal fired meanwhile (or before). */
export async function yieldOrAbort(signal: AbortSignal | undefined, what: string): Promise<void> {
  await yieldToEventLoop();
  if (signal?.aborted) throw new AbortedError(`${what} was interrupted; nothing of it was cached`);
}
