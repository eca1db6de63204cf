/**
 * Choosing the hierarchy (docs/ALGORITHM.md §6): which candidate levels form the chain, and their thresholds.
 *
 * Candidates are indexed in cost order (small -> large), the last one is the target, and a chain is an increasing
 * sequence of indices ending at the target. Two searches, both scoring with the exact formula of latency.ts:
 *
 * (b) `exhaustiveSearch`: every chain (every subset of the drafts, up to maxDepth of them) and every threshold
 *     vector in 1 … maxThreshold. Depth-first, sharing prefixes: each prefix's LevelState is computed once, so
 *     the cost is one level-DP per chain. Exact optimum over the grid; Σ_k C(D,k) T_max^k chains, i.e.
 *     (T_max+1)^D - 1 with D drafts and no depth cap — 1.4 M for 6 candidates and T_max = 16, too many.
 *
 * (a) `dynamicProgramme`: the generalised shortest path over nodes (model m, threshold T, depth d).
 *     Why it cannot be exact in polynomial time: what a sub-chain ending at (m, T) hands to the next level is
 *     not a number but the whole law of N_m (plus its cost terms and, with the engine's catch-up, the joint law
 *     of N_m and each lower model's catch-up deficit: latency.ts), and the next level's cost depends on that law
 *     non-linearly (E[c(N+1)], the step law, the overshoot of its own threshold). Laws from different
 *     sub-chains are not ordered, so no scalar label at (m, T) is a sufficient statistic; keeping every law is
 *     the exhaustive search again.
 *     What it optimises instead: the expected cost per token that level m produces, which (renewal-reward)
 *     does not depend on T_m at all and equals the exact latency of the sub-chain if m were the target
 *     (`topLatency` with m as the target, catch-up tokens included). The DP
 *     keeps, for each (m, d), the `beamWidth` sub-chains below m (over all predecessors (l, T_l, d-1) and their
 *     kept sub-chains) with the lowest such cost per token; each node (m, T, d) then carries, for each kept
 *     sub-chain, the exact law of N_m and C_m at that T (a level DP). At the target every node's every kept
 *     state is scored with the exact L, and the best is returned. With beamWidth = 1 this is the classical DP:
 *     "the best way to draft for m is the one that would be best if m were the target", which ignores that the
 *     sub-chain's step law also shapes the overshoot of T_m. Depth-1 nodes (single drafts, every T) are all
 *     kept, so no draft and every single draft are paths the DP scores exactly; its pick is never predicted
 *     slower than them. Cost: O(D^2 · maxDepth · T_max · beamWidth · (T_max + max N)) with max N <= depth · T_max
 *     + 1 — milliseconds for 6 candidates. The tests check it against the exhaustive search.
 */

import {
  checkAcceptance,
  prepareLevel,
  type Acceptance,
  type ChainSpec,
  type LevelSpec,
  type PreparedLevel,
  verifierTable,
} from "./chain.js";
import {
  type LatencyPrediction,
  type LevelState,
  FirstPass,
  bottomLevel,
  expectedLatency,
  raiseLevel,
  roundLaw,
  topLatency,
  topStep,
} from "./latency.js";
import { InvalidOptionError } from "../errors.js";

/** The optimiser's input: the candidate levels, their acceptance matrix, the search's bounds. Plain JSON when
 *  every cost curve is given as samples (as calibration and plan reports give them). */
export interface PlannerInput {
  /**
   * Candidates cheapest first; the last is the target (a model). Proposal levels (model-free) can only start a
   * chain; models can draft at its bottom or verify above it.
   */
  candidates: LevelSpec[];
  /** acceptance[lo][hi] (lo < hi): how candidate hi accepts the drafts of candidate lo. Other entries are ignored. */
  acceptance: (Acceptance | null)[][];
  /** Thresholds are searched in 1 … maxThreshold. */
  maxThreshold: number;
  /** Most draft levels in a chain (default: all candidates). */
  maxDepth?: number;
}

/** One chain with its thresholds and prediction. */
export interface Plan {
  /** Candidate indices, increasing, ending at the target. [target] = autoregressive. */
  chain: number[];
  /** Candidate names, same order. */
  names: string[];
  /** T for each draft level of the chain (chain.length - 1 entries). */
  thresholds: number[];
  /** Exact predicted ms per generated token. */
  predictedMsPerToken: number;
  /** The target's autoregressive ms per token / predictedMsPerToken. */
  speedupVsAutoregressive: number;
}

export interface SearchResult extends Plan {
  /** Which search produced this pick. */
  method: "dp" | "exhaustive";
  /** The target decoding alone, ms per token. */
  autoregressiveMsPerToken: number;
  /** The best chain with exactly one draft level, over every draft and T (null when there is no draft candidate). */
  bestSingleDraft: Plan | null;
  /** Chains (exhaustive) or node states (DP) scored with the exact formula. */
  evaluated: number;
}

export interface SearchOptions {
  /** Sub-chains kept per (model, depth) in the DP (default 4). */
  beamWidth?: number;
}

export interface ChooseOptions extends SearchOptions {
  /** 'auto' (default): exhaustive when it scores at most `exhaustiveLimit` chains, else DP. */
  method?: "auto" | "dp" | "exhaustive";
  /** Default 10 000 chains (about 3.5–7.5 µs of CPU each on the 2-core dev box with the engine catch-up tracking: 25–75 ms). */
  exhaustiveLimit?: number;
}

// ---------------------------------------------------------------------------------------------------------------

/** Checked input with prepared levels (memoised cost tables). */
interface Prepared {
  input: PlannerInput;
  levels: PreparedLevel[];
  /** The target decoding alone (ms per token). */
  autoregressiveMs: number;
  target: number;
  maxT: number;
  maxDepth: number;
  a: (lo: number, hi: number) => Acceptance;
}

function prepare(input: PlannerInput): Prepared {
  const where = "planner input";
  if (!input || !Array.isArray(input.candidates) || input.candidates.length === 0) {
    throw new InvalidOptionError(`${where}: candidates must list at least the target`);
  }
  const target = input.candidates.length - 1;
  if (!Number.isInteger(input.maxThreshold) || input.maxThreshold < 1) {
    throw new InvalidOptionError(`${where}: maxThreshold ${String(input.maxThreshold)} must be an integer >= 1`);
  }
  const maxDepth = input.maxDepth ?? target;
  if (!Number.isInteger(maxDepth) || maxDepth < 0) {
    throw new InvalidOptionError(`${where}: maxDepth ${String(input.maxDepth)} must be an integer >= 0`);
  }
  const levels = input.candidates.map((c, i) =>
    prepareLevel(c, `${where}, candidates[${i}]`, (name) => `${where}, candidates[${i}] (${name})`),
  );
  if (levels[target]!.kind !== "model")
    throw new InvalidOptionError(`${where}: the target ${levels[target]!.name} must be a model`);
  if (!Array.isArray(input.acceptance) || input.acceptance.length < target) {
    throw new InvalidOptionError(`${where}: acceptance needs a row for each of the ${target} draft candidates`);
  }
  for (let lo = 0; lo < target; lo++) {
    const row = input.acceptance[lo];
    if (!Array.isArray(row) || row.length <= target) {
      throw new InvalidOptionError(
        `${where}: acceptance[${lo}] (${levels[lo]!.name}) needs entries up to index ${target}`,
      );
    }
    for (let hi = lo + 1; hi <= target; hi++) {
      if (levels[hi]!.kind !== "model") continue; // a proposal level never verifies: its column is unused
      checkAcceptance(
        row[hi] as Acceptance,
        `${where}: acceptance[${lo}][${hi}] (${levels[lo]!.name} checked by ${levels[hi]!.name})`,
      );
    }
  }
  return {
    input,
    levels,
    autoregressiveMs: levels[target]!.tables.autoregressiveMs,
    target,
    maxT: input.maxThreshold,
    maxDepth: Math.min(maxDepth, target),
    a: (lo, hi) => input.acceptance[lo]![hi]!,
  };
}

function makePlan(p: Prepared, chain: number[], thresholds: number[], ms: number): Plan {
  return {
    chain,
    names: chain.map((i) => p.levels[i]!.name),
    thresholds,
    predictedMsPerToken: ms,
    speedupVsAutoregressive: p.autoregressiveMs / ms,
  };
}

/** Replace only when clearly better, so ties keep the earlier (shorter / smaller-T) plan. */
function better(candidate: number, incumbent: number): boolean {
  return candidate < incumbent * (1 - 1e-12);
}

function autoregressive(p: Prepared): Plan {
  return makePlan(p, [p.target], [], p.autoregressiveMs);
}

/** The target's pass costs over a chain of `depth` draft levels whose top is candidate `top`. */
function targetTable(p: Prepared, top: number, depth: number) {
  return verifierTable(p.levels[p.target]!, p.levels[top]!, depth === 1);
}

/** Whether candidate m can verify (only models can; proposal levels only start chains). */
function verifies(p: Prepared, m: number): boolean {
  return p.levels[m]!.kind === "model";
}

function bestSingle(p: Prepared): Plan | null {
  if (p.target === 0 || p.maxDepth === 0) return null;
  let best: Plan | null = null;
  for (let m = 0; m < p.target; m++) {
    for (let T = 1; T <= p.maxT; T++) {
      const L = topLatency(bottomLevel(p.levels[m]!, T), targetTable(p, m, 1), p.a(m, p.target));
      if (best === null || better(L, best.predictedMsPerToken)) best = makePlan(p, [m, p.target], [T], L);
    }
  }
  return best;
}

function finish(p: Prepared, best: Plan, method: SearchResult["method"], evaluated: number): SearchResult {
  return {
    ...best,
    method,
    autoregressiveMsPerToken: p.autoregressiveMs,
    bestSingleDraft: bestSingle(p),
    evaluated,
  };
}

/** Number of chains the exhaustive search scores (including no draft; an upper bound with proposal levels). */
export function countChains(input: Pick<PlannerInput, "candidates" | "maxThreshold" | "maxDepth">): number {
  const D = input.candidates.length - 1;
  const depth = Math.min(input.maxDepth ?? D, D);
  // Σ_{k<=depth} C(D, k) T^k
  let total = 0;
  let binom = 1;
  for (let k = 0; k <= depth; k++) {
    total += binom * input.maxThreshold ** k;
    binom = (binom * (D - k)) / (k + 1);
  }
  return total;
}

/**
 * Depth-first over chains sharing prefixes: each prefix's LevelState is computed once. `next(last)` lists the
 * candidates that may follow `last` in a chain; `grid` the thresholds tried at every level.
 */
function searchChains(
  p: Prepared,
  starts: readonly number[],
  next: (last: number, depth: number) => readonly number[],
  grid: number,
  score: (chain: number[], thresholds: number[], step: { ms: number; tokens: number }) => void,
): void {
  const chain: number[] = [];
  const thresholds: number[] = [];
  const visit = (state: LevelState, last: number, depth: number): void => {
    score(chain, thresholds, topStep(state, targetTable(p, last, depth), p.a(last, p.target)));
    for (const m of next(last, depth)) {
      const round = roundLaw(state, p.a(last, m));
      const own = new FirstPass(p.levels[m]!.tables.cold, state.law);
      chain.push(m);
      for (let T = 1; T <= grid; T++) {
        thresholds.push(T);
        visit(raiseLevel(round, own, T), m, depth + 1);
        thresholds.pop();
      }
      chain.pop();
    }
  };
  for (const m of starts) {
    chain.push(m);
    for (let T = 1; T <= grid; T++) {
      thresholds.push(T);
      visit(bottomLevel(p.levels[m]!, T), m, 1);
      thresholds.pop();
    }
    chain.pop();
  }
}

/** (b) Exhaustive search over chains and threshold grids with the exact formula. */
export function exhaustiveSearch(input: PlannerInput): SearchResult {
  const p = prepare(input);
  let best = autoregressive(p);
  let evaluated = 1;
  const drafts = p.maxDepth >= 1 ? [...Array(p.target).keys()] : [];
  const next = (last: number, depth: number) =>
    depth >= p.maxDepth ? [] : drafts.filter((m) => m > last && verifies(p, m));
  searchChains(p, drafts, next, p.maxT, (chain, thresholds, step) => {
    const L = step.ms / step.tokens;
    evaluated++;
    if (better(L, best.predictedMsPerToken)) best = makePlan(p, [...chain, p.target], [...thresholds], L);
  });
  return finish(p, best, "exhaustive", evaluated);
}

/**
 * The best thresholds for one fixed chain (candidate indices, smallest first, ending at the target): every
 * threshold vector on a grid of 1 … g per level, g = maxThreshold, shrunk for deep chains so that at most ~5 000
 * vectors are scored (g = ⌊5000^(1/depth)⌋: 16 up to depth 3, 8 at depth 4).
 */
export function bestThresholds(input: PlannerInput, chain: readonly number[]): Plan {
  const p = prepare(input);
  checkChain(p, chain, "bestThresholds");
  const depth = chain.length - 1;
  if (depth === 0) return autoregressive(p);
  const grid = Math.max(1, Math.min(p.maxT, Math.floor(5000 ** (1 / depth) + 1e-9)));
  let best: Plan | null = null;
  const next = (last: number, d: number) => (d < depth && chain[d - 1] === last ? [chain[d]!] : []);
  searchChains(p, [chain[0]!], next, grid, (sub, thresholds, step) => {
    if (sub.length !== depth) return; // a prefix of the chain, not the chain
    const L = step.ms / step.tokens;
    if (best === null || better(L, best.predictedMsPerToken)) best = makePlan(p, [...chain], [...thresholds], L);
  });
  return best!;
}

/** One step of a chain: its candidates, thresholds, and the expected ms and tokens of a target step. */
export interface ChainStep {
  chain: number[];
  thresholds: number[];
  ms: number;
  tokens: number;
}

/**
 * Every chain of at most `maxDepth` draft levels (default: the input's) at every threshold vector, with the
 * expected ms and tokens of one target step: what a policy chooses from, state by state (policy.ts). The first is
 * no draft (ms = the target's autoregressive ms per token, 1 token).
 */
export function enumerateChains(input: PlannerInput): ChainStep[] {
  const p = prepare(input);
  const out: ChainStep[] = [{ chain: [p.target], thresholds: [], ms: p.autoregressiveMs, tokens: 1 }];
  const drafts = p.maxDepth >= 1 ? [...Array(p.target).keys()] : [];
  const next = (last: number, depth: number) =>
    depth >= p.maxDepth ? [] : drafts.filter((m) => m > last && verifies(p, m));
  searchChains(p, drafts, next, p.maxT, (chain, thresholds, step) =>
    out.push({ chain: [...chain, p.target], thresholds: [...thresholds], ms: step.ms, tokens: step.tokens }),
  );
  return out;
}

/**
 * One chain's step figures (what enumerateChains lists for it): the same formula, for one chain and thresholds
 * only (predicting a given policy without enumerating every option).
 */
export function chainStep(input: PlannerInput, chain: readonly number[], thresholds: readonly number[]): ChainStep {
  const p = prepare(input);
  checkChain(p, chain, "chainStep");
  const depth = chain.length - 1;
  if (thresholds.length !== depth)
    throw new InvalidOptionError(`chainStep: ${depth} draft levels need ${depth} thresholds, got ${thresholds.length}`);
  if (depth === 0) return { chain: [p.target], thresholds: [], ms: p.autoregressiveMs, tokens: 1 };
  let state = bottomLevel(p.levels[chain[0]!]!, thresholds[0]!);
  for (let j = 1; j < depth; j++) {
    const round = roundLaw(state, p.a(chain[j - 1]!, chain[j]!));
    state = raiseLevel(round, new FirstPass(p.levels[chain[j]!]!.tables.cold, state.law), thresholds[j]!);
  }
  const last = chain[depth - 1]!;
  const step = topStep(state, targetTable(p, last, depth), p.a(last, p.target));
  return { chain: [...chain], thresholds: [...thresholds], ms: step.ms, tokens: step.tokens };
}

/** A kept sub-chain ending at some (model, T, depth), with its exact state. */
interface Entry {
  model: number;
  threshold: number;
  state: LevelState;
  parent: Entry | null;
}

/** A sub-chain below model m, ready to be raised to any T_m. */
interface Candidate {
  parent: Entry;
  /** How m accepts the parent's drafts. */
  a: Acceptance;
  /** Exact expected ms per token of the sub-chain if m were its target. */
  perToken: number;
}

function unwind(e: Entry): { chain: number[]; thresholds: number[] } {
  const chain: number[] = [];
  const thresholds: number[] = [];
  for (let x: Entry | null = e; x; x = x.parent) {
    chain.push(x.model);
    thresholds.push(x.threshold);
  }
  return { chain: chain.reverse(), thresholds: thresholds.reverse() };
}

/** (a) The DP over (model, threshold, depth) nodes described in the module comment. */
export function dynamicProgramme(input: PlannerInput, options: SearchOptions = {}): SearchResult {
  const p = prepare(input);
  const beam = options.beamWidth ?? 4;
  if (!Number.isInteger(beam) || beam < 1)
    throw new InvalidOptionError(`dynamicProgramme: beamWidth ${String(beam)} must be an integer >= 1`);
  let best = autoregressive(p);
  let evaluated = 1;

  // nodes[d][m] = entries of all nodes (m, T, d) for T = 1 … maxT (each T contributes up to `beam` entries).
  const nodes: Entry[][][] = [];
  for (let d = 1; d <= p.maxDepth; d++) {
    const layer: Entry[][] = [];
    for (let m = 0; m < p.target; m++) {
      const entries: Entry[] = [];
      if (d === 1) {
        for (let T = 1; T <= p.maxT; T++) {
          entries.push({ model: m, threshold: T, state: bottomLevel(p.levels[m]!, T), parent: null });
        }
      } else if (verifies(p, m)) {
        // Every sub-chain of depth d-1 below m, scored by its exact cost per token at level m.
        const cands: Candidate[] = [];
        for (let l = 0; l < m; l++) {
          for (const parent of nodes[d - 2]![l]!) {
            cands.push({
              parent,
              a: p.a(l, m),
              perToken: topLatency(parent.state, p.levels[m]!.tables.cold, p.a(l, m)),
            });
          }
        }
        cands.sort((x, y) => x.perToken - y.perToken);
        const kept = cands.slice(0, beam).map((c) => ({
          parent: c.parent,
          round: roundLaw(c.parent.state, c.a),
          own: new FirstPass(p.levels[m]!.tables.cold, c.parent.state.law),
        }));
        for (let T = 1; T <= p.maxT; T++) {
          for (const c of kept) {
            entries.push({ model: m, threshold: T, state: raiseLevel(c.round, c.own, T), parent: c.parent });
          }
        }
      }
      // Top edge: every state of every node is scored exactly as the target's drafter.
      for (const e of entries) {
        const L = topLatency(e.state, targetTable(p, m, d), p.a(m, p.target));
        evaluated++;
        if (better(L, best.predictedMsPerToken)) {
          const u = unwind(e);
          best = makePlan(p, [...u.chain, p.target], u.thresholds, L);
        }
      }
      layer.push(entries);
    }
    nodes.push(layer);
  }
  return finish(p, best, "dp", evaluated);
}

/**
 * Pick the hierarchy: exhaustive search when the grid is small (`exhaustiveLimit` chains), else the DP.
 * Never returns a plan predicted slower than no draft or the best single draft: both searches start from no draft
 * and score every single draft (model, T) exactly before anything deeper.
 */
export function chooseHierarchy(input: PlannerInput, options: ChooseOptions = {}): SearchResult {
  const method = options.method ?? "auto";
  const limit = options.exhaustiveLimit ?? 10_000;
  const useExhaustive = method === "exhaustive" || (method === "auto" && countChains(input) <= limit);
  return useExhaustive ? exhaustiveSearch(input) : dynamicProgramme(input, options);
}

function checkChain(p: Prepared, chain: readonly number[], what: string): void {
  if (!Array.isArray(chain) || chain.length === 0 || chain[chain.length - 1] !== p.target) {
    throw new InvalidOptionError(
      `${what}: a chain must end at the target (candidate ${p.target}), got [${String(chain)}]`,
    );
  }
  chain.forEach((m, j) => {
    if (!Number.isInteger(m) || m < 0 || m > p.target) throw new InvalidOptionError(`${what}: no candidate ${m}`);
    if (j > 0 && m <= chain[j - 1]!) throw new InvalidOptionError(`${what}: candidates must increase along the chain`);
    if (j > 0 && !verifies(p, m))
      throw new InvalidOptionError(`${what}: ${p.levels[m]!.name} is a proposal level and cannot verify`);
  });
}

/**
 * The exact prediction, level by level, for one chain of a planner input (candidate indices, smallest first,
 * ending at the target): the same costs, acceptance and rules the searches score with. `acceptance` replaces the
 * input's rates (one per adjacent pair), e.g. to replay measured acceptance.
 */
export function predictChain(
  input: PlannerInput,
  chain: readonly number[],
  thresholds: readonly number[],
  acceptance: Acceptance[] | null = null,
): LatencyPrediction {
  const spec: ChainSpec = {
    levels: chain.map((i) => {
      const c = input.candidates[i];
      if (!c) throw new InvalidOptionError(`predictChain: no candidate ${i} (there are ${input.candidates.length})`);
      return c;
    }),
    thresholds: [...thresholds],
    acceptance: acceptance ?? chain.slice(1).map((hi, j) => input.acceptance[chain[j]!]![hi]!),
  };
  return expectedLatency(spec);
}
