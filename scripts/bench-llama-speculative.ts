// hsd's single draft next to llama.cpp's own `speculative-simple` example on the same pair, same prompts, same
// greedy decoding, 1 thread, flash attention off, interleaved; plus hsd's autoregressive run as the yardstick.
// llama.cpp is built from the source bundled in node-llama-cpp (build/llama.cpp-src, extracted by
// `npm run build:llama` or here), static, native CPU, only the example's targets.
//
//   npx tsx scripts/bench-llama-speculative.ts [--draft hsd-tiny-0.1M.gguf] [--target hsd-tiny-5M.gguf] [--T 2]
//        [--tokens 96] [--repetitions 3] [--models models/tiny]

import { join } from "node:path";
import { parseArgs } from "node:util";
import { Hsd } from "../src/api/hsd.js";
import { timeDecoding } from "./bench-lib/decode-timing.js";
import { ensureLlamaSpeculative, run } from "./bench-lib/llama-cpp.js";
import { median } from "../src/util/stats.js";

const { values } = parseArgs({
  options: {
    models: { type: "string", default: "models/tiny" },
    draft: { type: "string", default: "hsd-tiny-0.1M.gguf" },
    target: { type: "string", default: "hsd-tiny-5M.gguf" },
    T: { type: "string", default: "2" },
    tokens: { type: "string", default: "96" },
    repetitions: { type: "string", default: "3" },
  },
});
const T = Number(values.T);
const tokens = Number(values.tokens);
const repetitions = Number(values.repetitions);
const PROMPTS = [
  "The state of the Union is",
  "In the early years of the century,",
  "We must never forget that",
  "The committee met on Tuesday to discuss",
];

const binary = ensureLlamaSpeculative((line) => process.stderr.write(`${line}\n`));

const draftPath = join(values.models!, values.draft!);
const targetPath = join(values.models!, values.target!);
function llamaSpeculative(prompt: string): { tps: number; accept: number } {
  const out = run(binary, [
    "-m",
    targetPath,
    "-md",
    draftPath,
    "--spec-type",
    "draft-simple",
    "--spec-draft-p-min",
    "0",
    "--spec-draft-n-max",
    String(T),
    "--spec-draft-n-min",
    "0",
    "-t",
    "1",
    "-td",
    "1",
    "-fa",
    "off",
    "-c",
    "512",
    "-n",
    String(tokens),
    "--temp",
    "0",
    "--top-k",
    "1",
    "--seed",
    "1",
    "-p",
    prompt,
  ]);
  const speed = /decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t\/s/.exec(out);
  const accept = /accept\s+=\s+([\d.]+)%/.exec(out);
  if (!speed)
    throw new Error(`could not read the decode speed from llama-speculative-simple's output:\n${out.slice(-1500)}`);
  return { tps: Number(speed[1]), accept: accept ? Number(accept[1]) / 100 : NaN };
}

const hsd = await Hsd.open({ files: [draftPath, targetPath], threads: 1 });
async function hsdRun(prompt: string, files: string[], thresholds: number[]): Promise<{ tps: number; accept: number }> {
  // Prompt processing excluded, as llama.cpp's "decoded" figure excludes it.
  const run = hsd.generate(prompt, { hierarchy: { files, thresholds }, sampling: { greedy: true }, maxTokens: tokens });
  const { decodeMs, decodeTokens, result } = await timeDecoding(run);
  return { tps: (decodeTokens * 1000) / decodeMs, accept: result.stats.levels[0]!.acceptanceRate };
}

const methods = {
  "llama.cpp speculative-simple": (p: string) => Promise.resolve(llamaSpeculative(p)),
  "hsd single draft": (p: string) => hsdRun(p, [values.draft!, values.target!], [T]),
  "hsd autoregressive": (p: string) => hsdRun(p, [values.target!], []),
};
const results = new Map<string, { tps: number[]; accept: number[] }>(
  Object.keys(methods).map((k) => [k, { tps: [], accept: [] }]),
);
for (let r = 0; r < repetitions; r++) {
  for (const prompt of PROMPTS) {
    const order = Object.entries(methods);
    for (let i = 0; i < order.length; i++) {
      const [name, fn] = order[(i + r) % order.length]!;
      const x = await fn(prompt);
      results.get(name)!.tps.push(x.tps);
      results.get(name)!.accept.push(x.accept);
    }
  }
}
await hsd.dispose();
const ar = median(results.get("hsd autoregressive")!.tps);
console.log(
  `${values.draft} -> ${values.target}, T=${T}, greedy, ${tokens} tokens, 1 thread, flash attention off, ${PROMPTS.length} prompts x ${repetitions} repetitions, interleaved (${new Date().toISOString().slice(0, 16)}Z)\n`,
);
console.log("| method | decode tokens/s (median) | min–max | × vs hsd autoregressive | draft acceptance |");
console.log("|---|---:|---:|---:|---:|");
for (const [name, r] of results) {
  const acc = r.accept.filter((a) => Number.isFinite(a));
  console.log(
    `| ${name} | ${median(r.tps).toFixed(1)} | ${Math.min(...r.tps).toFixed(1)}–${Math.max(...r.tps).toFixed(1)} | ${(median(r.tps) / ar).toFixed(2)} | ${acc.length && name !== "hsd autoregressive" ? median(acc).toFixed(3) : "—"} |`,
  );
}
console.log(
  "\nllama.cpp's acceptance is its n_accept / n_drafted; hsd's is accepted / judged drafts (a draft after a rejection is not judged).",
);
