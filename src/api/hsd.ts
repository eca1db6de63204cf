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
import {
  GgufFormatError,
  HsdError,
  InvalidOptionError,
  ModelFolderError,
  PromptTooLongError,
  RpcServerError,
  VocabularyMismatchError,
} from "../errors.js";
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
import { AdaptiveDecoder } from "../engine/adaptive.js";
import type { RoutingStats } from "../engine/routed.js";
import { ContextLookupLevel, type LookupOptions } from "../levels/ngram-lookup.js";
import type { NgramTableLevel } from "../levels/ngram-table.js";
import { openNgramTable } from "./ngram.js";
import type { Level } from "../levels/level.js";
import { stateOf } from "../calibration/measure.js";
import { CalibrationCache, cacheKey } from "../calibration/cache.js";
import { generate, type GenerationChunk, type GenerationResult } from "../engine/generate.js";
import { Rng } from "../util/rng.js";
import { toTransform, type SamplingSettings } from "./sampling.js";
import {
  cachedCalibration,
  calibrate,
  modelIdentities,
  type Calibration,
  type CalibrationOptions,
  type LookupCalibration,
} from "../calibration/calibrate.js";
import type { SamplingTransform } from "../native/types.js";
import { fixedPlan, livePlan, namedPlan, type NamedPlan } from "./adaptive.js";
import { isLearnedEntry, OnlinePlanner, type OnlineReport } from "./online.js";
import { replannerFor, type Replanner } from "./replanner.js";
import { planFromCalibration, plannerInput, type NgramMode, type PlanReport } from "./plan.js";
import { bestThresholds } from "../planner/index.js";
import { DEFAULT_MAX_THRESHOLD, DEFAULT_MAX_TOKENS, SMALL_MODEL_PARAMETERS } from "../defaults.js";
import { checkGenerateRequest, checkOpenOptions, checkPlanRequest, checkThresholdsFit } from "./options.js";
import { parseRpcEndpoints } from "../rpc/endpoints.js";
import { RemoteModelHost } from "../rpc/remote-model.js";

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
   * Model-free levels (a context lookup, docs/ALGORITHM.md §8–9): "auto" (default) lets the planner route each
   * step by the lookup's match, "on" uses the lookup wherever it matches, "off" never.
   */
  ngram?: NgramMode;
  /** The context lookup's match lengths: it proposes after at least `minMatch` tokens (default 1, measured up to `maxMatch`, 8). */
  lookup?: Pick<LookupOptions, "minMatch" | "maxMatch">;
  /** Where calibrations and what runs learned are kept (default: $HSD_CACHE_DIR, else ~/.cache/hsd-llm). */
  cacheDir?: string;
  /**
   * A static n-gram table (`hsd ngram build`) as one more model-free level: a file, or null for none. Default: the
   * table `hsd ngram build` stored for the target's tokenizer in the cache folder, if there is one.
   */
  ngramTable?: string | null;
  /**
   * Where warnings go: settings that will run badly (more threads than CPUs, GPU layers without a GPU build), a
   * calibration cache that cannot be read or written. Default: process.emitWarning.
   */
  onWarning?: (message: string) => void;
  /**
   * rpc-servers ("host:port", llama.cpp's RPC backend: ggml-rpc-server on other machines) whose devices run the
   * target's layers; the drafts stay on this machine (README, "A remote target over RPC"). Needs a llama.cpp with
   * RPC (`npm run build:llama -- --rpc-only`). The servers are checked first: one that refuses, does not answer or
   * speaks another protocol version is an RpcServerError naming it, within a few seconds.
   */
  rpc?: string | string[];
  /** Which models run on the rpc-servers: "target" (default), "all", or model file names. */
  rpcLevels?: "target" | "all" | string[];
  /**
   * How long one pass on the rpc-servers may take before they count as not answering, ms (default 30000). A fault
   * (a server that dies, stops answering or breaks the connection mid-generation) is an RpcServerError naming it.
   */
  rpcTimeoutMs?: number;
}

export interface Hierarchy {
  /** Level names, smallest first, ending with the target: model files, or "ngram-lookup" at the bottom. */
  files: string[];
  /** One threshold per draft model; when left out, the latency model's best for this chain (calibrates if needed). */
  thresholds?: number[];
}

export interface GenerateRequest {
  maxTokens?: number;
  sampling?: SamplingSettings;
  /**
   * "auto" (default): the latency model's pick — while generating, from estimates that learn from every pass
   * (`adapt`); or a pinned chain.
   */
  hierarchy?: "auto" | Hierarchy;
  /**
   * Plan while generating (docs/ALGORITHM.md §10; default true with hierarchy "auto"): start from what earlier
   * runs learned (or a quick prior: no calibration wait), re-plan as the estimates learn, switch when another plan
   * is predicted faster. false: one plan from a full calibration (`hsd calibrate`), kept for the whole generation.
   */
  adapt?: boolean;
  /**
   * Feed this generation's passes and verdicts to the instance's online estimates (default: when adapting). A
   * pinned plan that learns reports what the estimates predict for it (`online.predictedMsPerToken`).
   */
  learn?: boolean;
  /** How to plan, when the plan is needed (calibration prompts, T_max, …); the sampling is this request's. */
  plan?: Omit<PlanRequest, "sampling">;
  stop?: string[];
  signal?: AbortSignal;
}

/** A prompt given as token ids of the models' shared vocabulary. */
export type PromptTokens = Int32Array | readonly number[];

export interface GenerationReport extends GenerationResult {
  /** The chain that ran (with a routed policy: the chain of its most frequent state; `policy` has them all). */
  hierarchy: Required<Hierarchy>;
  /** With a routed policy: each state's chain (stats.routing has what each state did in this run). */
  policy: { states: { name: string; files: string[]; thresholds: number[] }[] } | null;
  seed: number;
  /** The full-calibration plan, when one was made (adapt false, or a pinned chain without thresholds). */
  plan: PlanReport | null;
  /** Planning while generating: where the estimates started, re-plans and switches, the prediction at the end. */
  online: OnlineReport | null;
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
  /** The last generation's learned estimates being written to the cache (awaited by the next one and by dispose). */
  private saving: Promise<void> = Promise.resolve();
  private readonly planCache = new Map<string, PlanReport>();
  /**
   * Online estimates and plans (docs/ALGORITHM.md §10), one for greedy decoding and one for sampling, per T_max:
   * requests at other temperatures share the sampling one (its estimates follow the mix they see), so a server
   * does not pay a prior per temperature.
   */
  private readonly planners = new Map<string, Promise<OnlinePlanner>>();
  private replanner: Replanner | null = null;

  private constructor(
    /** Compatible models, smallest first; the last is the target. */
    readonly models: readonly LoadedModel[],
    /** Files that were found but cannot take part, with the reason. */
    readonly rejected: readonly RejectedFile[],
    readonly threads: number,
    readonly device: string,
    readonly flashAttention: FlashAttention,
    /** Whether and how the context lookup takes part. */
    readonly ngram: NgramMode,
    /** The context lookup (null with ngram "off"). */
    readonly lookup: ContextLookupLevel | null,
    /** The static n-gram table and its file (null: none, or ngram "off"). */
    readonly table: { level: NgramTableLevel; path: string; size: number; mtimeMs: number } | null,
    /** Calibrations and what runs learned. */
    private readonly cache: CalibrationCache,
    private readonly warn: (message: string) => void,
    /** The rpc-servers and the models that run on them (null: every model is local). */
    readonly rpc: { servers: string[]; files: string[] } | null,
  ) {}

  static async open(options: OpenOptions = {}): Promise<Hsd> {
    checkOpenOptions(options);
    const ngram = options.ngram ?? "auto";
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
        throw refused.vocabulary ? new VocabularyMismatchError(message) : new InvalidOptionError(message);
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
    const rpc = rpcPlacement(options, infos);
    const loaded: LoadedModel[] = [];
    const targetInfo = infos[infos.length - 1]!;
    // Models on RPC devices run in a child process (src/rpc/remote-model.ts), started after the servers answered.
    const host = rpc ? await RemoteModelHost.start({ servers: rpc.servers, timeoutMs: options.rpcTimeoutMs }) : null;
    try {
      for (const info of infos) {
        let native: NativeModel;
        try {
          native =
            host && rpc!.files.includes(info.file)
              ? await host.loadModel(info.path)
              : await loadModel(info.path, { gpuLayers });
        } catch (error) {
          // A server that failed or stopped answering is the server's fault, not the file's: its error names it.
          if (error instanceof RpcServerError) throw error;
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
      host?.close();
      throw error;
    }
    // The device string keys the calibration cache and the learned estimates: passes over RPC cost what those
    // servers (and the network to them) cost, so they are part of it.
    const device =
      `${nativeBackend()}${offloaded > 0 ? `, ${offloaded} GPU layers` : ", CPU"}` +
      (rpc ? `; over RPC (${rpc.files.join(", ")}): ${rpc.servers.map((s) => s.label).join(", ")}` : "");
    const lookup = ngram === "off" ? null : new ContextLookupLevel(targetInfo.vocabSize, options.lookup ?? {});
    let table: Hsd["table"] = null;
    if (ngram !== "off") {
      try {
        table = await openNgramTable(options.ngramTable, targetInfo, options.cacheDir);
      } catch (error) {
        for (const m of loaded) {
          m.context.dispose();
          m.native.dispose();
        }
        throw error;
      }
    }
    const cache = new CalibrationCache(options.cacheDir, warn);
    const remote = rpc ? { servers: rpc.servers.map((s) => s.label), files: rpc.files } : null;
    return new Hsd(loaded, rejected, threads, device, flashAttention, ngram, lookup, table, cache, warn, remote);
  }

  get target(): LoadedModel {
    return this.models[this.models.length - 1]!;
  }

  /** Measure (or load from the cache) costs and acceptance for these models and settings. */
  async calibrate(request: PlanRequest = {}): Promise<Calibration> {
    this.checkOpen();
    checkPlanRequest(request);
    const options = this.calibrationOptions(request);
    if (request.recalibrate) await this.forgetLearned(options.transform, options.maxThreshold);
    return calibrate(this.models, options);
  }

  private calibrationOptions(request: PlanRequest): CalibrationOptions {
    return {
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
      lookup: this.lookupCalibration(),
      otherProposals: this.table ? [this.table.level] : [],
      cache: this.cache,
    };
  }

  /** Every level in candidate order: the model-free ones, then the models, the target last. */
  private get allLevels(): Level[] {
    return [this.lookup, this.table?.level ?? null, ...this.models.map((m) => m.level)].filter((l) => l !== null);
  }

  /** The cache key of what generations learned with these models and settings. */
  private async learnedKey(transform: SamplingTransform, maxThreshold: number): Promise<string> {
    return cacheKey({
      v: 1,
      files: await modelIdentities(this.models),
      device: this.device,
      threads: this.threads,
      flashAttention: this.flashAttention,
      greedy: transform.greedy,
      lookup: this.lookupCalibration(),
      ngram: this.ngram,
      maxThreshold,
    });
  }

  /** A full recalibration replaces what was learned: drop it from memory and from the cache. */
  private async forgetLearned(transform: SamplingTransform, maxThreshold: number): Promise<void> {
    this.planners.delete(plannerKey(transform, maxThreshold));
    await this.saving; // a write still under way would bring the entry back
    await this.cache.delete("learned", await this.learnedKey(transform, maxThreshold));
  }

  /**
   * The online planner for a transform (docs/ALGORITHM.md §10), made on first use from the best prior at hand:
   * what earlier runs learned (cache), else a full calibration in the cache, else a quick one (about a second).
   */
  private onlinePlanner(
    transform: SamplingTransform,
    maxThreshold: number,
    request: Omit<PlanRequest, "sampling">,
  ): Promise<OnlinePlanner> {
    const key = plannerKey(transform, maxThreshold);
    let planner = this.planners.get(key);
    if (!planner) {
      planner = this.makeOnlinePlanner(transform, maxThreshold, request);
      this.planners.set(key, planner);
      planner.catch(() => this.planners.delete(key)); // a failed prior is retried next time
    }
    return planner;
  }

  private async makeOnlinePlanner(
    transform: SamplingTransform,
    maxThreshold: number,
    request: Omit<PlanRequest, "sampling">,
  ): Promise<OnlinePlanner> {
    const cache = this.cache;
    // The request's prompts, if any, for the cached full calibration looked up and for a quick one.
    const options = { ...this.calibrationOptions({ ...request, maxThreshold, recalibrate: false }), transform };
    const levels = this.allLevels;
    const proposals = levels.filter((l) => l.kind === "proposal").map((l) => l.name);
    const states = this.lookupCalibration()?.states ?? [0];
    const learned = await cache.get(
      "learned",
      await this.learnedKey(transform, maxThreshold),
      isLearnedEntry(
        this.models.map((m) => m.info),
        proposals,
        states,
      ),
    );
    const prior =
      (learned ? { ...learned.calibration, source: "learned" as const } : null) ??
      (await cachedCalibration(this.models, options)) ??
      (await calibrate(this.models, { ...options, quick: true }));
    this.replanner ??= replannerFor(this.threads);
    return new OnlinePlanner({
      prior,
      source: prior.source,
      ...(learned ? { plan: learned.plan } : {}),
      infos: this.models.map((m) => m.info),
      maxThreshold,
      ngram: this.ngram,
      levels,
      lookup: this.lookup,
      states,
      replanner: this.replanner,
    });
  }

  /** The lookup's states: ranges of its match length (match 0, 1, 2, 3, 4-5, 6-7, 8+ with the defaults). */
  private lookupCalibration(): LookupCalibration | null {
    if (!this.lookup) return null;
    const { minMatch, maxMatch } = this.lookup;
    const bounds = [0, ...[1, 2, 3, 4, 6, 8, 12, 16].filter((b) => b >= minMatch && b <= maxMatch)];
    const others = this.table
      ? [{ name: this.table.level.name, path: this.table.path, size: this.table.size, mtimeMs: this.table.mtimeMs }]
      : [];
    return { minMatch, maxMatch, states: [...new Set(bounds)], others };
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
      this.ngram,
    );
    this.planCache.set(key, report);
    return report;
  }

  /**
   * Streams text; `await run.result` for the whole report. The prompt is text (tokenized as `hsd run` does: the
   * model's BOS rule, special-token text left as plain text) or token ids, e.g. a rendered chat template tokenized
   * with `tokenize(text, { parseSpecial: true })`.
   */
  generate(prompt: string | PromptTokens, request: GenerateRequest = {}): GenerationRun {
    this.checkOpen();
    if (typeof prompt !== "string" && !(prompt instanceof Int32Array) && !Array.isArray(prompt))
      throw new InvalidOptionError(`the prompt must be text or an array of token ids, got ${typeof prompt}`);
    checkGenerateRequest(request);
    return new GenerationRun(this.runGeneration(prompt, request));
  }

  /**
   * The target's tokenizer (every model shares it). `addSpecial` (default true) applies the model's BOS/EOS rule;
   * `parseSpecial` (default false) turns special-token text such as "<|im_end|>" into its id, as a rendered chat
   * template needs.
   */
  tokenize(text: string, options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): Int32Array {
    this.checkOpen();
    return this.target.native.tokenize(text, options.addSpecial ?? true, options.parseSpecial ?? false);
  }

  private async *runGeneration(
    prompt: string | PromptTokens,
    request: GenerateRequest,
  ): AsyncGenerator<GenerationChunk, GenerationReport, void> {
    if (typeof prompt === "string" ? prompt.trim().length === 0 : prompt.length === 0)
      throw new InvalidOptionError("the prompt is empty");
    if (this.busy)
      throw new HsdError(
        "another generation is running on this Hsd instance; await it first (or open a second instance)",
      );
    this.busy = true;
    try {
      await this.saving;
      return yield* this.generateUnlocked(prompt, request);
    } finally {
      this.busy = false;
    }
  }

  private async *generateUnlocked(
    prompt: string | PromptTokens,
    request: GenerateRequest,
  ): AsyncGenerator<GenerationChunk, GenerationReport, void> {
    const maxTokens = request.maxTokens ?? DEFAULT_MAX_TOKENS;
    if (!Number.isInteger(maxTokens) || maxTokens < 1)
      throw new InvalidOptionError(`max tokens must be a positive integer, got ${maxTokens}`);
    const transform = toTransform(request.sampling);
    const seed = request.sampling?.seed ?? Math.floor(Math.random() * 2 ** 31);
    const auto = request.hierarchy === undefined || request.hierarchy === "auto";
    const adapt = request.adapt ?? auto;
    if (adapt && !auto)
      throw new InvalidOptionError(
        'adapt: a pinned hierarchy does not adapt; leave hierarchy "auto" or set adapt false',
      );
    const learn = request.learn ?? adapt;
    const maxThreshold = request.plan?.maxThreshold ?? DEFAULT_MAX_THRESHOLD;

    let online: OnlinePlanner | null = null;
    let priorMs = 0;
    if (learn) {
      const started = performance.now();
      const fresh = !this.planners.has(plannerKey(transform, maxThreshold));
      if (adapt && request.plan?.recalibrate)
        await this.calibrate({ ...request.plan, sampling: request.sampling, signal: request.signal });
      online = await this.onlinePlanner(transform, maxThreshold, { ...request.plan, signal: request.signal });
      if (fresh) priorMs = performance.now() - started;
    }
    // The plan to run, by level names.
    let plan: PlanReport | null = null;
    let named: NamedPlan;
    if (adapt) {
      named = online!.plan;
    } else if (auto) {
      plan = await this.plan({ ...request.plan, sampling: request.sampling, signal: request.signal });
      named = namedPlan(plan);
    } else {
      const pinned = request.hierarchy as Hierarchy;
      let thresholds = pinned.thresholds;
      if (thresholds === undefined && pinned.files.length === 1) thresholds = [];
      if (thresholds === undefined) {
        // A pinned chain without thresholds: the latency model's best thresholds for it (a full calibration).
        this.resolveChain({ files: pinned.files, thresholds: pinned.files.slice(1).map(() => 1) });
        plan = await this.plan({ ...request.plan, sampling: request.sampling, signal: request.signal });
        thresholds = this.bestThresholds(plan, pinned.files);
      }
      // Checked (order, names, thresholds), and named as the levels name themselves.
      const chain = this.resolveChain({ files: pinned.files, thresholds });
      named = fixedPlan(
        chain.map((l) => l.name),
        thresholds,
        Number.NaN,
      );
    }
    const target = this.target.native;
    const tokens = typeof prompt === "string" ? target.tokenize(prompt, true, false) : this.checkTokens(prompt);
    const contextSize = Math.min(...this.models.map((m) => m.context.contextSize));
    const batchSize = Math.min(...this.models.map((m) => m.context.batchSize));
    const blockOf = (p: NamedPlan) => Math.max(...p.chains.map((c) => c.thresholds.reduce((a, b) => a + b, 0)));
    // Draft tokens one target pass can score after this prompt (besides the committed text's last token).
    const room = Math.min(contextSize - tokens.length, batchSize) - 1;
    if (adapt) {
      // The plan is the planner's choice, not the user's: near the context's end it shrinks rather than fails.
      if (tokens.length + 1 > contextSize) throw new PromptTooLongError(tokens.length, contextSize);
      if (blockOf(named) > room) named = fixedPlan([this.target.info.file], [], Number.NaN);
    } else {
      // A chosen plan must fit: a pass that cannot hold its block would end the generation before its first token.
      for (const chain of named.chains) checkThresholdsFit(chain.thresholds, tokens.length, contextSize, batchSize);
    }
    for (const m of this.models) m.context.setSampling(transform);
    const all = this.allLevels;
    const levelOf = (name: string) => all.find((l) => l.name === name)!;
    // The levels the decoder may run (and reports): all of them when the plan may change, else the plan's own.
    const used = new Set(named.chains.flatMap((c) => c.names));
    const levels = adapt ? all : all.filter((l) => used.has(l.name));
    const bounds = this.lookupCalibration()?.states ?? [0];
    const state = (sequence: Int32Array, committed: number) =>
      stateOf(bounds, this.lookup!.match(sequence, committed).length);
    const initial = online ? online.live(named) : livePlan(named, levelOf, state);
    // The target alone, as the measured guard's fallback (docs/ALGORITHM.md §10).
    const targetAlone = (planner: OnlinePlanner) => {
      const alone = fixedPlan([this.target.info.file], [], Number.NaN);
      return planner.live({ ...alone, predictedMsPerToken: planner.predict(alone) });
    };
    const decoder = new AdaptiveDecoder({
      greedy: transform.greedy,
      sampling: transform,
      rng: new Rng(seed),
      levels,
      // Room for the blocks of any plan it may switch to (at most two draft levels at T_max, as the policy planner
      // searches) and for the starting plan's own.
      maxDraftBlock: Math.max(blockOf(named), adapt ? Math.min(2 * maxThreshold, Math.max(0, room)) : 0),
      initial,
      replan: adapt ? online!.replan : null,
      ...(adapt ? { times: online!.times, baseline: targetAlone(online!), replanClock: online!.replanClock } : {}),
      observer: online?.learner ?? null,
      // Re-planning's share of the time: a worker's CPU still slows the models' passes on a machine whose cores share
      // caches and memory bandwidth (measured: 2 vCPUs here), so it too is bounded (docs/ALGORITHM.md §10).
      budget: this.replanner?.background ? 4 : 50,
    });
    const vocabulary = {
      isEndOfGeneration: (t: number) => target.isEndOfGeneration(t),
      tokenPiece: (t: number) => target.tokenPiece(t),
    };
    const result = yield* generate(decoder, vocabulary, tokens, {
      maxTokens,
      stop: request.stop,
      signal: request.signal,
    });
    let onlineReport: OnlineReport | null = null;
    let ran = named;
    if (online) {
      if (adapt) {
        online.remember(decoder.plan.label);
        ran = online.named(decoder.plan.label) ?? named;
      }
      onlineReport = {
        adapt,
        prior: online.source,
        priorMs,
        replans: decoder.replans,
        switches: decoder.switches,
        explorationSteps: decoder.explorationSteps,
        plan: ran.label,
        predictedMsPerToken: online.predict(ran),
        observations: online.learner.observedTotal,
      };
      // Written after the stream has ended: the caller's loop does not wait for the disk (a file write of a few
      // milliseconds, which the benchmark's decode window used to include). The next generation and dispose() wait
      // for it; the entry is read from the estimates before either can change them.
      const learnedKey = this.learnedKey(transform, maxThreshold);
      this.saving = learnedKey
        .then((key) => online.save(this.cache, key))
        .catch(() => {
          // An unwritable cache loses what was learned for the next process, not this generation.
        });
    }
    const busiest = ran.chains.length === 1 ? ran.chains[0]! : busiestChain(ran, result.stats.routing);
    const distinct = new Set(ran.chains.map((c) => `${c.names.join(">")}:${c.thresholds.join(",")}`));
    return {
      ...result,
      hierarchy: { files: busiest.names, thresholds: [...busiest.thresholds] },
      policy:
        distinct.size > 1
          ? {
              states: ran.states.map((name, s) => ({
                name,
                files: ran.chains[s]!.names,
                thresholds: ran.chains[s]!.thresholds,
              })),
            }
          : null,
      seed,
      plan,
      online: onlineReport,
    };
  }

  /** The best thresholds for a fixed chain, by the plan's latency model (docs/ALGORITHM.md §6). */
  private bestThresholds(plan: PlanReport, files: readonly string[]): number[] {
    const input = plannerInput(plan.candidates, plan.acceptance, plan.maxThreshold);
    const levels = this.resolveChain({ files: [...files], thresholds: files.slice(1).map(() => 1) });
    const chain = levels.map((l) => {
      const i = plan.candidates.findIndex((c) => c.name === l.name);
      if (i < 0) throw new InvalidOptionError(`hierarchy: ${l.name} was not calibrated (is --ngram off?)`);
      return i;
    });
    return bestThresholds(input, chain).thresholds;
  }

  /** A copy of caller-given token ids, each checked against the vocabulary. */
  private checkTokens(prompt: PromptTokens): Int32Array {
    const vocabSize = this.target.native.vocabSize;
    const tokens = Int32Array.from(prompt);
    for (let i = 0; i < prompt.length; i++) {
      const t = prompt[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize)
        throw new InvalidOptionError(`prompt token ${i} is ${t}: token ids are integers in [0, ${vocabSize})`);
    }
    return tokens;
  }

  /**
   * Maps a hierarchy's names onto levels, checking order and shape: model files (or paths) smallest first ending
   * with the target, and "ngram-lookup" only at the bottom.
   */
  private resolveChain(h: Required<Hierarchy>): Level[] {
    if (h.files.length === 0) throw new InvalidOptionError("the hierarchy names no model");
    if (h.thresholds.length !== h.files.length - 1) {
      throw new InvalidOptionError(
        `the hierarchy has ${h.files.length} levels, so it needs ${h.files.length - 1} thresholds, got ${h.thresholds.length}`,
      );
    }
    const proposals: Level[] = [this.lookup, this.table?.level ?? null].filter((l) => l !== null);
    let bottom: Level | null = null;
    const models = h.files.map((f, i) => {
      const proposal = proposals.find((p) => p.name === f);
      if (proposal) {
        if (i !== 0)
          throw new InvalidOptionError(`hierarchy: ${f} proposes without a model, so it can only come first`);
        bottom = proposal;
        return null;
      }
      const m = this.models.find((x) => x.info.file === f || x.info.path === resolve(f) || x.info.file === basename(f));
      if (!m) {
        const names = [...proposals.map((p) => p.name), ...this.models.map((x) => x.info.file)];
        throw new InvalidOptionError(`hierarchy: ${f} is not one of the loaded levels (${names.join(", ")})`);
      }
      return m;
    });
    if (models[models.length - 1] !== this.target)
      throw new InvalidOptionError(`hierarchy: the last model must be the target ${this.target.info.file}`);
    for (let i = 1; i < models.length; i++) {
      const lo = models[i - 1];
      if (lo && lo.info.parameterCount >= models[i]!.info.parameterCount) {
        throw new InvalidOptionError(
          `hierarchy: models must go from smallest to largest (${lo.info.file} is not smaller than ${models[i]!.info.file})`,
        );
      }
    }
    return models.map((m) => (m ? m.level : bottom!));
  }

  private checkOpen(): void {
    if (this.disposed) throw new HsdError("this Hsd instance has been disposed");
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.saving;
    await this.replanner?.close();
    for (const m of this.models) {
      m.context.dispose();
      m.native.dispose();
    }
    releaseFreedMemory();
  }
}

/** Which rpc-servers, and which models run on them (the target unless rpcLevels says otherwise); null without rpc. */
function rpcPlacement(
  options: OpenOptions,
  infos: readonly ModelInfo[],
): { servers: ReturnType<typeof parseRpcEndpoints>; files: string[] } | null {
  if (options.rpc === undefined) {
    if (options.rpcLevels !== undefined) throw new InvalidOptionError("rpcLevels needs rpc (the rpc-servers)");
    return null;
  }
  // Types and ranges (rpcTimeoutMs, rpcLevels) were checked by checkOpenOptions; here the names are resolved.
  const servers = parseRpcEndpoints(options.rpc, "rpc");
  const levels = options.rpcLevels ?? "target";
  const target = infos[infos.length - 1]!;
  let files: string[];
  if (levels === "target") files = [target.file];
  else if (levels === "all") files = infos.map((m) => m.file);
  else {
    files = levels.map((name) => {
      const m = infos.find((x) => x.file === name || x.path === resolve(name) || x.file === basename(name));
      if (!m)
        throw new InvalidOptionError(
          `rpcLevels: ${name} is not one of the models (${infos.map((x) => x.file).join(", ")})`,
        );
      return m.file;
    });
  }
  return { servers, files };
}

/** Which online planner a generation uses (Hsd.planners). */
function plannerKey(transform: SamplingTransform, maxThreshold: number): string {
  return JSON.stringify({ greedy: transform.greedy, maxThreshold });
}

/** The chain of the state where most steps ran (the report's `hierarchy` for a routed plan). */
function busiestChain(plan: NamedPlan, routing: RoutingStats | undefined): NamedPlan["chains"][number] {
  if (!routing) return plan.chains[plan.chains.length - 1]!;
  let best = 0;
  routing.states.forEach((s, i) => {
    if (s.steps > (routing.states[best]?.steps ?? -1)) best = i;
  });
  return plan.chains[best] ?? plan.chains[0]!;
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
