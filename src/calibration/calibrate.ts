// Calibration on the user's machine and settings: pass costs per model and acceptance per pair,
// cached on disk (see cache.ts), reported through a progress callback.

import { stat } from "node:fs/promises";
import type { ModelInfo } from "../gguf/model-info.js";
import type { FlashAttention, NativeModel, SamplingTransform } from "../native/types.js";
import { contextOptions, defaultContextSize } from "../native/model.js";
import { CALIBRATION_COST_BUDGET_MS, CALIBRATION_COST_ROUNDS, DEFAULT_CALIBRATION_TOKENS } from "../defaults.js";
import type { PassCosts } from "../planner/costs.js";
import { CalibrationCache, cacheKey, isAcceptanceMatrix, isPassCostsList } from "./cache.js";
import { measureAcceptance } from "./measure.js";
import { measureDecodeCosts, passCostsFrom, summariseTimes } from "./decode-costs.js";
import { BUILTIN_CALIBRATION_PROMPTS } from "./prompts.js";
import { InvalidOptionError } from "../errors.js";

export interface CalibrationModel {
  info: ModelInfo;
  native: NativeModel;
}

export interface CalibrationOptions {
  transform: SamplingTransform;
  threads: number;
  flashAttention?: FlashAttention;
  /** Names the hardware the numbers belong to (backend and GPU offload). */
  device: string;
  /** Largest threshold the optimiser may pick; costs are measured for n = 1 … maxThreshold + 2. */
  maxThreshold: number;
  prompts?: readonly string[];
  seed?: number;
  continuationTokens?: number;
  recalibrate?: boolean;
  /** Passes timed per (model, n) and kind; more is steadier and slower (default 16). */
  costRounds?: number;
  /** Stop the cost rounds once this much time has passed (at least 4 rounds run; default 45 s). */
  costBudgetMs?: number;
  cache?: CalibrationCache;
  /** Stops the measurement between passes with an AbortedError; nothing is cached. */
  signal?: AbortSignal;
  /** Cache entries that cannot be used or stored (default: process.emitWarning). */
  onWarning?: (message: string) => void;
  onProgress?: (event: { phase: "costs" | "acceptance"; done: number; total: number; model?: string }) => void;
}

export interface Calibration {
  /** Per model, smallest first: its pass costs (the one record the planner and the reports read). */
  models: { file: string; path: string; costs: PassCosts; fromCache: boolean }[];
  /** acceptance[lo][hi], lo < hi, indices into `models` (small → target). */
  acceptance: number[][];
  acceptanceFromCache: boolean;
  transform: SamplingTransform;
  threads: number;
  device: string;
  prompts: number;
  continuationTokens: number;
}

/**
 * The depths the cost passes move through (DecodeCostProbe): lo … hi, plus room for three passes of the largest size.
 */
function costPositions(contextLimit: number, maxTokens: number) {
  const lo = 32;
  return { lo, hi: Math.min(lo + 160, contextLimit - 2 * maxTokens - 2) };
}

function fitsCostPasses(contextLimit: number, maxTokens: number): boolean {
  const { lo, hi } = costPositions(contextLimit, maxTokens);
  return hi > lo && hi + 3 * maxTokens + 3 <= contextLimit;
}

async function fileIdentity(path: string) {
  const s = await stat(path);
  return { path, size: s.size, mtimeMs: Math.floor(s.mtimeMs) };
}

export async function calibrate(
  models: readonly CalibrationModel[],
  options: CalibrationOptions,
): Promise<Calibration> {
  const cache = options.cache ?? new CalibrationCache(undefined, options.onWarning);
  const target = models[models.length - 1]!;
  const prompts = options.prompts ?? BUILTIN_CALIBRATION_PROMPTS;
  const continuationTokens = options.continuationTokens ?? DEFAULT_CALIBRATION_TOKENS;
  const seed = options.seed ?? 1;
  const maxTokens = options.maxThreshold + 2;
  const promptTokens = prompts.map((p, i) => {
    const tokens = target.native.tokenize(p, true, false);
    if (tokens.length === 0) throw new InvalidOptionError(`calibration prompt ${i + 1} is empty after tokenization`);
    return tokens;
  });
  const longPrompt = promptTokens.reduce((a, b) => (b.length > a.length ? b : a));
  // The text the cost passes run over: the calibration prompts, repeated.
  const prefix = new Int32Array(256);
  const joined = Int32Array.from(promptTokens.flatMap((t) => Array.from(t)));
  for (let i = 0; i < prefix.length; i++) prefix[i] = joined[i % joined.length]!;

  // Costs are measured for all models together: a "cold" pass is one right after another model's pass.
  const identities = await Promise.all(models.map((m) => fileIdentity(m.info.path)));
  const costKey = cacheKey({
    v: 6,
    files: identities,
    device: options.device,
    threads: options.threads,
    flashAttention: options.flashAttention ?? "auto",
    greedy: options.transform.greedy,
    maxTokens,
  });
  let costs = options.recalibrate ? null : await cache.get("costs", costKey, isPassCostsList(models.length));
  const costsFromCache = costs !== null;
  const rounds = options.costRounds ?? CALIBRATION_COST_ROUNDS;
  if (!costs) {
    const contextLimit = Math.min(...models.map((m) => defaultContextSize(m.native)));
    const { lo, hi } = costPositions(contextLimit, maxTokens);
    if (!fitsCostPasses(contextLimit, maxTokens)) {
      let largest = maxTokens;
      while (largest > 1 && !fitsCostPasses(contextLimit, largest)) largest--;
      throw new InvalidOptionError(
        `--max-threshold ${options.maxThreshold} (maxThreshold) is too large for the models' ${contextLimit}-token context: calibration times passes of up to ${maxTokens} tokens at many depths; use at most ${Math.max(1, largest - 2)}`,
      );
    }
    const times = await measureDecodeCosts(
      models.map((m) => m.native),
      {
        maxN: maxTokens,
        text: prefix,
        lo,
        hi,
        rounds,
        budgetMs: options.costBudgetMs ?? CALIBRATION_COST_BUDGET_MS,
        threads: options.threads,
        flashAttention: options.flashAttention,
        transform: options.transform,
        seed,
        signal: options.signal,
        onRound: (done, total) => options.onProgress?.({ phase: "costs", done, total }),
      },
    );
    costs = passCostsFrom(summariseTimes(times));
    await cache.put("costs", costKey, costs);
  } else {
    options.onProgress?.({ phase: "costs", done: rounds, total: rounds });
  }
  const result: Calibration["models"] = models.map((m, i) => ({
    file: m.info.file,
    path: m.info.path,
    costs: costs![i]!,
    fromCache: costsFromCache,
  }));

  const acceptanceKey = cacheKey({
    v: 1,
    files: identities,
    transform: options.transform,
    prompts,
    continuationTokens,
    seed,
  });
  let acceptance = options.recalibrate
    ? null
    : await cache.get("acceptance", acceptanceKey, isAcceptanceMatrix(models.length));
  const acceptanceFromCache = acceptance !== null;
  if (!acceptance) {
    const batch = longPrompt.length + continuationTokens + 1;
    // One pass per model scores a whole prompt and continuation: the batch must hold it.
    const contexts = models.map((m) =>
      m.native.createContext({
        ...contextOptions(m.native, {
          contextSize: Math.max(512, batch + 8),
          threads: options.threads,
          flashAttention: options.flashAttention,
        }),
        batchSize: batch,
      }),
    );
    try {
      let done = 0;
      acceptance = await measureAcceptance(
        models.map((m) => m.native),
        contexts,
        promptTokens,
        options.transform,
        { continuationTokens, seed, signal: options.signal },
        () => {
          done++;
          options.onProgress?.({ phase: "acceptance", done, total: promptTokens.length });
        },
      );
    } finally {
      for (const c of contexts) c.dispose();
    }
    await cache.put("acceptance", acceptanceKey, acceptance);
  } else {
    options.onProgress?.({ phase: "acceptance", done: promptTokens.length, total: promptTokens.length });
  }
  return {
    models: result,
    acceptance,
    acceptanceFromCache,
    transform: options.transform,
    threads: options.threads,
    device: options.device,
    prompts: promptTokens.length,
    continuationTokens,
  };
}
