// Pass costs c(n) with llama.cpp's flash attention on and off, interleaved, for every model of a folder: the
// measurement behind hsd's CPU default (flash attention off). Timed in C++ (timeDecodeLoop), 1 thread by default.
//
//   npx tsx scripts/bench-flash-attention.ts [--models models/tiny] [--threads 1] [--rounds 8] [--gpu-layers 0]

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { GREEDY, loadModel, type LlamaContext } from "../src/native/index.js";
import { median } from "../src/util/stats.js";

const { values } = parseArgs({
  options: {
    models: { type: "string", default: "models/tiny" },
    threads: { type: "string", default: "1" },
    rounds: { type: "string", default: "8" },
    "gpu-layers": { type: "string", default: "0" },
  },
});
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const ns = [1, 2, 3, 4, 6, 8, 12, 16];
const depth = 64;
const files = readdirSync(values.models!)
  .filter((f) => f.endsWith(".gguf"))
  .sort();
const modes = ["on", "off"] as const;

const rows: string[] = [];
for (const file of files) {
  const model = await loadModel(join(values.models!, file), { gpuLayers: Number(values["gpu-layers"]) });
  const contexts = new Map<string, LlamaContext>();
  const tokens = new Int32Array(depth + 16);
  for (let i = 0; i < tokens.length; i++) tokens[i] = (i * 131 + 7) % model.vocabSize;
  for (const fa of modes) {
    const c = model.createContext({ contextSize: 256, batchSize: 64, threads, flashAttention: fa });
    c.setSampling(GREEDY);
    c.evaluateSync(tokens.subarray(0, depth), 0, depth, { probs: null, argmax: new Int32Array(depth), rowOffset: 0 });
    contexts.set(fa, c);
  }
  const times = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const n of ns) {
      for (const fa of r % 2 ? [...modes].reverse() : modes) {
        const t = contexts.get(fa)!.timeDecodeLoop(tokens.subarray(depth, depth + n), depth, 0, 3);
        const key = `${fa}:${n}`;
        times.set(key, [...(times.get(key) ?? []), ...t]);
      }
    }
  }
  for (const fa of modes) {
    const c1 = median(times.get(`${fa}:1`)!);
    rows.push(
      `| ${file} | ${fa} | ${ns
        .map((n) => {
          const m = median(times.get(`${fa}:${n}`)!);
          return `${m.toFixed(3)} (${(m / c1).toFixed(2)}×)`;
        })
        .join(" | ")} |`,
    );
  }
  for (const c of contexts.values()) c.dispose();
  model.dispose();
}
console.log(
  `c(n) in ms (median of ${rounds * 3} passes, depth ${depth}, ${threads} thread(s), greedy; in brackets: c(n)/c(1))\n`,
);
console.log(`| model | flash attention | ${ns.map((n) => `c(${n})`).join(" | ")} |`);
console.log(`|---|---|${ns.map(() => "---:").join("|")}|`);
for (const r of rows) console.log(r);
