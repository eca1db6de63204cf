// From raw runs to the numbers the report prints: medians and spread over repetitions, ratios, predicted next to
// measured, acceptance per level (measured vs calibrated), and the diagnostics that say which assumption of the
// latency model breaks when a prediction is off:
//  - acceptance: replay the formula with the run's own measured acceptance (a scalar per level, then by position);
//    if that closes the gap, calibration's acceptance was the error (prompts, context, position dependence);
//  - pass costs and catch-up: the models' own time per token (Σ score() time) against the formula's model time
//    under the measured acceptance, and tokens fed per pass (catch-up included) measured vs predicted;
//  - overheads the formula leaves out: the engine's time outside score() (sampling, verification, rollback,
//    orchestration), per token.

import type { RunStats } from "../../src/engine/generate.js";
import {
  expectedLatency,
  type LatencyPrediction,
  type LevelSpec,
  type PassCostSample,
} from "../../src/planner/index.js";
import type { BenchMethod, CalibratedModel } from "./methods.js";
import type { SamplingMode } from "./options.js";
import type { RunRecord } from "./runner.js";
import { summarize, type Summary } from "./stats.js";

/** Positions with fewer judged drafts than this are not used for position-dependent replay (too noisy). */
export const MIN_JUDGED_AT_POSITION = 30;

export interface LevelComparison {
  name: string;
  passesPerToken: { measured: number; predicted: number };
  tokensPerPass: { measured: number; predicted: number };
  /** ms per token in this model's score() calls vs the formula (calibrated acceptance). */
  modelMsPerToken: { measured: number; predicted: number };
  /** Acceptance of this level's drafts by the next level (null for the target). */
  acceptance: { measured: number; calibrated: number; judged: number } | null;
  /** Measured acceptance by position in the block (positions with enough judged drafts). */
  acceptanceByPosition: number[] | null;
}

export interface MethodResult {
  id: string;
  label: string;
  roles: BenchMethod["roles"];
  kind: BenchMethod["kind"];
  files: string[];
  thresholds: number[];
  mode: SamplingMode;
  runs: number;
  tokens: number;
  /** Per repetition: Σ decodeMs / Σ decodeTokens over the prompts. */
  decodeMsPerToken: Summary;
  /** Per repetition: Σ wallMs / Σ tokens (prompt handling and first pass included). */
  wallMsPerToken: Summary;
  /**
   * Σ decodeMs / Σ decodeTokens over every run (all repetitions pooled): the comparator of the in-run replays,
   * which use pooled mean pass costs (the median over repetitions drops slow repetitions the means keep).
   */
  pooledDecodeMsPerToken: number;
  tokensPerSecond: number;
  speedupVsAutoregressive: number | null;
  speedupVsBestSingle: number | null;
  /** The planner's prediction: the formula on the planner's calibration (what `hsd plan` shows). */
  predictedMsPerToken: number | null;
  /** measured median / predicted - 1. */
  predictionError: number | null;
  /**
   * The latency model with its measured inputs: the formula on pass costs measured in the decoding pattern
   * (src/calibration/decode-costs.ts, measured between the runs) plus the engine's own time per token
   * (overhead.ts), calibrated acceptance: the report's prediction (2).
   */
  modelledMsPerToken: number | null;
  modelledError: number | null;
  /** Its two parts. */
  modelledParts: { formula: number; overhead: number } | null;
  /**
   * The same with acceptance calibrated on the benchmark's own prompts (continuations as long as the runs), as a
   * user who calibrates on their workload (`prompts`) gets: costs and acceptance both measured, nothing replayed.
   */
  workloadMsPerToken: number | null;
  workloadError: number | null;
  /** Prediction (2) replayed with this run's measured acceptance (scalar per level; by position). */
  replay: { measuredAcceptance: number; measuredAcceptanceByPosition: number } | null;
  /** Σ score() ms / tokens, and the formula's model time (decoding-pattern costs) under the measured acceptance. */
  modelMsPerToken: { measured: number; replayed: number } | null;
  /**
   * The formula on this method's own in-run pass costs (by model, n, cold/hot; runner.ts PassRecorder) and its
   * measured acceptance by position, plus the engine overhead measured without models: what is left between
   * this and the measurement is neither costs nor acceptance, i.e. the formula's structure or unmodelled time.
   */
  inRunReplay: number | null;
  /**
   * Out of sample: the formula on pass costs recorded in the OTHER hsd methods' runs of this mode (leave this
   * method out), calibrated acceptance, plus the engine overhead — what a planner that refines c(n) from the
   * passes it has already timed would predict.
   */
  otherRunsPrediction: number | null;
  otherRunsError: number | null;
  /**
   * Tokens per target pass: measured, and the formula's E[G] under the measured acceptance by position. A gap
   * here is the i.i.d. acceptance assumption failing (acceptance correlated across levels and positions).
   */
  tokensPerTargetPass: { measured: number; formula: number } | null;
  /** Engine time outside score() per token: in the runs, and measured without models (overhead.ts). */
  engineMsPerToken: number | null;
  levels: LevelComparison[] | null;
  /** Greedy: runs whose tokens equal the autoregressive run's for the same prompt and repetition. */
  greedyMatches: { same: number; of: number } | null;
  /** node-llama-cpp: validated / (validated + refuted); llama.cpp: accepted / drafted. */
  llamaAcceptance: number | null;
  /** Against llama.cpp's best ngram-simple,draft-simple (its fastest lookup size), measured in the same run. */
  speedupVsLlamaCppBest: number | null;
  /**
   * hsd methods: what the online estimates (docs/ALGORITHM.md §10) predicted for the method's plan at the end of
   * its last run in the cell, and measured median / that - 1; the plan then, where the estimates started from,
   * and the switches and exploration steps over the cell's runs.
   */
  online: {
    predictedMsPerToken: number;
    error: number;
    plan: string;
    prior: string;
    switches: number;
    explorationSteps: number;
  } | null;
  /** The adaptive default: its median over the fastest pinned hsd method's (hsd and policy kinds). */
  vsBestPinned: { ratio: number; best: string } | null;
}

interface Pooled {
  tokens: number;
  targetPasses: number;
  wallMs: number;
  engineMs: number;
  levels: {
    name: string;
    passes: number;
    tokensEvaluated: number;
    judged: number;
    accepted: number;
    scoreMs: number;
    judgedAt: number[];
    acceptedAt: number[];
  }[];
}

function pool(stats: RunStats[]): Pooled {
  const first = stats[0]!;
  const p: Pooled = {
    tokens: 0,
    targetPasses: 0,
    wallMs: 0,
    engineMs: 0,
    levels: first.levels.map((l) => ({
      name: l.name,
      passes: 0,
      tokensEvaluated: 0,
      judged: 0,
      accepted: 0,
      scoreMs: 0,
      judgedAt: [],
      acceptedAt: [],
    })),
  };
  for (const s of stats) {
    p.tokens += s.tokens;
    p.targetPasses += s.targetPasses;
    p.wallMs += s.wallMs;
    p.engineMs += s.engineMs;
    s.levels.forEach((l, i) => {
      const q = p.levels[i]!;
      q.passes += l.passes;
      q.tokensEvaluated += l.tokensEvaluated;
      q.judged += l.judged;
      q.accepted += l.accepted;
      q.scoreMs += l.scoreMs;
      l.judgedByPosition.forEach((n, j) => {
        q.judgedAt[j] = (q.judgedAt[j] ?? 0) + n;
        q.acceptedAt[j] = (q.acceptedAt[j] ?? 0) + Math.round((l.acceptanceByPosition[j] ?? 0) * n);
      });
    });
  }
  return p;
}

/** Measured acceptance by position, cut where fewer than MIN_JUDGED_AT_POSITION drafts were judged. */
function byPosition(level: Pooled["levels"][number]): number[] {
  const out: number[] = [];
  for (let j = 0; j < level.judgedAt.length; j++) {
    const n = level.judgedAt[j] ?? 0;
    if (n < MIN_JUDGED_AT_POSITION) break;
    out.push((level.acceptedAt[j] ?? 0) / n);
  }
  return out;
}

/** Per-repetition ratio Σ num / Σ den over the records of each repetition. */
function perRepetition(records: RunRecord[], num: (r: RunRecord) => number, den: (r: RunRecord) => number): number[] {
  const reps = new Map<number, { n: number; d: number }>();
  for (const r of records) {
    const x = reps.get(r.repetition) ?? { n: 0, d: 0 };
    x.n += num(r);
    x.d += den(r);
    reps.set(r.repetition, x);
  }
  return [...reps.values()].filter((x) => x.d > 0).map((x) => x.n / x.d);
}

/** Passes of a (model, n, cold) cell needed before its in-run mean replaces the decoding-pattern value. */
export const MIN_IN_RUN_PASSES = 3;

/** Pass times recorded in runs, summed per `model:n:cold` cell (cold = 1 when the pass followed another model's). */
function passTimeCells(records: readonly RunRecord[]): Map<string, { ms: number; count: number }> {
  const cells = new Map<string, { ms: number; count: number }>();
  for (const r of records) {
    for (const row of r.passTimes ?? []) {
      const key = `${row.model}:${row.n}:${row.cold ? 1 : 0}`;
      const x = cells.get(key) ?? { ms: 0, count: 0 };
      x.ms += row.ms;
      x.count += row.count;
      cells.set(key, x);
    }
  }
  return cells;
}

/**
 * Per chain level, hot and cold c(n) from the runs' recorded passes, n = 1 … the largest the formula may ask for;
 * cells with fewer than MIN_IN_RUN_PASSES passes take the decoding-pattern value of `fallback`.
 */
export function inRunCosts(
  records: readonly RunRecord[],
  m: BenchMethod,
  fallback: CalibratedModel,
): ({ hot: PassCostSample[]; cold: PassCostSample[] } | null)[] | null {
  const cells = passTimeCells(records);
  if (cells.size === 0) return null;
  const maxN = m.thresholds.reduce((a, b) => a + b, 0) + m.chain.length + 2;
  /** Recorded passes are keyed by hsd's model index (PassRecorder), the fallback by candidate index. */
  const table = (candidate: number, cold: boolean): PassCostSample[] => {
    const samples = [];
    for (let n = 1; n <= maxN; n++) {
      const c = cells.get(`${fallback.modelIndex(candidate)}:${n}:${cold ? 1 : 0}`);
      samples.push({
        n,
        ms: c && c.count >= MIN_IN_RUN_PASSES ? c.ms / c.count : fallback.costAt(candidate, n, cold ? "cold" : "hot"),
      });
    }
    return samples;
  };
  return m.chain.map((candidate) =>
    fallback.plan.candidates[candidate]!.kind === "model"
      ? { hot: table(candidate, false), cold: table(candidate, true) }
      : null,
  );
}

/**
 * The chain's levels with costs recorded in the runs (no shape-change extra: the runs do not separate it); a
 * proposal level keeps the plan's profile.
 */
function inRunLevels(
  costs: ({ hot: PassCostSample[]; cold: PassCostSample[] } | null)[],
  m: BenchMethod,
  model: CalibratedModel,
): LevelSpec[] {
  return costs.map((c, j) =>
    c ? { kind: "model", name: m.files[j]!, costs: c } : model.input.candidates[m.chain[j]!]!,
  );
}

function sumModelMs(p: LatencyPrediction): number {
  return p.levels.reduce((s, l) => s + l.msPerToken, 0);
}

/**
 * `model` is the planner's calibration; `decodeModel` the same with decoding-pattern costs (null: not measured,
 * then the modelled columns use the planner's costs).
 */
export function analyse(
  model: CalibratedModel,
  methods: readonly BenchMethod[],
  records: readonly RunRecord[],
  mode: SamplingMode,
  decodeModel: CalibratedModel | null = null,
): MethodResult[] {
  const costModel = decodeModel ?? model;
  const results: MethodResult[] = [];
  const ar = methods.find((m) => m.roles.includes("autoregressive"));
  const arRuns = new Map<string, string>();
  if (ar) for (const r of records) if (r.method === ar.id) arRuns.set(`${r.repetition}:${r.prompt}`, r.tokensHash);

  for (const m of methods) {
    const mine = records.filter((r) => r.method === m.id && r.mode === mode);
    if (mine.length === 0) continue;
    const decode = perRepetition(
      mine,
      (r) => r.decodeMs,
      (r) => r.decodeTokens,
    );
    const wall = perRepetition(
      mine,
      (r) => r.wallMs,
      (r) => r.tokens,
    );
    if (decode.length === 0)
      throw new Error(`${m.label} (${mode}): no run produced more than one chunk of tokens; raise --max-tokens`);
    const decodeSummary = summarize(decode);
    const result: MethodResult = {
      id: m.id,
      label: m.label,
      roles: m.roles,
      kind: m.kind,
      files: m.files,
      thresholds: m.thresholds,
      mode,
      runs: mine.length,
      tokens: mine.reduce((s, r) => s + r.tokens, 0),
      decodeMsPerToken: decodeSummary,
      wallMsPerToken: summarize(wall),
      pooledDecodeMsPerToken:
        mine.reduce((a, r) => a + r.decodeMs, 0) /
        Math.max(
          1,
          mine.reduce((a, r) => a + r.decodeTokens, 0),
        ),
      tokensPerSecond: 1000 / decodeSummary.median,
      speedupVsAutoregressive: null,
      speedupVsBestSingle: null,
      predictedMsPerToken: m.predicted?.msPerToken ?? m.policyPredictedMsPerToken ?? null,
      predictionError: null,
      modelledMsPerToken: null,
      modelledError: null,
      modelledParts: null,
      workloadMsPerToken: null,
      workloadError: null,
      replay: null,
      modelMsPerToken: null,
      inRunReplay: null,
      otherRunsPrediction: null,
      otherRunsError: null,
      tokensPerTargetPass: null,
      engineMsPerToken: null,
      levels: null,
      greedyMatches: null,
      llamaAcceptance: null,
      speedupVsLlamaCppBest: null,
      online: null,
      vsBestPinned: null,
    };
    const last = mine[mine.length - 1]!.online;
    if (last) {
      result.online = {
        predictedMsPerToken: last.predictedMsPerToken,
        error: decodeSummary.median / last.predictedMsPerToken - 1,
        plan: last.plan,
        prior: mine[0]!.online!.prior,
        switches: mine.reduce((a, r) => a + (r.online?.switches ?? 0), 0),
        explorationSteps: mine.reduce((a, r) => a + (r.online?.explorationSteps ?? 0), 0),
      };
    }
    if (result.predictedMsPerToken !== null)
      result.predictionError = decodeSummary.median / result.predictedMsPerToken - 1;
    if (mode === "greedy" && ar && m.id !== ar.id && m.kind !== "llama.cpp") {
      let same = 0;
      let of = 0;
      for (const r of mine) {
        const ref = arRuns.get(`${r.repetition}:${r.prompt}`);
        if (ref === undefined) continue;
        of++;
        if (ref === r.tokensHash) same++;
      }
      result.greedyMatches = { same, of };
    }
    if (m.kind === "hsd") {
      const formula = (m.predictedDecode ?? m.predicted)!.msPerToken;
      const overhead = m.overheadMsPerToken ?? 0;
      result.modelledParts = { formula, overhead };
      result.modelledMsPerToken = formula + overhead;
      result.modelledError = decodeSummary.median / result.modelledMsPerToken - 1;
      if (m.predictedWorkload) {
        result.workloadMsPerToken = m.predictedWorkload.msPerToken + overhead;
        result.workloadError = decodeSummary.median / result.workloadMsPerToken - 1;
      }
    }
    if (m.kind === "hsd-policy" || m.kind === "hsd-adaptive") {
      const overhead = m.overheadMsPerToken ?? 0;
      if (m.policyDecodeMsPerToken) {
        result.modelledParts = { formula: m.policyDecodeMsPerToken, overhead };
        result.modelledMsPerToken = m.policyDecodeMsPerToken + overhead;
        result.modelledError = decodeSummary.median / result.modelledMsPerToken - 1;
      }
      if (m.policyWorkloadMsPerToken) {
        result.workloadMsPerToken = m.policyWorkloadMsPerToken + overhead;
        result.workloadError = decodeSummary.median / result.workloadMsPerToken - 1;
      }
      const p = pool(mine.map((r) => r.stats!).filter((s) => s.tokens > 0));
      result.engineMsPerToken = p.engineMs / p.tokens;
      result.tokensPerTargetPass = { measured: p.tokens / Math.max(1, p.targetPasses), formula: Number.NaN };
    } else if (m.kind !== "hsd") {
      const v = mine.reduce((s, r) => s + (r.predictions?.validated ?? 0), 0);
      const f = mine.reduce((s, r) => s + (r.predictions?.refuted ?? 0), 0);
      result.llamaAcceptance = v + f === 0 ? null : v / (v + f);
    } else {
      const p = pool(mine.map((r) => r.stats!).filter((s) => s.tokens > 0));
      const K = m.chain.length - 1;
      const measuredRates = p.levels.slice(0, K).map((l) => (l.judged === 0 ? 0 : l.accepted / l.judged));
      const positions = p.levels.slice(0, K).map((l, j) => {
        const bp = byPosition(l);
        return bp.length > 0 ? bp : [measuredRates[j]!];
      });
      const base = costModel.predict(m.chain, m.thresholds);
      const replayScalar = K > 0 ? costModel.predict(m.chain, m.thresholds, measuredRates) : base;
      const replayPos = K > 0 ? costModel.predict(m.chain, m.thresholds, measuredRates, positions) : base;
      const overhead = m.overheadMsPerToken ?? 0;
      result.replay = {
        measuredAcceptance: replayScalar.msPerToken + overhead,
        measuredAcceptanceByPosition: replayPos.msPerToken + overhead,
      };
      result.modelMsPerToken = {
        measured: p.levels.reduce((s, l) => s + l.scoreMs, 0) / p.tokens,
        replayed: sumModelMs(replayPos),
      };
      result.tokensPerTargetPass = {
        measured: p.tokens / Math.max(1, p.targetPasses),
        formula: replayPos.tokensPerTargetPass,
      };
      const inRun = inRunCosts(mine, m, costModel);
      if (inRun) {
        const f = expectedLatency({
          levels: inRunLevels(inRun, m, costModel),
          thresholds: m.thresholds,
          acceptance: K > 0 ? measuredRates.map((a, j) => (positions[j]?.length ? positions[j]! : a)) : [],
        });
        result.inRunReplay = f.msPerToken + overhead;
      }
      const others = records.filter((r) => r.mode === mode && r.method !== m.id && r.passTimes);
      const fromOthers = inRunCosts(others, m, costModel);
      if (fromOthers) {
        const f = expectedLatency({
          levels: inRunLevels(fromOthers, m, costModel),
          thresholds: m.thresholds,
          acceptance: m.calibratedAcceptance,
        });
        result.otherRunsPrediction = f.msPerToken + overhead;
        result.otherRunsError = result.pooledDecodeMsPerToken / result.otherRunsPrediction - 1;
      }
      result.engineMsPerToken = p.engineMs / p.tokens;
      result.levels = p.levels.map((l, i) => {
        const pred = base.levels[i]!;
        return {
          name: model.names[m.chain[i]!]!,
          passesPerToken: { measured: l.passes / p.tokens, predicted: pred.passesPerToken },
          tokensPerPass: {
            measured: l.passes === 0 ? 0 : l.tokensEvaluated / l.passes,
            predicted: pred.meanTokensPerPass,
          },
          modelMsPerToken: { measured: l.scoreMs / p.tokens, predicted: pred.msPerToken },
          acceptance:
            i < K ? { measured: measuredRates[i]!, calibrated: m.calibratedAcceptance[i]!, judged: l.judged } : null,
          acceptanceByPosition: i < K ? byPosition(l) : null,
        };
      });
    }
    results.push(result);
  }
  const arResult = results.find((r) => r.roles.includes("autoregressive"));
  const bestSingle = bestSingleOf(results);
  const combo = bestLlamaCppCombo(results);
  for (const r of results) {
    if (arResult) r.speedupVsAutoregressive = arResult.decodeMsPerToken.median / r.decodeMsPerToken.median;
    if (bestSingle) r.speedupVsBestSingle = bestSingle.decodeMsPerToken.median / r.decodeMsPerToken.median;
    if (combo) r.speedupVsLlamaCppBest = combo.decodeMsPerToken.median / r.decodeMsPerToken.median;
  }
  const pinned = results.filter((r) => r.kind === "hsd" || r.kind === "hsd-policy");
  const fastest = pinned.reduce<MethodResult | null>(
    (a, b) => (a === null || b.decodeMsPerToken.median < a.decodeMsPerToken.median ? b : a),
    null,
  );
  for (const r of results)
    if (r.kind === "hsd-adaptive" && fastest)
      r.vsBestPinned = { ratio: r.decodeMsPerToken.median / fastest.decodeMsPerToken.median, best: fastest.label };
  return results;
}

/** llama.cpp's fastest `ngram-simple,draft-simple` configuration (the best lookup size n), measured. */
export function bestLlamaCppCombo(results: readonly MethodResult[]): MethodResult | null {
  const combos = results.filter((r) => r.kind === "llama.cpp" && r.id.includes("ngram-simple,draft-simple"));
  return combos.length === 0
    ? null
    : combos.reduce((a, b) => (b.decodeMsPerToken.median < a.decodeMsPerToken.median ? b : a));
}

/** The measured-fastest single draft (the "best single draft" the ratios refer to). */
export function bestSingleOf(results: readonly MethodResult[]): MethodResult | null {
  const singles = results.filter((r) => r.roles.includes("single"));
  return singles.length === 0
    ? null
    : singles.reduce((a, b) => (b.decodeMsPerToken.median < a.decodeMsPerToken.median ? b : a));
}

/** One model's c(n) by source, for the report's pass-cost table. */
export interface CostComparison {
  name: string;
  n: number;
  planner: number;
  decodeHot: number;
  decodeCold: number;
  decodeReshape: number;
  /** Pooled over every recorded hsd run of the mode (null: fewer than MIN_IN_RUN_PASSES passes). */
  inRunHot: number | null;
  inRunCold: number | null;
}

export function compareCosts(
  model: CalibratedModel,
  decodeModel: CalibratedModel,
  records: readonly RunRecord[],
  ns: readonly number[],
): CostComparison[] {
  const cells = passTimeCells(records);
  const mean = (key: string): number | null => {
    const c = cells.get(key);
    return c && c.count >= MIN_IN_RUN_PASSES ? c.ms / c.count : null;
  };
  const out: CostComparison[] = [];
  model.files.forEach((_, i) => {
    if (model.plan.candidates[i]!.kind !== "model") return;
    const recorded = model.modelIndex(i);
    for (const n of ns) {
      out.push({
        name: model.names[i]!,
        n,
        planner: model.costAt(i, n, "hot"),
        decodeHot: decodeModel.costAt(i, n, "hot"),
        decodeCold: decodeModel.costAt(i, n, "cold"),
        decodeReshape: decodeModel.costAt(i, n, "reshape"),
        inRunHot: mean(`${recorded}:${n}:0`),
        inRunCold: mean(`${recorded}:${n}:1`),
      });
    }
  });
  return out;
}
