// Text for people: the plan table, the run summary, the calibration progress bar.

import cliProgress from "cli-progress";
import type { PlanReport, PlannedChain } from "../api/plan.js";
import type { GenerationReport } from "../api/hsd.js";
import type { CalibrationOptions } from "../calibration/calibrate.js";
import { perJudged } from "../planner/index.js";

const ms = (x: number) => `${x.toFixed(3)} ms`;

function chainText(c: Pick<PlannedChain, "chain" | "thresholds">): string {
  if (c.chain.length === 1) return `${c.chain[0]} alone (autoregressive)`;
  return c.chain.map((f, i) => (i < c.thresholds.length ? `${f} [T=${c.thresholds[i]}]` : f)).join(" -> ");
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "))
    .join("\n");
}

export function formatPlan(plan: PlanReport, rejected: { file: string; reason: string }[]): string {
  const out: string[] = [];
  out.push(
    `Calibration: ${plan.calibration.device}, ${plan.calibration.threads} thread(s), ${plan.calibration.greedy ? "greedy" : "sampling"}, ${plan.calibration.prompts} prompts${plan.calibration.fromCache ? " (from cache)" : ""}`,
  );
  out.push("");
  const header = ["level", "params", "size", "type", "c(1)", ...plan.candidates.map((_, i) => `a(.,${i})`)];
  const rows = plan.candidates.map((c, lo) => [
    `${lo}: ${c.name}`,
    c.kind === "model" ? `${(c.parameters / 1e6).toFixed(2)}M` : "-",
    c.kind === "model" ? `${(c.fileSize / 2 ** 20).toFixed(1)} MiB` : "-",
    c.kind === "model" ? c.quantisation : "lookup",
    ms(c.kind === "model" ? c.costs.hot[0]!.ms : c.costMs),
    ...plan.candidates.map((_, hi) => {
      const a = plan.acceptance[lo]![hi];
      return hi > lo && a !== null && a !== undefined ? perJudged(a).toFixed(3) : "";
    }),
  ]);
  out.push(table([header, ...rows]));
  out.push("a(lo,hi): acceptance of lo's drafts by hi (per judged draft), on the target's own continuations.");
  out.push("Vocabulary:");
  for (const c of plan.candidates) if (c.kind === "model") out.push(`  ${c.name}: ${c.vocabulary}`);
  out.push("");
  const policy = plan.policy;
  if (policy) {
    out.push(
      `Chosen: a routed policy, ${ms(policy.predictedMsPerToken)}/token predicted, ${policy.predictedSpeedupVsAutoregressive.toFixed(2)}x vs autoregressive, ${policy.predictedSpeedupVsBestFixed.toFixed(3)}x vs the best fixed chain`,
    );
    out.push(
      table([
        ["  state (lookup match)", "share of steps", "chain", "ms/step", "tokens/step"],
        ...policy.states.map((st) => [
          `  ${st.name}`,
          `${(100 * st.frequency).toFixed(1)}%`,
          chainText({ chain: st.chain, thresholds: st.thresholds }),
          st.predictedMsPerStep.toFixed(3),
          st.predictedTokensPerStep.toFixed(2),
        ]),
      ]),
    );
    out.push(
      `Best fixed chain, scored the same way: ${chainText(policy.bestFixed)}: ${ms(policy.bestFixed.predictedMsPerToken)}/token`,
    );
  }
  out.push(`${policy ? "Best fixed chain (i.i.d. model):" : "Chosen:       "} ${chainText(plan.best)}`);
  out.push(
    `  predicted    ${ms(plan.best.predictedMsPerToken)}/token, ${plan.best.predictedSpeedupVsAutoregressive.toFixed(2)}x vs autoregressive${plan.best.predictedSpeedupVsBestSingle ? `, ${plan.best.predictedSpeedupVsBestSingle.toFixed(3)}x vs the best single draft` : ""}`,
  );
  if (plan.bestSingle)
    out.push(
      `Best single:   ${chainText(plan.bestSingle)}: ${ms(plan.bestSingle.predictedMsPerToken)}/token, ${plan.bestSingle.predictedSpeedupVsAutoregressive.toFixed(2)}x`,
    );
  out.push(`Autoregressive: ${ms(plan.autoregressive.predictedMsPerToken)}/token`);
  for (const note of plan.notes) out.push(`Note: ${note}.`);
  if (rejected.length > 0) {
    out.push("");
    out.push("Not used:");
    for (const r of rejected) out.push(`  ${r.file}: ${r.reason}`);
  }
  return out.join("\n");
}

export function formatRunSummary(result: GenerationReport): string {
  const s = result.stats;
  const lines = [
    `[hsd] ${s.tokens} tokens in ${(s.wallMs / 1000).toFixed(2)} s: ${s.tokensPerSecond.toFixed(1)} tokens/s, ${s.msPerToken.toFixed(3)} ms/token, ${s.targetPasses} target passes (${result.stopReason})`,
    result.policy
      ? `[hsd] routed policy over ${result.policy.states.length} states of the context lookup`
      : `[hsd] hierarchy: ${chainText({ chain: result.hierarchy.files, thresholds: result.hierarchy.thresholds })}`,
  ];
  for (const level of s.levels.slice(0, -1)) {
    lines.push(
      `[hsd]   ${level.name}: drafted ${level.drafted}, accepted ${level.accepted} (${(level.acceptanceRate * 100).toFixed(1)}% of judged), ${level.passes} passes`,
    );
  }
  for (const st of s.routing?.states ?? []) {
    if (st.steps === 0) continue;
    lines.push(
      `[hsd]   ${st.name}: ${st.steps} steps, ${(st.tokens / st.steps).toFixed(2)} tokens/step via ${chainText({ chain: st.chain, thresholds: st.thresholds })}`,
    );
  }
  const online = result.online;
  if (online) {
    const prior = {
      learned: "what earlier runs learned",
      calibrated: "a full calibration",
      quick: "a quick calibration",
    }[online.prior];
    lines.push(
      `[hsd] ${online.adapt ? "planned while generating" : "learning (plan pinned)"} from ${prior}${online.priorMs > 0 ? ` (${(online.priorMs / 1000).toFixed(2)} s)` : ""}: ${online.replans} re-plans, ${online.switches.length} switches, ${online.explorationSteps} exploration steps; predicted ${online.predictedMsPerToken.toFixed(3)} ms/token now`,
    );
  }
  if (result.plan)
    lines.push(
      `[hsd] predicted ${(result.policy && result.plan.policy ? result.plan.policy : result.plan.best).predictedMsPerToken.toFixed(3)} ms/token, measured ${s.msPerToken.toFixed(3)}`,
    );
  return lines.join("\n");
}

/** A progress bar on stderr when it is a terminal; one line per finished phase otherwise. */
/** A calibration progress bar on stderr; `stop()` clears it (and shows the cursor again) when a run is interrupted. */
export function progressReporter(): NonNullable<CalibrationOptions["onProgress"]> & { stop(): void } {
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | null = null;
  let phase = "";
  const report: NonNullable<CalibrationOptions["onProgress"]> = (event) => {
    if (event.phase !== phase) {
      bar?.stop();
      bar = null;
      phase = event.phase;
      if (tty) {
        bar = new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: `calibrating ${event.phase.padEnd(10)} [{bar}] {value}/{total}`,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(event.total, 0);
      }
    }
    bar?.update(event.done);
    if (event.done >= event.total) {
      bar?.stop();
      bar = null;
      if (!tty) process.stderr.write(`calibrating ${event.phase}: done (${event.total} steps)\n`);
    }
  };
  return Object.assign(report, {
    stop() {
      bar?.stop();
      bar = null;
    },
  });
}
