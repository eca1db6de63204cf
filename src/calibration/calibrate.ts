// Calibration on the user's machine and settings: pass costs per model and acceptance per pair,
// cached on disk (see cache.ts), reported through a progress callback.

import { stat } from "node:fs/promises";
import type { ModelInfo } from "../gguf/model-info.js";
import type { FlashAttention, NativeModel, SamplingTransform } from "../native/types.js";
import { contextOptions, defaultContextSize } from "../native/model.js";
import { CALIBRATION_COST_BUDGET_MS, CALIBRATION_COST_ROUNDS, DEFAULT_CALIBRATION_TOKENS } from "../defaults.js";
import type { PassCosts, PassCostSample } from "../planner/costs.js";
import { median, theilSen } from "../util/stats.js";
import { CalibrationCache, cacheKey, isAcceptanceMeasurement, isPassCostsList } from "./cache.js";
import { measureAcceptance, type Workload } from "./measure.js";
import { ContextLookupLevel } from "../levels/ngram-lookup.js";
import type { ProposalLevel } from "../levels/level.js";
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
  /**
   * A quick prior for planning while generating (docs/ALGORITHM.md §10): one round of costs over a coarse grid of
   * pass sizes (QUICK_SIZES), two prompts of 16 tokens unless told; cached apart from full calibrations, which it
   * never stands in for. What it gets wrong the online estimates correct within the first run.
   */
  quick?: boolean;
  cache?: CalibrationCache;
  /** Profile the context lookup's states too (docs/ALGORITHM.md §9); null: models only. */
  lookup?: LookupCalibration | null;
  /** The levels `lookup.others` names, in that order. */
  otherProposals?: ProposalLevel[];
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
  /** With a lookup: acceptance and proposal lengths by state, over the candidates [lookup, models …]. */
  workload: Workload | null;
  /** The lookup the workload was measured with. */
  lookup: LookupCalibration | null;
  acceptanceFromCache: boolean;
  /** "calibrated": a full calibration; "quick": the quick prior; "learned": estimates learned while generating. */
  source: CalibrationSource;
  /**
   * Learned only: the time of a target step outside its passes (engine, generation loop, the consumer of the
   * stream), in ms; planning adds it to every step (as part of the target's pass). Measured calibrations leave
   * it out (their steady autoregressive cost already holds the loop's time).
   */
  stepOverheadMs?: number;
  transform: SamplingTransform;
  threads: number;
  device: string;
  prompts: number;
  continuationTokens: number;
}

export type CalibrationSource = "calibrated" | "quick" | "learned";

/** The quick prior's pass sizes (besides maxN): costs between them are interpolated (MeasuredPassCost). */
const QUICK_SIZES = [1, 2, 4, 8];
/** The quick prior's prompts (the first of the built-in ones) and tokens after each. */
const QUICK_PROMPTS = 2;
const QUICK_CONTINUATION_TOKENS = 16;

/**
 * The quick prior's costs, smoothed: one timed pass per size is at the mercy of one descheduling, so each curve
 * becomes the robust line (Theil–Sen) through its points — non-decreasing, at least the smallest pass measured —
 * and the shape-change extra the median over sizes. Planning while generating replaces them with what the run's
 * own passes cost (§10).
 */
function smoothQuickCosts(costs: PassCosts): PassCosts {
  const line = (samples: readonly PassCostSample[]): PassCostSample[] => {
    const fit = theilSen(samples.map((x) => ({ x: x.n, y: x.ms })));
    const floor = Math.min(...samples.map((x) => x.ms));
    const slope = Math.max(0, fit.slope);
    return samples.map((x) => ({ n: x.n, ms: Math.max(floor, fit.intercept + slope * x.n) }));
  };
  const extra = costs.reshape.length > 0 ? median(costs.reshape.map((x) => x.ms)) : 0;
  return {
    hot: line(costs.hot),
    cold: line(costs.cold),
    reshape: costs.reshape.map((x) => ({ n: x.n, ms: extra })),
    autoregressiveMs: costs.autoregressiveMs,
  };
}

/** The context lookup as calibration profiles it: its match lengths and the states (ranges of them). */
export interface LookupCalibration {
  minMatch: number;
  maxMatch: number;
  /** Lower bounds of the states' match-length ranges, ascending from 0. */
  states: number[];
  /** Other model-free levels profiled by the same states (a static n-gram table): name and file identity. */
  others?: { name: string; path: string; size: number; mtimeMs: number }[];
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

/** What identifies the model files in cache keys: path, size and modification time. */
export function modelIdentities(models: readonly CalibrationModel[]) {
  return Promise.all(models.map((m) => fileIdentity(m.info.path)));
}

export async function calibrate(
  models: readonly CalibrationModel[],
  options: CalibrationOptions,
): Promise<Calibration> {
  return (await calibrateOrCached(models, options, true))!;
}

/** The calibration these options would give if every part of it is in the cache; null otherwise (nothing is measured). */
export async function cachedCalibration(
  models: readonly CalibrationModel[],
  options: CalibrationOptions,
): Promise<Calibration | null> {
  return calibrateOrCached(models, { ...options, recalibrate: false }, false);
}

async function calibrateOrCached(
  models: readonly CalibrationModel[],
  options: CalibrationOptions,
  measure: boolean,
): Promise<Calibration | null> {
  const cache = options.cache ?? new CalibrationCache(undefined, options.onWarning);
  const target = models[models.length - 1]!;
  const quick = options.quick ?? false;
  const prompts =
    options.prompts ?? (quick ? BUILTIN_CALIBRATION_PROMPTS.slice(0, QUICK_PROMPTS) : BUILTIN_CALIBRATION_PROMPTS);
  const continuationTokens =
    options.continuationTokens ?? (quick ? QUICK_CONTINUATION_TOKENS : DEFAULT_CALIBRATION_TOKENS);
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
  const identities = await modelIdentities(models);
  const costKey = cacheKey({
    v: 6,
    files: identities,
    device: options.device,
    threads: options.threads,
    flashAttention: options.flashAttention ?? "auto",
    greedy: options.transform.greedy,
    maxTokens,
    ...(quick ? { quick } : {}),
  });
  let costs = options.recalibrate ? null : await cache.get("costs", costKey, isPassCostsList(models.length));
  const costsFromCache = costs !== null;
  const rounds = options.costRounds ?? (quick ? 1 : CALIBRATION_COST_ROUNDS);
  if (!costs && !measure) return null;
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
        ...(quick
          ? { sizes: [...new Set([...QUICK_SIZES.filter((n) => n < maxTokens), maxTokens])], minRounds: 1 }
          : {}),
        threads: options.threads,
        flashAttention: options.flashAttention,
        transform: options.transform,
        seed,
        signal: options.signal,
        onRound: (done, total) => options.onProgress?.({ phase: "costs", done, total }),
      },
    );
    costs = passCostsFrom(summariseTimes(times));
    if (quick) costs = costs.map(smoothQuickCosts);
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

  const lookup = options.lookup ?? null;
  const acceptanceKey = cacheKey({
    v: 2,
    files: identities,
    transform: options.transform,
    prompts,
    continuationTokens,
    seed,
    lookup: lookup ? { ...lookup, maxThreshold: options.maxThreshold } : null,
  });
  let measured = options.recalibrate
    ? null
    : await cache.get("acceptance", acceptanceKey, isAcceptanceMeasurement(models.length));
  const acceptanceFromCache = measured !== null;
  if (!measured && !measure) return null;
  if (!measured) {
    const batch = longPrompt.length + continuationTokens + 1;
    // One pass per model scores a whole prompt and continuation: the batch must hold it (and the lookup's extra
    // passes reach a proposal's length past it).
    const contexts = models.map((m) =>
      m.native.createContext({
        ...contextOptions(m.native, {
          contextSize: Math.max(512, batch + options.maxThreshold + 8),
          threads: options.threads,
          flashAttention: options.flashAttention,
        }),
        batchSize: batch,
      }),
    );
    try {
      let done = 0;
      const level = lookup ? new ContextLookupLevel(target.native.vocabSize, lookup) : null;
      measured = await measureAcceptance(
        models.map((m) => m.native),
        contexts,
        promptTokens,
        options.transform,
        {
          continuationTokens,
          seed,
          signal: options.signal,
          ...(level
            ? {
                lookup: {
                  level,
                  states: lookup!.states,
                  maxThreshold: options.maxThreshold,
                  others: options.otherProposals ?? [],
                },
              }
            : {}),
        },
        () => {
          done++;
          options.onProgress?.({ phase: "acceptance", done, total: promptTokens.length });
        },
      );
    } finally {
      for (const c of contexts) c.dispose();
    }
    await cache.put("acceptance", acceptanceKey, measured);
  } else {
    options.onProgress?.({ phase: "acceptance", done: promptTokens.length, total: promptTokens.length });
  }
  return {
    models: result,
    acceptance: measured.acceptance,
    workload: measured.workload,
    lookup,
    acceptanceFromCache,
    source: quick ? "quick" : "calibrated",
    transform: options.transform,
    threads: options.threads,
    device: options.device,
    prompts: promptTokens.length,
    continuationTokens,
  };
}
