/**
 * Choosing the hierarchy: which candidate models form the chain, and their thresholds.
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

import { CostTable, type PassCost } from "./cost-model.js";
import {
  type ChainSpec,
  type LatencyPrediction,
  type LevelState,
  FirstPass,
  baseLevel,
  expectedLatency,
  raiseLevel,
  roundLaw,
  topLatency,
} from "./latency.js";

/** The optimiser's input. JSON-friendly except `cost`; see `PlannerSpec` for the fully serialisable form. */
export interface PlannerInput {
  /**
   * Candidates sorted small -> large by cost; the last is the target. `coldCost` (optional): cost of a pass
   * that follows another model's pass (latency.ts, "cold and hot passes"); `cost` is then the hot cost.
   * `reshapeCost` (optional): extra cost of a pass whose size differs from the model's previous pass
   * (latency.ts, "shape changes"). `autoregressiveMs` (optional): ms per token of the model decoding alone
   * (default cost(1)), used when it is the target of no-draft decoding.
   */
  models: { name: string; cost: PassCost; coldCost?: PassCost; reshapeCost?: PassCost; autoregressiveMs?: number }[];
  /** acceptance[lo][hi] (lo < hi): probability that model hi accepts a draft token of model lo. Other entries are ignored. */
  acceptance: number[][];
  /** Thresholds are searched in 1 … maxThreshold. */
  maxThreshold: number;
  /** Most draft models in a chain (default: all candidates). */
  maxDepth?: number;
}

/** One chain with its thresholds and prediction. */
export interface Plan {
  /** Model indices, increasing, ending at the target. [target] = autoregressive. */
  chain: number[];
  /** Model names, same order. */
  names: string[];
  /** T for each draft model of the chain (chain.length - 1 entries). */
  thresholds: number[];
  /** Exact predicted ms per generated token. */
  predictedMsPerToken: number;
  /** c_target(1) / predictedMsPerToken. */
  speedupVsAutoregressive: number;
}

export interface SearchResult extends Plan {
  /** Which search produced this pick. */
  method: "dp" | "exhaustive";
  /** c_target(1). */
  autoregressiveMsPerToken: number;
  /** The best chain with exactly one draft, over every draft and T (null when there is no draft candidate). */
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

/** Checked input with memoised cost tables. */
interface Prepared {
  input: PlannerInput;
  /** Hot costs (autoregressive passes, level 0's passes after its first). */
  tables: CostTable[];
  /** Cold costs (every other pass); the hot tables when no cold costs are given. */
  cold: CostTable[];
  /** The target decoding alone (ms per token). */
  autoregressiveMs: number;
  target: number;
  maxT: number;
  maxDepth: number;
  a: (lo: number, hi: number) => number;
}

function prepare(input: PlannerInput): Prepared {
  const where = "planner input";
  if (!input || !Array.isArray(input.models) || input.models.length === 0) {
    throw new Error(`${where}: models must list at least the target`);
  }
  const target = input.models.length - 1;
  if (!Number.isInteger(input.maxThreshold) || input.maxThreshold < 1) {
    throw new Error(`${where}: maxThreshold ${String(input.maxThreshold)} must be an integer >= 1`);
  }
  const maxDepth = input.maxDepth ?? target;
  if (!Number.isInteger(maxDepth) || maxDepth < 0) {
    throw new Error(`${where}: maxDepth ${String(input.maxDepth)} must be an integer >= 0`);
  }
  const names = input.models.map((m, i) => {
    if (typeof m?.name !== "string") throw new Error(`${where}: models[${i}].name must be a string`);
    return m.name;
  });
  if (!Array.isArray(input.acceptance) || input.acceptance.length < target) {
    throw new Error(`${where}: acceptance needs a row for each of the ${target} draft candidates`);
  }
  for (let lo = 0; lo < target; lo++) {
    const row = input.acceptance[lo];
    if (!Array.isArray(row) || row.length <= target) {
      throw new Error(`${where}: acceptance[${lo}] (${names[lo]}) needs entries up to index ${target}`);
    }
    for (let hi = lo + 1; hi <= target; hi++) {
      const v = row[hi];
      if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
        throw new Error(
          `${where}: acceptance[${lo}][${hi}] (${names[lo]} checked by ${names[hi]}) = ${String(v)}; must be in [0, 1]`,
        );
      }
    }
  }
  const tables = input.models.map((m, i) => new CostTable(m.cost, `planner model ${i} (${names[i]})`));
  const cold = input.models.map((m, i) =>
    m.coldCost || m.reshapeCost
      ? new CostTable(m.coldCost ?? m.cost, `planner model ${i} (${names[i]}), cold`, m.reshapeCost)
      : tables[i]!,
  );
  const arMs = input.models[target]!.autoregressiveMs;
  if (arMs !== undefined && !(Number.isFinite(arMs) && arMs >= 0)) {
    throw new Error(`${where}: models[${target}].autoregressiveMs ${String(arMs)} must be a finite number >= 0`);
  }
  return {
    input,
    tables,
    cold,
    autoregressiveMs: arMs ?? tables[target]!.at(1),
    target,
    maxT: input.maxThreshold,
    maxDepth: Math.min(maxDepth, target),
    a: (lo, hi) => input.acceptance[lo]![hi]!,
  };
}

function makePlan(p: Prepared, chain: number[], thresholds: number[], ms: number): Plan {
  return {
    chain,
    names: chain.map((i) => p.input.models[i]!.name),
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

function bestSingle(p: Prepared): Plan | null {
  if (p.target === 0 || p.maxDepth === 0) return null;
  let best: Plan | null = null;
  for (let m = 0; m < p.target; m++) {
    for (let T = 1; T <= p.maxT; T++) {
      const L = topLatency(baseLevel(p.tables[m]!, T, "engine", p.cold[m]), p.cold[p.target]!, p.a(m, p.target));
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

/** Number of chains the exhaustive search scores (including no draft). */
export function countChains(input: Pick<PlannerInput, "models" | "maxThreshold" | "maxDepth">): number {
  const D = input.models.length - 1;
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

/** (b) Exhaustive search over chains and threshold grids with the exact formula. */
export function exhaustiveSearch(input: PlannerInput): SearchResult {
  const p = prepare(input);
  const targetTable = p.cold[p.target]!;
  let best = autoregressive(p);
  let evaluated = 1;
  const chain: number[] = [];
  const thresholds: number[] = [];

  const visit = (state: LevelState, last: number, depth: number): void => {
    const L = topLatency(state, targetTable, p.a(last, p.target));
    evaluated++;
    if (better(L, best.predictedMsPerToken)) best = makePlan(p, [...chain, p.target], [...thresholds], L);
    if (depth >= p.maxDepth) return;
    for (let m = last + 1; m < p.target; m++) {
      const round = roundLaw(state, p.a(last, m));
      const own = new FirstPass(p.cold[m]!, state.law);
      chain.push(m);
      for (let T = 1; T <= p.maxT; T++) {
        thresholds.push(T);
        visit(raiseLevel(round, own, T), m, depth + 1);
        thresholds.pop();
      }
      chain.pop();
    }
  };

  if (p.maxDepth >= 1) {
    for (let m = 0; m < p.target; m++) {
      chain.push(m);
      for (let T = 1; T <= p.maxT; T++) {
        thresholds.push(T);
        visit(baseLevel(p.tables[m]!, T, "engine", p.cold[m]), m, 1);
        thresholds.pop();
      }
      chain.pop();
    }
  }
  return finish(p, best, "exhaustive", evaluated);
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
  /** Acceptance of the parent's model's drafts by m. */
  a: number;
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
    throw new Error(`dynamicProgramme: beamWidth ${String(beam)} must be an integer >= 1`);
  const targetTable = p.cold[p.target]!;
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
          entries.push({
            model: m,
            threshold: T,
            state: baseLevel(p.tables[m]!, T, "engine", p.cold[m]),
            parent: null,
          });
        }
      } else {
        // Every sub-chain of depth d-1 below m, scored by its exact cost per token at level m.
        const cands: Candidate[] = [];
        for (let l = 0; l < m; l++) {
          for (const parent of nodes[d - 2]![l]!) {
            cands.push({ parent, a: p.a(l, m), perToken: topLatency(parent.state, p.cold[m]!, p.a(l, m)) });
          }
        }
        cands.sort((x, y) => x.perToken - y.perToken);
        const kept = cands.slice(0, beam).map((c) => ({
          parent: c.parent,
          round: roundLaw(c.parent.state, c.a),
          own: new FirstPass(p.cold[m]!, c.parent.state.law),
        }));
        for (let T = 1; T <= p.maxT; T++) {
          for (const c of kept) {
            entries.push({
              model: m,
              threshold: T,
              state: raiseLevel(c.round, c.own, T),
              parent: c.parent,
            });
          }
        }
      }
      // Top edge: every state of every node is scored exactly as the target's drafter.
      for (const e of entries) {
        const L = topLatency(e.state, targetTable, p.a(m, p.target));
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

/**
 * The exact prediction, level by level, for one chain of a planner input (candidate indices, smallest first,
 * ending at the target): the same costs, acceptance and rules the searches score with. `acceptance` /
 * `acceptanceByPosition` replace the input's rates (one per adjacent pair), to replay measured acceptance.
 */
export function predictChain(
  input: PlannerInput,
  chain: readonly number[],
  thresholds: readonly number[],
  replay: Pick<ChainSpec, "acceptance" | "acceptanceByPosition"> | null = null,
): LatencyPrediction {
  const models = chain.map((i) => {
    const m = input.models[i];
    if (!m) throw new Error(`predictChain: no candidate ${i} (there are ${input.models.length})`);
    return m;
  });
  const spec: ChainSpec = {
    costs: models.map((m) => m.cost),
    coldCosts: models.map((m) => m.coldCost ?? m.cost),
    thresholds: [...thresholds],
    acceptance: replay?.acceptance ?? chain.slice(1).map((hi, j) => input.acceptance[chain[j]!]![hi]!),
    names: models.map((m) => m.name),
  };
  if (replay?.acceptanceByPosition) spec.acceptanceByPosition = replay.acceptanceByPosition;
  if (models.some((m) => m.reshapeCost)) spec.reshapeCosts = models.map((m) => m.reshapeCost ?? (() => 0));
  const ar = models[models.length - 1]!.autoregressiveMs;
  if (ar !== undefined) spec.autoregressiveMs = ar;
  return expectedLatency(spec);
}
