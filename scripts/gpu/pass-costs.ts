// Back-to-back pass costs at one fixed depth (median of n = 1 … maxTokens), for the GPU scripts' quick checks.
// Not the product's calibration: src/calibration/decode-costs.ts measures passes the way decoding incurs them
// (this simpler method under-predicted real decoding by 15–100% on this project's CPU and GPU runs).

import type { NativeContext, NativeModel, SamplingTransform } from "../../src/native/types.js";
import type { PassCostSample } from "../../src/planner/costs.js";
import { DistributionRows } from "../../src/levels/level.js";
import { median } from "../../src/util/stats.js";

export interface CostMeasureOptions {
  maxTokens: number;
  /** Tokens already in the cache when a pass is timed. */
  depth: number;
  repetitions: number;
  warmup: number;
}

/**
 * Median wall time of a pass of n = 1 … maxTokens tokens (all rows produced, as in a
 * verification pass), on `context` with `transform` applied, at position `depth`.
 */
export function measurePassCosts(
  model: NativeModel,
  context: NativeContext,
  prefix: Int32Array,
  transform: SamplingTransform,
  options: CostMeasureOptions,
  onStep?: () => void,
): PassCostSample[] {
  context.setSampling(transform);
  const depth = Math.min(options.depth, prefix.length);
  const rows = new DistributionRows(options.maxTokens, model.vocabSize, transform.greedy);
  const target = { probs: rows.probs, argmax: rows.argmax, rowOffset: 0 };
  context.evaluateSync(prefix.subarray(0, depth), 0, depth, target);
  const block = new Int32Array(options.maxTokens);
  for (let i = 0; i < block.length; i++) block[i] = prefix[(depth + i) % prefix.length]!;
  const samples: PassCostSample[] = [];
  for (let n = 1; n <= options.maxTokens; n++) {
    const times: number[] = [];
    for (let r = 0; r < options.warmup + options.repetitions; r++) {
      const started = performance.now();
      context.evaluateSync(block.subarray(0, n), depth, 0, target);
      const ms = performance.now() - started;
      if (r >= options.warmup) times.push(ms);
    }
    samples.push({ n, ms: median(times) });
    onStep?.();
  }
  context.truncate(0);
  return samples;
}
