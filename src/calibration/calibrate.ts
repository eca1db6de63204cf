// Calibration on the user's machine and settings: pass costs per model and acceptance per pair,
// cached on disk (see cache.ts), reported through a progress callback.

import { stat } from "node:fs/promises";
import type { ModelInfo } from "../gguf/model-info.js";
import type { FlashAttention, NativeModel, SamplingTransform } from "../native/types.js";
import type { PassCostSample } from "../planner/cost-model.js";
import { CalibrationCache, cacheKey } from "./cache.js";
import { measureAcceptance, measurePassCosts } from "./measure.js";
import { BUILTIN_CALIBRATION_PROMPTS } from "./prompts.js";

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
  cache?: CalibrationCache;
  onProgress?: (event: { phase: "costs" | "acceptance"; done: number; total: number; model?: string }) => void;
}

export interface Calibration {
  models: { file: string; path: string; costs: PassCostSample[]; fromCache: boolean }[];
  /** acceptance[lo][hi], lo < hi, indices into `models` (small → target). */
  acceptance: number[][];
  acceptanceFromCache: boolean;
  transform: SamplingTransform;
  threads: number;
  device: string;
  prompts: number;
  continuationTokens: number;
}

/** Settings whose change does not change the numbers are left out of the keys. */
function transformKey(t: SamplingTransform) {
  return t.greedy ? { greedy: true } : t;
}

async function fileIdentity(path: string) {
  const s = await stat(path);
  return { path, size: s.size, mtimeMs: Math.floor(s.mtimeMs) };
}

export async function calibrate(models: readonly CalibrationModel[], options: CalibrationOptions): Promise<Calibration> {
  const cache = options.cache ?? new CalibrationCache();
  const target = models[models.length - 1]!;
  const prompts = options.prompts ?? BUILTIN_CALIBRATION_PROMPTS;
  const continuationTokens = options.continuationTokens ?? 48;
  const seed = options.seed ?? 1;
  const maxTokens = options.maxThreshold + 2;
  const depth = 64;
  const contextSize = Math.max(512, depth + maxTokens + 8);
  const promptTokens = prompts.map((p, i) => {
    const tokens = target.native.tokenize(p, true, false);
    if (tokens.length === 0) throw new Error(`calibration prompt ${i + 1} is empty after tokenization`);
    return tokens;
  });
  const longPrompt = promptTokens.reduce((a, b) => (b.length > a.length ? b : a));
  // The cost prefix: calibration text repeated up to the depth at which passes are timed.
  const prefix = new Int32Array(depth + maxTokens);
  const joined = Int32Array.from(promptTokens.flatMap((t) => Array.from(t)));
  for (let i = 0; i < prefix.length; i++) prefix[i] = joined[i % joined.length]!;

  const costKeys = await Promise.all(
    models.map(async (m) => cacheKey({ v: 1, file: await fileIdentity(m.info.path), device: options.device, threads: options.threads, flashAttention: options.flashAttention ?? "auto", greedy: options.transform.greedy, maxTokens, depth })),
  );
  const result: Calibration["models"] = [];
  const totalCostSteps = models.length * maxTokens;
  let costSteps = 0;
  for (let i = 0; i < models.length; i++) {
    const m = models[i]!;
    const cached = options.recalibrate ? null : await cache.get<PassCostSample[]>("costs", costKeys[i]!);
    if (cached) {
      result.push({ file: m.info.file, path: m.info.path, costs: cached, fromCache: true });
      costSteps += maxTokens;
      options.onProgress?.({ phase: "costs", done: costSteps, total: totalCostSteps, model: m.info.file });
      continue;
    }
    const context = m.native.createContext({ contextSize, batchSize: Math.max(maxTokens, depth), threads: options.threads, flashAttention: options.flashAttention });
    try {
      const costs = measurePassCosts(m.native, context, prefix, options.transform, { maxTokens, depth, repetitions: 9, warmup: 3 }, () => {
        costSteps++;
        options.onProgress?.({ phase: "costs", done: costSteps, total: totalCostSteps, model: m.info.file });
      });
      await cache.put("costs", costKeys[i]!, costs);
      result.push({ file: m.info.file, path: m.info.path, costs, fromCache: false });
    } finally {
      context.dispose();
    }
  }

  const acceptanceKey = cacheKey({ v: 1, files: await Promise.all(models.map((m) => fileIdentity(m.info.path))), transform: transformKey(options.transform), prompts, continuationTokens, seed });
  let acceptance = options.recalibrate ? null : await cache.get<number[][]>("acceptance", acceptanceKey);
  const acceptanceFromCache = acceptance !== null;
  if (!acceptance) {
    const batch = longPrompt.length + continuationTokens + 1;
    const contexts = models.map((m) => m.native.createContext({ contextSize: Math.max(contextSize, batch + 8), batchSize: batch, threads: options.threads, flashAttention: options.flashAttention }));
    try {
      let done = 0;
      acceptance = measureAcceptance(models.map((m) => m.native), contexts, promptTokens, options.transform, { continuationTokens, seed }, () => {
        done++;
        options.onProgress?.({ phase: "acceptance", done, total: promptTokens.length });
      });
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
