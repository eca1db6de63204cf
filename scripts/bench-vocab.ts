/**
 * The engine's per-position cost against the vocabulary size, dense rows (before docs/ALGORITHM.md §12) against
 * sparse rows (after), interleaved in one run (`npx tsx scripts/bench-vocab.ts [--reps N]`), at V = 32,000
 * (llama.cpp's llama-spm tokenizer), 151,936 (Qwen2) and 262,144 (Gemma 4): real tokenizers (extracted from
 * node-llama-cpp's llama.cpp bundle) on tiny random-weight qwen2 models written to build/bench-vocab/ on first use,
 * so that llama.cpp's own pass is small next to what the vocabulary costs. For each V, decoding mode (greedy;
 * llama.cpp's defaults t=0.8 top-k 40 top-p 0.95 min-p 0.05; t=1 min-p 0.05; t=1 with no truncation) and layout:
 *  - addon, per row: a one-token pass minus the baseline pass (greedy over one id: llama.cpp's pass alone;
 *    scripts/bench-lib/vocab-costs.ts): the argmax over V (greedy), or turning logits into the row (transform) and
 *    handing it to JS (sampling);
 *  - TypeScript, per position: the accept test, sampleRow and sampleResidual on rows the model wrote;
 *  - end to end: a draft -> target generation (two models of size V, different seeds, T=4) of 32 tokens: the
 *    engine's time (wall minus the levels' score() calls, which include the addon's transform) per token.
 * Medians over --reps (default 200) interleaved repetitions; this machine is shared, so compare the columns of one
 * run (the ratios), not absolute times across runs. Writes bench-out/bench-vocab.json and a markdown table.
 */

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadModel } from "../src/native/index.js";
import type { SamplingTransform } from "../src/native/types.js";
import { NativeLevel } from "../src/levels/native-model.js";
import { DistributionRows, rowLayout } from "../src/levels/level.js";
import { HsdDecoder } from "../src/engine/hsd.js";
import { generate } from "../src/engine/generate.js";
import { sampleResidual, sampleRow } from "../src/engine/sampling.js";
import { Rng } from "../src/util/rng.js";
import { median } from "../src/util/stats.js";
import { addonRowCosts, tinyModel, type Layout } from "./bench-lib/vocab-costs.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const reps = Number(arg("--reps") ?? 200);
const out = arg("--out") ?? "bench-out";
const DIR = "build/bench-vocab";

const VOCABULARIES = [
  { size: 32000, tokenizer: "llama-spm" },
  { size: 151936, tokenizer: "qwen2" },
  { size: 262144, tokenizer: "gemma-4" },
];
const MODES: Record<string, SamplingTransform> = {
  greedy: { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 },
  default: { greedy: false, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 },
  "t=1 min-p 0.05": { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0.05 },
  "t=1": { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0 },
};
const LAYOUTS: Layout[] = ["dense", "sparse"];

const us = (ms: number) => +(1000 * ms).toFixed(1);
const results: Record<string, string | number>[] = [];
/** What the timed calls return, summed and printed: they must not be optimised away. */
let sink = 0;

for (const { size, tokenizer } of VOCABULARIES) {
  const files = [await tinyModel(DIR, tokenizer, size, 1), await tinyModel(DIR, tokenizer, size, 2)];
  const models = await Promise.all(files.map((f) => loadModel(f)));
  const contexts = models.map((m) => m.createContext({ contextSize: 512, batchSize: 64, threads: 1 }));
  const levels = contexts.map((c, i) => new NativeLevel(`m${i}`, c, size, "sync"));
  const prompt = models[1]!.tokenize("The state of the Union is strong, and the people of this nation", false, false);
  const sequence = new Int32Array(256);
  sequence.set(prompt);
  const P = prompt.length;
  const rowsOf = (t: SamplingTransform, layout: Layout) =>
    levels.map(
      () => new DistributionRows(1, size, t.greedy, false, layout === "sparse" ? rowLayout(t, size) : undefined),
    );
  const cases = Object.entries(MODES).flatMap(([mode, t]) =>
    (t.greedy ? (["dense"] as Layout[]) : LAYOUTS).map((layout) => ({ mode, t, layout, rows: rowsOf(t, layout) })),
  );

  // Addon: a one-token pass per case against the baseline, interleaved; then rows of every case for the TS timings.
  const addon = addonRowCosts(
    contexts[0]!,
    size,
    prompt,
    cases.map((c) => ({ transform: c.t, layout: c.layout })),
    reps,
  );
  for (const c of cases) {
    for (const [m, ctx] of contexts.entries()) {
      ctx.setSampling(c.t);
      levels[m]!.score(sequence, P, P - 1, c.rows[m]!, 0);
    }
  }

  for (const [i, c] of cases.entries()) {
    const [q, p] = c.rows;
    const rng = new Rng(5);
    const timed = (f: () => void) => {
      const times: number[] = [];
      for (let r = 0; r < reps; r++) {
        const started = performance.now();
        for (let k = 0; k < 10; k++) f();
        times.push((performance.now() - started) / 10);
      }
      return median(times);
    };
    const greedy = c.t.greedy;
    const x = greedy ? q!.argmax[0]! : sampleRow(q!, 0, rng);
    const accept = greedy
      ? timed(() => void (sink += +(p!.argmax[0] === x)))
      : timed(() => void (sink += p!.prob(0, x) / q!.prob(0, x)));
    const sample = greedy ? 0 : timed(() => void (sink += sampleRow(q!, 0, rng)));
    const residual = greedy ? 0 : timed(() => void (sink += sampleResidual(p!, 0, q!, 0, rng)));

    // End to end: draft -> target, T=4, 32 tokens, rows laid out as this case says.
    for (const ctx of contexts) ctx.setSampling(c.t);
    const decoder = new HsdDecoder(levels, {
      thresholds: [4],
      greedy,
      sampling: c.layout === "sparse" ? c.t : undefined,
      rng: new Rng(1),
    });
    const vocabulary = { isEndOfGeneration: () => false, tokenPiece: () => new Uint8Array(0) };
    const engine: number[] = [];
    const score: number[] = [];
    for (let g = 0; g < 3; g++) {
      const it = generate(decoder, vocabulary, prompt, { maxTokens: 32 });
      let step = await it.next();
      while (!step.done) step = await it.next();
      const s = step.value.stats;
      engine.push(s.engineMs / s.tokens);
      score.push((s.wallMs - s.engineMs) / s.tokens);
    }
    results.push({
      vocab: size,
      tokenizer,
      mode: c.mode,
      rows: c.layout,
      "addon µs/row": +addon.perRowUs[i]!.toFixed(1),
      "accept µs": us(accept),
      "sampleRow µs": us(sample),
      "sampleResidual µs": us(residual),
      "e2e engine µs/token": us(median(engine)),
      "e2e score() ms/token": +median(score).toFixed(3),
    });
  }
  for (const ctx of contexts) ctx.dispose();
  for (const m of models) m.dispose();
}

console.table(results);
console.log(`(checksum ${sink.toFixed(0)})`);
const keys = Object.keys(results[0]!);
const markdown = [
  `| ${keys.join(" | ")} |`,
  `|${keys.map((_, i) => (i < 4 ? "---" : "---:")).join("|")}|`,
  ...results.map((r) => `| ${keys.map((k) => r[k]).join(" | ")} |`),
].join("\n");
console.log(markdown);
await mkdir(out, { recursive: true });
await writeFile(
  join(out, "bench-vocab.json"),
  JSON.stringify({ reps, date: new Date().toISOString(), results }, null, 1),
);
