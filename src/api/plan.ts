// From calibration numbers to a plan a person (or a script, via --json) can read: the candidates, what was
// measured, the optimiser's pick and what it is predicted to gain over autoregressive decoding and over the best
// single draft. The TypeScript shape is camelCase; `hsd plan --json` prints the same record in snake_case.

import type { ModelInfo } from "../gguf/model-info.js";
import type { Calibration } from "../calibration/calibrate.js";
import { chooseHierarchy, predictChain, type PassCosts, type PlannerInput } from "../planner/index.js";

export interface PlannedChain {
  /** Files, smallest first, ending with the target. */
  chain: string[];
  thresholds: number[];
  predictedMsPerToken: number;
  predictedSpeedupVsAutoregressive: number;
  /** Expected tokens per target pass. */
  predictedTokensPerTargetPass: number;
}

/** One candidate level as the plan shows it. */
export interface PlanCandidate {
  file: string;
  kind: "model";
  parameters: number;
  fileSize: number;
  quantisation: string;
  /** What its passes cost on this machine (docs/ALGORITHM.md §7). */
  costs: PassCosts;
}

export interface PlanReport {
  candidates: PlanCandidate[];
  /** acceptance[lo][hi] for lo < hi (indices into candidates); null elsewhere. */
  acceptance: (number | null)[][];
  best: PlannedChain & { predictedSpeedupVsBestSingle: number | null; method: string };
  bestSingle: PlannedChain | null;
  autoregressive: PlannedChain;
  /** Thresholds were searched in 1 … maxThreshold. */
  maxThreshold: number;
  calibration: { device: string; threads: number; greedy: boolean; prompts: number; fromCache: boolean };
}

/** The optimiser's input from a plan's candidates and acceptance matrix (what `predictChain` scores with). */
export function plannerInput(
  candidates: readonly Pick<PlanCandidate, "file" | "costs">[],
  acceptance: readonly (readonly (number | null)[])[],
  maxThreshold: number,
): PlannerInput {
  return {
    candidates: candidates.map((c) => ({ kind: "model", name: c.file, costs: c.costs })),
    acceptance: acceptance.map((row) => [...row]),
    maxThreshold,
  };
}

/** A chain of the input with its prediction, as the plan prints it. */
export function plannedChain(input: PlannerInput, chain: number[], thresholds: number[]): PlannedChain {
  const prediction = predictChain(input, chain, thresholds);
  return {
    chain: chain.map((i) => input.candidates[i]!.name),
    thresholds,
    predictedMsPerToken: prediction.msPerToken,
    predictedSpeedupVsAutoregressive: prediction.speedup,
    predictedTokensPerTargetPass: prediction.tokensPerTargetPass,
  };
}

export function planFromCalibration(
  calibration: Calibration,
  infos: readonly ModelInfo[],
  maxThreshold: number,
): PlanReport {
  const candidates: PlanCandidate[] = infos.map((info, i) => ({
    file: info.file,
    kind: "model",
    parameters: info.parameterCount,
    fileSize: info.fileSize,
    quantisation: info.quantisation,
    costs: calibration.models[i]!.costs,
  }));
  const acceptance = calibration.acceptance.map((row, lo) => row.map((v, hi) => (hi > lo ? v : null)));
  const input = plannerInput(candidates, acceptance, maxThreshold);
  const result = chooseHierarchy(input);
  const autoregressive = plannedChain(input, [infos.length - 1], []);
  const bestSingle = result.bestSingleDraft
    ? plannedChain(input, result.bestSingleDraft.chain, result.bestSingleDraft.thresholds)
    : null;
  const best = plannedChain(input, result.chain, result.thresholds);
  return {
    candidates,
    acceptance,
    best: {
      ...best,
      predictedSpeedupVsBestSingle: bestSingle ? bestSingle.predictedMsPerToken / best.predictedMsPerToken : null,
      method: result.method,
    },
    bestSingle,
    autoregressive,
    maxThreshold,
    calibration: {
      device: calibration.device,
      threads: calibration.threads,
      greedy: calibration.transform.greedy,
      prompts: calibration.prompts,
      fromCache: calibration.acceptanceFromCache && calibration.models.every((m) => m.fromCache),
    },
  };
}
