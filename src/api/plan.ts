// From calibration numbers to a plan a person (or a script, via --json) can read: the
// candidates, what was measured, the optimiser's pick and what it is predicted to gain over
// autoregressive decoding and over the best single draft.

import type { ModelInfo } from "../gguf/model-info.js";
import type { Calibration } from "../calibration/calibrate.js";
import {
  chooseHierarchy,
  MeasuredPassCost,
  predictChain,
  type PassCostSample,
  type PlannerInput,
} from "../planner/index.js";

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

/** One model's measured pass costs, as the calibration (and a PlanReport's candidates) hold them. */
export interface MeasuredCosts {
  name: string;
  costs: PassCostSample[];
  coldCosts: PassCostSample[];
  reshapeCosts: PassCostSample[];
  autoregressiveMs: number;
}

/** The optimiser's input from measured costs and an acceptance matrix (acceptance[lo][hi], lo < hi). */
export function plannerInput(
  models: readonly MeasuredCosts[],
  acceptance: (number | null)[][],
  maxThreshold: number,
): PlannerInput {
  return {
    models: models.map((m) => ({
      name: m.name,
      cost: new MeasuredPassCost(m.costs, m.name).cost,
      coldCost: new MeasuredPassCost(m.coldCosts, `${m.name} (cold)`).cost,
      reshapeCost: new MeasuredPassCost(m.reshapeCosts, `${m.name} (shape change)`).cost,
      autoregressiveMs: m.autoregressiveMs,
    })),
    acceptance: acceptance.map((row) => row.map((v) => v ?? Number.NaN)),
    maxThreshold,
  };
}

/** The same from a plan report (what `plan --json` prints), e.g. to predict chains the report did not pick. */
export function plannerInputFromReport(report: PlanReport, maxThreshold: number): PlannerInput {
  const models = report.candidates.map((c) => ({
    name: c.file,
    costs: c.cost_ms,
    coldCosts: c.cold_cost_ms,
    reshapeCosts: c.reshape_cost_ms,
    autoregressiveMs: c.autoregressive_ms,
  }));
  return plannerInput(models, report.acceptance, maxThreshold);
}

export function planFromCalibration(
  calibration: Calibration,
  infos: readonly ModelInfo[],
  maxThreshold: number,
): PlanReport {
  const input = plannerInput(
    calibration.models.map((m, i) => ({ ...m, name: infos[i]!.file })),
    calibration.acceptance,
    maxThreshold,
  );
  const result = chooseHierarchy(input);
  const describe = (chain: number[], thresholds: number[]): PlannedChain => {
    const prediction = predictChain(input, chain, thresholds);
    return {
      chain: chain.map((i) => infos[i]!.file),
      thresholds,
      predicted_ms_per_token: prediction.msPerToken,
      predicted_speedup_vs_autoregressive: prediction.speedup,
      predicted_tokens_per_target_pass: prediction.tokensPerTargetPass,
    };
  };
  const autoregressive = describe([infos.length - 1], []);
  const bestSingle = result.bestSingleDraft
    ? describe(result.bestSingleDraft.chain, result.bestSingleDraft.thresholds)
    : null;
  const best = describe(result.chain, result.thresholds);
  return {
    candidates: infos.map((info, i) => ({
      file: info.file,
      parameters: info.parameterCount,
      file_size: info.fileSize,
      quantisation: info.quantisation,
      cost_ms_1: input.models[i]!.cost(1),
      cost_ms: calibration.models[i]!.costs,
      cold_cost_ms: calibration.models[i]!.coldCosts,
      reshape_cost_ms: calibration.models[i]!.reshapeCosts,
      autoregressive_ms: calibration.models[i]!.autoregressiveMs,
    })),
    acceptance: calibration.acceptance.map((row, lo) => row.map((v, hi) => (hi > lo ? v : null))),
    best: {
      ...best,
      predicted_speedup_vs_best_single: bestSingle
        ? bestSingle.predicted_ms_per_token / best.predicted_ms_per_token
        : null,
      method: result.method,
    },
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
