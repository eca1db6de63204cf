// Where re-planning runs (docs/ALGORITHM.md §10). A plan over a few states and sixteen thresholds takes 0.1–0.5 s
// of CPU on this project's 2-core machine: on the generating thread that stalls the generation, so it is done
// rarely (the decoder's time budget). In a worker thread it runs beside the generation on a core the models do not
// use, and the decoder picks up the answer between two target passes when it arrives.

import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { replanNamed, type NamedReplan, type ReplanInput } from "./adaptive.js";

export interface Replanner {
  /** Whether replan() runs off the generating thread. */
  readonly background: boolean;
  replan(input: ReplanInput): NamedReplan | Promise<NamedReplan>;
  close(): Promise<void>;
}

/** Re-planning on the calling thread. */
export const inThreadReplanner: Replanner = {
  background: false,
  replan: replanNamed,
  close: async () => {},
};

/**
 * Re-planning in a worker thread, started on first use and not keeping the process alive. If the worker cannot
 * start or fails, re-planning continues on the calling thread.
 */
export class WorkerReplanner implements Replanner {
  private worker: Worker | null = null;
  private failed = false;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (r: NamedReplan) => void; reject: (e: Error) => void }>();

  get background(): boolean {
    return !this.failed;
  }

  replan(input: ReplanInput): NamedReplan | Promise<NamedReplan> {
    if (this.failed) return replanNamed(input);
    const worker = this.worker ?? this.start();
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, input });
    });
  }

  private start(): Worker {
    const here = import.meta.url;
    // From the TypeScript sources (tests, `tsx`), the worker loads them through tsx, which worker threads do not
    // inherit; from the built package it is plain JavaScript.
    const worker = here.endsWith(".ts")
      ? new Worker(
          `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL("./replan-worker.ts", here).href)}); });`,
          { eval: true },
        )
      : new Worker(new URL("./replan-worker.js", here));
    worker.unref();
    worker.on("message", (m: { id: number; result?: NamedReplan; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.result) p.resolve(m.result);
      else p.reject(new Error(`re-planning failed: ${m.error}`));
    });
    worker.on("error", (error) => this.fail(error));
    worker.on("exit", () => this.fail(new Error("the re-planning worker exited")));
    this.worker = worker;
    return worker;
  }

  private fail(error: Error): void {
    this.failed = true;
    this.worker = null;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.failed = true; // after close, re-plans run in-thread
    this.worker = null;
    if (worker) await worker.terminate();
  }
}

/**
 * A worker when the models leave two CPUs free, else the calling thread: on 2 vCPUs with a 1-thread model the busy
 * worker re-planning back to back left the adaptive default at 1.5–1.8× the autoregressive time per token
 * (BENCHMARKS.md), far more than re-planning in the thread at a bounded share costs.
 */
export function replannerFor(threads: number): Replanner {
  return availableParallelism() >= threads + 2 ? new WorkerReplanner() : inThreadReplanner;
}
