// Which methods the benchmark runs for one (mode, prompt set), and what the latency model predicts for each, from
// the plan the product itself makes for that set (calibrated on prompts of the same kind, not the runs' own):
//
//   autoregressive        the target alone
//   single <model> T      every model draft at its best threshold by the formula
//   model-free T          each model-free level (the context lookup, a static n-gram table) as the only draft
//   adaptive              the product's default: planning while generating (docs/ALGORITHM.md §10), on an instance of
//                         its own that starts from an empty cache (a quick prior) and learns from its own runs only
//   optimiser             the product's pick from a full calibration: the routed policy when the plan has one
//   fixed                 the best fixed chain of the plan
//   other                 the best multi-draft model chains the optimiser did not pick
//   node-llama-cpp        its DraftSequenceTokenPredictor (the best single model draft and its T) and its
//                         InputLookupTokenPredictor (lookup in the input and the generated text)
//   llama.cpp             speculative-simple: draft-simple, each n-gram mode alone, ngram-simple,draft-simple at
//                         several lookup sizes (llama-cpp.ts)
//
// Duplicates (the optimiser picking a single draft, say) are run once and carry both roles.

import { plannerInput, type PlanReport } from "../../src/api/plan.js";
import {
  bestThresholds,
  MeasuredPassCost,
  perJudged,
  predictChain,
  type Acceptance,
  type LatencyPrediction,
  type PassCosts,
  type PlannerInput,
} from "../../src/planner/index.js";
import { llamaCppConfigs, type LlamaCppConfig } from "./llama-cpp.js";

type CostKind = "hot" | "cold" | "reshape";

export type Role =
  | "autoregressive"
  | "single"
  | "model-free"
  | "adaptive"
  | "optimiser"
  | "fixed"
  | "other"
  | "node-llama-cpp"
  | "llama.cpp";

export interface BenchMethod {
  /** Stable key: "hsd:<chain>:<thresholds>", "policy", "adaptive", "nlc:draft", "nlc:lookup" or "llama.cpp:<label>". */
  id: string;
  label: string;
  roles: Role[];
  kind: "hsd" | "hsd-policy" | "hsd-adaptive" | "node-llama-cpp" | "node-llama-cpp-lookup" | "llama.cpp";
  /** Candidate indices (into the plan's candidates), smallest first, ending at the target ([] for a policy). */
  chain: number[];
  /** Level names of the chain. */
  files: string[];
  thresholds: number[];
  /** The formula's prediction from the plan's calibration (null where the method is not hsd's). */
  predicted: LatencyPrediction | null;
  /** A policy's predicted ms/token from the plan (null for other methods). */
  policyPredictedMsPerToken?: number | null;
  /** Calibrated acceptance of each adjacent pair of the chain (per judged draft). */
  calibratedAcceptance: number[];
  /** llama.cpp's configuration. */
  llamaCpp?: LlamaCppConfig;
  /** The formula with pass costs measured between the runs; filled by the benchmark. */
  predictedDecode?: LatencyPrediction | null;
  /** The same with acceptance calibrated on the benchmark's prompts; filled by the benchmark. */
  predictedWorkload?: LatencyPrediction | null;
  /** A policy's (2) and (3): ms per token; filled by the benchmark. */
  policyDecodeMsPerToken?: number | null;
  policyWorkloadMsPerToken?: number | null;
  /** Engine time per token without models (overhead.ts); filled by the benchmark. */
  overheadMsPerToken?: number | null;
}

/** Short display names: the candidates' file names without their common prefix and the extension. */
export function shortNames(files: readonly string[]): string[] {
  const stems = files.map((f) => f.replace(/\.gguf$/i, ""));
  const models = stems.filter((s) => !s.startsWith("ngram"));
  if (models.length < 2) return stems;
  let prefix = models[0]!;
  for (const s of models) while (!s.startsWith(prefix)) prefix = prefix.slice(0, -1);
  // Cut only at a separator, so "hsd-tiny-0.1M" / "hsd-tiny-0.6M" give "0.1M" / "0.6M", not "1M" / "6M".
  const cut = Math.max(prefix.lastIndexOf("-"), prefix.lastIndexOf("_"), prefix.lastIndexOf("."));
  const n = cut >= 0 ? cut + 1 : 0;
  return stems.map((s) => (s.startsWith("ngram-") ? s.slice(6) : s.length > n ? s.slice(n) : s));
}

/** The planner's view of one calibration (a plan report): its input, and predictions from it. */
export class CalibratedModel {
  /** The optimiser's input for this calibration (what `predict` scores with). */
  readonly input: PlannerInput;
  readonly names: string[];
  readonly files: string[];
  /** Index of the first model candidate (1 when the context lookup is candidate 0). */
  readonly firstModel: number;
  private readonly curves: (Record<CostKind, MeasuredPassCost> | null)[];

  constructor(readonly plan: PlanReport) {
    this.input = plannerInput(plan.candidates, plan.acceptance, plan.maxThreshold);
    this.files = plan.candidates.map((c) => c.name);
    this.names = shortNames(this.files);
    this.firstModel = plan.candidates.findIndex((c) => c.kind === "model");
    this.curves = plan.candidates.map((c) =>
      c.kind === "model"
        ? {
            hot: new MeasuredPassCost(c.costs.hot, `hot costs of ${c.file}`),
            cold: new MeasuredPassCost(c.costs.cold, `cold costs of ${c.file}`),
            reshape: new MeasuredPassCost(c.costs.reshape, `shape-change costs of ${c.file}`),
          }
        : null,
    );
  }

  /** The same calibration with other pass costs of the models (e.g. measured between the runs): same acceptance. */
  withCosts(costs: readonly PassCosts[]): CalibratedModel {
    return new CalibratedModel({
      ...this.plan,
      candidates: this.plan.candidates.map((c, i) =>
        c.kind === "model" ? { ...c, costs: costs[i - this.firstModel]! } : c,
      ),
    });
  }

  /** The same pass costs with another acceptance matrix (e.g. a plan on other prompts). */
  withAcceptance(acceptance: PlanReport["acceptance"]): CalibratedModel {
    return new CalibratedModel({ ...this.plan, acceptance });
  }

  get target(): number {
    return this.files.length - 1;
  }

  /** The hsd model index (PassRecorder's) of a model candidate. */
  modelIndex(candidate: number): number {
    return candidate - this.firstModel;
  }

  /** c(n) of model candidate `model`: after its own pass (hot), another model's (cold), or the shape-change extra. */
  costAt(model: number, n: number, kind: CostKind): number {
    const c = this.curves[model];
    if (!c) throw new Error(`${this.files[model]} is not a model: it has no pass costs`);
    return c[kind].at(n);
  }

  acceptance(lo: number, hi: number): number {
    const v = this.plan.acceptance[lo]?.[hi];
    if (v === null || v === undefined) {
      throw new Error(`calibration has no acceptance for ${this.files[lo]} checked by ${this.files[hi]}`);
    }
    return perJudged(v);
  }

  /**
   * The formula for a chain. `acceptance` / `byPosition` override the calibrated rates (one per adjacent pair),
   * for the diagnostics that replay a run's measured acceptance.
   */
  predict(
    chain: readonly number[],
    thresholds: readonly number[],
    acceptance?: readonly number[],
    byPosition?: (readonly number[] | null)[],
  ): LatencyPrediction {
    const replay: Acceptance[] | null = acceptance
      ? acceptance.map((a, j) => (byPosition?.[j] && byPosition[j]!.length > 0 ? byPosition[j]! : a))
      : null;
    const p = predictChain(this.input, chain, thresholds, replay);
    // Short names in the per-level figures (the input carries file names).
    p.levels.forEach((l, i) => (l.name = this.names[chain[i]!]!));
    return p;
  }

  /** Best thresholds for a fixed chain: the optimiser's `bestThresholds`. */
  bestThresholds(chain: readonly number[], maxThreshold: number): { thresholds: number[]; ms: number } {
    const plan = bestThresholds({ ...this.input, maxThreshold }, chain);
    return { thresholds: plan.thresholds, ms: plan.predictedMsPerToken };
  }

  label(chain: readonly number[], thresholds: readonly number[]): string {
    const names = chain.map((i) => this.names[i]!);
    return thresholds.length === 0 ? names[0]! : `${names.join(">")} T=${thresholds.join(",")}`;
  }
}

function indexOfFile(model: CalibratedModel, file: string): number {
  const i = model.files.indexOf(file);
  if (i < 0)
    throw new Error(`plan names ${file}, which is not among the calibrated candidates (${model.files.join(", ")})`);
  return i;
}

/** Every subset of the model drafts with at least `minDrafts` members, as chains ending at the target. */
function modelChainsWith(first: number, target: number, minDrafts: number): number[][] {
  const out: number[][] = [];
  const drafts = target - first;
  for (let mask = 0; mask < 1 << drafts; mask++) {
    const chosen = [...Array(drafts).keys()].filter((d) => mask & (1 << d)).map((d) => d + first);
    if (chosen.length >= minDrafts) out.push([...chosen, target]);
  }
  return out;
}

export interface MethodOptions {
  maxThreshold: number;
  others: number;
  /** node-llama-cpp's baselines. */
  llama: boolean;
  /** llama.cpp's speculative-simple configurations. */
  llamaCpp: boolean;
  /** The product's default, planning while generating. */
  adaptive: boolean;
}

export function buildMethods(model: CalibratedModel, options: MethodOptions): BenchMethod[] {
  const K = model.target;
  const byId = new Map<string, BenchMethod>();
  const add = (chain: number[], thresholds: number[], role: Role): void => {
    const id = `hsd:${chain.join(">")}:${thresholds.join(",")}`;
    const existing = byId.get(id);
    if (existing) {
      if (!existing.roles.includes(role)) existing.roles.push(role);
      return;
    }
    byId.set(id, {
      id,
      label: model.label(chain, thresholds),
      roles: [role],
      kind: "hsd",
      chain,
      files: chain.map((i) => model.files[i]!),
      thresholds,
      predicted: model.predict(chain, thresholds),
      calibratedAcceptance: chain.slice(1).map((hi, j) => model.acceptance(chain[j]!, hi)),
    });
  };
  add([K], [], "autoregressive");
  for (let d = model.firstModel; d < K; d++)
    add([d, K], model.bestThresholds([d, K], options.maxThreshold).thresholds, "single");
  // Each model-free level (the context lookup, a static n-gram table) as the only draft.
  for (let p = 0; p < model.firstModel; p++)
    add([p, K], model.bestThresholds([p, K], options.maxThreshold).thresholds, "model-free");
  const plan = model.plan;
  const bestChain = plan.best.chain.map((f) => indexOfFile(model, f));
  if (plan.policy) {
    byId.set("policy", {
      id: "policy",
      label: `policy (${plan.policy.states.length} lookup states)`,
      roles: ["optimiser"],
      kind: "hsd-policy",
      chain: [],
      files: [],
      thresholds: [],
      predicted: null,
      policyPredictedMsPerToken: plan.policy.predictedMsPerToken,
      calibratedAcceptance: [],
    });
    add(bestChain, [...plan.best.thresholds], "fixed");
  } else {
    add(bestChain, [...plan.best.thresholds], "optimiser");
  }
  if (options.adaptive) {
    byId.set("adaptive", {
      id: "adaptive",
      label: "adaptive (the default)",
      roles: ["adaptive"],
      kind: "hsd-adaptive",
      chain: [],
      files: [],
      thresholds: [],
      predicted: null,
      calibratedAcceptance: [],
    });
  }
  if (options.others > 0) {
    const multi = modelChainsWith(model.firstModel, K, 2)
      .map((chain) => ({ chain, ...model.bestThresholds(chain, options.maxThreshold) }))
      .filter((c) => c.chain.join(">") !== bestChain.join(">"));
    // The full model chain first (it exercises the deepest catch-up), then the best-predicted others.
    const depth = K - model.firstModel + 1;
    const full = multi.filter((c) => c.chain.length === depth);
    const rest = multi.filter((c) => c.chain.length !== depth).sort((x, y) => x.ms - y.ms);
    for (const c of [...full, ...rest].slice(0, options.others)) add(c.chain, c.thresholds, "other");
  }
  const methods = [...byId.values()];
  // The best single model draft: the ecosystem's baselines run it at its T.
  const singles = methods.filter((m) => m.roles.includes("single"));
  const bestSingle = singles.reduce<BenchMethod | null>(
    (a, b) => (a === null || b.predicted!.msPerToken < a.predicted!.msPerToken ? b : a),
    null,
  );
  if (bestSingle) {
    const T = bestSingle.thresholds[0]!;
    const draftChain = bestSingle.chain;
    if (options.llama) {
      methods.push({
        id: "nlc:draft",
        label: `node-llama-cpp draft ${model.names[draftChain[0]!]} T=${T}`,
        roles: ["node-llama-cpp"],
        kind: "node-llama-cpp",
        chain: draftChain,
        files: draftChain.map((i) => model.files[i]!),
        thresholds: [T],
        predicted: null,
        calibratedAcceptance: [model.acceptance(draftChain[0]!, draftChain[1]!)],
      });
      methods.push({
        id: "nlc:lookup",
        label: "node-llama-cpp input lookup",
        roles: ["node-llama-cpp"],
        kind: "node-llama-cpp-lookup",
        chain: [K],
        files: [model.files[K]!],
        thresholds: [],
        predicted: null,
        calibratedAcceptance: [],
      });
    }
    if (options.llamaCpp) {
      for (const config of llamaCppConfigs(T)) {
        methods.push({
          id: `llama.cpp:${config.label}`,
          label: `llama.cpp ${config.label}`,
          roles: ["llama.cpp"],
          kind: "llama.cpp",
          chain: draftChain,
          files: draftChain.map((i) => model.files[i]!),
          thresholds: [T],
          predicted: null,
          calibratedAcceptance: [],
          llamaCpp: config,
        });
      }
    }
  }
  return methods;
}
