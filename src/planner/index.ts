/**
 * hsd planner: the latency model of hierarchical speculative decoding and the optimiser that picks the chain of
 * draft levels and their thresholds (docs/ALGORITHM.md §5–§6).
 *
 * - `ChainSpec` / `LevelSpec` (chain.ts): one chain, level by level — a model with its `ModelCosts` (costs.ts), or
 *   a proposal level (model-free) with its cost and proposal-length law; checked once by `prepareChain`.
 * - `expectedLatency(chain)`: exact expected ms per token of a chain under i.i.d. (optionally position-dependent)
 *   acceptance, with the engine's catch-up tokens, and per-level predictions.
 * - `chooseHierarchy(input)`: the chain and thresholds with the lowest predicted ms per token; never predicted
 *   slower than no draft or the best single draft. `bestThresholds(input, chain)`: the best thresholds of a fixed
 *   chain. `predictChain(input, chain, thresholds)`: the prediction for one chain of an input.
 * - `simulate(chain)`: Monte-Carlo of the recursion, to check the formula.
 *
 * A `PlannerInput` whose cost curves are samples is plain JSON (what calibration and plan reports hold).
 */

export {
  type PassCost,
  type PassCostSample,
  type CostCurve,
  type ModelCosts,
  type PassCosts,
  MeasuredPassCost,
  affinePassCost,
} from "./costs.js";
export {
  type Acceptance,
  type CatchUpMode,
  type ChainSpec,
  type LevelSpec,
  type ProposalProfile,
  modelLevel,
  perJudged,
} from "./chain.js";
export { type LatencyPrediction, type LevelPrediction, expectedLatency, singleDraftLatency } from "./latency.js";
export {
  type PlannerInput,
  type Plan,
  type SearchResult,
  type SearchOptions,
  type ChooseOptions,
  bestThresholds,
  chooseHierarchy,
  countChains,
  dynamicProgramme,
  exhaustiveSearch,
  predictChain,
} from "./optimizer.js";
export {
  type PolicyInput,
  type PolicyState,
  type PolicyPlan,
  type StatePlan,
  choosePolicy,
  predictPolicy,
} from "./policy.js";
export { type ChainStep, chainStep, enumerateChains } from "./optimizer.js";
export { type SimulationInput, type SimulationResult, type SimulatedLevel, simulate } from "./simulate.js";
