// Small statistics for the benchmark: medians and spreads over repetitions. No smoothing, no outlier removal:
// the spread is reported next to every median so a noisy number shows as noisy.

import { median } from "../../src/util/stats.js";

export { median };

/** Linear-interpolated quantile q in [0, 1] of a non-empty list. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new Error("quantile of an empty list");
  if (!(q >= 0 && q <= 1)) throw new Error(`quantile: q = ${q} is not in [0, 1]`);
  const s = [...values].sort((a, b) => a - b);
  const x = q * (s.length - 1);
  const lo = Math.floor(x);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (x - lo) * (s[hi]! - s[lo]!);
}

export interface Summary {
  /** Number of values. */
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: the relative spread over repetitions. */
  relativeSpread: number;
  values: number[];
}

export function summarize(values: readonly number[]): Summary {
  const med = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return {
    n: values.length,
    median: med,
    min,
    max,
    relativeSpread: med === 0 ? 0 : (max - min) / med,
    values: [...values],
  };
}

/** Rotate a list left by k (k may exceed the length): the interleaving order of one round of runs. */
export function rotate<T>(items: readonly T[], k: number): T[] {
  if (items.length === 0) return [];
  const s = ((k % items.length) + items.length) % items.length;
  return [...items.slice(s), ...items.slice(0, s)];
}
