// What a pass costs depends on what ran before it: `npx tsx scripts/bench-pass-context.ts [--rounds N]`.
//
// Times a one-token (or two-token) pass of the bundled target (5M) and smallest draft (0.1M) after different
// histories, interleaved round by round so that the shared machine's drift hits every scenario alike:
//  - same size as this context's previous pass (llama.cpp reuses the compute graph) or another size (rebuilt);
//  - right after the same model's pass (hot) or after another model's (cold);
//  - the Nth pass in a row (autoregressive decoding) vs the second after other models.
// These are the effects the latency model's cost tables separate (src/planner/latency.ts, "cold and hot
// passes", "shape changes"; src/calibration/decode-costs.ts). Prints median and 20%-trimmed mean per scenario.

import path from "node:path";
import { GREEDY, loadModel, packageRoot } from "../src/native/index.js";
import { median, trimmedMean } from "../src/util/stats.js";

const argv = process.argv.slice(2);
const roundsAt = argv.indexOf("--rounds");
const rounds = roundsAt >= 0 ? Number(argv[roundsAt + 1]) : 400;
if (!Number.isInteger(rounds) || rounds < 30) throw new Error("--rounds needs an integer >= 30");

const dir = path.join(packageRoot, "models", "tiny");
const names = ["hsd-tiny-0.1M.gguf", "hsd-tiny-1.8M.gguf", "hsd-tiny-5M.gguf"];
const models = await Promise.all(names.map((n) => loadModel(path.join(dir, n))));
const contexts = models.map((m) =>
  m.createContext({ contextSize: 4096, batchSize: 512, threads: 1, flashAttention: "off" }),
);
const text = models[0]!.tokenize(
  "The history of the country is the history of its people, of the work they did and the choices they made. ".repeat(
    40,
  ),
  false,
  false,
);
const rows = { probs: null, argmax: new Int32Array(16), rowOffset: 0 };
for (const c of contexts) {
  c.evaluateSync(text.subarray(0, 64), 0, 64, { probs: null, argmax: new Int32Array(0), rowOffset: 0 });
  c.setSampling(GREEDY);
}
const position = [64, 64, 64];
function pass(m: number, n: number): number {
  let p = position[m]!;
  if (p + n > 300) p = 64;
  const started = performance.now();
  contexts[m]!.evaluateSync(text.subarray(p, p + n), p, 0, rows);
  const ms = performance.now() - started;
  position[m] = p + n;
  return ms;
}

const D = 0; // 0.1M
const M = 1; // 1.8M
const T = 2; // 5M
// Each scenario: passes run in order; the last one is timed.
const scenarios: Record<string, [number, number][]> = {
  "5M n=1, 4th in a row (autoregressive)": [
    [T, 1],
    [T, 1],
    [T, 1],
    [T, 1],
  ],
  "5M n=1 after 5M n=3 (hot, size change)": [
    [T, 1],
    [T, 3],
    [T, 1],
  ],
  "5M n=1 after 0.1M, previous 5M pass n=1 (cold, same size)": [
    [T, 1],
    [D, 1],
    [T, 1],
  ],
  "5M n=1 after 0.1M, previous 5M pass n=3 (cold, size change)": [
    [T, 3],
    [D, 1],
    [T, 1],
  ],
  "5M n=1 after 1.8M, previous 5M pass n=1 (cold, same size)": [
    [T, 1],
    [M, 1],
    [T, 1],
  ],
  "5M n=1, 2nd after 0.1M (hot)": [
    [T, 1],
    [D, 1],
    [T, 1],
    [T, 1],
  ],
  "0.1M n=1, 4th in a row": [
    [D, 1],
    [D, 1],
    [D, 1],
    [D, 1],
  ],
  "0.1M n=1 after 0.1M n=2 (hot, size change)": [
    [D, 1],
    [D, 2],
    [D, 1],
  ],
  "0.1M n=1 after 5M, previous 0.1M pass n=1 (cold, same size)": [
    [D, 1],
    [T, 3],
    [D, 1],
  ],
  "0.1M n=2 after 5M, previous 0.1M pass n=1 (cold, size change)": [
    [D, 1],
    [T, 3],
    [D, 2],
  ],
  "0.1M n=2 after 5M, previous 0.1M pass n=2 (cold, same size)": [
    [D, 2],
    [T, 3],
    [D, 2],
  ],
  "0.1M n=1 after 5M n=3, 0.1M n=2 (a draft's 2nd pass)": [
    [T, 3],
    [D, 2],
    [D, 1],
  ],
};
const keys = Object.keys(scenarios);
const times: Record<string, number[]> = Object.fromEntries(keys.map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < keys.length; i++) {
    const key = keys[(i + r) % keys.length]!;
    let ms = 0;
    for (const [m, n] of scenarios[key]!) ms = pass(m, n);
    if (r >= 20) times[key]!.push(ms); // the first rounds warm up (graph allocations per size)
  }
}
console.log(`${new Date().toISOString()}, ${rounds - 20} interleaved rounds, 1 thread, greedy rows`);
console.log("| scenario (the last pass is timed) | median ms | trimmed mean ms |");
console.log("|---|---:|---:|");
for (const k of keys) console.log(`| ${k} | ${median(times[k]!).toFixed(3)} | ${trimmedMean(times[k]!).toFixed(3)} |`);
for (const c of contexts) c.dispose();
