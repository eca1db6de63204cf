/**
 * tinybench micro-benchmarks of hsd's hot paths (`npx tsx scripts/bench-micro.ts [--time ms] [--models DIR]`):
 *  - the verification step: one HsdDecoder.step (draft recursion + verification) over stub levels that do no model
 *    work, so the time is the engine's own: accept tests, residual/bonus sampling, bookkeeping;
 *  - the distribution transform and sampling: sampleRow / sampleResidual over 4096- and 32000-token rows, and, when
 *    a GGUF is at hand, a one-token pass of the smallest model greedy (argmax only) vs temperature 1 (full
 *    distribution produced and copied to JS): the difference is the transform's cost;
 *  - the latency formula and the optimiser.
 * Writes bench-out/bench-micro.json and prints a table.
 */

import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Bench } from "tinybench";
import { HsdDecoder } from "../src/engine/hsd.js";
import { DistributionRows } from "../src/levels/level.js";
import { sampleResidual, sampleRow } from "../src/engine/sampling.js";
import { Rng } from "../src/util/rng.js";
import { chooseHierarchy, countChains, expectedLatency } from "../src/planner/index.js";
import { makeRng } from "../src/util/rng.js";
import { stubFamily } from "./bench-lib/stub-level.js";
import { plannerInstance } from "./bench-lib/planner-instance.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const time = Number(arg("--time") ?? 250);
if (!(time > 0)) throw new Error("bench-micro: --time must be a positive number of ms per task");
const modelsDir = arg("--models") ?? "models/tiny";
const out = arg("--out") ?? "bench-out";

const bench = new Bench({ time, warmupTime: 50 });

// --- verification step over stub levels ---------------------------------------------------------------------
for (const [thresholds, greedy] of [
  [[4], true],
  [[4], false],
  [[2, 6], true],
  [[2, 6], false],
] as [number[], boolean][]) {
  const vocab = 4096;
  const levels = stubFamily(thresholds.length + 1, vocab, 32, 7);
  const decoder = new HsdDecoder(levels, { thresholds, greedy, rng: new Rng(1) });
  const sequence = new Int32Array(4096);
  sequence.fill(1, 0, 64);
  let committed = 64;
  // Advance as the engine does (the stubs' greedy verdicts depend on the position), wrapping before the end.
  bench.add(
    `HsdDecoder.step, stub levels, T=${thresholds.join(",")}, ${greedy ? "greedy" : "t=1"}, vocab ${vocab}`,
    async () => {
      committed += await decoder.step(sequence, committed);
      if (committed > 3000) committed = 64;
    },
  );
}

// --- sampling -------------------------------------------------------------------------------------------------
for (const vocab of [4096, 32000]) {
  const rng = makeRng(vocab);
  const p = new DistributionRows(1, vocab, false);
  const q = new DistributionRows(1, vocab, false);
  for (const rows of [p, q]) {
    let total = 0;
    for (let x = 0; x < vocab; x++) total += rows.probs![x] = Math.exp(4 * rng());
    for (let x = 0; x < vocab; x++) rows.probs![x]! /= total;
  }
  const r = new Rng(3);
  bench.add(`sampleRow, vocab ${vocab}`, () => void sampleRow(p, 0, r));
  bench.add(`sampleResidual, vocab ${vocab}`, () => void sampleResidual(p, 0, q, 0, r));
}

// --- distribution transform (native, when a model is available) ----------------------------------------------
let nativeNote = "";
try {
  const files = (await readdir(modelsDir)).filter((f) => f.endsWith(".gguf")).sort();
  if (files.length === 0) throw new Error(`no .gguf in ${modelsDir}`);
  const { loadModel } = await import("../src/native/index.js");
  const { readModelInfo } = await import("../src/gguf/model-info.js");
  const infos = await Promise.all(files.map((f) => readModelInfo(join(modelsDir, f))));
  const smallest = infos.reduce((a, b) => (b.parameterCount < a.parameterCount ? b : a));
  const model = await loadModel(smallest.path);
  const context = model.createContext({ contextSize: 256, batchSize: 64, threads: 1 });
  const prefix = model.tokenize("The state of the Union is strong, and the people of this nation", true, false);
  const rows = new DistributionRows(1, model.vocabSize, false);
  context.evaluateSync(prefix, 0, prefix.length, { probs: null, argmax: new Int32Array(0), rowOffset: 0 });
  const one = prefix.subarray(prefix.length - 1);
  const pos = prefix.length - 1;
  bench.add(`native pass n=1, ${smallest.file}, greedy (argmax only)`, () => {
    context.setSampling({ greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 });
    context.evaluateSync(one, pos, 0, { probs: null, argmax: rows.argmax, rowOffset: 0 });
  });
  bench.add(`native pass n=1, ${smallest.file}, t=1 (distribution to JS)`, () => {
    context.setSampling({ greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0 });
    context.evaluateSync(one, pos, 0, { probs: rows.probs, argmax: rows.argmax, rowOffset: 0 });
  });
  bench.add(`native pass n=1, ${smallest.file}, t=0.8 top-k 40 top-p 0.95 min-p 0.05`, () => {
    context.setSampling({ greedy: false, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 });
    context.evaluateSync(one, pos, 0, { probs: rows.probs, argmax: rows.argmax, rowOffset: 0 });
  });
} catch (error) {
  nativeNote = `native transform skipped: ${(error as Error).message}`;
}

// --- latency formula and optimiser ------------------------------------------------------------------------------
const four = plannerInstance(4, 16, 1);
const six = plannerInstance(6, 16, 2);
const levels = four.candidates;
const chain3 = {
  levels,
  thresholds: [3, 6, 12],
  acceptance: [four.acceptance[0]![1]!, four.acceptance[1]![2]!, four.acceptance[2]![3]!],
};
bench
  .add(
    "expectedLatency K=1 T=6",
    () => void expectedLatency({ levels: [levels[0]!, levels[3]!], thresholds: [6], acceptance: [0.7] }),
  )
  .add("expectedLatency K=3 T=3,6,12 (engine catch-up)", () => void expectedLatency(chain3))
  .add("expectedLatency K=3 T=3,6,12 (catch-up 'one')", () => void expectedLatency({ ...chain3, catchUp: "one" }))
  .add(`chooseHierarchy 4 candidates T<=16 (exhaustive, ${countChains(four)} chains)`, () => void chooseHierarchy(four))
  .add("chooseHierarchy 6 candidates T<=16 (DP)", () => void chooseHierarchy(six));

await bench.run();
const rows = bench.tasks.map((t) => {
  const r = t.result;
  if (r.state !== "completed") return { task: t.name, state: r.state };
  return {
    task: t.name,
    "mean µs": +(1000 * r.latency.mean).toFixed(2),
    "p50 µs": +(1000 * r.latency.p50).toFixed(2),
    "rme %": +r.latency.rme.toFixed(1),
    samples: r.latency.samplesCount,
  };
});
console.table(rows);
if (nativeNote) console.log(nativeNote);
await mkdir(out, { recursive: true });
await writeFile(
  join(out, "bench-micro.json"),
  JSON.stringify({ time, modelsDir, note: nativeNote || null, rows }, null, 1),
);
