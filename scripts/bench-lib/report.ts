// The benchmark's markdown report: one section per sampling mode with the main table (ms/token, tokens/s,
// ratios, predicted next to measured), acceptance per level, and the diagnostics table. Numbers are printed as
// measured; a prediction more than PREDICTION_TOLERANCE off is flagged, never hidden.

import type { CostComparison, MethodResult } from "./analyse.js";
import { bestLlamaCppCombo, bestSingleOf } from "./analyse.js";
import type { PlanReport } from "../../src/api/plan.js";

export const PREDICTION_TOLERANCE = 0.1;

export interface ReportContext {
  title: string;
  command: string;
  device: string;
  /** Which llama.cpp hsd ran on (llamaBuildDescription) and how the llama.cpp anchor was built. */
  llamaBuild?: string;
  anchorBuild?: string;
  threads: number;
  models: { file: string; parameters: number; costMs1: number }[];
  maxTokens: number;
  repetitions: number;
  /** One per (mode, prompt set), in run order. */
  cells: { cell: string; mode: string; workload: string; prompts: number; calibrationPrompts: number }[];
  /** Each cell's plan: its calibration's provenance and the routed policy (null without a lookup). */
  plans: Record<string, { fromCache: boolean; policy: PlanReport["policy"] }>;
  startedAt: string;
  wallSeconds: number;
}

const f = (x: number | null | undefined, digits = 3): string =>
  x === null || x === undefined || !Number.isFinite(x) ? "—" : x.toFixed(digits);
const pct = (x: number | null | undefined): string =>
  x === null || x === undefined || !Number.isFinite(x) ? "—" : `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}%`;

function roles(r: MethodResult): string {
  return r.roles.join(", ");
}

function mainTable(results: readonly MethodResult[]): string[] {
  const best = bestSingleOf(results);
  const flag = (e: number | null): string => (e !== null && Math.abs(e) > PREDICTION_TOLERANCE ? " **!**" : "");
  const lines = [
    "| method | role | ms/token median | min–max (spread) | tokens/s | × vs autoregressive | × vs best single model draft | × vs llama.cpp best ngram-simple,draft-simple | (1) calibrated before the runs | measured vs (1) | (2) costs calibrated between the runs | measured vs (2) | (3) = (2) with acceptance on these prompts | measured vs (3) |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    const s = r.decodeMsPerToken;
    lines.push(
      `| ${r.label}${r === best ? " (best single)" : ""} | ${roles(r)} | ${f(s.median)} | ${f(s.min)}–${f(s.max)} (${(100 * s.relativeSpread).toFixed(0)}%) | ${f(r.tokensPerSecond, 0)} | ${f(r.speedupVsAutoregressive, 2)} | ${f(r.speedupVsBestSingle, 2)} | ${f(r.speedupVsLlamaCppBest, 2)} | ${f(r.predictedMsPerToken)} | ${pct(r.predictionError)}${flag(r.predictionError)} | ${f(r.modelledMsPerToken)} | ${pct(r.modelledError)}${flag(r.modelledError)} | ${f(r.workloadMsPerToken)} | ${pct(r.workloadError)}${flag(r.workloadError)} |`,
    );
  }
  return lines;
}

function acceptanceTable(results: readonly MethodResult[]): string[] {
  const lines = [
    "| method | level: measured / calibrated acceptance (drafts judged) | measured by position (first positions) | greedy output = autoregressive |",
    "|---|---|---|---|",
  ];
  for (const r of results) {
    if (r.kind !== "hsd" && r.kind !== "hsd-policy" && r.kind !== "hsd-adaptive") {
      const what = r.kind === "llama.cpp" ? "accepted/drafted" : "validated/(validated+refuted)";
      lines.push(
        `| ${r.label} | ${what} ${f(r.llamaAcceptance)} | — | ${r.greedyMatches ? `${r.greedyMatches.same}/${r.greedyMatches.of}` : "—"} |`,
      );
      continue;
    }
    if (!r.levels || r.levels.length < 2) {
      lines.push(`| ${r.label} | — | — | ${r.greedyMatches ? `${r.greedyMatches.same}/${r.greedyMatches.of}` : "—"} |`);
      continue;
    }
    const acc = r.levels
      .slice(0, -1)
      .map(
        (l, i) =>
          `${l.name}→${r.levels![i + 1]!.name}: ${f(l.acceptance!.measured)} / ${f(l.acceptance!.calibrated)} (${l.acceptance!.judged})`,
      )
      .join("; ");
    const pos = r.levels
      .slice(0, -1)
      .map(
        (l) =>
          `${l.name}: ${(l.acceptanceByPosition ?? [])
            .slice(0, 6)
            .map((x) => x.toFixed(2))
            .join(" ")}`,
      )
      .join("; ");
    lines.push(
      `| ${r.label} | ${acc} | ${pos} | ${r.greedyMatches ? `${r.greedyMatches.same}/${r.greedyMatches.of}` : "—"} |`,
    );
  }
  return lines;
}

function diagnosticsTable(results: readonly MethodResult[]): string[] {
  const lines = [
    "| method | measured (median) | measured (pooled) | prediction (2) (calibrated a) | (2) with measured a | (2) with measured a by position | costs from the other methods' runs, calibrated a (error vs pooled) | this method's in-run costs, measured a by position (error vs pooled) | model time: measured / formula (measured a by position) | engine time: in runs / without models | tokens per target pass: measured / formula (measured a by position) | tokens per pass by level, measured / predicted (calibrated a) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const r of results) {
    if (r.kind !== "hsd" || !r.levels) continue;
    const tpp = r.levels
      .map((l) => `${l.name} ${f(l.tokensPerPass.measured, 2)}/${f(l.tokensPerPass.predicted, 2)}`)
      .join(", ");
    lines.push(
      `| ${r.label} | ${f(r.decodeMsPerToken.median)} | ${f(r.pooledDecodeMsPerToken)} | ${f(r.modelledMsPerToken)} | ${f(r.replay?.measuredAcceptance)} | ${f(r.replay?.measuredAcceptanceByPosition)} | ${f(r.otherRunsPrediction)} (${pct(r.otherRunsError)}) | ${f(r.inRunReplay)} (${pct(r.inRunReplay === null ? null : r.pooledDecodeMsPerToken / r.inRunReplay - 1)}) | ${f(r.modelMsPerToken?.measured)} / ${f(r.modelMsPerToken?.replayed)} | ${f(r.engineMsPerToken)} / ${f(r.modelledParts?.overhead)} | ${f(r.tokensPerTargetPass?.measured, 2)} / ${f(r.tokensPerTargetPass?.formula, 2)} | ${tpp} |`,
    );
  }
  return lines;
}

function costTable(rows: readonly CostComparison[]): string[] {
  const lines = [
    "| model | n | calibrated before the runs, hot | between the runs, hot | between the runs, cold | between the runs, size-change extra | in runs, hot (mean) | in runs, cold (mean) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows)
    lines.push(
      `| ${r.name} | ${r.n} | ${f(r.planner)} | ${f(r.decodeHot)} | ${f(r.decodeCold)} | ${f(r.decodeReshape)} | ${f(r.inRunHot)} | ${f(r.inRunCold)} |`,
    );
  return lines;
}

/** The headline: per cell, the optimiser's pick against the best single model draft and llama.cpp's best combination. */
function summaryTable(ctx: ReportContext, byCell: Record<string, MethodResult[]>): string[] {
  const lines = [
    "| prompts | mode | optimiser's pick | ms/token | × vs best single model draft | × vs llama.cpp best ngram-simple,draft-simple (its n) | × vs autoregressive | measured vs prediction (2) |",
    "|---|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const c of ctx.cells) {
    const results = byCell[c.cell] ?? [];
    const pick = results.find((r) => r.roles.includes("optimiser"));
    if (!pick) continue;
    const combo = bestLlamaCppCombo(results);
    lines.push(
      `| ${c.workload} | ${c.mode} | ${pick.label} | ${f(pick.decodeMsPerToken.median)} | ${f(pick.speedupVsBestSingle, 2)} | ${f(pick.speedupVsLlamaCppBest, 2)}${combo ? ` (${combo.label.replace(/^llama\.cpp ngram-simple,draft-simple /, "")})` : ""} | ${f(pick.speedupVsAutoregressive, 2)} | ${pct(pick.modelledError)} |`,
    );
  }
  return lines;
}

/**
 * Planning while generating (docs/ALGORITHM.md §10), per cell: every hsd method's measured ms/token against what the
 * online estimates predicted for its plan at the end of its runs, and the adaptive default against the fastest
 * pinned method and autoregressive decoding.
 */
function onlineTable(results: readonly MethodResult[]): string[] {
  const rows = results.filter((r) => r.online !== null);
  if (rows.length === 0) return [];
  const lines = [
    "| method | ms/token median | online prediction at the end | measured vs it | plan at the end | switches | exploration steps |",
    "|---|---:|---:|---:|---|---:|---:|",
  ];
  for (const r of rows) {
    const o = r.online!;
    const off = Math.abs(o.error) > PREDICTION_TOLERANCE ? " **!**" : "";
    lines.push(
      `| ${r.label} | ${f(r.decodeMsPerToken.median)} | ${f(o.predictedMsPerToken)} | ${pct(o.error)}${off} | ${o.plan.length > 80 ? `${o.plan.slice(0, 77)}…` : o.plan} | ${o.switches} | ${o.explorationSteps} |`,
    );
  }
  const within = rows.filter((r) => Math.abs(r.online!.error) <= PREDICTION_TOLERANCE).length;
  lines.push("", `Within ${100 * PREDICTION_TOLERANCE}% of the online estimates: ${within} of ${rows.length} methods.`);
  const adaptive = results.find((r) => r.kind === "hsd-adaptive");
  if (adaptive?.vsBestPinned)
    lines.push(
      "",
      `The adaptive default (prior: ${adaptive.online?.prior ?? "—"}): ${f(adaptive.decodeMsPerToken.median)} ms/token, ${f(adaptive.vsBestPinned.ratio, 3)}× the fastest pinned method's time (${adaptive.vsBestPinned.best}), ${f(adaptive.speedupVsAutoregressive, 3)}× autoregressive's speed.`,
    );
  return lines;
}

/** The policy of a cell: a chain per lookup state, with its share of steps. */
function policyTable(policy: NonNullable<PlanReport["policy"]>): string[] {
  return [
    "| lookup state | share of steps (calibration walk) | chain | predicted ms/step | tokens/step |",
    "|---|---:|---|---:|---:|",
    ...policy.states.map(
      (s) =>
        `| ${s.name} | ${(100 * s.frequency).toFixed(1)}% | ${s.chain.join(">")}${s.thresholds.length ? ` T=${s.thresholds.join(",")}` : ""} | ${f(s.predictedMsPerStep)} | ${f(s.predictedTokensPerStep, 2)} |`,
    ),
    "",
    `Predicted ${f(policy.predictedMsPerToken)} ms/token; the best fixed chain scored the same way: ${policy.bestFixed.chain.join(">")} T=${policy.bestFixed.thresholds.join(",")} at ${f(policy.bestFixed.predictedMsPerToken)} (policy ${f(policy.predictedSpeedupVsBestFixed, 3)}×).`,
  ];
}

export function markdownReport(
  ctx: ReportContext,
  byCell: Record<string, MethodResult[]>,
  costs: Record<string, CostComparison[]> = {},
): string {
  const out: string[] = [];
  out.push(`# ${ctx.title}`, "");
  out.push(`Command: \`${ctx.command}\``, "");
  out.push(
    `Started ${ctx.startedAt}; ${ctx.wallSeconds.toFixed(0)} s in all. Device: ${ctx.device}, ${ctx.threads} thread(s) per model. ` +
      `${ctx.repetitions} repetitions per prompt, up to ${ctx.maxTokens} tokens per run, methods interleaved.`,
    "",
  );
  if (ctx.llamaBuild)
    out.push(
      `llama.cpp under hsd: ${ctx.llamaBuild} (node-llama-cpp's baselines run on its own prebuilt binaries).`,
      "",
    );
  if (ctx.anchorBuild) out.push(`llama.cpp's speculative-simple (the anchor): ${ctx.anchorBuild}.`, "");
  out.push(
    "Models: " +
      ctx.models
        .map((m) => `${m.file} (${(m.parameters / 1e6).toFixed(2)}M params, c(1) = ${m.costMs1.toFixed(3)} ms)`)
        .join("; ") +
      ". lookup = the context lookup (a model-free level).",
    "",
  );
  out.push(
    'ms/token is decoding only (first chunk of tokens to the last; llama.cpp: its own "decoded" time), median over repetitions of ' +
      "Σ time / Σ tokens over the prompts; min–max is over repetitions. Each prompt set's plan is the product's own (`hsd plan --prompts`), " +
      "calibrated on other prompts of the same kind. Three predictions, all the latency model (src/planner) on calibrated inputs, none " +
      "fitted to the runs: (1) the plan's own calibration, taken before the runs — what `hsd plan` shows; (2) the same with the pass costs " +
      "measured in slices between the runs (so they see the runs' machine load) plus the engine's own time per token measured without " +
      "models; (3) = (2) with acceptance and lookup states calibrated on the runs' own prompts. **!** marks errors above 10%.",
    "",
  );
  out.push("## Summary", "", ...summaryTable(ctx, byCell), "");
  for (const c of ctx.cells) {
    const results = byCell[c.cell] ?? [];
    const plan = ctx.plans[c.cell];
    out.push(
      `## ${c.workload} prompts, ${c.mode === "greedy" ? "greedy" : "temperature 1 (top-k 40)"}`,
      "",
      `${c.prompts} prompts; plan calibrated on ${c.calibrationPrompts} other prompts of the kind${plan?.fromCache ? " (from the cache)" : ""}.`,
      "",
    );
    if (plan?.policy) out.push("The routed policy", "", ...policyTable(plan.policy), "");
    out.push(...mainTable(results), "");
    out.push("Acceptance per level", "", ...acceptanceTable(results), "");
    const online = onlineTable(results);
    if (online.length > 0) out.push("Planning while generating: the online estimates", "", ...online, "");
    out.push(
      "Diagnostics (ms per token; see BENCHMARKS.md for how to read them)",
      "",
      ...diagnosticsTable(results),
      "",
    );
    const cc = costs[c.cell];
    if (cc && cc.length > 0)
      out.push("Pass costs c(n) in ms, by source (cold: the pass follows another model's)", "", ...costTable(cc), "");
    for (const [what, err] of [
      ["prediction (1), calibrated before the runs", (r: MethodResult) => r.predictionError],
      ["prediction (2), pass costs calibrated between the runs", (r: MethodResult) => r.modelledError],
      ["prediction (3), (2) with acceptance calibrated on these prompts", (r: MethodResult) => r.workloadError],
    ] as const) {
      const off = results.filter((r) => err(r) !== null && Math.abs(err(r)!) > PREDICTION_TOLERANCE);
      out.push(
        off.length === 0
          ? `Every hsd method's measured ms/token is within ${100 * PREDICTION_TOLERANCE}% of ${what}.`
          : `Outside ${100 * PREDICTION_TOLERANCE}% of ${what}: ${off.map((r) => `${r.label} (${pct(err(r))})`).join(", ")}.`,
        "",
      );
    }
  }
  return out.join("\n");
}
