// Acceptance as the latency model needs it, taken on the user's machine, settings and prompts (docs/ALGORITHM.md
// §7, §9): a(lo, hi), how often drafts of lo survive the check of hi; and, with a context lookup (a model-free
// level), the same by *state* — the lookup's match length at a step's start — with how long its proposals are
// there. (Pass costs: decode-costs.ts.)
//
// The target writes a continuation of each prompt under the user's settings; every model scores it in one pass.
// Along that text:
//  - a model pair's acceptance at position t is Σ_x min(p_lo(x), p_hi(x)) (sampling) or [argmax_lo = argmax_hi]
//    (greedy), and a block starting at t accepts its j-th draft at the rate of position t + j;
//  - the lookup proposes x_0 … x_{k-1} from the prefix; model m accepts x_j with probability p_m(x_j | prefix,
//    x_<j) (a point mass, §8), read from one extra pass of m over the proposal (greedy: [argmax = x_j]).
// Rates by position within a block are survival-weighted averages over the block starts of a state, which is what
// the formula's "P(accept j | accepted 0 … j-1)" means for a mixture of starts.

import type { NativeContext, NativeModel, SamplingTransform } from "../native/types.js";
import { Rng } from "../util/rng.js";
import { DistributionRows } from "../levels/level.js";
import { feedable } from "../levels/native-model.js";
import type { ContextLookupLevel } from "../levels/ngram-lookup.js";
import type { ProposalLevel } from "../levels/level.js";
import { sampleRow } from "../engine/sampling.js";
import { yieldOrAbort } from "../util/yield.js";

export interface AcceptanceMeasureOptions {
  /** Tokens the target generates after each prompt; acceptance is averaged over them. */
  continuationTokens: number;
  seed: number;
  /**
   * Measure the lookup's states too: their bounds (a state is a range of match lengths), the longest block, and
   * other model-free levels to profile by the same states (a static n-gram table).
   */
  lookup?: { level: ContextLookupLevel; states: readonly number[]; maxThreshold: number; others?: ProposalLevel[] };
  signal?: AbortSignal;
}

/** What calibration knows about steps that start in one state (or in any, for `overall`). */
export interface StateProfile {
  /** "match 0", "match 2", "match 4-7", "match 8+" … or "all". */
  name: string;
  /** Calibration positions in this state (a share of positions, not of steps: steps depend on the policy). */
  positions: number;
  /**
   * available[p][n]: share of positions where model-free level p (in the workload's `proposals` order) could
   * propose n tokens (the last entry: n or more).
   */
  available: number[][];
  /**
   * acceptance[lo][hi] by position in a block, over the candidates [model-free levels …, model 0 … target]: how hi
   * accepts the j-th draft of lo given the earlier ones were accepted (null for lo >= hi and for model-free
   * verifiers).
   */
  acceptance: (number[] | null)[][];
}

export interface Workload {
  /** The model-free levels, first the lookup: their names and mean ms per proposal over the calibration positions. */
  proposals: { name: string; costMs: number }[];
  states: StateProfile[];
  overall: StateProfile;
  /** The state at every position of every calibration continuation: the text a policy's steps walk along. */
  paths: number[][];
}

export interface AcceptanceMeasurement {
  /** acceptance[lo][hi] among the models (mean over positions), as the fixed-chain planner reads it. */
  acceptance: number[][];
  /** With a lookup: the per-state profiles. */
  workload: Workload | null;
}

/** A state's name from its bounds: the range of match lengths [bounds[s], bounds[s+1]); the last is open. */
export function stateName(bounds: readonly number[], s: number): string {
  const lo = bounds[s]!;
  if (s + 1 >= bounds.length) return `match ${lo}+`;
  const hi = bounds[s + 1]! - 1;
  return hi === lo ? `match ${lo}` : `match ${lo}-${hi}`;
}

/** The state of a match length: the last bound at or below it. */
export function stateOf(bounds: readonly number[], matchLength: number): number {
  let s = 0;
  while (s + 1 < bounds.length && bounds[s + 1]! <= matchLength) s++;
  return s;
}

/** Survival-weighted sums of acceptance by position: num[j] / den[j] is P(accept j | accepted < j). */
class ByPosition {
  readonly num: Float64Array;
  readonly den: Float64Array;
  constructor(positions: number) {
    this.num = new Float64Array(positions);
    this.den = new Float64Array(positions);
  }
  /** One block start: rates[0 … n) are the acceptances of its successive drafts. */
  add(rate: (j: number) => number, n: number): void {
    let survive = 1;
    for (let j = 0; j < n && j < this.num.length && survive > 0; j++) {
      const a = rate(j);
      this.num[j]! += survive * a;
      this.den[j]! += survive;
      survive *= a;
    }
  }
  /**
   * Rates by position; positions with less weight than `prior` lean on `fallback` (shrinkage towards the overall
   * rates: a state seen at a few positions only must not get extreme rates), and positions never reached repeat the
   * last one.
   */
  rates(fallback: readonly number[] | null, prior: number): number[] {
    const out: number[] = [];
    for (let j = 0; j < this.num.length; j++) {
      const f = fallback?.[j] ?? out[j - 1] ?? 0;
      const total = this.den[j]! + (fallback ? prior : 0);
      out.push(total > 0 ? (this.num[j]! + (fallback ? prior * f : 0)) / total : (out[j - 1] ?? 0));
    }
    return out;
  }
}

/** Accumulators of one state. */
class StateTally {
  positions = 0;
  /** available[p][n]. */
  readonly available: Float64Array[];
  /** pairs[lo][hi] over the candidates [model-free levels …, models …]. */
  readonly pairs: (ByPosition | null)[][];
  constructor(proposals: number, candidates: number, maxThreshold: number) {
    this.available = Array.from({ length: proposals }, () => new Float64Array(maxThreshold + 1));
    this.pairs = Array.from({ length: candidates }, (_, lo) =>
      Array.from({ length: candidates }, (_, hi) => (hi > lo ? new ByPosition(maxThreshold) : null)),
    );
  }
  profile(name: string, fallback: StateProfile | null, prior: number): StateProfile {
    const total = this.positions;
    // A state no position fell in (a short calibration): the overall law, or "never proposes" for the overall.
    const empty = (a: Float64Array, q: number) =>
      fallback ? [...fallback.available[q]!] : Array.from(a, (_, n) => (n === 0 ? 1 : 0));
    return {
      name,
      positions: this.positions,
      available: this.available.map((a, q) => (total > 0 ? Array.from(a, (n) => n / total) : empty(a, q))),
      acceptance: this.pairs.map((row, lo) =>
        row.map((p, hi) => (p ? p.rates(fallback ? fallback.acceptance[lo]![hi]! : null, prior) : null)),
      ),
    };
  }
}

/** Positions' weight of the overall rates in a state's rates (see ByPosition.rates). */
const STATE_PRIOR = 4;

/**
 * a[lo][hi] for every ordered pair of models lo < hi (the mean over positions), and with `options.lookup` the
 * per-state profiles of the candidates [lookup, models …].
 */
export async function measureAcceptance(
  models: readonly NativeModel[],
  contexts: readonly NativeContext[],
  prompts: readonly Int32Array[],
  transform: SamplingTransform,
  options: AcceptanceMeasureOptions,
  onStep?: () => void,
): Promise<AcceptanceMeasurement> {
  const k = models.length;
  // Each model's rows cover the ids the target has too (docs/ALGORITHM.md §11: a draft never proposes others; a
  // draft's restriction below a smaller intermediate level is left out here, as padding ids carry next to no mass).
  const widths = models.map((m) => Math.min(m.vocabSize, models[k - 1]!.vocabSize));
  const L = options.continuationTokens;
  for (const c of contexts) c.setSampling(transform);
  const sums = Array.from({ length: k }, () => new Float64Array(k));
  let positions = 0;
  const rng = new Rng(options.seed);
  const rows = widths.map((w) => new DistributionRows(L + 1, w, transform.greedy));
  const targetOf = (r: DistributionRows, m: number) => ({
    probs: r.probs,
    argmax: r.argmax,
    rowOffset: 0,
    vocabLimit: r.vocabSize < models[m]!.vocabSize ? r.vocabSize : undefined,
  });
  const targets = rows.map(targetOf);
  const lookup = options.lookup ?? null;
  const T = lookup?.maxThreshold ?? 0;
  const bounds = lookup?.states ?? [];
  const proposers: ProposalLevel[] = lookup ? [lookup.level, ...(lookup.others ?? [])] : [];
  const Q = proposers.length;
  const tallies = bounds.map(() => new StateTally(Q, Q + k, T));
  const overall = new StateTally(Q, Q + k, T);
  const paths: number[][] = [];
  const proposeMs = new Float64Array(Q);
  let proposals = 0;
  // Rows of the extra passes over a proposal: the distribution of x_1 … x_{T-1}.
  const proposalRows = lookup ? widths.map((w) => new DistributionRows(T, w, transform.greedy)) : [];
  const proposalTargets = proposalRows.map(targetOf);
  const agree = Array.from({ length: k }, () => Array.from({ length: k }, () => new Float64Array(L)));

  for (const prompt of prompts) {
    const P = prompt.length;
    const sequence = new Int32Array(P + L);
    sequence.set(prompt);
    // The target writes the continuation, token by token, under the user's settings.
    const target = contexts[k - 1]!;
    const one = rows[k - 1]!;
    target.evaluateSync(prompt, 0, P - 1, targets[k - 1]!);
    for (let t = 0; t < L; t++) {
      sequence[P + t] = transform.greedy ? one.argmax[0]! : sampleRow(one, 0, rng);
      if (t + 1 < L) target.evaluateSync(sequence.subarray(P + t, P + t + 1), P + t, 0, targets[k - 1]!);
    }
    // Every model scores the whole continuation in one pass: row t is the distribution of continuation token t.
    for (let m = 0; m < k; m++) {
      const tokens = feedable(sequence.subarray(0, P + L - 1), models[m]!.vocabSize);
      contexts[m]!.evaluateSync(tokens, 0, P - 1, targets[m]!);
    }
    for (let lo = 0; lo < k; lo++) {
      for (let hi = lo + 1; hi < k; hi++) {
        const a = agree[lo]![hi]!;
        for (let t = 0; t < L; t++) a[t] = agreement(rows[lo]!, rows[hi]!, t, transform.greedy);
        sums[lo]![hi]! += a.reduce((x, y) => x + y, 0);
      }
    }
    positions += L;

    if (lookup) {
      const path: number[] = [];
      // kvEnd[m]: how much of `sequence` model m's context still holds (the extra passes overwrite its tail).
      const kvEnd = contexts.map(() => P + L - 1);
      // Proposals are made in a copy of the prefix: they write past its end, where the continuation is.
      const work = new Int32Array(P + L + T);
      for (let t = 0; t < L; t++) {
        const at = P + t;
        const s = stateOf(bounds, lookup.level.match(sequence, at).length);
        path.push(s);
        work.set(sequence.subarray(0, at));
        proposals++;
        for (const [q, level] of proposers.entries()) {
          const started = performance.now();
          const n = level.propose(work, at, T);
          proposeMs[q]! += performance.now() - started;
          const proposal = work.slice(at, at + n);
          // e[m][j]: model m accepts proposal token j given the ones before it (point mass: p_m(x_j)).
          const e = models.map((_, m) => {
            const accept = new Float64Array(n);
            if (n === 0) return accept;
            accept[0] = transform.greedy ? +(rows[m]!.argmax[t] === proposal[0]) : rows[m]!.prob(t, proposal[0]!);
            if (n >= 2) {
              const from = Math.min(kvEnd[m]!, at);
              const tokens = Int32Array.from([...sequence.subarray(from, at), ...proposal.subarray(0, n - 1)]);
              contexts[m]!.evaluateSync(feedable(tokens, models[m]!.vocabSize), from, at - from, proposalTargets[m]!);
              kvEnd[m] = at;
              const pr = proposalRows[m]!;
              for (let j = 1; j < n; j++) {
                accept[j] = transform.greedy ? +(pr.argmax[j - 1] === proposal[j]) : pr.prob(j - 1, proposal[j]!);
              }
            }
            return accept;
          });
          for (const tally of [tallies[s]!, overall]) {
            tally.available[q]![n]! += 1;
            for (let m = 0; m < k; m++) tally.pairs[q]![Q + m]!.add((j) => e[m]![j]!, n);
          }
        }
        for (const tally of [tallies[s]!, overall]) {
          tally.positions++;
          for (let lo = 0; lo < k; lo++) {
            for (let hi = lo + 1; hi < k; hi++) {
              const a = agree[lo]![hi]!;
              tally.pairs[Q + lo]![Q + hi]!.add((j) => a[t + j]!, L - t);
            }
          }
        }
      }
      paths.push(path);
    }
    for (const c of contexts) c.truncate(0);
    onStep?.();
    await yieldOrAbort(options.signal, "the acceptance calibration");
  }
  const acceptance = sums.map((row) => Array.from(row, (s) => s / positions));
  if (!lookup) return { acceptance, workload: null };
  const all = overall.profile("all", null, 0);
  return {
    acceptance,
    workload: {
      proposals: proposers.map((p, q) => ({ name: p.name, costMs: proposeMs[q]! / Math.max(1, proposals) })),
      states: tallies.map((t, s) => t.profile(stateName(bounds, s), all, STATE_PRIOR)),
      overall: all,
      paths,
    },
  };
}

/** Acceptance of row `r` of `lo` by `hi`: Σ_x min(p_lo(x), p_hi(x)), or whether the argmaxes agree (greedy). */
function agreement(lo: DistributionRows, hi: DistributionRows, r: number, greedy: boolean): number {
  if (greedy) return lo.argmax[r] === hi.argmax[r] ? 1 : 0;
  let overlap = 0;
  const shared = Math.min(lo.vocabSize, hi.vocabSize); // beyond it one of them has probability 0
  for (let x = 0; x < shared; x++) {
    overlap += Math.min(lo.probs![r * lo.vocabSize + x]!, hi.probs![r * hi.vocabSize + x]!);
  }
  return overlap;
}
