// Text for people: the plan table, the run summary, the calibration progress bar.

import cliProgress from "cli-progress";
import type { PlanReport, PlannedChain } from "../api/plan.js";
import type { GenerationReport } from "../api/hsd.js";
import type { CalibrationOptions } from "../calibration/calibrate.js";

const ms = (x: number) => `${x.toFixed(3)} ms`;

function chainText(c: PlannedChain): string {
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
  const header = ["model", "params", "size", "type", "c(1)", ...plan.candidates.map((_, i) => `a(.,${i})`)];
  const rows = plan.candidates.map((c, lo) => [
    `${lo}: ${c.file}`,
    `${(c.parameters / 1e6).toFixed(2)}M`,
    `${(c.fileSize / 2 ** 20).toFixed(1)} MiB`,
    c.quantisation,
    ms(c.costs.hot[0]!.ms),
    ...plan.candidates.map((_, hi) => (hi > lo ? (plan.acceptance[lo]![hi]! as number).toFixed(3) : "")),
  ]);
  out.push(table([header, ...rows]));
  out.push("a(lo,hi): acceptance of lo's drafts by hi, on the target's own continuations.");
  out.push("");
  out.push(`Chosen:        ${chainText(plan.best)}`);
  out.push(
    `  predicted    ${ms(plan.best.predictedMsPerToken)}/token, ${plan.best.predictedSpeedupVsAutoregressive.toFixed(2)}x vs autoregressive${plan.best.predictedSpeedupVsBestSingle ? `, ${plan.best.predictedSpeedupVsBestSingle.toFixed(3)}x vs the best single draft` : ""}`,
  );
  if (plan.bestSingle)
    out.push(
      `Best single:   ${chainText(plan.bestSingle)}: ${ms(plan.bestSingle.predictedMsPerToken)}/token, ${plan.bestSingle.predictedSpeedupVsAutoregressive.toFixed(2)}x`,
    );
  out.push(`Autoregressive: ${ms(plan.autoregressive.predictedMsPerToken)}/token`);
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
    `[hsd] hierarchy: ${result.hierarchy.files.map((f, i) => (i < result.hierarchy.thresholds.length ? `${f} [T=${result.hierarchy.thresholds[i]}]` : f)).join(" -> ")}`,
  ];
  for (const level of s.levels.slice(0, -1)) {
    lines.push(
      `[hsd]   ${level.name}: drafted ${level.drafted}, accepted ${level.accepted} (${(level.acceptanceRate * 100).toFixed(1)}% of judged), ${level.passes} passes`,
    );
  }
  if (result.plan)
    lines.push(
      `[hsd] predicted ${result.plan.best.predictedMsPerToken.toFixed(3)} ms/token, measured ${s.msPerToken.toFixed(3)}`,
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
