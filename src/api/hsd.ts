// The script API: open a folder (or files), plan, generate, dispose.
//
//   const hsd = await Hsd.open({ models: "./models" });
//   const run = hsd.generate("Once upon a time", { maxTokens: 64 });
//   for await (const chunk of run) process.stdout.write(chunk.text);
//   console.log((await run.result).stats);
//   await hsd.dispose();

import { fileURLToPath } from "node:url";
import { availableParallelism } from "node:os";
import { basename, resolve } from "node:path";
import { groupWithTarget, scanModelFolder, type RejectedFile } from "../models/scan.js";
import { readModelInfo, type ModelInfo } from "../gguf/model-info.js";
import { GgufFormatError, HsdError, InvalidOptionError, ModelFolderError, VocabularyMismatchError } from "../errors.js";
import {
  contextOptions,
  defaultThreads,
  loadModel,
  loadNative,
  nativeBackend,
  nativeDevices,
} from "../native/index.js";
import type { FlashAttention, NativeContext, NativeModel } from "../native/types.js";
import { NativeLevel, type EvaluationMode } from "../levels/native-model.js";
import { HsdDecoder } from "../engine/hsd.js";
import { generate, type GenerationChunk, type GenerationResult } from "../engine/generate.js";
import { Rng } from "../util/rng.js";
import { toTransform, type SamplingSettings } from "./sampling.js";
import { calibrate, type Calibration, type CalibrationOptions } from "../calibration/calibrate.js";
import { planFromCalibration, plannerInput, type PlanReport } from "./plan.js";
import { bestThresholds } from "../planner/index.js";
import { DEFAULT_MAX_THRESHOLD, DEFAULT_MAX_TOKENS, SMALL_MODEL_PARAMETERS } from "../defaults.js";
import { checkGenerateRequest, checkOpenOptions, checkPlanRequest, checkThresholdsFit } from "./options.js";

/** The model family that ships with the package: used when no folder is given. */
export const BUNDLED_MODELS_DIR = fileURLToPath(new URL("../../models/tiny", import.meta.url));

export interface OpenOptions {
  /** A folder of GGUF files (default: the bundled family). */
  models?: string;
  /** Explicit GGUF files instead of a folder; the largest is the target unless `target` says otherwise. */
  files?: string[];
  /** The target model's file (name inside the folder, or a path). */
  target?: string;
  /**
   * ggml threads per model. Default: the physical cores, except 1 when every model is under 100M parameters —
   * such passes take well under a millisecond and ggml's thread synchronisation costs more than it saves (on this
   * project's 2-core machine, 2 threads made the bundled family several times slower than 1).
   */
  threads?: number;
  /** Layers to offload to the GPU (default 0 = CPU; 999 = all). */
  gpuLayers?: number;
  /** KV cache size of each model's context (default: the model's training context, at most 4096). */
  contextSize?: number;
  /** "async" runs decodes off the JS thread; "sync" (default) blocks it but saves two thread hops per pass. */
  evaluation?: EvaluationMode;
  /**
   * Flash attention in every context. Default: "off" on the CPU (gpuLayers 0), "auto" otherwise. On the 2-core
   * CPU this project is developed on, flash attention made multi-token verification passes 1.5–2x dearer
   * (BENCHMARKS.md, "Flash attention on the CPU"), which is what speculation lives on.
   */
  flashAttention?: FlashAttention;
  /**
   * Where warnings go: settings that will run badly (more threads than CPUs, GPU layers without a GPU build), a
   * calibration cache that cannot be read or written. Default: process.emitWarning.
   */
  onWarning?: (message: string) => void;
}

export interface Hierarchy {
  /** Files, smallest first, ending with the target. */
  files: string[];
  /** One threshold per draft model; when left out, the latency model's best for this chain (calibrates if needed). */
  thresholds?: number[];
}

export interface GenerateRequest {
  maxTokens?: number;
  sampling?: SamplingSettings;
  /** "auto" (default): the optimiser's pick, from the calibration cache or a fresh calibration. */
  hierarchy?: "auto" | Hierarchy;
  /** How to plan, when the plan is needed (calibration prompts, T_max, …); the sampling is this request's. */
  plan?: Omit<PlanRequest, "sampling">;
  stop?: string[];
  signal?: AbortSignal;
}

export interface GenerationReport extends GenerationResult {
  hierarchy: Required<Hierarchy>;
  seed: number;
  plan: PlanReport | null;
}

export interface PlanRequest {
  sampling?: SamplingSettings;
  prompts?: string[];
  /** Tokens the target writes after each calibration prompt; acceptance is averaged over them (default 48). */
  continuationTokens?: number;
  maxThreshold?: number;
  recalibrate?: boolean;
  onProgress?: CalibrationOptions["onProgress"];
  /** Stops a calibration between passes with an AbortedError (nothing is cached). */
  signal?: AbortSignal;
}

interface LoadedModel {
  info: ModelInfo;
  native: NativeModel;
  context: NativeContext;
  level: NativeLevel;
}

export class Hsd {
  private disposed = false;
  /** Contexts hold one sequence each, so generations on one instance run one at a time. */
  private busy = false;
  private readonly planCache = new Map<string, PlanReport>();

  private constructor(
    /** Compatible models, smallest first; the last is the target. */
    readonly models: readonly LoadedModel[],
    /** Files that were found but cannot take part, with the reason. */
    readonly rejected: readonly RejectedFile[],
    readonly threads: number,
    readonly device: string,
    readonly flashAttention: FlashAttention,
    private readonly warn: (message: string) => void,
  ) {}

  static async open(options: OpenOptions = {}): Promise<Hsd> {
    checkOpenOptions(options);
    const warn = options.onWarning ?? ((message: string) => process.emitWarning(message, "HsdWarning"));
    const gpuLayers = options.gpuLayers ?? 0;
    // A CPU-only build of llama.cpp ignores gpuLayers: say so, and plan as the CPU run it is.
    const offloaded =
      gpuLayers > 0 && !nativeDevices().some((d) => d.type === "gpu" || d.type === "igpu") ? 0 : gpuLayers;
    if (offloaded < gpuLayers)
      warn(
        `gpuLayers ${gpuLayers} (--gpu-layers): this llama.cpp build (${nativeBackend()}) has no GPU device, so the models run on the CPU; ` +
          "build one with npm run build:llama -- --backend cuda|vulkan|metal",
      );
    const flashAttention = options.flashAttention ?? (offloaded > 0 ? "auto" : "off");
    let infos: ModelInfo[];
    let rejected: RejectedFile[];
    const fromFolder = !(options.files && options.files.length > 0);
    if (!fromFolder) {
      infos = await Promise.all(options.files!.map((f) => readModelInfo(resolve(f))));
      const target = options.target
        ? infos.find((m) => m.path === resolve(options.target!) || m.file === options.target)
        : infos.reduce((a, b) => (b.parameterCount > a.parameterCount ? b : a));
      if (!target) throw new ModelFolderError(`--target ${options.target}: not among the given files`);
      // Files the caller named must all take part: the folder scan's rules, but a refusal is an error.
      const group = groupWithTarget(infos, target);
      const refused = group.rejected[0];
      if (refused) {
        const message = `${refused.path}: ${refused.reason}`;
        const vocabulary = infos.find((m) => m.path === refused.path)!.vocabFingerprint !== target.vocabFingerprint;
        throw vocabulary ? new VocabularyMismatchError(message) : new InvalidOptionError(message);
      }
      infos = group.models;
      rejected = [];
    } else {
      const scan = await scanModelFolder(options.models ?? BUNDLED_MODELS_DIR, { target: options.target });
      infos = scan.models;
      rejected = scan.rejected;
    }

    const threads =
      options.threads ?? (infos.every((m) => m.parameterCount < SMALL_MODEL_PARAMETERS) ? 1 : defaultThreads());
    const cpus = availableParallelism();
    if (threads > cpus)
      warn(
        `threads ${threads} (--threads) is more than the ${cpus} CPUs here: ggml's threads wait for each other, so every pass gets much slower; use at most ${cpus}`,
      );
    const loaded: LoadedModel[] = [];
    const targetInfo = infos[infos.length - 1]!;
    try {
      for (const info of infos) {
        let native: NativeModel;
        try {
          native = await loadModel(info.path, { gpuLayers });
        } catch (error) {
          const failure = new GgufFormatError(
            info.path,
            `llama.cpp could not load it: ${nativeReason(error, info.path)}`,
          );
          // In a folder, a draft llama.cpp refuses is one more file not used; the target and named files are needed.
          if (!fromFolder || info === targetInfo) throw failure;
          rejected.push({ path: info.path, reason: failure.message.slice(info.path.length + 2) });
          continue;
        }
        try {
          let context: NativeContext;
          try {
            context = native.createContext(
              contextOptions(native, { contextSize: options.contextSize, threads, flashAttention }),
            );
          } catch (error) {
            throw new HsdError(
              `${info.path}: llama.cpp could not create a context for it (${nativeReason(error, info.path)}); a smaller context size (--context-size) needs less memory`,
            );
          }
          loaded.push({
            info,
            native,
            context,
            level: new NativeLevel(info.file, context, native.vocabSize, options.evaluation ?? "sync"),
          });
        } catch (error) {
          native.dispose();
          throw error;
        }
      }
    } catch (error) {
      for (const m of loaded) {
        m.context.dispose();
        m.native.dispose();
      }
      throw error;
    }
    const device = `${nativeBackend()}${offloaded > 0 ? `, ${offloaded} GPU layers` : ", CPU"}`;
    return new Hsd(loaded, rejected, threads, device, flashAttention, warn);
  }

  get target(): LoadedModel {
    return this.models[this.models.length - 1]!;
  }

  /** Measure (or load from the cache) costs and acceptance for these models and settings. */
  async calibrate(request: PlanRequest = {}): Promise<Calibration> {
    this.checkOpen();
    checkPlanRequest(request);
    return calibrate(this.models, {
      transform: toTransform(request.sampling),
      threads: this.threads,
      device: this.device,
      flashAttention: this.flashAttention,
      maxThreshold: request.maxThreshold ?? DEFAULT_MAX_THRESHOLD,
      prompts: request.prompts,
      continuationTokens: request.continuationTokens,
      recalibrate: request.recalibrate,
      onProgress: request.onProgress,
      signal: request.signal,
      onWarning: this.warn,
    });
  }

  /** The optimiser's hierarchy for these settings, with predictions for it and its alternatives. */
  async plan(request: PlanRequest = {}): Promise<PlanReport> {
    const key = JSON.stringify({
      t: toTransform(request.sampling),
      p: request.prompts ?? null,
      c: request.continuationTokens ?? null,
      m: request.maxThreshold ?? DEFAULT_MAX_THRESHOLD,
    });
    const cached = request.recalibrate ? undefined : this.planCache.get(key);
    if (cached) return cached;
    const calibration = await this.calibrate(request);
    const report = planFromCalibration(
      calibration,
      this.models.map((m) => m.info),
      request.maxThreshold ?? DEFAULT_MAX_THRESHOLD,
    );
    this.planCache.set(key, report);
    return report;
  }

  /** Streams text; `await run.result` for the whole report. */
  generate(prompt: string, request: GenerateRequest = {}): GenerationRun {
    this.checkOpen();
    if (typeof prompt !== "string") throw new InvalidOptionError(`the prompt must be a string, got ${typeof prompt}`);
    checkGenerateRequest(request);
    return new GenerationRun(this.runGeneration(prompt, request));
  }

  private async *runGeneration(
    prompt: string,
    request: GenerateRequest,
  ): AsyncGenerator<GenerationChunk, GenerationReport, void> {
    if (prompt.trim().length === 0) throw new InvalidOptionError("the prompt is empty");
    if (this.busy)
      throw new HsdError(
        "another generation is running on this Hsd instance; await it first (or open a second instance)",
      );
    this.busy = true;
    try {
      return yield* this.generateUnlocked(prompt, request);
    } finally {
      this.busy = false;
    }
  }

  private async *generateUnlocked(
    prompt: string,
    request: GenerateRequest,
  ): AsyncGenerator<GenerationChunk, GenerationReport, void> {
    const maxTokens = request.maxTokens ?? DEFAULT_MAX_TOKENS;
    if (!Number.isInteger(maxTokens) || maxTokens < 1)
      throw new InvalidOptionError(`max tokens must be a positive integer, got ${maxTokens}`);
    const transform = toTransform(request.sampling);
    const seed = request.sampling?.seed ?? Math.floor(Math.random() * 2 ** 31);
    let plan: PlanReport | null = null;
    let hierarchy: Required<Hierarchy>;
    if (request.hierarchy === undefined || request.hierarchy === "auto") {
      plan = await this.plan({ ...request.plan, sampling: request.sampling, signal: request.signal });
      hierarchy = { files: plan.best.chain, thresholds: plan.best.thresholds };
    } else if (request.hierarchy.thresholds === undefined && request.hierarchy.files.length > 1) {
      // A pinned chain without thresholds: the latency model's best thresholds for it (the target alone has none).
      this.resolveHierarchy({ ...request.hierarchy, thresholds: request.hierarchy.files.slice(1).map(() => 1) });
      plan = await this.plan({ ...request.plan, sampling: request.sampling, signal: request.signal });
      hierarchy = { files: request.hierarchy.files, thresholds: this.bestThresholds(plan, request.hierarchy.files) };
    } else {
      hierarchy = { files: request.hierarchy.files, thresholds: request.hierarchy.thresholds ?? [] };
    }
    const levels = this.resolveHierarchy(hierarchy);
    const target = this.target.native;
    const tokens = target.tokenize(prompt, true, false);
    checkThresholdsFit(
      hierarchy.thresholds,
      tokens.length,
      Math.min(...levels.map((m) => m.context.contextSize)),
      Math.min(...levels.map((m) => m.context.batchSize)),
    );
    for (const m of levels) m.context.setSampling(transform);
    const decoder = new HsdDecoder(
      levels.map((m) => m.level),
      { thresholds: hierarchy.thresholds, greedy: transform.greedy, rng: new Rng(seed) },
    );
    const vocabulary = {
      isEndOfGeneration: (t: number) => target.isEndOfGeneration(t),
      tokenPiece: (t: number) => target.tokenPiece(t),
    };
    const result = yield* generate(decoder, vocabulary, tokens, {
      maxTokens,
      stop: request.stop,
      signal: request.signal,
    });
    return {
      ...result,
      hierarchy: { files: levels.map((m) => m.info.file), thresholds: [...hierarchy.thresholds] },
      seed,
      plan,
    };
  }

  /** The best thresholds for a fixed chain of files, by the plan's latency model (docs/ALGORITHM.md §6). */
  private bestThresholds(plan: PlanReport, files: readonly string[]): number[] {
    const input = plannerInput(plan.candidates, plan.acceptance, plan.maxThreshold);
    const chain = this.resolveHierarchy({ files: [...files], thresholds: files.slice(1).map(() => 1) }).map((m) =>
      this.models.indexOf(m),
    );
    return bestThresholds(input, chain).thresholds;
  }

  /** Maps a hierarchy's file names onto loaded models, checking order and shape. */
  private resolveHierarchy(h: Required<Hierarchy>): LoadedModel[] {
    if (h.files.length === 0) throw new InvalidOptionError("the hierarchy names no model");
    if (h.thresholds.length !== h.files.length - 1) {
      throw new InvalidOptionError(
        `the hierarchy has ${h.files.length} models, so it needs ${h.files.length - 1} thresholds, got ${h.thresholds.length}`,
      );
    }
    const levels = h.files.map((f) => {
      const m = this.models.find((x) => x.info.file === f || x.info.path === resolve(f) || x.info.file === basename(f));
      if (!m)
        throw new InvalidOptionError(
          `hierarchy: ${f} is not one of the loaded models (${this.models.map((x) => x.info.file).join(", ")})`,
        );
      return m;
    });
    if (levels[levels.length - 1] !== this.target)
      throw new InvalidOptionError(`hierarchy: the last model must be the target ${this.target.info.file}`);
    for (let i = 1; i < levels.length; i++) {
      if (levels[i - 1]!.info.parameterCount >= levels[i]!.info.parameterCount) {
        throw new InvalidOptionError(
          `hierarchy: models must go from smallest to largest (${levels[i - 1]!.info.file} is not smaller than ${levels[i]!.info.file})`,
        );
      }
    }
    return levels;
  }

  private checkOpen(): void {
    if (this.disposed) throw new HsdError("this Hsd instance has been disposed");
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const m of this.models) {
      m.context.dispose();
      m.native.dispose();
    }
    releaseFreedMemory();
  }
}

/** A running generation: iterate it for text chunks, or await `result`. */
export class GenerationRun implements AsyncIterable<GenerationChunk> {
  private finished: GenerationReport | null = null;
  private started = false;
  private leftEarly = false;

  constructor(private readonly source: AsyncGenerator<GenerationChunk, GenerationReport, void>) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<GenerationChunk, void, void> {
    if (this.started) throw new HsdError("a generation can be iterated once");
    this.started = true;
    let step: IteratorResult<GenerationChunk, GenerationReport> | undefined;
    try {
      step = await this.source.next();
      while (!step.done) {
        yield step.value;
        step = await this.source.next();
      }
      this.finished = step.value;
    } finally {
      // The consumer left the loop early (break, return or a throw in its body): end the generation now, so that
      // its finally blocks release the instance for the next generate().
      if (step && !step.done) {
        this.leftEarly = true;
        await this.source.return(undefined as never);
      }
    }
  }

  /** The drain started by reading `result` before anyone iterated (shared by every later read). */
  private draining: Promise<GenerationReport> | null = null;

  /** The whole report; drains the stream if nobody iterated it. */
  get result(): Promise<GenerationReport> {
    if (this.finished) return Promise.resolve(this.finished);
    if (!this.started) {
      this.draining = (async () => {
        for await (const _ of this) void _;
        return this.finished!;
      })();
    }
    if (this.leftEarly)
      return Promise.reject(
        new HsdError(
          "the loop over this generation was left early, which ended it: there is no result (to stop a generation and keep its result, use request.signal)",
        ),
      );
    return (
      this.draining ?? Promise.reject(new HsdError("the generation has not finished: await result after the loop"))
    );
  }
}

/**
 * The addon's message for a load or context failure: one line, without the path (the caller names it) or the
 * function names llama.cpp prefixes.
 */
function nativeReason(error: unknown, path: string): string {
  const message = error instanceof Error ? error.message : String(error);
  return message
    .replace(`llama.cpp could not load model file '${path}': `, "")
    .split(`'${path}'`)
    .join("the file")
    .replace(/llama_model_load(_from_file_impl)?: (error loading model: |failed to load model)/g, "")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 400);
}

/**
 * glibc keeps the memory llama.cpp frees with the models in its heap: without this, RSS grew ~0.4 MiB per
 * open/dispose cycle of the bundled family (test/memory.test.ts). An addon without trimMemory is skipped.
 */
function releaseFreedMemory(): void {
  (loadNative().addon as { trimMemory?: () => boolean }).trimMemory?.();
}
