/**
 * hsd planner: the latency model of hierarchical speculative decoding and the optimiser that picks the chain of
 * draft models and their thresholds (hsd-notes §4).
 *
 * - `expectedLatency(chain)`: exact expected ms per token of a given chain under i.i.d. (optionally
 *   position-dependent) acceptance, with the engine's catch-up tokens, and per-level predictions (passes per
 *   token, tokens per pass, catch-up law, block-length laws, ms per token by level).
 * - `chooseHierarchy(input)`: the chain and thresholds with the lowest predicted ms per token; never predicted
 *   slower than no draft or the best single draft. `exhaustiveSearch` and `dynamicProgramme` are the two
 *   searches it picks from.
 * - `simulate(...)`: Monte-Carlo of the recursion ('cache' mode: the engine's catch-up), to check the formula.
 * - Pass costs: `MeasuredPassCost` / `passCostFromSamples` from calibration samples {n, ms}.
 *
 * Serialisable input: `PlannerSpec` (pass costs as samples) -> `plannerInputFromSpec` -> `PlannerInput`.
 */

import { MeasuredPassCost, type PassCostSample } from "./cost-model.js";
import type { PlannerInput } from "./optimizer.js";

export {
  type PassCost,
  type PassCostSample,
  MeasuredPassCost,
  passCostFromSamples,
  affinePassCost,
} from "./cost-model.js";
export {
  type ChainSpec,
  type LatencyPrediction,
  type LevelPrediction,
  type CatchUpModel,
  type Acceptance,
  CATCH_UP_TOKENS,
  expectedLatency,
  singleDraftLatency,
} from "./latency.js";
export {
  type PlannerInput,
  type Plan,
  type SearchResult,
  type SearchOptions,
  type ChooseOptions,
  chooseHierarchy,
  predictChain,
  dynamicProgramme,
  exhaustiveSearch,
  countChains,
} from "./optimizer.js";
export { type SimulationInput, type SimulationResult, type SimulatedLevel, simulate } from "./simulate.js";
export { makeRng } from "../util/rng.js";

/** JSON form of a `PlannerInput`: each model's pass cost as calibration samples. */
export interface PlannerSpec {
  /**
   * `coldSamples` (optional): pass costs after another model's pass (latency.ts, "cold and hot passes");
   * `reshapeSamples` (optional): the extra of a pass whose size differs from the previous one ("shape changes").
   */
  models: {
    name: string;
    samples: PassCostSample[];
    coldSamples?: PassCostSample[];
    reshapeSamples?: PassCostSample[];
  }[];
  /** acceptance[lo][hi] for lo < hi; other entries may be anything (e.g. 0 or null). */
  acceptance: (number | null)[][];
  maxThreshold: number;
  maxDepth?: number;
}

/** Build a `PlannerInput` from its JSON form (pass costs become `MeasuredPassCost`s). */
export function plannerInputFromSpec(spec: PlannerSpec): PlannerInput {
  if (!spec || !Array.isArray(spec.models)) throw new Error("planner spec: models must be an array");
  const input: PlannerInput = {
    models: spec.models.map((m, i) => ({
      name: m.name,
      cost: new MeasuredPassCost(m.samples, `planner spec models[${i}] (${m.name}) samples`).cost,
      ...(m.coldSamples
        ? { coldCost: new MeasuredPassCost(m.coldSamples, `planner spec models[${i}] (${m.name}) coldSamples`).cost }
        : {}),
      ...(m.reshapeSamples
        ? {
            reshapeCost: new MeasuredPassCost(m.reshapeSamples, `planner spec models[${i}] (${m.name}) reshapeSamples`)
              .cost,
          }
        : {}),
    })),
    acceptance: spec.acceptance.map((row) => row.map((v) => (v === null ? Number.NaN : v))),
    maxThreshold: spec.maxThreshold,
  };
  if (spec.maxDepth !== undefined) input.maxDepth = spec.maxDepth;
  return input;
}
