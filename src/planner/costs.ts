/**
 * Pass costs: c(n), the wall time (ms) of ONE forward pass of a model over n new tokens (docs/ALGORITHM.md §7).
 *
 * One record, `PassCosts`, carries a model's measured costs from the calibration through the cache and the
 * planner to the plan report. The planner also takes curves given as functions (tests, synthetic instances):
 * `ModelCosts` accepts either, and `levelTables` turns it into the memoised tables the formula, the optimiser and
 * the simulator read.
 */

import { InvalidOptionError } from "../errors.js";

/** Cost in milliseconds of one forward pass over `n` new tokens (n >= 1). */
export type PassCost = (n: number) => number;

/** One calibration measurement: a pass over `n` tokens took `ms` milliseconds (mean over repeats). */
export interface PassCostSample {
  n: number;
  ms: number;
}

/** A cost curve: measured samples (interpolated, see `MeasuredPassCost`) or a function. */
export type CostCurve = readonly PassCostSample[] | PassCost;

/**
 * What a pass of one model costs, by what ran before it (docs/ALGORITHM.md §5.3–5.4, measured as §7 says).
 * The measured record (every field present, curves as samples) is `PassCosts`; the planner accepts any curve.
 */
export interface ModelCosts {
  /** After the same model's pass of the same size: level 0's later passes of a call. */
  hot: CostCurve;
  /** After other models' passes: every verification pass and level 0's first pass of a call (default: hot). */
  cold?: CostCurve;
  /** The extra of a pass whose size differs from the model's previous pass (default: none). */
  reshape?: CostCurve;
  /** ms per token of the model decoding alone, deep in a run of its own passes (default: hot(1)). */
  autoregressiveMs?: number;
}

/** A model's measured pass costs: what calibration produces, the cache stores and plan reports print. */
export interface PassCosts extends ModelCosts {
  hot: PassCostSample[];
  cold: PassCostSample[];
  reshape: PassCostSample[];
  autoregressiveMs: number;
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
 */
export class MeasuredPassCost {
  /** Samples sorted by n, one per distinct n. */
  readonly samples: readonly PassCostSample[];
  /** The same curve as a plain function. */
  readonly cost: PassCost = (n: number) => this.at(n);

  private readonly ns: Float64Array;
  private readonly ms: Float64Array;

  constructor(samples: readonly PassCostSample[], label = "MeasuredPassCost") {
    if (!Array.isArray(samples) || samples.length === 0) {
      throw new InvalidOptionError(`${label}: needs at least one {n, ms} sample`);
    }
    const byN = new Map<number, { sum: number; count: number }>();
    for (const [i, s] of samples.entries()) {
      if (s === null || typeof s !== "object" || !Number.isFinite(s.n) || s.n < 1) {
        throw new InvalidOptionError(`${label}: sample ${i} has n = ${String(s?.n)}; n must be a finite number >= 1`);
      }
      if (!Number.isFinite(s.ms) || s.ms < 0) {
        throw new InvalidOptionError(
          `${label}: sample ${i} (n = ${s.n}) has ms = ${String(s.ms)}; ms must be finite and >= 0`,
        );
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

  /** The samples back (JSON.stringify writes them; `new MeasuredPassCost(json)` rebuilds the curve). */
  toJSON(): PassCostSample[] {
    return this.samples.map((s) => ({ n: s.n, ms: s.ms }));
  }
}

/** A curve as a function (samples are interpolated by `MeasuredPassCost`). */
export function costFunction(curve: CostCurve, label: string): PassCost {
  if (typeof curve === "function") return curve;
  return new MeasuredPassCost(curve, label).cost;
}

/** c(n) = fixedMs + perTokenMs * n: a simple synthetic curve for tests and benchmarks. */
export function affinePassCost(fixedMs: number, perTokenMs: number): PassCost {
  if (!(fixedMs >= 0) || !(perTokenMs >= 0)) {
    throw new InvalidOptionError(`affinePassCost: fixedMs (${fixedMs}) and perTokenMs (${perTokenMs}) must be >= 0`);
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
    if (typeof cost !== "function") throw new InvalidOptionError(`${label}: cost must be a function (n) => ms`);
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
      v = n === 0 ? 0 : this.cost(n);
      if (!Number.isFinite(v) || v < 0) {
        throw new InvalidOptionError(
          `${this.label}: cost(${n}) = ${String(v)}; a pass cost must be a finite number >= 0 ms`,
        );
      }
      this.values[n] = v;
    }
    return v;
  }
}

/** A model's costs as the formula reads them. */
export interface LevelTables {
  /** Hot passes of an unchanged size (level 0's later passes of a call: always one token). */
  hot: CostTable;
  /** Cold passes, carrying the shape-change extra (verification passes, level 0's first pass). */
  cold: CostTable;
  /**
   * Hot passes that may change size: a target verifying a proposal level directly, whose passes follow only its
   * own (a proposal runs no model in between).
   */
  hotShaped: CostTable;
  autoregressiveMs: number;
}

/** Tables for one model's costs; `label` names the model in errors. */
export function levelTables(costs: ModelCosts, label: string): LevelTables {
  if (costs === null || typeof costs !== "object")
    throw new InvalidOptionError(`${label}: costs must be an object { hot, cold?, … }`);
  const hotCost = costFunction(costs.hot, `${label} hot costs`);
  const hot = new CostTable(hotCost, label);
  const reshape = costs.reshape === undefined ? undefined : costFunction(costs.reshape, `${label} shape-change costs`);
  const cold =
    costs.cold !== undefined || reshape !== undefined
      ? new CostTable(costFunction(costs.cold ?? costs.hot, `${label} cold costs`), `${label} (cold)`, reshape)
      : hot;
  const hotShaped = reshape === undefined ? hot : new CostTable(hotCost, `${label} (hot)`, reshape);
  const ar = costs.autoregressiveMs;
  if (ar !== undefined && !(Number.isFinite(ar) && ar >= 0)) {
    throw new InvalidOptionError(`${label}: autoregressiveMs ${String(ar)} must be a finite number >= 0`);
  }
  return { hot, cold, hotShaped, autoregressiveMs: ar ?? hot.at(1) };
}
