/**
 * Choosing a routed policy (docs/ALGORITHM.md §9): a chain per state, where a state is what the committed text
 * says before a step (the context lookup's match length). The expected time per token of a policy π is a ratio of
 * expectations over steps,
 *
 *     R(π) = Σ_s f_s(π) · time_s(π_s) / Σ_s f_s(π) · tokens_s(π_s),
 *
 * with f_s(π) the share of steps that start in state s. Minimising a ratio is not minimising each state's
 * ms/token: Dinkelbach's iteration does it — for λ, pick per state the chain minimising time − λ·tokens; set λ to
 * the resulting ratio; repeat until it stops falling. The shares depend on the policy (a long lookup block keeps
 * the next step inside a repeated span), so they are measured under it: a walk along the calibration text where
 * each step advances by its chain's expected tokens; then re-plan, until the policy stops changing.
 *
 * Switching chains has a cost the per-chain formula does not see: a model skipped in a step catches up on the
 * tokens it missed in its next pass (§4). The walk measures, per state and model, the expected extra pass time
 * c_m(1 + skipped) − c_m(1) of the steps that start there, and the next round charges it to every chain of that
 * state that runs model m.
 */

import { levelTables, type LevelTables } from "./costs.js";
import type { Acceptance, LevelSpec } from "./chain.js";
import { chainStep, enumerateChains, type ChainStep, type PlannerInput } from "./optimizer.js";
import { InvalidOptionError } from "../errors.js";

/** What calibration measured for steps that start in one state. */
export interface PolicyState {
  name: string;
  /**
   * Per proposal candidate, in candidate order: its law of available lengths in this state (replaces the
   * candidate's own `available`).
   */
  available: readonly (readonly number[])[];
  /** acceptance[lo][hi] in this state (a rate, or rates by position in the block). */
  acceptance: (Acceptance | null)[][];
}

export interface PolicyInput {
  /** Candidates cheapest first (proposal levels first), the target last. */
  candidates: LevelSpec[];
  states: PolicyState[];
  maxThreshold: number;
  /** Most draft levels in a state's chain (default 2: deeper chains have never paid on a CPU, and they multiply the search). */
  maxDepth?: number;
  /** The state at every position of the calibration continuations (the text steps walk along). */
  paths: readonly (readonly number[])[];
  /** Which chains a state may run (default: all); `hsd --ngram on` allows only lookup chains where it can propose. */
  allowed?: (state: number, chain: number[]) => boolean;
}

/** The chain a policy runs in one state, with what the formula expects of it there. */
export interface StatePlan {
  name: string;
  chain: number[];
  names: string[];
  thresholds: number[];
  /** Expected ms of a step in this state (its catch-up after skipped steps included) and tokens per step. */
  msPerStep: number;
  tokensPerStep: number;
  /** Share of steps that start in this state under the policy. */
  frequency: number;
}

export interface PolicyPlan {
  states: StatePlan[];
  /** R(π): expected ms per token. */
  predictedMsPerToken: number;
  /** The best single chain for every state, scored the same way (the policy is never predicted slower). */
  bestFixed: { chain: number[]; names: string[]; thresholds: number[]; predictedMsPerToken: number };
  /** Rounds of (walk, Dinkelbach) until the policy stopped changing. */
  rounds: number;
}

/** Per state: the options (chains with their step figures) and which models each runs. */
interface StateOptions {
  steps: ChainStep[];
  /** models[i]: the model candidates option i runs (their catch-up after skipped steps is charged). */
  models: number[][];
}

/** How a policy's steps walk the calibration text: the share of steps per state and the catch-up they pay. */
interface Walk {
  frequency: number[];
  /**
   * afterBlock[s]: of the steps that start in state s, the share whose previous step was not the target alone (a
   * block, or the prompt): a target-alone step there pays a shape change instead of the autoregressive rate.
   */
  afterBlock: number[];
  /** extra[s][m]: expected extra ms of model m's catch-up in a step starting in state s (0 where m does not run). */
  extra: number[][];
}

/** A policy instance ready to score: every state's options, the walk, and the ratio R(π). */
interface PolicyModel {
  S: number;
  options: StateOptions[];
  walk: (choice: readonly number[]) => Walk;
  msOf: (w: Walk, s: number, o: number) => number;
  ratio: (w: Walk, choice: readonly number[]) => number;
}

/**
 * The policy instance of an input. `enumerate` lists a state's options (default: every chain and thresholds
 * within the search; predictPolicy lists only the ones it prices). The first option must be the target alone.
 */
function policyModel(
  input: PolicyInput,
  enumerate: (planner: PlannerInput, state: number) => ChainStep[] = (planner) => enumerateChains(planner),
): PolicyModel {
  const S = input.states.length;
  if (S === 0) throw new InvalidOptionError("a policy needs at least one state");
  if (!Array.isArray(input.paths) || input.paths.every((p) => p.length === 0)) {
    throw new InvalidOptionError("a policy needs calibration paths (the states along the calibration text)");
  }
  const K = input.candidates.length - 1;
  const tables: (LevelTables | null)[] = input.candidates.map((c, i) =>
    c.kind === "model" ? levelTables(c.costs, `policy candidates[${i}] (${c.name})`) : null,
  );
  // proposalOrder[i]: the rank of proposal candidate i among the proposal candidates (its index in `available`).
  let proposals = 0;
  const proposalOrder = input.candidates.map((c) => (c.kind === "proposal" ? proposals++ : -1));
  const options: StateOptions[] = input.states.map((state, s) => {
    const planner: PlannerInput = {
      candidates: input.candidates.map((c, i) =>
        c.kind === "proposal"
          ? { ...c, proposal: { ...c.proposal, available: state.available[proposalOrder[i]!]! } }
          : c,
      ),
      acceptance: state.acceptance,
      maxThreshold: input.maxThreshold,
      maxDepth: Math.min(input.maxDepth ?? 2, K),
    };
    const steps = enumerate(planner, s);
    // A step of the target alone costs the steady autoregressive rate when the step before it was one too (the
    // same one-token pass again: llama.cpp reuses its compute graph), and one hot pass of a changed size when the
    // step before ran a block (a graph rebuild, §5.4). The walk measures how often each happens (Walk.afterBlock);
    // msOf prices it. Here: the autoregressive rate.
    steps[0] = { ...steps[0]!, ms: tables[K]!.autoregressiveMs };
    return { steps, models: steps.map((o) => o.chain.filter((m) => tables[m] !== null && m !== K)) };
  });

  /** The walk of a policy (an option per state) along the calibration paths. */
  const walk = (choice: readonly number[]): Walk => {
    const count = new Array<number>(S).fill(0);
    const afterBlockCount = new Array<number>(S).fill(0);
    const extraSum = Array.from({ length: S }, () => new Array<number>(K).fill(0));
    for (const path of input.paths) {
      // Where each model last ran (its KV cache then held the text up to there): the prompt counts as seen.
      const seen = new Array<number>(K).fill(0);
      let pos = 0;
      let previousAlone = false;
      while (pos < path.length) {
        const s = path[Math.floor(pos)]!;
        const o = choice[s]!;
        const step = options[s]!.steps[o]!;
        count[s]!++;
        if (!previousAlone) afterBlockCount[s]!++;
        previousAlone = o === 0;
        for (const m of options[s]!.models[o]!) {
          const skipped = pos - seen[m]!;
          if (skipped > 0) extraSum[s]![m]! += catchUpExtra(tables[m]!, skipped);
          seen[m] = pos + step.tokens;
        }
        pos += step.tokens;
      }
    }
    const steps = count.reduce((a, b) => a + b, 0);
    return {
      frequency: count.map((c) => c / steps),
      afterBlock: afterBlockCount.map((c, s) => (count[s]! > 0 ? c / count[s]! : 0)),
      extra: extraSum.map((row, s) => row.map((x) => (count[s]! > 0 ? x / count[s]! : 0))),
    };
  };
  // The extra of a target-alone step after a block: a hot one-token pass of a changed size over the steady rate.
  const afterBlockMs = tables[K]!.hotShaped.at(1) + (tables[K]!.hotShaped.reshape?.at(1) ?? 0);
  const shapeChangeExtra = Math.max(0, afterBlockMs - tables[K]!.autoregressiveMs);
  const msOf = (w: Walk, s: number, o: number): number => {
    let ms = options[s]!.steps[o]!.ms;
    if (o === 0) ms += w.afterBlock[s]! * shapeChangeExtra;
    for (const m of options[s]!.models[o]!) ms += w.extra[s]![m]!;
    return ms;
  };
  const ratio = (w: Walk, choice: readonly number[]): number => {
    let ms = 0;
    let tokens = 0;
    for (let s = 0; s < S; s++) {
      ms += w.frequency[s]! * msOf(w, s, choice[s]!);
      tokens += w.frequency[s]! * options[s]!.steps[choice[s]!]!.tokens;
    }
    return ms / tokens;
  };

  return { S, options, walk, msOf, ratio };
}

/** The expected ms per token of a given policy (a chain and thresholds per state), scored as choosePolicy scores. */
export function predictPolicy(
  input: PolicyInput,
  chains: readonly { chain: number[]; thresholds: number[] }[],
): number {
  if (chains.length !== input.states.length)
    throw new InvalidOptionError(
      `predictPolicy: ${input.states.length} states need a chain each, got ${chains.length}`,
    );
  const K = input.candidates.length - 1;
  // Only the chains priced: the target alone first (as enumerateChains lists it), then the state's own chain.
  const m = policyModel(input, (planner, s) => [
    chainStep(planner, [K], []),
    chainStep(planner, chains[s]!.chain, chains[s]!.thresholds),
  ]);
  const choice = chains.map((c) => (c.chain.length === 1 ? 0 : 1));
  return m.ratio(m.walk(choice), choice);
}

export function choosePolicy(input: PolicyInput): PolicyPlan {
  const { S, options, walk, msOf, ratio } = policyModel(input);
  const allowed = (s: number, o: number) => !input.allowed || input.allowed(s, options[s]!.steps[o]!.chain);
  // The best fixed chain: the same option (same chain and thresholds: options are enumerated in one order for
  // every state) everywhere, each scored under its own walk. Walking every option costs a walk per option; the
  // options are ranked first by their ratio under the states' shares of the text (no walk), and the best
  // FIXED_CANDIDATES of that ranking are walked.
  const share = new Array<number>(S).fill(0);
  for (const path of input.paths) for (const s of path) share[s]!++;
  const proxy = (o: number) => {
    let ms = 0;
    let tokens = 0;
    for (let s = 0; s < S; s++) {
      ms += share[s]! * options[s]!.steps[o]!.ms;
      tokens += share[s]! * options[s]!.steps[o]!.tokens;
    }
    return ms / tokens;
  };
  const ranked = options[0]!.steps.map((_, o) => o).sort((a, b) => proxy(a) - proxy(b));
  let fixed = { option: 0, ms: Number.POSITIVE_INFINITY };
  for (const o of ranked.slice(0, FIXED_CANDIDATES)) {
    const choice = new Array<number>(S).fill(o);
    const r = ratio(walk(choice), choice);
    if (r < fixed.ms * (1 - 1e-12)) fixed = { option: o, ms: r };
  }

  // Rounds of: walk the current policy, then Dinkelbach's iteration under that walk. The start: the best fixed
  // chain where it is allowed, else each state's best allowed chain by its own ms/token.
  let choice = options.map((opt, s) => {
    if (allowed(s, fixed.option)) return fixed.option;
    let o = -1;
    for (let i = 0; i < opt.steps.length; i++) {
      if (allowed(s, i) && (o < 0 || opt.steps[i]!.ms / opt.steps[i]!.tokens < opt.steps[o]!.ms / opt.steps[o]!.tokens))
        o = i;
    }
    return o;
  });
  const start = walk(choice);
  let best = { choice: [...choice], ms: ratio(start, choice), walk: start };
  let rounds = 0;
  for (; rounds < 8; rounds++) {
    const w = walk(choice);
    let lambda = ratio(w, choice);
    let next = [...choice];
    for (let it = 0; it < 50; it++) {
      const picked = options.map((opt, s) => {
        let bestO = next[s]!;
        let bestV = msOf(w, s, bestO) - lambda * opt.steps[bestO]!.tokens;
        for (let o = 0; o < opt.steps.length; o++) {
          if (!allowed(s, o)) continue;
          const v = msOf(w, s, o) - lambda * opt.steps[o]!.tokens;
          if (v < bestV - 1e-12) [bestO, bestV] = [o, v];
        }
        return bestO;
      });
      const r = ratio(w, picked);
      next = picked;
      if (r >= lambda - 1e-12) break;
      lambda = r;
    }
    const w2 = walk(next);
    const r2 = ratio(w2, next);
    if (r2 < best.ms * (1 - 1e-12)) best = { choice: [...next], ms: r2, walk: w2 };
    if (next.every((o, s) => o === choice[s])) break;
    choice = next;
  }

  // The rounds above stop at a fixed point of (shares, Dinkelbach), which can be a local optimum: the shares and
  // catch-up charges move with the policy. Polish it by single-state changes scored exactly (each with its own
  // walk), trying in each state the options closest to optimal at the current ratio.
  for (let sweep = 0; sweep < 5; sweep++) {
    let improved = false;
    const lambda = best.ms;
    for (let s = 0; s < S; s++) {
      const opt = options[s]!;
      const order = opt.steps
        .map((_, o) => o)
        .filter((o) => o !== best.choice[s] && allowed(s, o))
        .sort(
          (a, b) =>
            msOf(best.walk, s, a) -
            lambda * opt.steps[a]!.tokens -
            (msOf(best.walk, s, b) - lambda * opt.steps[b]!.tokens),
        )
        .slice(0, POLISH_OPTIONS);
      for (const o of order) {
        const trial = [...best.choice];
        trial[s] = o;
        const w = walk(trial);
        const r = ratio(w, trial);
        if (r < best.ms * (1 - 1e-12)) {
          best = { choice: trial, ms: r, walk: w };
          improved = true;
        }
      }
    }
    if (!improved) break;
  }

  const names = (chain: number[]) => chain.map((i) => input.candidates[i]!.name);
  const fixedStep = options[0]!.steps[fixed.option]!;
  return {
    states: input.states.map((state, s) => {
      const o = best.choice[s]!;
      const step = options[s]!.steps[o]!;
      return {
        name: state.name,
        chain: [...step.chain],
        names: names(step.chain),
        thresholds: [...step.thresholds],
        msPerStep: msOf(best.walk, s, o),
        tokensPerStep: step.tokens,
        frequency: best.walk.frequency[s]!,
      };
    }),
    predictedMsPerToken: best.ms,
    bestFixed: {
      chain: [...fixedStep.chain],
      names: names(fixedStep.chain),
      thresholds: [...fixedStep.thresholds],
      predictedMsPerToken: fixed.ms,
    },
    rounds: rounds + 1,
  };
}

/** Fixed chains walked when looking for the best one (the best by the states' shares of the text). */
const FIXED_CANDIDATES = 24;

/** Options per state tried by the final polish (the closest to optimal at the current ratio). */
const POLISH_OPTIONS = 32;

/** Extra ms of a model's first pass when it must also catch up `skipped` more tokens (interpolated between sizes). */
function catchUpExtra(t: LevelTables, skipped: number): number {
  const lo = Math.floor(skipped);
  const frac = skipped - lo;
  const at = (n: number) => t.cold.at(1 + n) - t.cold.at(1);
  return (1 - frac) * at(lo) + frac * at(lo + 1);
}
