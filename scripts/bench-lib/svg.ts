// The benchmark's plot, written by hand (no plotting library): for each sampling mode a panel of horizontal
// bars, one per method — bar = median ms/token, whisker = min–max over repetitions, diamond = the planner's
// prediction (1), dot = prediction (3) (report.ts explains both).

import type { MethodResult } from "./analyse.js";

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A "nice" axis maximum and tick step for values up to `max`. */
export function niceAxis(max: number): { max: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.2 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step) * step, step };
}

export function plotSvg(title: string, byMode: Record<string, MethodResult[]>): string {
  const labelW = 250;
  const plotW = 430;
  const rowH = 22;
  const panelGap = 44;
  const left = 12;
  const modes = Object.entries(byMode);
  const allMax = Math.max(
    ...modes.flatMap(([, rs]) =>
      rs.flatMap((r) => [
        r.decodeMsPerToken.max,
        r.predictedMsPerToken ?? 0,
        r.modelledMsPerToken ?? 0,
        r.workloadMsPerToken ?? 0,
      ]),
    ),
  );
  const axis = niceAxis(allMax);
  const x = (v: number): number => left + labelW + (plotW * v) / axis.max;
  const parts: string[] = [];
  let y = 40;
  for (const [mode, results] of modes) {
    parts.push(
      `<text x="${left}" y="${y}" font-weight="bold">${esc(mode.replace("greedy", "greedy,").replace("t1", "temperature 1,").replace("/", " "))}</text>`,
    );
    y += 10;
    const top = y;
    for (const r of results) {
      const cy = y + rowH / 2;
      const s = r.decodeMsPerToken;
      const colour =
        r.kind === "node-llama-cpp"
          ? "#b07aa1"
          : r.roles.includes("optimiser")
            ? "#e15759"
            : r.roles.includes("autoregressive")
              ? "#9c9c9c"
              : "#4e79a7";
      parts.push(`<text x="${left + labelW - 6}" y="${cy + 4}" text-anchor="end">${esc(r.label)}</text>`);
      parts.push(
        `<rect x="${x(0)}" y="${y + 4}" width="${(x(s.median) - x(0)).toFixed(1)}" height="${rowH - 8}" fill="${colour}"><title>${esc(`${r.label}: median ${s.median.toFixed(3)} ms/token (min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)})`)}</title></rect>`,
      );
      parts.push(
        `<line x1="${x(s.min).toFixed(1)}" x2="${x(s.max).toFixed(1)}" y1="${cy}" y2="${cy}" stroke="black"/>`,
      );
      parts.push(
        `<line x1="${x(s.min).toFixed(1)}" x2="${x(s.min).toFixed(1)}" y1="${cy - 4}" y2="${cy + 4}" stroke="black"/>`,
      );
      parts.push(
        `<line x1="${x(s.max).toFixed(1)}" x2="${x(s.max).toFixed(1)}" y1="${cy - 4}" y2="${cy + 4}" stroke="black"/>`,
      );
      if (r.predictedMsPerToken !== null) {
        const px = x(r.predictedMsPerToken);
        parts.push(
          `<path d="M ${px.toFixed(1)} ${cy - 6} l 5 6 l -5 6 l -5 -6 z" fill="white" stroke="black"><title>${esc(`planner's prediction ${r.predictedMsPerToken.toFixed(3)} ms/token`)}</title></path>`,
        );
      }
      const dot = r.workloadMsPerToken ?? r.modelledMsPerToken;
      if (dot !== null) {
        parts.push(
          `<circle cx="${x(dot).toFixed(1)}" cy="${cy}" r="3.5" fill="black"><title>${esc(`prediction (${r.workloadMsPerToken !== null ? 3 : 2}) ${dot.toFixed(3)} ms/token`)}</title></circle>`,
        );
      }
      y += rowH;
    }
    for (let v = 0; v <= axis.max + 1e-9; v += axis.step) {
      parts.push(`<line x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${top}" y2="${y}" stroke="#ddd"/>`);
      parts.push(
        `<text x="${x(v).toFixed(1)}" y="${y + 14}" text-anchor="middle" font-size="10">${+v.toFixed(6)}</text>`,
      );
    }
    y += panelGap;
  }
  const height = y + 14;
  const width = Math.max(left + labelW + plotW + 30, 760);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left}" y="${height - 26}" font-size="11">ms per token. Bar: median; whisker: min–max over repetitions; diamond: prediction (1), calibrated before the runs;</text>`,
    `<text x="${left}" y="${height - 12}" font-size="11">dot: prediction (3), pass costs calibrated between the runs and acceptance on the benchmark's prompts ((2) where (3) is missing).</text>`,
    ...parts,
    `</svg>`,
  ].join("\n");
}
