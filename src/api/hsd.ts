// The script API: open a folder (or files), plan, generate, dispose.
//
//   const hsd = await Hsd.open({ models: "./models" });
//   const run = hsd.generate("Once upon a time", { maxTokens: 64 });
//   for await (const chunk of run) process.stdout.write(chunk.text);
//   console.log((await run.result).stats);
//   await hsd.dispose();

import { fileURLToPath } from "node:url";
import { basename, resolve } from "node:path";
import { groupWithTarget, scanModelFolder, type RejectedFile } from "../models/scan.js";
import { readModelInfo, type ModelInfo } from "../gguf/model-info.js";
import { HsdError, InvalidOptionError, ModelFolderError, VocabularyMismatchError } from "../errors.js";
import { contextOptions, defaultThreads, loadModel, nativeBackend } from "../native/index.js";
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
import { checkLearned, OnlinePlanner, type OnlineReport } from "./online.js";
import { replannerFor, type Replanner } from "./replanner.js";
import { planFromCalibration, plannerInput, type NgramMode, type PlanReport } from "./plan.js";
import { bestThresholds } from "../planner/index.js";
import { DEFAULT_MAX_THRESHOLD, DEFAULT_MAX_TOKENS, SMALL_MODEL_PARAMETERS } from "../defaults.js";
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
  /**
   * A static n-gram table (`hsd ngram build`) as one more model-free level: a file, or null for none. Default: the
   * table `hsd ngram build` stored for the target's tokenizer in the cache folder, if there is one.
   */
  ngramTable?: string | null;
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
  /** Online estimates and plans, per sampling transform and T_max (docs/ALGORITHM.md §10). */
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
    /** The rpc-servers and the models that run on them (null: every model is local). */
    readonly rpc: { servers: string[]; files: string[] } | null = null,
  ) {}

  static async open(options: OpenOptions = {}): Promise<Hsd> {
    const ngram = options.ngram ?? "auto";
    if (ngram !== "auto" && ngram !== "on" && ngram !== "off") {
      throw new InvalidOptionError(`ngram must be "auto", "on" or "off", got ${String(ngram)}`);
    }
    if (options.threads !== undefined && (!Number.isInteger(options.threads) || options.threads < 1)) {
      throw new InvalidOptionError(`threads must be a positive integer, got ${options.threads}`);
    }
    const gpuLayers = options.gpuLayers ?? 0;
    const flashAttention = options.flashAttention ?? (gpuLayers > 0 ? "auto" : "off");
    let infos: ModelInfo[];
    let rejected: RejectedFile[];
    if (options.files && options.files.length > 0) {
      infos = await Promise.all(options.files.map((f) => readModelInfo(resolve(f))));
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
    const rpc = rpcPlacement(options, infos);
    const loaded: LoadedModel[] = [];
    // Models on RPC devices run in a child process (src/rpc/remote-model.ts), started after the servers answered.
    const host = rpc ? await RemoteModelHost.start({ servers: rpc.servers, timeoutMs: options.rpcTimeoutMs }) : null;
    try {
      for (const info of infos) {
        const native =
          host && rpc!.files.includes(info.file)
            ? await host.loadModel(info.path)
            : await loadModel(info.path, { gpuLayers });
        try {
          const context = native.createContext(
            contextOptions(native, { contextSize: options.contextSize, threads, flashAttention }),
          );
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
    // The device string keys the calibration cache: passes over RPC cost what those servers (and the network to
    // them) cost, so they are part of it.
    const device =
      `${nativeBackend()}${gpuLayers > 0 ? `, ${gpuLayers} GPU layers` : ", CPU"}` +
      (rpc ? `; over RPC (${rpc.files.join(", ")}): ${rpc.servers.map((s) => s.label).join(", ")}` : "");
    const targetInfo = loaded[loaded.length - 1]!.info;
    const lookup = ngram === "off" ? null : new ContextLookupLevel(targetInfo.vocabSize, options.lookup ?? {});
    let table: Hsd["table"] = null;
    if (ngram !== "off") {
      try {
        table = await openNgramTable(options.ngramTable, targetInfo);
      } catch (error) {
        for (const m of loaded) {
          m.context.dispose();
          m.native.dispose();
        }
        throw error;
      }
    }
    const remote = rpc ? { servers: rpc.servers.map((s) => s.label), files: rpc.files } : null;
    return new Hsd(loaded, rejected, threads, device, flashAttention, ngram, lookup, table, remote);
  }

  get target(): LoadedModel {
    return this.models[this.models.length - 1]!;
  }

  /** Measure (or load from the cache) costs and acceptance for these models and settings. */
  async calibrate(request: PlanRequest = {}): Promise<Calibration> {
    this.checkOpen();
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
      lookup: this.lookupCalibration(),
      otherProposals: this.table ? [this.table.level] : [],
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
      transform,
      lookup: this.lookupCalibration(),
      ngram: this.ngram,
      maxThreshold,
    });
  }

  /** A full recalibration replaces what was learned: drop it from memory and from the cache. */
  private async forgetLearned(transform: SamplingTransform, maxThreshold: number): Promise<void> {
    this.planners.delete(JSON.stringify({ transform, maxThreshold }));
    await new CalibrationCache().delete("learned", await this.learnedKey(transform, maxThreshold));
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
    const key = JSON.stringify({ transform, maxThreshold });
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
    const cache = new CalibrationCache();
    // The request's prompts, if any, for the cached full calibration looked up and for a quick one.
    const options = { ...this.calibrationOptions({ ...request, maxThreshold, recalibrate: false }), transform };
    const levels = this.allLevels;
    const proposals = levels.filter((l) => l.kind === "proposal").map((l) => l.name);
    const states = this.lookupCalibration()?.states ?? [0];
    const learned = checkLearned(
      await cache.get("learned", await this.learnedKey(transform, maxThreshold)),
      this.models.map((m) => m.info),
      proposals,
      states,
    );
    const prior =
      learned?.calibration ??
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

  /** Streams text; `await run.result` for the whole report. */
  generate(prompt: string, request: GenerateRequest = {}): GenerationRun {
    this.checkOpen();
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
      const fresh = !this.planners.has(JSON.stringify({ transform, maxThreshold }));
      if (adapt && request.plan?.recalibrate) await this.calibrate({ ...request.plan, sampling: request.sampling });
      online = await this.onlinePlanner(transform, maxThreshold, request.plan ?? {});
      if (fresh) priorMs = performance.now() - started;
    }
    // The plan to run, by level names.
    let plan: PlanReport | null = null;
    let named: NamedPlan;
    if (adapt) {
      named = online!.plan;
    } else if (auto) {
      plan = await this.plan({ ...request.plan, sampling: request.sampling });
      named = namedPlan(plan);
    } else {
      const pinned = request.hierarchy as Hierarchy;
      let thresholds = pinned.thresholds;
      if (thresholds === undefined && pinned.files.length === 1) thresholds = [];
      if (thresholds === undefined) {
        // A pinned chain without thresholds: the latency model's best thresholds for it (a full calibration).
        this.resolveChain({ files: pinned.files, thresholds: pinned.files.slice(1).map(() => 1) });
        plan = await this.plan({ ...request.plan, sampling: request.sampling });
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
    for (const m of this.models) m.context.setSampling(transform);
    const levels = this.allLevels;
    const levelOf = (name: string) => levels.find((l) => l.name === name)!;
    const bounds = this.lookupCalibration()?.states ?? [0];
    const state = (sequence: Int32Array, committed: number) =>
      stateOf(bounds, this.lookup!.match(sequence, committed).length);
    const initial = online ? online.live(named) : livePlan(named, levelOf, state);
    const blockOf = (p: NamedPlan) => Math.max(...p.chains.map((c) => c.thresholds.reduce((a, b) => a + b, 0)));
    const decoder = new AdaptiveDecoder({
      greedy: transform.greedy,
      rng: new Rng(seed),
      levels,
      // Room for the blocks of any plan it may switch to (at most two draft levels at T_max, as the policy planner
      // searches) and for the starting plan's own.
      maxDraftBlock: Math.max(blockOf(named), adapt ? 2 * maxThreshold : 0),
      initial,
      replan: adapt ? online!.replan : null,
      observer: online?.learner ?? null,
      budget: this.replanner?.background ? 1 : 100,
    });
    const target = this.target.native;
    const tokens = target.tokenize(prompt, true, false);
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
      try {
        await online.save(new CalibrationCache(), await this.learnedKey(transform, maxThreshold));
      } catch {
        // An unwritable cache loses what was learned for the next process, not this generation.
      }
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
    await this.replanner?.close();
    for (const m of this.models) {
      m.context.dispose();
      m.native.dispose();
    }
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
  const servers = parseRpcEndpoints(options.rpc, "rpc");
  if (options.rpcTimeoutMs !== undefined && !(Number.isFinite(options.rpcTimeoutMs) && options.rpcTimeoutMs >= 100))
    throw new InvalidOptionError(`rpcTimeoutMs must be at least 100 ms, got ${options.rpcTimeoutMs}`);
  const levels = options.rpcLevels ?? "target";
  const target = infos[infos.length - 1]!;
  let files: string[];
  if (levels === "target") files = [target.file];
  else if (levels === "all") files = infos.map((m) => m.file);
  else if (Array.isArray(levels)) {
    files = levels.map((name) => {
      const m = infos.find((x) => x.file === name || x.path === resolve(name) || x.file === basename(name));
      if (!m)
        throw new InvalidOptionError(
          `rpcLevels: ${name} is not one of the models (${infos.map((x) => x.file).join(", ")})`,
        );
      return m.file;
    });
  } else throw new InvalidOptionError(`rpcLevels must be "target", "all" or model file names, got ${String(levels)}`);
  return { servers, files };
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

  constructor(private readonly source: AsyncGenerator<GenerationChunk, GenerationReport, void>) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<GenerationChunk, void, void> {
    if (this.started) throw new HsdError("a generation can be iterated once");
    this.started = true;
    let step = await this.source.next();
    while (!step.done) {
      yield step.value;
      step = await this.source.next();
    }
    this.finished = step.value;
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
    return (
      this.draining ?? Promise.reject(new HsdError("the generation has not finished: await result after the loop"))
    );
  }
}
