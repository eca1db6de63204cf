// From calibration numbers to a plan a person (or a script, via --json) can read: the candidates, what was
// measured, the optimiser's best fixed chain, the routed policy (a chain per state of the context lookup) when a
// lookup takes part, and what each is predicted to gain. The TypeScript shape is camelCase; `hsd plan --json`
// prints the same record in snake_case.

import type { ModelInfo } from "../gguf/model-info.js";
import { compareVocabularies } from "../gguf/vocabulary.js";
import type { Calibration } from "../calibration/calibrate.js";
import {
  choosePolicy,
  chooseHierarchy,
  predictChain,
  type Acceptance,
  type LevelSpec,
  MeasuredPassCost,
  type PassCosts,
  type PassCostSample,
  type PlannerInput,
  type PolicyInput,
} from "../planner/index.js";
import type { Workload } from "../calibration/measure.js";
import { InvalidOptionError } from "../errors.js";
import { levelTables } from "../planner/costs.js";

/** Whether the model-free levels take part: the planner decides ("auto"), always where they can ("on"), never. */
export type NgramMode = "auto" | "on" | "off";

export interface PlannedChain {
  /** Level names (model files; "ngram-…" for model-free levels), smallest first, ending with the target. */
  chain: string[];
  thresholds: number[];
  predictedMsPerToken: number;
  predictedSpeedupVsAutoregressive: number;
  /** Expected tokens per target pass. */
  predictedTokensPerTargetPass: number;
}

/** One candidate level as the plan shows it. */
export type PlanCandidate =
  | {
      kind: "model";
      name: string;
      file: string;
      parameters: number;
      fileSize: number;
      quantisation: string;
      /** What its passes cost on this machine (docs/ALGORITHM.md §7). */
      costs: PassCosts;
      /** Why its vocabulary can take part: "the target", "same tokenizer; the target has 128 extra padding ids", … */
      vocabulary: string;
    }
  | {
      kind: "proposal";
      name: string;
      /** ms of one lookup. */
      costMs: number;
      /** available[n]: share of calibration positions where it could propose n tokens (last: n or more). */
      available: number[];
    };

/** The routed policy: a chain per state of the context lookup (docs/ALGORITHM.md §9). */
export interface PlanPolicy {
  states: {
    /** "match 0", "match 2", "match 4-5", "match 8+": the lookup's match length when the step starts. */
    name: string;
    /** Share of steps that start in this state under the policy (measured along the calibration text). */
    frequency: number;
    chain: string[];
    thresholds: number[];
    predictedMsPerStep: number;
    predictedTokensPerStep: number;
  }[];
  predictedMsPerToken: number;
  predictedSpeedupVsAutoregressive: number;
  /** The best single chain scored the same way (per state, with its own step shares). */
  bestFixed: { chain: string[]; thresholds: number[]; predictedMsPerToken: number };
  predictedSpeedupVsBestFixed: number;
}

export interface PlanReport {
  candidates: PlanCandidate[];
  /**
   * acceptance[lo][hi] for lo < hi (indices into candidates): a rate per judged draft between models; rates by
   * position in the block for the lookup's drafts (far from i.i.d.: docs/ALGORITHM.md §8); null elsewhere.
   */
  acceptance: (Acceptance | null)[][];
  best: PlannedChain & { predictedSpeedupVsBestSingle: number | null; method: string };
  bestSingle: PlannedChain | null;
  autoregressive: PlannedChain;
  /** With a context lookup: the routed policy, or null when no lookup takes part. */
  policy: PlanPolicy | null;
  /** Thresholds were searched in 1 … maxThreshold. */
  maxThreshold: number;
  calibration: { device: string; threads: number; greedy: boolean; prompts: number; fromCache: boolean };
  /** What the measurements say about this machine that the plan alone does not (see batchingNote). */
  notes: string[];
}

/**
 * A pass over 4 tokens that costs at least this many one-token passes leaves no room for speculation: a block
 * verified in one pass costs about what as many autoregressive steps cost, whatever the drafts.
 */
const NO_BATCHING_RATIO = 3.6;

/**
 * When the target's measured passes do not get cheaper per token with more tokens (c(4) >= 3.6 c(1)), no draft
 * can pay, and the plan is the target alone: say why, and what has helped. On one host node-llama-cpp's prebuilt
 * CPU libraries measured c(16) = 14-16 c(1) where a local build of the same llama.cpp measured 9.6 c(1), with a
 * 2.2x cheaper one-token pass (BENCHMARKS.md, "Which llama.cpp build").
 */
export function batchingNote(candidates: readonly PlanCandidate[], device: string): string | null {
  const target = candidates[candidates.length - 1];
  if (!target || target.kind !== "model") return null;
  const tables = levelTables(target.costs, `plan candidates (${target.name})`);
  const ratio = tables.hot.at(4) / tables.hot.at(1);
  if (!(ratio >= NO_BATCHING_RATIO)) return null;
  const cpu = /cpu/i.test(device);
  return (
    `a pass of ${target.name} over 4 tokens costs ${ratio.toFixed(1)}x a one-token pass here, so verifying a block costs about ` +
    "what generating it one token at a time costs and no draft can pay" +
    (cpu
      ? `; llama.cpp built on this machine (${llamaBuildHint}) has made such passes several times cheaper (BENCHMARKS.md, "Which llama.cpp build")`
      : "")
  );
}

const llamaBuildHint = "npm run build:llama -- --backend cpu --single-cpu, in a checkout of hsd-llm";

/** A candidate as the planner reads it. */
function levelSpec(c: PlanCandidate): LevelSpec {
  return c.kind === "model"
    ? { kind: "model", name: c.name, costs: c.costs }
    : { kind: "proposal", name: c.name, proposal: { costMs: c.costMs, available: c.available } };
}

/** The optimiser's input from a plan's candidates and an acceptance matrix (what `predictChain` scores with). */
export function plannerInput(
  candidates: readonly PlanCandidate[],
  acceptance: readonly (readonly (Acceptance | null)[])[],
  maxThreshold: number,
): PlannerInput {
  return {
    candidates: candidates.map(levelSpec),
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

/** The policy planner's input: the plan's candidates and the per-state profiles of a calibration's workload. */
export function policyInput(
  candidates: readonly PlanCandidate[],
  workload: Workload,
  maxThreshold: number,
): PolicyInput {
  return {
    candidates: candidates.map(levelSpec),
    states: workload.states.map((s) => ({ name: s.name, available: s.available, acceptance: s.acceptance })),
    maxThreshold,
    paths: workload.paths,
  };
}

/** A plan's policy as candidate indices per state (what `predictPolicy` takes). */
export function policyChains(plan: PlanReport): { chain: number[]; thresholds: number[] }[] {
  if (!plan.policy) throw new InvalidOptionError("the plan has no routed policy (no context lookup took part)");
  return plan.policy.states.map((s) => ({
    chain: s.chain.map((name) => plan.candidates.findIndex((c) => c.name === name)),
    thresholds: s.thresholds,
  }));
}

/** What planning reads from a calibration: the candidates (model-free levels first), their acceptance, the workload. */
export interface PlanningInputs {
  candidates: PlanCandidate[];
  acceptance: (Acceptance | null)[][];
  /** null with ngram "off" or without a lookup. */
  workload: Workload | null;
}

/**
 * The target's costs with the per-step time outside passes added to every pass (each step has exactly one target
 * pass, so this adds it once per step); its autoregressive cost becomes a steady one-token pass plus it.
 */
function withStepOverhead(costs: PassCosts, overheadMs: number): PassCosts {
  const add = (samples: readonly PassCostSample[]) => samples.map((x) => ({ n: x.n, ms: x.ms + overheadMs }));
  const hot = add(costs.hot);
  return { ...costs, hot, cold: add(costs.cold), autoregressiveMs: new MeasuredPassCost(hot).at(1) };
}

export function planningInputs(
  calibration: Calibration,
  infos: readonly ModelInfo[],
  ngram: NgramMode = "auto",
): PlanningInputs {
  const target = infos.length - 1;
  const targetInfo = infos[target]!;
  const vocabulary = (info: ModelInfo) => {
    if (info === targetInfo) return "the target";
    const c = compareVocabularies(info.vocabulary, targetInfo.vocabulary, targetInfo.file);
    return c.compatible ? c.note : c.reason;
  };
  const models: PlanCandidate[] = infos.map((info, i) => ({
    kind: "model",
    name: info.file,
    file: info.file,
    parameters: info.parameterCount,
    fileSize: info.fileSize,
    quantisation: info.quantisation,
    costs:
      i === target && calibration.stepOverheadMs !== undefined
        ? withStepOverhead(calibration.models[i]!.costs, calibration.stepOverheadMs)
        : calibration.models[i]!.costs,
    vocabulary: vocabulary(info),
  }));
  const workload = ngram === "off" ? null : calibration.workload;
  // Candidates: the lookup first (it costs least), then the models. Model pairs keep their calibrated mean rate;
  // the lookup's rows are rates by position (its acceptance is far from i.i.d.: §8).
  const proposals: PlanCandidate[] = (workload?.proposals ?? []).map((p, q) => ({
    kind: "proposal",
    name: p.name,
    costMs: p.costMs,
    available: workload!.overall.available[q]!,
  }));
  const candidates: PlanCandidate[] = [...proposals, ...models];
  const shift = proposals.length;
  const matrix: (Acceptance | null)[][] = candidates.map((_, lo) =>
    candidates.map((__, hi) => {
      if (hi <= lo || hi < shift) return null;
      if (lo < shift) return workload!.overall.acceptance[lo]![hi]!;
      return calibration.acceptance[lo - shift]![hi - shift]!;
    }),
  );
  return { candidates, acceptance: matrix, workload };
}

export function planFromCalibration(
  calibration: Calibration,
  infos: readonly ModelInfo[],
  maxThreshold: number,
  ngram: NgramMode = "auto",
): PlanReport {
  const { candidates, acceptance: matrix, workload } = planningInputs(calibration, infos, ngram);
  const input = plannerInput(candidates, matrix, maxThreshold);
  const result = chooseHierarchy(input);
  const autoregressive = plannedChain(input, [candidates.length - 1], []);
  const bestSingle = result.bestSingleDraft
    ? plannedChain(input, result.bestSingleDraft.chain, result.bestSingleDraft.thresholds)
    : null;
  const best = plannedChain(input, result.chain, result.thresholds);

  let policy: PlanPolicy | null = null;
  if (workload) {
    const plan = choosePolicy({
      ...policyInput(candidates, workload, maxThreshold),
      // "on": wherever the lookup can propose, the step's chain starts with it.
      ...(ngram === "on"
        ? {
            allowed: (s: number, chain: number[]) =>
              workload.states[s]!.available[0]![0]! >= 1 || candidates[chain[0]!]!.kind === "proposal",
          }
        : {}),
    });
    const names = (chain: number[]) => chain.map((i) => candidates[i]!.name);
    policy = {
      states: plan.states.map((s) => ({
        name: s.name,
        frequency: s.frequency,
        chain: names(s.chain),
        thresholds: s.thresholds,
        predictedMsPerStep: s.msPerStep,
        predictedTokensPerStep: s.tokensPerStep,
      })),
      predictedMsPerToken: plan.predictedMsPerToken,
      predictedSpeedupVsAutoregressive: autoregressive.predictedMsPerToken / plan.predictedMsPerToken,
      bestFixed: {
        chain: names(plan.bestFixed.chain),
        thresholds: plan.bestFixed.thresholds,
        predictedMsPerToken: plan.bestFixed.predictedMsPerToken,
      },
      predictedSpeedupVsBestFixed: plan.bestFixed.predictedMsPerToken / plan.predictedMsPerToken,
    };
  }
  return {
    candidates,
    acceptance: matrix,
    best: {
      ...best,
      predictedSpeedupVsBestSingle: bestSingle ? bestSingle.predictedMsPerToken / best.predictedMsPerToken : null,
      method: result.method,
    },
    bestSingle,
    autoregressive,
    policy,
    maxThreshold,
    calibration: {
      device: calibration.device,
      threads: calibration.threads,
      greedy: calibration.transform.greedy,
      prompts: calibration.prompts,
      fromCache: calibration.acceptanceFromCache && calibration.models.every((m) => m.fromCache),
    },
    notes: [batchingNote(candidates, calibration.device)].filter((n): n is string => n !== null),
  };
}
