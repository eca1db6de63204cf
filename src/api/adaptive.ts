// From plans to what the adaptive decoder runs, and the re-planner it calls (docs/ALGORITHM.md §10): a plan report
// becomes a routed policy over the live levels (a fixed chain is the policy with one state); re-planning takes the
// online calibration's snapshot through the same planFromCalibration as a measured calibration.

import type { AdaptivePlan, Replanned } from "../engine/adaptive.js";
import type { Level } from "../levels/level.js";
import type { Calibration } from "../calibration/calibrate.js";
import type { OnlineCalibration } from "../calibration/online.js";
import type { ModelInfo } from "../gguf/model-info.js";
import { planFromCalibration, plannerInput, policyInput, type NgramMode, type PlanReport } from "./plan.js";
import { predictChain, predictPolicy } from "../planner/index.js";
import { InvalidOptionError } from "../errors.js";

/** A chain per state, by level names. */
type NamedChains = { names: string[]; thresholds: number[] }[];

function chainsOf(report: PlanReport): { states: string[]; chains: NamedChains } {
  if (report.policy) {
    return {
      states: report.policy.states.map((s) => s.name),
      chains: report.policy.states.map((s) => ({ names: s.chain, thresholds: s.thresholds })),
    };
  }
  return { states: ["all"], chains: [{ names: report.best.chain, thresholds: report.best.thresholds }] };
}

/** A label that is equal for equal plans (the switch test compares them). */
function labelOf(chains: NamedChains): string {
  return [
    ...new Set(chains.map((c) => `${c.names.join(">")}${c.thresholds.length ? `:${c.thresholds.join(",")}` : ""}`)),
  ].join(" | ");
}

/** The plan a report describes, over the live levels; `state` maps the committed text to a policy state. */
export function adaptivePlan(
  report: PlanReport,
  levelOf: (name: string) => Level,
  state: (sequence: Int32Array, committed: number) => number,
): AdaptivePlan & { chains: NamedChains } {
  const { states, chains } = chainsOf(report);
  return {
    policy: {
      states,
      state: states.length > 1 ? state : () => 0,
      chains: chains.map((c) => ({ levels: c.names.map(levelOf), thresholds: c.thresholds })),
    },
    predictedMsPerToken: report.policy ? report.policy.predictedMsPerToken : report.best.predictedMsPerToken,
    label: labelOf(chains),
    chains,
  };
}

/** The running plan's expected ms/token under a report's (new) estimates. */
function predictUnder(report: PlanReport, calibration: Calibration, chains: NamedChains): number {
  const index = (name: string) => {
    const i = report.candidates.findIndex((c) => c.name === name);
    if (i < 0) throw new InvalidOptionError(`re-planning: ${name} is not a candidate`);
    return i;
  };
  const indexed = chains.map((c) => ({ chain: c.names.map(index), thresholds: c.thresholds }));
  if (report.policy && calibration.workload) {
    return predictPolicy(policyInput(report.candidates, calibration.workload, report.maxThreshold), indexed);
  }
  const input = plannerInput(report.candidates, report.acceptance, report.maxThreshold);
  return predictChain(input, indexed[0]!.chain, indexed[0]!.thresholds).msPerToken;
}

export interface ReplannerOptions {
  learner: OnlineCalibration;
  /** What the generation started from (the exploration plan is planned on it). */
  prior: Calibration;
  infos: readonly ModelInfo[];
  maxThreshold: number;
  ngram: NgramMode;
  levelOf: (name: string) => Level;
  state: (sequence: Int32Array, committed: number) => number;
}

/** The decoder's re-planner: plan from what was learned; explore what the prior would run, if it differs. */
export function replanner(options: ReplannerOptions): (current: AdaptivePlan) => Replanned {
  const exploration = adaptivePlan(
    planFromCalibration(options.prior, options.infos, options.maxThreshold, options.ngram),
    options.levelOf,
    options.state,
  );
  return (current) => {
    const calibration = options.learner.snapshot();
    const report = planFromCalibration(calibration, options.infos, options.maxThreshold, options.ngram);
    const best = adaptivePlan(report, options.levelOf, options.state);
    const running = (current as AdaptivePlan & { chains?: NamedChains }).chains;
    const currentMsPerToken = running ? predictUnder(report, calibration, running) : current.predictedMsPerToken;
    return { best, currentMsPerToken, explore: exploration.label === best.label ? null : exploration };
  };
}
