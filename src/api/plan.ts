// From calibration numbers to a plan a person (or a script, via --json) can read: the
// candidates, what was measured, the optimiser's pick and what it is predicted to gain over
// autoregressive decoding and over the best single draft.

import type { ModelInfo } from "../gguf/model-info.js";
import type { Calibration } from "../calibration/calibrate.js";
import { chooseHierarchy, expectedLatency, MeasuredPassCost, type Plan, type PlannerInput } from "../planner/index.js";

export interface PlannedChain {
  /** Files, smallest first, ending with the target. */
  chain: string[];
  thresholds: number[];
  predicted_ms_per_token: number;
  predicted_speedup_vs_autoregressive: number;
  /** Expected tokens per target pass. */
  predicted_tokens_per_target_pass: number;
}

export interface PlanReport {
  candidates: {
    file: string;
    parameters: number;
    file_size: number;
    quantisation: string;
    /** Measured mean ms of a one-token pass, and of a pass of every n measured (following its own pass). */
    cost_ms_1: number;
    cost_ms: { n: number; ms: number }[];
    /** The same for a pass that follows another model's pass (verification passes in a chain). */
    cold_cost_ms: { n: number; ms: number }[];
    /** Extra ms of a pass whose size differs from the model's previous pass (llama.cpp rebuilds its graph). */
    reshape_cost_ms: { n: number; ms: number }[];
    /** ms per token of the model decoding alone (a one-token pass deep in a run of its own passes). */
    autoregressive_ms: number;
  }[];
  /** acceptance[lo][hi] for lo < hi (indices into candidates); null elsewhere. */
  acceptance: (number | null)[][];
  best: PlannedChain & { predicted_speedup_vs_best_single: number | null; method: string };
  best_single: PlannedChain | null;
  autoregressive: PlannedChain;
  calibration: { device: string; threads: number; greedy: boolean; prompts: number; from_cache: boolean };
}

export function planFromCalibration(calibration: Calibration, infos: readonly ModelInfo[], maxThreshold: number): PlanReport {
  const costs = calibration.models.map((m) => new MeasuredPassCost(m.costs, m.file));
  const coldCosts = calibration.models.map((m) => new MeasuredPassCost(m.coldCosts, `${m.file} (cold)`));
  const reshapeCosts = calibration.models.map((m) => new MeasuredPassCost(m.reshapeCosts, `${m.file} (shape change)`));
  const input: PlannerInput = {
    models: infos.map((info, i) => ({ name: info.file, cost: costs[i]!.cost, coldCost: coldCosts[i]!.cost, reshapeCost: reshapeCosts[i]!.cost, autoregressiveMs: calibration.models[i]!.autoregressiveMs })),
    acceptance: calibration.acceptance,
    maxThreshold,
  };
  const result = chooseHierarchy(input);
  const describe = (plan: Plan): PlannedChain => {
    const prediction = expectedLatency({
      costs: plan.chain.map((i) => costs[i]!.cost),
      coldCosts: plan.chain.map((i) => coldCosts[i]!.cost),
      reshapeCosts: plan.chain.map((i) => reshapeCosts[i]!.cost),
      autoregressiveMs: calibration.models[plan.chain[plan.chain.length - 1]!]!.autoregressiveMs,
      thresholds: plan.thresholds,
      acceptance: plan.chain.slice(1).map((hi, j) => calibration.acceptance[plan.chain[j]!]![hi]!),
    });
    return {
      chain: plan.names,
      thresholds: plan.thresholds,
      predicted_ms_per_token: prediction.msPerToken,
      predicted_speedup_vs_autoregressive: prediction.speedup,
      predicted_tokens_per_target_pass: prediction.tokensPerTargetPass,
    };
  };
  const target = infos.length - 1;
  const autoregressive = describe({ chain: [target], names: [infos[target]!.file], thresholds: [], predictedMsPerToken: 0, speedupVsAutoregressive: 1 });
  const bestSingle = result.bestSingleDraft ? describe(result.bestSingleDraft) : null;
  const best = describe(result);
  return {
    candidates: infos.map((info, i) => ({
      file: info.file,
      parameters: info.parameterCount,
      file_size: info.fileSize,
      quantisation: info.quantisation,
      cost_ms_1: costs[i]!.at(1),
      cost_ms: calibration.models[i]!.costs,
      cold_cost_ms: calibration.models[i]!.coldCosts,
      reshape_cost_ms: calibration.models[i]!.reshapeCosts,
      autoregressive_ms: calibration.models[i]!.autoregressiveMs,
    })),
    acceptance: calibration.acceptance.map((row, lo) => row.map((v, hi) => (hi > lo ? v : null))),
    best: { ...best, predicted_speedup_vs_best_single: bestSingle ? bestSingle.predicted_ms_per_token / best.predicted_ms_per_token : null, method: result.method },
    best_single: bestSingle,
    autoregressive,
    calibration: {
      device: calibration.device,
      threads: calibration.threads,
      greedy: calibration.transform.greedy,
      prompts: calibration.prompts,
      from_cache: calibration.acceptanceFromCache && calibration.models.every((m) => m.fromCache),
    },
  };
}
