/**
 * The exact expected latency per token of an HSD chain under the i.i.d. acceptance model (docs/ALGORITHM.md §5),
 * with the engine's catch-up tokens (§4) in the pass sizes. The input is a `ChainSpec` (chain.ts).
 *
 * Levels 0 … K: level 0 is the smallest drafter, level K the target. Level i (1 <= i <= K) accepts each draft of
 * level i-1 independently with probability a_i (or a_{i,j} for the j-th draft of a block: position-dependent
 * acceptance is supported throughout). A model at level 0 returns exactly T_0 tokens per call (T_0 one-token
 * passes); a proposal level at level 0 (model-free, §8) returns min(L, T_0) tokens for a random available length L,
 * 0 included, at one flat cost per call and with no KV cache to catch up. Level i (1 <= i < K) runs
 * rounds — call level i-1, verify its block in one pass — until its block holds >= T_i tokens (the last round is
 * not cut, so N_i can exceed T_i); the target verifies one block of level K-1 per pass.
 *
 * Block lengths. Calls of a level are i.i.d. (acceptance has no memory), so one round of level i draws a block
 * length n ~ N_{i-1} and an accepted count A with P(A=k | n) = s_k (1 - a_k) for k < n and s_n for k = n, where
 * s_k = a_0 … a_{k-1} is the survival of the first k drafts; it adds A + 1 tokens. The step S = A + 1 has one law
 * for every round, so the running total is a renewal process: a DP over totals 0 … T_i - 1 gives E[R_i] (rounds)
 * and the law of N_i exactly. None of this depends on pass sizes.
 *
 * Catch-up tokens (the engine's rule, src/levels/native-model.ts): before each pass a model re-feeds every token
 * from the longest common prefix of its KV cache and the sequence it is asked to score (at least one: the last
 * context token, whose row gives the first draft's distribution). Call D_m the number of trailing tokens of the
 * working sequence that model m has not evaluated (its "deficit"); a pass of m feeds D_m tokens before its drafts.
 *  - Right after its own pass, D_m = 1 (the token m itself emitted last — a sampled draft for level 0; the
 *    replacement or bonus of its verification for level i >= 1 — was never fed to it).
 *  - When a level j > m verifies a block of n tokens and accepts k of them, the sequence drops the n - k = R
 *    tokens from the first rejection on and gains one: D_m <- max(D_m - R + 1, 1). So a full acceptance (R = 0)
 *    adds one token to the catch-up of every model below the verifier; a rejection of the block's last token
 *    (R = 1) keeps it; an earlier rejection removes tokens that m had (or had not) seen, down to 1.
 *  - Only the first pass of each call of a model can see D_m > 1: within a call, level i's later rounds start
 *    right after its own pass (D_i = 1), and level 0's later passes feed the previous draft.
 * Hence, for example, level 0 feeds 2 tokens (its last draft + the bonus) when level 1 accepted its whole block,
 * and in deeper chains more pile up (level 0's last draft + level 1's bonus + level 2's bonus …).
 *
 * How the formula carries this exactly. A call of level i starts with an incoming vector (D_0 … D_i). Its cost
 * is additive: the incoming D_m only affects the first pass of model m, which happens once per call of level i
 * (the chain of first rounds: level i's first round calls level i-1, whose first round calls level i-2 …). So
 *     E[cost of a call | D] = internal_i + Σ_{m<=i} h_m(D_m),
 * where h_m(d) is the expected cost of model m's first pass with catch-up d (h_0(d) = c_0(d);
 * h_m(d) = E[c_m(N_{m-1} + d)] for m >= 1, N_{m-1} independent of d) and internal_i is everything else. The
 * vector a call leaves behind does not depend on the incoming one (each model's deficit is reset to 1 by its own
 * pass), so each level's state carries, for every model m <= i, the joint law of (N_i, D_m at the end of the
 * call) — only the mass at D_m >= 2 is stored; D_m = 1 is the remainder. One round of the level above then gives
 * the joint law of (S, D'_m) after its verification, and the DP over running totals yields
 *  - internal_{i+1} = E[R] internal_i + (E[R] - 1) h_{i+1}(1) + Σ_{m<=i} Σ_d E[#non-final rounds leaving D'_m = d] h_m(d),
 *    (a non-final round is followed by another round, whose first-round chain starts with that vector), and
 *  - the joint law of (N_{i+1}, D_m) at the end of the call, from the final round.
 * The target's passes are rounds of an endless call: with E[G] = E[S] at the target,
 *     L = ( internal_{K-1} + Σ_{m<=K-1} E[h_m(D'_m)] + h_K(1) ) / E[G],
 * with D'_m the deficit after one target verification (renewal-reward; consecutive target rounds are i.i.d.).
 * This is exact for the engine's rule, not an approximation; the simulator (`simulate.ts`, catch-up "engine")
 * implements the rule independently (longest-common-prefix scans over token ids) and the tests compare the two.
 *
 * `catchUp: "one"` switches the deficit tracking off (every pass feeds exactly one catch-up token, the convention
 * of the first version of this formula, and the simulator's "one" mode); it under-predicts the engine by up
 * to ~5% on step-shaped (GPU-like) costs where c(2) >> c(1).
 *
 * Cold and hot passes (`costs.cold`, optional; §5.3). A pass right after another model's pass may cost more than one
 * right after the same model's (weights and KV cache evicted from the CPU caches, GPU kernels re-launched for
 * another graph). Which passes are cold follows from the recursion: with at least one draft level, every pass of
 * a level i >= 1 (the target included) comes after level i-1 ran, and level 0's first pass of each call comes
 * after the level above ran; level 0's other T_0 - 1 passes and every autoregressive pass follow a pass of the same
 * model. So `cold` applies to every verification pass and to level 0's first pass, `hot` to the rest.
 * Without `cold` both are the same and nothing changes. No-draft decoding (K = 0) is priced separately by
 * `autoregressiveMs` when given: a long run of one model's own passes can be cheaper than the hot pass of a call
 * that follows other models (the caches have not fully refilled after one pass).
 *
 * Shape changes (`costs.reshape`, optional; §5.4). llama.cpp reuses a context's compute graph when a pass has the same
 * shape (tokens, outputs) as that context's previous pass and rebuilds it otherwise; on this project's CPU the
 * rebuild added 0.2–0.3 ms to a 1.2–1.5 ms pass of the 5M target and 0.04–0.07 ms to a 0.1 ms pass of the 0.1M draft
 * (`npx tsx scripts/bench-pass-context.ts`; BENCHMARKS.md, "What a pass costs depends on what ran before it").
 * `hot` / `cold` are then the same-shape costs and
 * c'(n) is the extra of a pass of n tokens after a pass of another size. Who pays it:
 *  - autoregressive passes and level 0's passes after the second of a call: never (always 1 token);
 *  - level 0's first pass with catch-up d: iff d != 1, and then also the call's second pass (back to 1 token),
 *    when T_0 >= 2. The previous pass of level 0 was the last of its previous call: 1 token when T_0 >= 2 (exact);
 *    with T_0 = 1 it is taken as 1 token too (approximation: it was that call's catch-up);
 *  - a verification pass of size s at level i: with probability 1 - P(N_{i-1} + 1 = s), N_{i-1} the law of the
 *    block below. For the target this is exact: its passes are its rounds, i.i.d., each of size N_{K-1} + 1. For
 *    an intermediate level it ignores that the previous pass may have been a first round with a catch-up > 1
 *    (approximation; the simulation tracks sizes exactly and the tests bound the difference).
 * Without `reshape` nothing changes.
 *
 * What the formula still leaves out (measure them, do not tune them away): acceptance that depends on the context
 * (it is an average), rollback / sampling / orchestration overheads between passes, and pass costs at context
 * depths other than the calibrated one.
 */

import type { CostTable, PassCost } from "./costs.js";
import {
  cappedLaw,
  checkRate,
  checkThreshold,
  prepareChain,
  type Acceptance,
  type CatchUpMode,
  type ChainSpec,
  type PreparedLevel,
  verifierTable,
} from "./chain.js";
import { InvalidOptionError } from "../errors.js";

/**
 * h_m(d): expected ms (and tokens fed) of model m's first pass of a call when it must catch up d tokens.
 * With a shape-change table on `table` (`table.reshape`, see "Shape changes" above) the pass pays it when its size
 * differs from the previous pass of the same model: for level 0 that previous pass fed 1 token, and a first pass
 * with d != 1 also makes the call's second pass (1 token again) change shape; for a verifier the previous pass had
 * size N' + 1 with N' an independent copy of the block below, so a pass of size s changes shape with probability
 * 1 - P(N + 1 = s).
 */
export class FirstPass {
  private readonly memo: number[] = [];
  /** E[N_below] (0 for level 0, whose first pass feeds only the catch-up). */
  readonly meanBlock: number;

  constructor(
    readonly table: CostTable,
    /** Law of the block this model verifies in a pass (null for level 0, which verifies nothing). */
    readonly below: Float64Array | null,
    /** Level 0 only: T_0 (whether a second, one-token pass follows the first). */
    readonly threshold = 1,
    /** False for a proposal level: its "pass" is a lookup that feeds no tokens to a model. */
    readonly feeds = true,
  ) {
    this.meanBlock = below ? lawMean(below) : 0;
  }

  /** Expected ms of the pass with catch-up d >= 1. */
  at(d: number): number {
    let v = this.memo[d];
    if (v === undefined) {
      const reshape = this.table.reshape;
      if (this.below === null) {
        v = this.table.at(d);
        if (reshape && d !== 1) v += reshape.at(d) + (this.threshold >= 2 ? reshape.at(1) : 0);
      } else {
        v = 0;
        const law = this.below;
        // n = 0: a proposal level below abstained, and the pass carries only the catch-up.
        for (let n = 0; n < law.length; n++) {
          const p = law[n]!;
          if (p === 0) continue;
          const size = n + d;
          let c = this.table.at(size);
          if (reshape) c += (1 - (law[size - 1] ?? 0)) * reshape.at(size);
          v += p * c;
        }
      }
      this.memo[d] = v;
    }
    return v;
  }

  /** Expected tokens fed by the pass with catch-up d. */
  tokens(d: number): number {
    return this.feeds ? this.meanBlock + d : 0;
  }
}

/**
 * A joint law over (deficit d, x) stored flat: data[d * stride + x]; rows d = 0, 1 are unused (zero), d < width.
 * x is a block length N (level tails) or a step S (round laws).
 */
export interface DeficitJoint {
  width: number;
  stride: number;
  data: Float64Array;
}

/** What one call of a draft level hands upward, as far as the formula needs it. */
export interface LevelState {
  /** Position in the chain (0 = the smallest drafter). */
  level: number;
  mode: CatchUpMode;
  /** law[n] = P(N = n): law of the block length one call returns. */
  law: Float64Array;
  /**
   * tail[m] (m <= level): P(N = n and model m must catch up d >= 2 tokens at its next pass, as the call leaves
   * things), over (d, n). null: always 1. D_m = 1 is the remainder of `law`.
   */
  tail: (DeficitJoint | null)[];
  /** h_m for the models 0 … level of the chain. */
  first: FirstPass[];
  /** Expected ms of one call, less the first passes of the first-round chain (one per model 0 … level). */
  internal: number;
  /** Expected passes of this level's model per call (T_0 for level 0, E[R_i] above). */
  passes: number;
  /**
   * nonFinal[m][d] (m < level, d >= 1): expected number of non-final rounds per call after which model m must
   * catch up d tokens (empty for level 0). Σ_d nonFinal[m][d] = passes - 1.
   */
  nonFinal: Float64Array[];
}

/** Law of the step S = A + 1 of one verification round of a block drawn from `law`. */
export interface StepLaw {
  /** q[j] = P(S = j), j >= 1 (q[0] = 0). */
  q: Float64Array;
  /** E[S]: expected tokens a round adds (= E[G] when the verifier is the target). */
  mean: number;
  /** E[A]: expected accepted drafts per round. */
  meanAccepted: number;
}

/** One round of a verifier over a block of `below`: the step law and, per model below, the deficit it leaves. */
export interface RoundLaw {
  below: LevelState;
  step: StepLaw;
  /** extra[m] (m <= below.level): P(S = j and D'_m = e >= 2) after the round's verification, over (e, j). */
  extra: (DeficitJoint | null)[];
  /** deficit[m][e] (e >= 1): P(D'_m = e) after one round (marginal of `extra` plus the remainder at e = 1). */
  deficit: Float64Array[];
}

// Scratch buffers for `survival` (the formula is synchronous and never re-enters it while one is in use):
// allocating two typed arrays per round law was a third of the exhaustive search's time.
let survS = new Float64Array(64);
let survR = new Float64Array(64);

/** s[k] = a_0 … a_{k-1} (k = 0 … maxN) and r[k] = 1 - a_k (k = 0 … maxN), in shared scratch buffers. */
function survival(acc: Acceptance, maxN: number): { s: Float64Array; r: Float64Array } {
  if (survS.length <= maxN + 1) {
    survS = new Float64Array(2 * (maxN + 1));
    survR = new Float64Array(2 * (maxN + 1));
  }
  const s = survS;
  const r = survR;
  s[0] = 1;
  if (typeof acc === "number") {
    for (let k = 0; k <= maxN; k++) {
      r[k] = 1 - acc;
      s[k + 1] = s[k]! * acc;
    }
  } else {
    for (let k = 0; k <= maxN; k++) {
      const a = acc[Math.min(k, acc.length - 1)]!;
      r[k] = 1 - a;
      s[k + 1] = s[k]! * a;
    }
  }
  return { s, r };
}

/**
 * Level 0: T_0 passes of one token each, except the first, which feeds the catch-up. The first pass follows
 * another model's pass (`cold`, default `table`); the others follow level 0's own pass (`table`).
 */
export function baseLevel(
  table: CostTable,
  threshold: number,
  mode: CatchUpMode = "engine",
  cold?: CostTable,
): LevelState {
  const law = new Float64Array(threshold + 1);
  law[threshold] = 1;
  const first = new FirstPass(cold ?? table, null, threshold);
  const internal = (threshold - 1) * table.at(1);
  return { level: 0, mode, law, tail: [null], first: [first], internal, passes: threshold, nonFinal: [] };
}

/**
 * Step law of a round: P(A = k) = s_k (1 - a_k) P(N > k) + s_k P(N = k), k = 0 … max N (s, r from `survival`).
 * a = 0 and a = 1 need no special case (0^0 = 1).
 */
function stepFrom(law: Float64Array, s: Float64Array, r: Float64Array): StepLaw {
  const maxN = law.length - 1;
  const q = new Float64Array(maxN + 2);
  let tail = 1; // P(N > k) = 1 - P(N <= k)
  let mean = 0;
  for (let k = 0; k <= maxN; k++) {
    tail -= law[k]!;
    const p = s[k]! * (r[k]! * Math.max(0, tail) + law[k]!);
    q[k + 1] = p;
    mean += p * (k + 1);
  }
  return { q, mean, meanAccepted: mean - 1 };
}

/**
 * One round of a verifier over `below`'s block: the step law and the joint law of (S, D'_m) for every model m
 * of the chain below. With R = N - A dropped tokens, D'_m = max(D_m - R + 1, 1), so only R < D_m gives D'_m >= 2
 * (then D'_m = D_m - R + 1); those few (n, d, R) triples are enumerated, and e = 1 is the remainder.
 * With `joint` false only the marginals `deficit` are filled (enough for the target's round).
 */
export function roundLaw(below: LevelState, acc: Acceptance, joint = true): RoundLaw {
  const law = below.law;
  const maxN = law.length - 1;
  const { s, r } = survival(acc, maxN);
  const step = stepFrom(law, s, r);
  const extra: (DeficitJoint | null)[] = [];
  const deficit: Float64Array[] = [];
  const stride = maxN + 2;
  for (let m = 0; m <= below.level; m++) {
    if (below.mode === "one") {
      extra.push(null);
      deficit.push(Float64Array.of(0, 1));
      continue;
    }
    const tj = below.tail[m] ?? null;
    const width = (tj ? tj.width : 2) + 1;
    const marg = new Float64Array(width);
    const data = joint ? new Float64Array(width * stride) : null;
    for (let n = 0; n <= maxN; n++) {
      const pn = law[n]!;
      if (pn === 0) continue;
      let rest = pn; // mass at D_m = 1
      if (tj) {
        for (let d = 2; d < tj.width; d++) {
          const p = tj.data[d * tj.stride + n]!;
          if (p === 0) continue;
          rest -= p;
          const top = Math.min(d - 1, n);
          for (let R = 0; R <= top; R++) {
            const v = p * (R === 0 ? s[n]! : s[n - R]! * r[n - R]!);
            const e = d - R + 1;
            marg[e]! += v;
            if (data) data[e * stride + n - R + 1]! += v;
          }
        }
      }
      // D_m = 1: only a full acceptance (R = 0) leaves D'_m = 2.
      if (rest > 0) {
        const v = rest * s[n]!;
        marg[2]! += v;
        if (data) data[2 * stride + n + 1]! += v;
      }
    }
    let above1 = 0;
    for (let e = 2; e < width; e++) above1 += marg[e]!;
    marg[1] = 1 - above1;
    deficit.push(marg);
    extra.push(data ? { width, stride, data } : null);
  }
  return { below, step, extra, deficit };
}

/** Mean of a law over block lengths. */
export function lawMean(law: Float64Array): number {
  let m = 0;
  for (let n = 0; n < law.length; n++) m += n * law[n]!;
  return m;
}

/**
 * Level i+1 from one round law of level i's block: rounds with i.i.d. steps until the total reaches `threshold`.
 * reach[s] = P(the running total ever equals s), s < T; every visit starts exactly one round, so E[R] = Σ reach;
 * a step from s to s + j >= T ends the call with N = s + j (and the deficits that round leaves are the call's
 * tail), a step to s + j < T is a non-final round (its deficits feed the next round's first-round chain).
 * `first` is h_{i+1}, the new level's own first pass over blocks of level i.
 */
export function raiseLevel(round: RoundLaw, first: FirstPass, threshold: number): LevelState {
  const below = round.below;
  const q = round.step.q;
  const maxStep = q.length - 1;
  const reach = new Float64Array(threshold);
  const L = threshold + maxStep;
  const law = new Float64Array(L);
  reach[0] = 1;
  let rounds = 0;
  for (let s = 0; s < threshold; s++) {
    const r = reach[s]!;
    if (r === 0) continue;
    rounds += r;
    for (let j = 1; j <= maxStep; j++) {
      const p = r * q[j]!;
      if (p === 0) continue;
      const t = s + j;
      if (t < threshold) reach[t]! += p;
      else law[t]! += p;
    }
  }
  // Deficits of the models below: non-final rounds (counted) and the final round (joint with N).
  let internal = rounds * below.internal + (rounds - 1) * first.at(1);
  const tail: (DeficitJoint | null)[] = [];
  const nonFinal: Float64Array[] = [];
  for (let m = 0; m <= below.level; m++) {
    const x = round.extra[m] ?? null;
    const h = below.first[m]!;
    if (!x) {
      nonFinal.push(Float64Array.of(0, rounds - 1));
      tail.push(null);
      internal += (rounds - 1) * h.at(1);
      continue;
    }
    const nf = new Float64Array(x.width);
    const out = new Float64Array(x.width * L);
    let above1 = 0;
    for (let e = 2; e < x.width; e++) {
      const base = e * x.stride;
      const outBase = e * L;
      let count = 0;
      for (let s = 0; s < threshold; s++) {
        const r = reach[s]!;
        if (r === 0) continue;
        const split = threshold - s; // steps j < split stay below T
        const lim = Math.min(split - 1, maxStep);
        for (let j = 1; j <= lim; j++) count += r * x.data[base + j]!;
        for (let j = Math.max(1, split); j <= maxStep; j++) out[outBase + s + j]! += r * x.data[base + j]!;
      }
      nf[e] = count;
      above1 += count;
      if (count !== 0) internal += count * h.at(e);
    }
    nf[1] = rounds - 1 - above1;
    internal += nf[1]! * h.at(1);
    nonFinal.push(nf);
    tail.push({ width: x.width, stride: L, data: out });
  }
  tail.push(null); // the new level itself: its own pass leaves D = 1
  return {
    level: below.level + 1,
    mode: below.mode,
    law,
    tail,
    first: [...below.first, first],
    internal,
    passes: rounds,
    nonFinal,
  };
}

/** One level up in a single call: round law, own first pass, DP. */
export function nextLevel(below: LevelState, level: PreparedLevel, acc: Acceptance, threshold: number): LevelState {
  return raiseLevel(roundLaw(below, acc), new FirstPass(level.tables.cold, below.law), threshold);
}

/** E[cost of one target pass, its draft call included] for a target over a top draft level. */
function targetPassCost(below: LevelState, round: RoundLaw, targetFirst: FirstPass): number {
  let total = below.internal + targetFirst.at(1);
  for (let m = 0; m <= below.level; m++) {
    const dm = round.deficit[m]!;
    const h = below.first[m]!;
    for (let e = 1; e < dm.length; e++) if (dm[e]! !== 0) total += dm[e]! * h.at(e);
  }
  return total;
}

/** L = E[cost per target pass] / E[G] for a target over a top draft level (see module comment). */
export function topLatency(below: LevelState, table: CostTable, acc: Acceptance): number {
  const step = topStep(below, table, acc);
  return step.ms / step.tokens;
}

/** One target step over a top draft level: its expected ms (draft call included) and tokens, E[G]. */
export function topStep(below: LevelState, table: CostTable, acc: Acceptance): { ms: number; tokens: number } {
  const round = roundLaw(below, acc, false);
  return { ms: targetPassCost(below, round, new FirstPass(table, below.law)), tokens: round.step.mean };
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

/** Predicted figures for one level, to print next to measured ones. */
export interface LevelPrediction {
  level: number;
  name: string;
  kind: PreparedLevel["kind"];
  /** T_i (null for the target). */
  threshold: number | null;
  /** How this level accepts drafts from the level below (null for level 0). */
  acceptance: Acceptance | null;
  /** blockLaw[n] = P(N_i = n), the length of the block one call returns (null for the target). */
  blockLaw: number[] | null;
  /** E[N_i] (null for the target). */
  meanBlockLength: number | null;
  /** Expected calls of this level per generated token (target: passes per token). */
  callsPerToken: number;
  /** Expected passes of this level's model per call (level 0: T_0, or 1 proposal; level i: E[R_i]; target: 1). */
  passesPerCall: number;
  /** Expected passes (proposals, for a proposal level) per generated token. */
  passesPerToken: number;
  /** Expected tokens fed per pass, catch-up included (0 for a proposal level: it runs no forward pass). */
  meanTokensPerPass: number;
  /** catchUpLaw[d] = share of this level's calls whose first pass catches up d tokens (index 0 unused). */
  catchUpLaw: number[];
  /** Expected catch-up tokens of a call's first pass. */
  meanCatchUp: number;
  /** Expected drafts accepted per verification pass (null for level 0). */
  acceptedPerPass: number | null;
  /** Expected ms per generated token spent in this level's own passes; these sum to msPerToken. */
  msPerToken: number;
}

export interface LatencyPrediction {
  /** L: expected ms per generated token. */
  msPerToken: number;
  /** Autoregressive ms per token of the target: its `autoregressiveMs`, else its hot c(1). */
  autoregressiveMsPerToken: number;
  /** autoregressiveMsPerToken / L. */
  speedup: number;
  /** E[G]: expected tokens per target pass (1 for K = 0). */
  tokensPerTargetPass: number;
  /** Levels 0 … K. */
  levels: LevelPrediction[];
}

/** The bottom of a chain (level 0) at threshold T: a model drafting T tokens, or one proposal of at most T. */
export function bottomLevel(level: PreparedLevel, threshold: number, mode: CatchUpMode = "engine"): LevelState {
  if (level.kind === "proposal") {
    const law = cappedLaw(level.available, threshold);
    const first = new FirstPass(level.tables.cold, null, 1, false);
    return { level: 0, mode, law, tail: [null], first: [first], internal: 0, passes: 1, nonFinal: [] };
  }
  return baseLevel(level.tables.hot, threshold, mode, level.tables.cold);
}

/** Exact expected latency per token of a chain, with per-level predictions. */
export function expectedLatency(spec: ChainSpec): LatencyPrediction {
  const chain = prepareChain(spec, "expectedLatency");
  const { levels, thresholds, acceptance: rates, catchUp: mode } = chain;
  const K = levels.length - 1;
  const targetLevel = levels[K]!;
  if (targetLevel.kind !== "model")
    throw new InvalidOptionError(`expectedLatency: the target ${targetLevel.name} must be a model`);
  const ar = targetLevel.tables.autoregressiveMs;
  if (K === 0) {
    return {
      msPerToken: ar,
      autoregressiveMsPerToken: ar,
      speedup: 1,
      tokensPerTargetPass: 1,
      levels: [
        {
          level: 0,
          name: targetLevel.name,
          kind: "model",
          threshold: null,
          acceptance: null,
          blockLaw: null,
          meanBlockLength: null,
          callsPerToken: 1,
          passesPerCall: 1,
          passesPerToken: 1,
          meanTokensPerPass: 1,
          catchUpLaw: [0, 1],
          meanCatchUp: 1,
          acceptedPerPass: null,
          msPerToken: ar,
        },
      ],
    };
  }
  // Bottom-up: states[i] for draft levels, and the round law each verifier (the target included) sees.
  const states: LevelState[] = [bottomLevel(levels[0]!, thresholds[0]!, mode)];
  const rounds: (RoundLaw | null)[] = [null];
  for (let i = 1; i < K; i++) {
    const round = roundLaw(states[i - 1]!, rates[i - 1]!);
    rounds.push(round);
    states.push(raiseLevel(round, new FirstPass(levels[i]!.tables.cold, states[i - 1]!.law), thresholds[i]!));
  }
  const top = states[K - 1]!;
  const topRound = roundLaw(top, rates[K - 1]!, false);
  rounds.push(topRound);
  const targetFirst = new FirstPass(verifierTable(targetLevel, levels[K - 1]!, K === 1), top.law);
  const eG = topRound.step.mean;
  const L = targetPassCost(top, topRound, targetFirst) / eG;

  // Per target pass: calls of each level (the target calls level K-1 once; each call of level i makes
  // passes_i calls of level i-1), and the catch-up law of each model's first passes: model m's first pass
  // follows the target's round, or a non-final round of some level j in (m, K).
  const calls = new Array<number>(K + 1);
  calls[K] = 1;
  calls[K - 1] = 1;
  for (let i = K - 1; i >= 1; i--) calls[i - 1] = calls[i]! * states[i]!.passes;
  const firsts: FirstPass[] = [...top.first, targetFirst];
  const predictions: LevelPrediction[] = [];
  for (let m = 0; m <= K; m++) {
    const isTarget = m === K;
    const u: number[] = isTarget ? [0, 1] : Array.from(topRound.deficit[m]!);
    for (let j = m + 1; j < K; j++) {
      const nf = states[j]!.nonFinal[m]!;
      for (let e = 1; e < nf.length; e++) u[e] = (u[e] ?? 0) + calls[j]! * nf[e]!;
    }
    for (let e = 0; e < u.length; e++) u[e] ??= 0;
    const h = firsts[m]!;
    const passesPerCall = isTarget ? 1 : states[m]!.passes;
    // The passes after the first of each call: level 0 feeds one draft; level i catches up one token.
    const hot = levels[m]!.tables.hot;
    let ms = isTarget
      ? 0
      : m === 0
        ? calls[0]! * (passesPerCall - 1) * hot.at(1)
        : calls[m]! * (passesPerCall - 1) * h.at(1);
    let tokens = isTarget
      ? 0
      : m === 0
        ? calls[0]! * (passesPerCall - 1)
        : calls[m]! * (passesPerCall - 1) * h.tokens(1);
    let firstCount = 0;
    let catchUp = 0;
    for (let e = 1; e < u.length; e++) {
      if (u[e] === 0) continue;
      ms += u[e]! * h.at(e);
      tokens += u[e]! * h.tokens(e);
      firstCount += u[e]!;
      catchUp += u[e]! * e;
    }
    const st = isTarget ? null : states[m]!;
    predictions.push({
      level: m,
      name: levels[m]!.name,
      kind: levels[m]!.kind,
      threshold: isTarget ? null : thresholds[m]!,
      acceptance: m === 0 ? null : rates[m - 1]!,
      blockLaw: st ? Array.from(st.law) : null,
      meanBlockLength: st ? lawMean(st.law) : null,
      callsPerToken: calls[m]! / eG,
      passesPerCall,
      passesPerToken: (calls[m]! * passesPerCall) / eG,
      meanTokensPerPass: tokens / (calls[m]! * passesPerCall),
      catchUpLaw: u.map((x) => x / firstCount),
      meanCatchUp: catchUp / firstCount,
      acceptedPerPass: m === 0 ? null : rounds[m]!.step.meanAccepted,
      msPerToken: ms / eG,
    });
  }
  return { msPerToken: L, autoregressiveMsPerToken: ar, speedup: ar / L, tokensPerTargetPass: eG, levels: predictions };
}

/**
 * Closed form for one model draft (K = 1), engine catch-up: level 0's first pass feeds 2 tokens after a full
 * acceptance (probability a^T), so
 *     L = (T c_0(1) + a^T (c_0(2) - c_0(1)) + c_1(T+1)) (1 - a) / (1 - a^{T+1}),
 * with the a = 1 limit; `catchUp: "one"` drops the a^T term.
 */
export function singleDraftLatency(
  c0: PassCost,
  c1: PassCost,
  a: number,
  threshold: number,
  catchUp: CatchUpMode = "engine",
): number {
  checkRate(a, "singleDraftLatency");
  checkThreshold(threshold, "singleDraftLatency");
  const tokens = a === 1 ? threshold + 1 : (1 - a ** (threshold + 1)) / (1 - a);
  const extra = catchUp === "engine" ? a ** threshold * (c0(2) - c0(1)) : 0;
  return (threshold * c0(1) + extra + c1(threshold + 1)) / tokens;
}
