// A calibration that learns while generating (docs/ALGORITHM.md §10). It starts from a prior — a full calibration,
// what an earlier run learned, or a quick probe — and every pass, proposal and verdict the engine makes updates it:
//  - pass costs per model, by pass size, after another model's pass (cold) or its own (hot), and the extra of a
//    size change (llama.cpp rebuilds its graph): running means that forget at a stated rate;
//  - acceptance by pair, by position in the block and by lookup state, and the model-free levels' proposal lengths
//    by state: counts that forget at the same rate, shrunk towards the prior where they are few;
//  - the text the steps walk along (§9): the lookup states of the recent committed text.
// `snapshot()` gives a `Calibration` the planner reads exactly as it reads a measured one, so re-planning is the
// same code as planning; it is also what the cache keeps for the next run.

import type { Calibration } from "./calibrate.js";
import type { StateProfile, Workload } from "./measure.js";
import { stateOf } from "./measure.js";
import type { DecoderObserver } from "../engine/hsd.js";
import type { Level } from "../levels/level.js";
import type { ContextLookupLevel } from "../levels/ngram-lookup.js";
import type { PassCostSample, PassCosts } from "../planner/costs.js";
import { MeasuredPassCost } from "../planner/costs.js";

/** Observations per cell over which old data fades: a running mean weights the last ~FORGET observations. */
export const FORGET = 64;
/** An observation above this multiple of its cell's current estimate counts as this multiple: a descheduled pass. */
const OUTLIER = 4;
/** Pseudo-observations of the prior in every acceptance and proposal-length estimate. */
const PRIOR_WEIGHT = 8;

/** A running mean that forgets: weight max(1/count, 1/FORGET) on each new observation. */
class RunningMean {
  mean = 0;
  count = 0;
  /** Add x, clipped at OUTLIER × `reference` (the current estimate) when given. */
  add(x: number, reference?: number): void {
    if (reference !== undefined && x > OUTLIER * reference) x = OUTLIER * reference;
    this.count++;
    this.mean += (x - this.mean) * Math.max(1 / this.count, 1 / FORGET);
  }
}

/** Pseudo-observations of the prior (scaled) in a pass-cost cell: one pass does not replace it outright. */
const PRIOR_COST_WEIGHT = 2;

/** Decayed counts: every new observation first multiplies the old ones by (1 - 1/FORGET). */
class FadingCounts {
  readonly values: Float64Array;
  constructor(size: number) {
    this.values = new Float64Array(size);
  }
  fade(): void {
    for (let i = 0; i < this.values.length; i++) this.values[i]! *= 1 - 1 / FORGET;
  }
}

/** Judged and accepted drafts by position in the block, for one (state, pair). */
class VerdictCounts {
  readonly judged: FadingCounts;
  readonly accepted: FadingCounts;
  constructor(positions: number) {
    this.judged = new FadingCounts(positions);
    this.accepted = new FadingCounts(positions);
  }
  add(proposed: number, accepted: number): void {
    this.judged.fade();
    this.accepted.fade();
    const judged = Math.min(proposed, accepted + 1, this.judged.values.length);
    for (let j = 0; j < judged; j++) {
      this.judged.values[j]! += 1;
      if (j < accepted) this.accepted.values[j]! += 1;
    }
  }
  /** Rates by position, each shrunk towards `prior[j]` with PRIOR_WEIGHT pseudo-observations. */
  rates(prior: readonly number[]): number[] {
    return shrunkRates(this.judged.values, this.accepted.values, prior);
  }
  get total(): number {
    return this.judged.values.reduce((a, b) => a + b, 0);
  }
}

/** accepted[j] / judged[j] by position, each shrunk towards `prior[j]` with PRIOR_WEIGHT pseudo-observations. */
function shrunkRates(judged: ArrayLike<number>, accepted: ArrayLike<number>, prior: readonly number[]): number[] {
  return prior.map((p, j) => ((accepted[j] ?? 0) + PRIOR_WEIGHT * p) / ((judged[j] ?? 0) + PRIOR_WEIGHT));
}

/** A law over proposal lengths: observed counts shrunk towards the prior law with PRIOR_WEIGHT pseudo-observations. */
function shrunkLaw(counts: ArrayLike<number>, prior: readonly number[]): number[] {
  let n = 0;
  for (let k = 0; k < counts.length; k++) n += counts[k]!;
  if (n === 0) return [...prior];
  const length = Math.max(counts.length, prior.length);
  return Array.from({ length }, (_, k) => ((counts[k] ?? 0) + PRIOR_WEIGHT * (prior[k] ?? 0)) / (n + PRIOR_WEIGHT));
}

export interface OnlineOptions {
  /** The lookup whose match length is the state (null: one state). */
  lookup: ContextLookupLevel | null;
  /** The states' bounds (calibrate.ts LookupCalibration.states). */
  states: readonly number[];
  /** Levels in candidate order: model-free levels first, then the models, the target last. */
  levels: readonly Level[];
  maxThreshold: number;
  /** The clock steps are timed with (default performance.now; tests pass the decoder's virtual clock). */
  now?: () => number;
}

export class OnlineCalibration implements DecoderObserver {
  private readonly index = new Map<Level, number>();
  private readonly proposals: number;
  /** costs[m]: running means by pass size, m over the models. */
  private readonly hot: RunningMean[][];
  private readonly cold: RunningMean[][];
  private readonly reshape: RunningMean[][];
  /** verdicts[s][lo][hi], candidate indices. */
  private readonly verdictCounts: (VerdictCounts | null)[][][];
  private readonly available: FadingCounts[][];
  private lastLevel: Level | null = null;
  private readonly lastSize = new Map<Level, number>();
  private state = 0;
  /** The generation being observed: its text, where the prompt ends, how much is committed. */
  private text: { sequence: Int32Array; promptLength: number; committed: number } | null = null;
  /** The prior's cost curves per model (read on every pass). */
  private readonly priorCurves: { hot: MeasuredPassCost; cold: MeasuredPassCost }[];
  /** Shadow proposals waiting for the text that decides them (shadowPropose). */
  private shadows: { q: number; target: number; state: number; at: number; tokens: Int32Array }[] = [];
  /** Per-step time outside the passes (see step()). */
  private readonly overhead = new RunningMean();
  private cycleStart: number | null = null;
  private passMsInCycle = 0;
  private readonly now: () => number;
  /** Observations since the last snapshot (so callers can tell whether anything was learned), and in all. */
  observed = 0;
  observedTotal = 0;

  constructor(
    private prior: Calibration,
    readonly options: OnlineOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.priorCurves = prior.models.map((pm) => ({
      hot: new MeasuredPassCost(pm.costs.hot),
      cold: new MeasuredPassCost(pm.costs.cold),
    }));
    options.levels.forEach((l, i) => this.index.set(l, i));
    this.proposals = options.levels.filter((l) => l.kind === "proposal").length;
    const models = options.levels.length - this.proposals;
    const sizes = options.maxThreshold + 3;
    const table = () => Array.from({ length: models }, () => Array.from({ length: sizes }, () => new RunningMean()));
    this.hot = table();
    this.cold = table();
    this.reshape = table();
    const S = Math.max(1, options.states.length);
    const C = options.levels.length;
    this.verdictCounts = Array.from({ length: S }, () =>
      Array.from({ length: C }, (_, lo) =>
        Array.from({ length: C }, (_, hi) => (hi > lo ? new VerdictCounts(options.maxThreshold) : null)),
      ),
    );
    this.available = Array.from({ length: S }, () =>
      Array.from({ length: this.proposals }, () => new FadingCounts(options.maxThreshold + 1)),
    );
  }

  /** A generation starts: its text is what later steps' states and the walk's paths are read from. */
  begin(sequence: Int32Array, promptLength: number): void {
    this.text = { sequence, promptLength, committed: promptLength };
    this.cycleStart = null;
    this.shadows = [];
  }

  /**
   * Model-free levels are observed even in steps that do not run them (a "shadow" proposal): a proposal is a
   * point mass, so its acceptance by the target, p(x | prefix), is the probability that the target's next token is
   * x — and the committed text has the target's law whatever chain wrote it (§3). So [committed token = x] is an
   * unbiased verdict of the pair (level, target) at that position, at the cost of a lookup. Positions after the
   * first are verdicts given the earlier ones matched, as the formula's rates by position are.
   */
  private shadowPropose(state: number, committed: number, running: readonly Level[]): void {
    const sequence = this.text!.sequence;
    const target = this.options.levels.length - 1;
    for (let q = 0; q < this.proposals; q++) {
      const level = this.options.levels[q]!;
      if (level.kind !== "proposal") continue;
      // Running straight into the target, the step records the real verdicts; in a chain it records its proposal.
      if (running.length === 2 && running[0] === level) continue;
      const max = Math.min(this.options.maxThreshold, sequence.length - committed);
      if (max < 1) continue;
      const n = level.propose(sequence, committed, max);
      if (!running.includes(level)) {
        const counts = this.available[state]![q]!;
        counts.fade();
        counts.values[Math.min(n, counts.values.length - 1)]! += 1;
      }
      if (n > 0)
        this.shadows.push({ q, target, state, at: committed, tokens: sequence.slice(committed, committed + n) });
    }
  }

  /** Shadow proposals whose outcome the committed text now decides become verdicts. */
  private settleShadows(committed: number): void {
    const sequence = this.text!.sequence;
    this.shadows = this.shadows.filter((sh) => {
      let j = 0;
      while (j < sh.tokens.length && sh.at + j < committed && sequence[sh.at + j] === sh.tokens[j]) j++;
      if (j < sh.tokens.length && sh.at + j >= committed) return true; // not decided yet
      this.verdictCounts[sh.state]![sh.q]![sh.target]?.add(sh.tokens.length, j);
      this.observed++;
      this.observedTotal++;
      return false;
    });
  }

  /** A step starts in `state` with `committed` tokens of text. */
  step(state: number, committed: number, running: readonly Level[] = []): void {
    this.state = state;
    if (this.text) {
      this.text.committed = committed;
      this.settleShadows(committed);
      this.shadowPropose(state, committed, running);
    }
    // The time from one step's start to the next's, less its passes: the engine's and the generation loop's own
    // time per step (sampling, verification, streaming the text, the consumer's handling of each chunk).
    const now = this.now();
    if (this.cycleStart !== null) this.overhead.add(Math.max(0, now - this.cycleStart - this.passMsInCycle));
    this.cycleStart = now;
    this.passMsInCycle = 0;
  }

  pass(level: Level, tokens: number, ms: number): void {
    const i = this.index.get(level);
    if (i === undefined || tokens < 1) return;
    this.passMsInCycle += ms;
    const m = i - this.proposals;
    const cold = this.lastLevel !== null && this.lastLevel !== level;
    const reshaped = this.lastSize.has(level) && this.lastSize.get(level) !== tokens;
    this.lastLevel = level;
    this.lastSize.set(level, tokens);
    // A pass beyond the sizes planned with (a catch-up after many skipped steps) says nothing about those sizes.
    if (tokens > this.hot[m]!.length - 1) return;
    const n = tokens;
    const kind = cold ? "cold" : "hot";
    const base = this.estimate(m, n, kind, this.scale(m));
    if (reshaped) {
      // The extra over the same-size estimate.
      this.reshape[m]![n]!.add(Math.max(0, ms - base), base);
    } else {
      (cold ? this.cold : this.hot)[m]![n]!.add(ms, base);
    }
    this.observed++;
    this.observedTotal++;
  }

  proposal(level: Level, proposed: number, max: number): void {
    const q = this.index.get(level);
    if (q === undefined || q >= this.proposals) return;
    const counts = this.available[this.state]![q]!;
    counts.fade();
    // A proposal of `max` tokens says "at least max": counted at max (the last entry holds "max or more" only when
    // max is the largest threshold; below it, the law beyond max stays the prior's).
    counts.values[Math.min(proposed, counts.values.length - 1)]! += 1;
    this.observed++;
    this.observedTotal++;
  }

  verdicts(drafter: Level, verifier: Level, proposed: number, accepted: number): void {
    const lo = this.index.get(drafter);
    const hi = this.index.get(verifier);
    if (lo === undefined || hi === undefined) return;
    this.verdictCounts[this.state]![lo]![hi]?.add(proposed, accepted);
    this.observed++;
    this.observedTotal++;
  }

  /**
   * The current estimate of one cost cell: its observed mean, blended with the prior scaled by what the model's
   * observed cells say (PRIOR_COST_WEIGHT pseudo-passes), which alone stands for sizes not seen yet.
   */
  private estimate(m: number, n: number, kind: "hot" | "cold", scale: number): number {
    const cell = (kind === "hot" ? this.hot : this.cold)[m]![n];
    const fromPrior = scale * this.priorCurves[m]![kind].at(n);
    if (!cell || cell.count === 0) return fromPrior;
    const w = Math.min(cell.count, FORGET);
    return (w * cell.mean + PRIOR_COST_WEIGHT * fromPrior) / (w + PRIOR_COST_WEIGHT);
  }

  /**
   * How the model's observed costs compare with the prior's (a count-weighted mean of the ratios): unobserved pass
   * sizes move with it, as a busier machine slows every pass.
   */
  private scale(m: number): number {
    let num = 0;
    let den = 0;
    for (const [kind, cells] of [
      ["hot", this.hot[m]!],
      ["cold", this.cold[m]!],
    ] as const) {
      const curve = this.priorCurves[m]![kind];
      cells.forEach((c, n) => {
        if (n < 1 || c.count === 0) return;
        const w = Math.min(c.count, FORGET);
        num += w * Math.log(c.mean / Math.max(1e-9, curve.at(n)));
        den += w;
      });
    }
    return den === 0 ? 1 : Math.exp(num / den);
  }

  /** What is known now, as a calibration the planner reads (and the cache keeps). */
  snapshot(): Calibration {
    this.observed = 0;
    const prior = this.prior;
    const models = prior.models.map((pm, m) => {
      const scale = this.scale(m);
      const curve = (kind: "hot" | "cold", samples: PassCostSample[]): PassCostSample[] => {
        const cells = (kind === "hot" ? this.hot : this.cold)[m]!;
        const ns = new Set([...samples.map((s) => s.n), ...cells.flatMap((c, n) => (n > 0 && c.count > 0 ? [n] : []))]);
        return [...ns].sort((a, b) => a - b).map((n) => ({ n, ms: this.estimate(m, n, kind, scale) }));
      };
      const reshapePrior = new MeasuredPassCost(pm.costs.reshape);
      const costs: PassCosts = {
        hot: curve("hot", pm.costs.hot),
        cold: curve("cold", pm.costs.cold),
        reshape: pm.costs.reshape.map((s) => {
          const c = this.reshape[m]![s.n];
          return { n: s.n, ms: c && c.count >= 4 ? c.mean : scale * reshapePrior.at(s.n) };
        }),
        autoregressiveMs: scale * pm.costs.autoregressiveMs,
      };
      return { ...pm, costs, fromCache: false };
    });
    return {
      ...prior,
      models,
      acceptance: this.modelAcceptance(),
      workload: prior.workload ? this.workload(prior.workload) : null,
      acceptanceFromCache: false,
      source: "learned",
      stepOverheadMs: this.overhead.count > 0 ? this.overhead.mean : (prior.stepOverheadMs ?? 0),
    };
  }

  /**
   * The models' mean acceptance per pair (what a fixed chain of models is planned with): accepted over judged drafts
   * in every state and position, shrunk towards the prior's rate with PRIOR_WEIGHT pseudo-drafts.
   */
  private modelAcceptance(): number[][] {
    return this.prior.acceptance.map((row, lo) =>
      row.map((p, hi) => {
        if (hi <= lo) return p;
        let judged = 0;
        let accepted = 0;
        for (const byLo of this.verdictCounts) {
          const c = byLo[lo + this.proposals]![hi + this.proposals];
          if (!c) continue;
          judged += c.total;
          accepted += c.accepted.values.reduce((a, b) => a + b, 0);
        }
        return (accepted + PRIOR_WEIGHT * p) / (judged + PRIOR_WEIGHT);
      }),
    );
  }

  private workload(prior: Workload): Workload {
    const states = prior.states.map((ps, s) =>
      this.profile(
        ps,
        (lo, hi) => this.verdictCounts[s]![lo]![hi] ?? null,
        (q) => this.available[s]![q]!.values,
      ),
    );
    // The overall profile (a fixed chain's rates): every state's counts together.
    const sum = (arrays: ArrayLike<number>[]) => {
      const out = new Float64Array(Math.max(0, ...arrays.map((a) => a.length)));
      for (const a of arrays) for (let i = 0; i < a.length; i++) out[i]! += a[i]!;
      return out;
    };
    const overall = this.profile(
      prior.overall,
      (lo, hi) => {
        const cells = this.verdictCounts.flatMap((byLo) => (byLo[lo]![hi] ? [byLo[lo]![hi]!] : []));
        if (cells.length === 0) return null;
        return {
          rates: (p: readonly number[]) =>
            shrunkRates(sum(cells.map((c) => c.judged.values)), sum(cells.map((c) => c.accepted.values)), p),
        };
      },
      (q) => sum(this.available.map((byQ) => byQ[q]!.values)),
    );
    const paths = this.paths();
    return { ...prior, states, overall, paths: paths.length >= 32 ? [paths] : prior.paths };
  }

  private profile(
    prior: StateProfile,
    verdicts: (lo: number, hi: number) => { rates(prior: readonly number[]): number[] } | null,
    available: (q: number) => ArrayLike<number>,
  ): StateProfile {
    const acceptance = prior.acceptance.map((row, lo) =>
      row.map((p, hi) => (p === null ? null : (verdicts(lo, hi)?.rates(p) ?? p))),
    );
    return { ...prior, available: prior.available.map((law, q) => shrunkLaw(available(q), law)), acceptance };
  }

  /** The lookup states along the generated text so far (the walk of §9 along the user's own text). */
  private paths(): number[] {
    const lookup = this.options.lookup;
    if (!lookup || !this.text) return [];
    const { sequence, promptLength, committed } = this.text;
    const out: number[] = [];
    for (let at = promptLength; at < committed; at++)
      out.push(stateOf(this.options.states, lookup.match(sequence, at).length));
    return out;
  }

  /** Judged drafts seen for a pair (all states): how much is known about it. */
  judged(lo: number, hi: number): number {
    return this.verdictCounts.reduce((n, byLo) => n + (byLo[lo]![hi]?.total ?? 0), 0);
  }
}
