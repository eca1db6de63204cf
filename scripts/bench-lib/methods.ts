// Which hierarchies the benchmark runs, and what the latency model predicts for each, from one calibration
// (the planner's own numbers: pass costs c_i(n) and acceptance a[lo][hi] measured by src/calibration).
//
//   autoregressive        the target alone
//   single <draft> T      every draft candidate at its best threshold by the formula
//   optimiser             the planner's pick (PlanReport.best), whatever its depth
//   other                 the best multi-draft chains the optimiser did not pick (the full chain first)
//   node-llama-cpp        DraftSequenceTokenPredictor with the planner's best single draft and its T
//
// Duplicates (the optimiser picking a single draft, say) are run once and carry both roles.

import { plannerInput, type PlanReport } from "../../src/api/plan.js";
import {
  bestThresholds,
  MeasuredPassCost,
  predictChain,
  type Acceptance,
  type LatencyPrediction,
  type PassCosts,
  type PlannerInput,
} from "../../src/planner/index.js";

type CostKind = "hot" | "cold" | "reshape";

export type Role = "autoregressive" | "single" | "optimiser" | "other" | "node-llama-cpp";

export interface BenchMethod {
  /** Stable key: "hsd:<chain>:<thresholds>" or "llama:<draft>:<T>". */
  id: string;
  label: string;
  roles: Role[];
  kind: "hsd" | "node-llama-cpp";
  /** Candidate indices (into the plan's candidates), smallest first, ending at the target. */
  chain: number[];
  files: string[];
  thresholds: number[];
  /** The formula's prediction from the calibration (null for node-llama-cpp: a different algorithm). */
  predicted: LatencyPrediction | null;
  /** Calibrated acceptance of each adjacent pair of the chain (a[chain[j]][chain[j+1]]). */
  calibratedAcceptance: number[];
  /** The formula with pass costs measured in the decoding pattern (src/calibration/decode-costs.ts) between the runs; filled by the benchmark. */
  predictedDecode?: LatencyPrediction | null;
  /** The same with acceptance calibrated on the benchmark's prompts; filled by the benchmark. */
  predictedWorkload?: LatencyPrediction | null;
  /** Engine time per token without models (overhead.ts); filled by the benchmark. */
  overheadMsPerToken?: number | null;
}

/** Short display names: the candidates' file names without their common prefix and the extension. */
export function shortNames(files: readonly string[]): string[] {
  const stems = files.map((f) => f.replace(/\.gguf$/i, ""));
  if (stems.length < 2) return stems;
  let prefix = stems[0]!;
  for (const s of stems) while (!s.startsWith(prefix)) prefix = prefix.slice(0, -1);
  // Cut only at a separator, so "hsd-tiny-0.1M" / "hsd-tiny-0.6M" give "0.1M" / "0.6M", not "1M" / "6M".
  const cut = Math.max(prefix.lastIndexOf("-"), prefix.lastIndexOf("_"), prefix.lastIndexOf("."));
  const n = cut >= 0 ? cut + 1 : 0;
  return stems.map((s) => (s.length > n ? s.slice(n) : s));
}

/** The planner's view of one calibration (a plan report): its input, and predictions from it. */
export class CalibratedModel {
  /** The optimiser's input for this calibration (what `predict` scores with). */
  readonly input: PlannerInput;
  readonly names: string[];
  readonly files: string[];
  private readonly curves: Record<CostKind, MeasuredPassCost>[];

  constructor(readonly plan: PlanReport) {
    this.input = plannerInput(plan.candidates, plan.acceptance, plan.maxThreshold);
    this.files = plan.candidates.map((c) => c.file);
    this.names = shortNames(this.files);
    this.curves = plan.candidates.map((c) => ({
      hot: new MeasuredPassCost(c.costs.hot, `hot costs of ${c.file}`),
      cold: new MeasuredPassCost(c.costs.cold, `cold costs of ${c.file}`),
      reshape: new MeasuredPassCost(c.costs.reshape, `shape-change costs of ${c.file}`),
    }));
  }

  /** The same calibration with other pass costs (e.g. measured between the runs): same acceptance. */
  withCosts(costs: readonly PassCosts[]): CalibratedModel {
    return new CalibratedModel({
      ...this.plan,
      candidates: this.plan.candidates.map((c, i) => ({ ...c, costs: costs[i]! })),
    });
  }

  /** The same pass costs with another acceptance matrix (e.g. measured on other prompts). */
  withAcceptance(acceptance: (number | null)[][]): CalibratedModel {
    return new CalibratedModel({ ...this.plan, acceptance });
  }

  get target(): number {
    return this.files.length - 1;
  }

  /** c(n) of candidate `model`: after its own pass (hot), another model's (cold), or the shape-change extra. */
  costAt(model: number, n: number, kind: CostKind): number {
    return this.curves[model]![kind].at(n);
  }

  acceptance(lo: number, hi: number): number {
    const v = this.plan.acceptance[lo]?.[hi];
    if (typeof v !== "number")
      throw new Error(`calibration has no acceptance for ${this.files[lo]} checked by ${this.files[hi]}`);
    return v;
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

/** Every subset of the drafts with at least `minDrafts` members, as chains ending at the target. */
function chainsWith(target: number, minDrafts: number): number[][] {
  const out: number[][] = [];
  for (let mask = 0; mask < 1 << target; mask++) {
    const drafts = [...Array(target).keys()].filter((d) => mask & (1 << d));
    if (drafts.length >= minDrafts) out.push([...drafts, target]);
  }
  return out;
}

export interface MethodOptions {
  maxThreshold: number;
  others: number;
  llama: boolean;
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
  for (let d = 0; d < K; d++) {
    const best = model.bestThresholds([d, K], options.maxThreshold);
    add([d, K], best.thresholds, "single");
  }
  const pick = model.plan.best;
  const pickChain = pick.chain.map((f) => indexOfFile(model, f));
  add(pickChain, [...pick.thresholds], "optimiser");
  if (options.others > 0) {
    const multi = chainsWith(K, 2)
      .map((chain) => ({ chain, ...model.bestThresholds(chain, options.maxThreshold) }))
      .filter((c) => c.chain.join(">") !== pickChain.join(">"))
      .sort((x, y) => y.chain.length - x.chain.length || x.ms - y.ms);
    // The full chain first (it exercises the deepest catch-up), then the best-predicted others.
    const full = multi.filter((c) => c.chain.length === K + 1);
    const rest = multi.filter((c) => c.chain.length !== K + 1).sort((x, y) => x.ms - y.ms);
    for (const c of [...full, ...rest].slice(0, options.others)) add(c.chain, c.thresholds, "other");
  }
  const methods = [...byId.values()];
  const single = model.plan.bestSingle;
  if (options.llama && single) {
    const chain = single.chain.map((f) => indexOfFile(model, f));
    const T = single.thresholds[0]!;
    methods.push({
      id: `llama:${chain[0]}:${T}`,
      label: `node-llama-cpp ${model.names[chain[0]!]} T=${T}`,
      roles: ["node-llama-cpp"],
      kind: "node-llama-cpp",
      chain,
      files: chain.map((i) => model.files[i]!),
      thresholds: [T],
      predicted: null,
      calibratedAcceptance: [model.acceptance(chain[0]!, chain[1]!)],
    });
  }
  return methods;
}
