/**
 * Pass-cost models: c_i(n), the wall time (ms) of ONE forward pass of model i over n new tokens at the context
 * depth used in calibration. The latency formula needs c_i(n) for n well past the calibrated range (a level's
 * verification pass carries its whole incoming block plus a catch-up token), so a measured table is extended by
 * linear extrapolation.
 */

/** Cost in milliseconds of one forward pass over `n` new tokens (n >= 1). */
export type PassCost = (n: number) => number;

/** One calibration measurement: a pass over `n` tokens took `ms` milliseconds (mean over repeats). */
export interface PassCostSample {
  n: number;
  ms: number;
}

/**
 * c(n) from measured samples, usually n = 1 … T_max+2.
 *
 * - Between samples: linear interpolation (non-integer n is allowed).
 * - Above the largest measured n: linear from the last two points *(modelling choice: the slope is clamped at
 *   >= 0, so measurement noise that makes the last point slightly cheaper than the one before cannot predict
 *   passes that get cheaper, or negative, as n grows)*.
 * - Below the smallest measured n: the smallest sample's value (held flat; calibration always measures n = 1,
 *   so this only matters for hand-written tables).
 * - Several samples with the same n are averaged.
 *
 * Serialisable: `toJSON()` gives the samples back, and `new MeasuredPassCost(json)` rebuilds it.
 */
export class MeasuredPassCost {
  /** Samples sorted by n, one per distinct n. */
  readonly samples: readonly PassCostSample[];
  /** The same model as a plain function, to put in a `PlannerInput`. */
  readonly cost: PassCost = (n: number) => this.at(n);

  private readonly ns: Float64Array;
  private readonly ms: Float64Array;

  constructor(samples: readonly PassCostSample[], label = "MeasuredPassCost") {
    if (!Array.isArray(samples) || samples.length === 0) {
      throw new Error(`${label}: needs at least one {n, ms} sample`);
    }
    const byN = new Map<number, { sum: number; count: number }>();
    for (const [i, s] of samples.entries()) {
      if (s === null || typeof s !== "object" || !Number.isFinite(s.n) || s.n < 1) {
        throw new Error(`${label}: sample ${i} has n = ${String(s?.n)}; n must be a finite number >= 1`);
      }
      if (!Number.isFinite(s.ms) || s.ms < 0) {
        throw new Error(`${label}: sample ${i} (n = ${s.n}) has ms = ${String(s.ms)}; ms must be finite and >= 0`);
      }
      const acc = byN.get(s.n) ?? { sum: 0, count: 0 };
      acc.sum += s.ms;
      acc.count += 1;
      byN.set(s.n, acc);
    }
    const sorted = [...byN.entries()].sort((x, y) => x[0] - y[0]).map(([n, a]) => ({ n, ms: a.sum / a.count }));
    this.samples = Object.freeze(sorted.map((s) => Object.freeze(s)));
    this.ns = Float64Array.from(sorted, (s) => s.n);
    this.ms = Float64Array.from(sorted, (s) => s.ms);
  }

  /** c(n) in ms. */
  at(n: number): number {
    if (!Number.isFinite(n) || n < 1) throw new RangeError(`pass cost asked for n = ${n}; n must be >= 1`);
    const { ns, ms } = this;
    const last = ns.length - 1;
    if (n <= ns[0]!) return ms[0]!;
    if (n >= ns[last]!) {
      if (last === 0) return ms[0]!;
      const slope = Math.max(0, (ms[last]! - ms[last - 1]!) / (ns[last]! - ns[last - 1]!));
      return ms[last]! + slope * (n - ns[last]!);
    }
    // Binary search for the segment [ns[lo], ns[lo+1]] holding n.
    let lo = 0;
    let hi = last;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (ns[mid]! <= n) lo = mid;
      else hi = mid;
    }
    const t = (n - ns[lo]!) / (ns[hi]! - ns[lo]!);
    return ms[lo]! + t * (ms[hi]! - ms[lo]!);
  }

  toJSON(): PassCostSample[] {
    return this.samples.map((s) => ({ n: s.n, ms: s.ms }));
  }
}

/** Shorthand: a `PassCost` function from measured samples. */
export function passCostFromSamples(samples: readonly PassCostSample[], label?: string): PassCost {
  return new MeasuredPassCost(samples, label).cost;
}

/** c(n) = fixedMs + perTokenMs * n: a simple synthetic model for tests and benchmarks. */
export function affinePassCost(fixedMs: number, perTokenMs: number): PassCost {
  if (!(fixedMs >= 0) || !(perTokenMs >= 0)) {
    throw new Error(`affinePassCost: fixedMs (${fixedMs}) and perTokenMs (${perTokenMs}) must be >= 0`);
  }
  return (n: number) => fixedMs + perTokenMs * n;
}

/**
 * Memoised integer table of a PassCost, used by the formula, optimiser and simulator, which evaluate c(n) for the
 * same small n many times. Checks every value it computes so a bad cost function fails with the model's name.
 */
export class CostTable {
  private values = new Float64Array(64).fill(Number.NaN);
  /**
   * Extra ms a pass of n tokens costs when the same model's previous pass had another size (llama.cpp then
   * rebuilds its compute graph instead of reusing it); null when not modelled. Read by latency.ts's FirstPass.
   */
  readonly reshape: CostTable | null;

  constructor(
    private readonly cost: PassCost,
    readonly label: string,
    reshape?: PassCost,
  ) {
    if (typeof cost !== "function") throw new Error(`${label}: cost must be a function (n) => ms`);
    this.reshape = reshape ? new CostTable(reshape, `${label} (shape change)`) : null;
  }

  at(n: number): number {
    if (n >= this.values.length) {
      const grown = new Float64Array(Math.max(n + 1, this.values.length * 2)).fill(Number.NaN);
      grown.set(this.values);
      this.values = grown;
    }
    let v = this.values[n]!;
    if (Number.isNaN(v)) {
      v = this.cost(n);
      if (!Number.isFinite(v) || v < 0) {
        throw new Error(`${this.label}: cost(${n}) = ${String(v)}; a pass cost must be a finite number >= 0 ms`);
      }
      this.values[n] = v;
    }
    return v;
  }
}
