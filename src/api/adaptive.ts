// From plans to what the adaptive decoder runs, and re-planning (docs/ALGORITHM.md §10). Two halves:
//  - named plans: a plan report reduced to level names per state (plain data: it crosses to the re-planning
//    worker and into the cache); `replanNamed` plans from an online snapshot through the same planFromCalibration
//    as a measured calibration, prices the running plan under the same estimates, and picks an exploration plan;
//  - live plans: a named plan over the open levels (`livePlan`), which the decoder runs.

import type { AdaptivePlan } from "../engine/adaptive.js";
import type { Level } from "../levels/level.js";
import type { Calibration } from "../calibration/calibrate.js";
import type { ModelInfo } from "../gguf/model-info.js";
import {
  planFromCalibration,
  plannerInput,
  planningInputs,
  policyInput,
  type NgramMode,
  type PlanReport,
} from "./plan.js";
import { bestThresholds, predictChain, predictPolicy } from "../planner/index.js";

/** A plan by level names: one chain per state (one state: a fixed chain). */
export interface NamedPlan {
  /** State names; a single "all" for a fixed chain. */
  states: string[];
  chains: { names: string[]; thresholds: number[] }[];
  predictedMsPerToken: number;
  /** Equal for equal plans: what switches compare. */
  label: string;
}

/** A label that is equal for equal plans: the distinct chains, in state order. */
function labelOf(chains: NamedPlan["chains"]): string {
  return [
    ...new Set(chains.map((c) => `${c.names.join(">")}${c.thresholds.length ? `:${c.thresholds.join(",")}` : ""}`)),
  ].join(" | ");
}

/** A fixed chain as a plan. */
export function fixedPlan(names: string[], thresholds: number[], predictedMsPerToken: number): NamedPlan {
  const chains = [{ names, thresholds }];
  return { states: ["all"], chains, predictedMsPerToken, label: labelOf(chains) };
}

/** The plan a report recommends: its routed policy when it has one, else its best chain. */
export function namedPlan(report: PlanReport): NamedPlan {
  if (!report.policy) return fixedPlan(report.best.chain, report.best.thresholds, report.best.predictedMsPerToken);
  const chains = report.policy.states.map((s) => ({ names: s.chain, thresholds: s.thresholds }));
  return {
    states: report.policy.states.map((s) => s.name),
    chains,
    predictedMsPerToken: report.policy.predictedMsPerToken,
    label: labelOf(chains),
  };
}

/**
 * A plan's expected ms/token under a calibration's estimates (cheap: no search). With a workload, the plan (a
 * policy, or a fixed chain in every state) is walked along its text as the policy planner walks its own (§9);
 * without, a fixed chain is priced by the chain formula with the overall rates. Infinity for a plan naming a level
 * the calibration does not have.
 */
export function predictNamed(
  calibration: Calibration,
  infos: readonly ModelInfo[],
  maxThreshold: number,
  ngram: NgramMode,
  plan: NamedPlan,
): number {
  const { candidates, acceptance, workload } = planningInputs(calibration, infos, ngram);
  const index = (name: string) => candidates.findIndex((c) => c.name === name);
  const indexed = plan.chains.map((c) => ({ chain: c.names.map(index), thresholds: c.thresholds }));
  if (indexed.some((c) => c.chain.some((i) => i < 0))) return Number.POSITIVE_INFINITY;
  const T = Math.max(maxThreshold, ...plan.chains.flatMap((c) => c.thresholds));
  if (workload) {
    const S = workload.states.length;
    const perState = indexed.length === S ? indexed : Array.from({ length: S }, () => indexed[0]!);
    return predictPolicy(policyInput(candidates, workload, T), perState);
  }
  return predictChain(plannerInput(candidates, acceptance, T), indexed[0]!.chain, indexed[0]!.thresholds).msPerToken;
}

/** What one re-plan found, by names. */
export interface NamedReplan {
  best: NamedPlan;
  /** The running plan's expected ms/token under the same (new) estimates. */
  currentMsPerToken: number;
  /** One draft level (the `explore`-th draft candidate, cycling) over the target at its best thresholds now. */
  explore: NamedPlan | null;
}

export interface ReplanInput {
  calibration: Calibration;
  infos: readonly ModelInfo[];
  maxThreshold: number;
  ngram: NgramMode;
  running: NamedPlan;
  /** Which draft candidate to explore (taken modulo their number). */
  explore: number;
}

/**
 * Plan from an online snapshot, price the running plan under it, and choose an exploration plan: each re-plan
 * cycles to the next draft candidate (model-free levels, then models) and offers it alone over the target at its
 * best thresholds under the current estimates, so that every level is tried now and then — what the decoder needs
 * to notice a level that started paying again after it was dropped.
 */
export function replanNamed(input: ReplanInput): NamedReplan {
  const report = planFromCalibration(input.calibration, input.infos, input.maxThreshold, input.ngram);
  const best = namedPlan(report);
  const currentMsPerToken = predictNamed(
    input.calibration,
    input.infos,
    input.maxThreshold,
    input.ngram,
    input.running,
  );
  const target = report.candidates.length - 1;
  let explore: NamedPlan | null = null;
  if (target > 0) {
    const draft = input.explore % target;
    const planner = plannerInput(report.candidates, report.acceptance, report.maxThreshold);
    const plan = bestThresholds(planner, [draft, target]);
    const names = [report.candidates[draft]!.name, report.candidates[target]!.name];
    explore = fixedPlan(names, plan.thresholds, plan.predictedMsPerToken);
    if (explore.label === best.label) explore = null;
  }
  return { best, currentMsPerToken, explore };
}

/** A named plan over the open levels; `state` maps the committed text to a state (used when there are several). */
export function livePlan(
  plan: NamedPlan,
  levelOf: (name: string) => Level,
  state: (sequence: Int32Array, committed: number) => number,
): AdaptivePlan {
  return {
    policy: {
      states: plan.states,
      state: plan.states.length > 1 ? state : () => 0,
      chains: plan.chains.map((c) => ({ levels: c.names.map(levelOf), thresholds: c.thresholds })),
    },
    predictedMsPerToken: plan.predictedMsPerToken,
    label: plan.label,
  };
}
