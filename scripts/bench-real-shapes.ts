/**
 * Real shapes on the CPU (`npx tsx scripts/bench-real-shapes.ts [--models a,b] [--threads N] [--reps N]
 * [--tokens N] [--skip-costs] [--skip-overhead]`): random-weight models with the shapes and tokenizers of
 * Qwen2.5-0.5B and Qwen2.5-1.5B (the Qwen2 tokenizer, 151,936 ids; F16 and Q8_0) and Llama-3.2-1B (llama.cpp's
 * llama-bpe tokenizer, 128,256 ids; F16), written to build/real-shapes/ on first use (0.5 to 3 GB each; never
 * committed). Their weights are noise: only the cost of a pass, and of the engine around it, means anything.
 *
 *  1. c(n), n = 1 … 16: a pass over n tokens after a 64-token prefix (greedy rows), sizes interleaved, the median
 *     of --reps (default 3) passes; and the one-token pass with llama.cpp's default sampling (sparse rows), whose
 *     difference to the greedy one is the addon's transform.
 *  2. The engine's overhead share in a draft -> target run, 0.5B-shaped -> 1.5B-shaped at V = 151,936: everything
 *     but llama.cpp's passes, i.e. the time outside the levels' score() calls (RunStats.engineMs) plus the addon's
 *     per-row work inside them (argmax, or transform and rows to JS), counted as rows × the addon's per-row cost at
 *     this V and these settings, measured on a tiny model with the same tokenizer (scripts/bench-lib/vocab-costs.ts:
 *     these passes are too long to resolve a fraction of a millisecond in them). Greedy runs use
 *     SYNTHETIC acceptance (scripts/gpu/synthetic-acceptance.ts: the target accepts each draft with probability
 *     --acceptance, default 0.7), since two random models agree by chance only; sampling runs (llama.cpp's
 *     defaults) use the models' own acceptance, which is ~0: every step ends in a residual draw — the most engine
 *     work per generated token.
 * Writes bench-out/real-shapes.json and prints tables. With --reps 5 and every model it took 18 minutes on the shared
 * 2-core box under a load average of 5–7 (the default of 3 repetitions keeps a run near 10 minutes there); the
 * models themselves are written once (about 9 GB in all).
 */

import { existsSync, mkdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadModel, type LlamaModel } from "../src/native/index.js";
import type { SamplingTransform } from "../src/native/types.js";
import { DistributionRows, rowLayout, type ModelLevel } from "../src/levels/level.js";
import { NativeLevel, sparseTarget } from "../src/levels/native-model.js";
import { HsdDecoder } from "../src/engine/hsd.js";
import { generate } from "../src/engine/generate.js";
import { Rng } from "../src/util/rng.js";
import { addonRowCosts, tinyModel } from "./bench-lib/vocab-costs.js";
import { median } from "../src/util/stats.js";
import { withSyntheticAcceptance } from "./gpu/synthetic-acceptance.js";
import { REAL_SHAPES, bundledVocabulary, padVocabulary, readTokenizer, writeRandomModel } from "./lib/random-model.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const threads = Number(arg("--threads") ?? 2);
const reps = Number(arg("--reps") ?? 3);
const tokens = Number(arg("--tokens") ?? 24);
const acceptance = Number(arg("--acceptance") ?? 0.7);
for (const [name, v] of [
  ["--threads", threads],
  ["--reps", reps],
  ["--tokens", tokens],
] as const)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
if (!(acceptance >= 0 && acceptance <= 1)) throw new Error(`--acceptance must be in [0, 1], got ${acceptance}`);
const out = arg("--out") ?? "bench-out";
const DIR = "build/real-shapes";

const MODELS = {
  "qwen2.5-0.5b-f16": { shape: "qwen2.5-0.5b", tokenizer: "qwen2", vocab: 151936, type: "F16" },
  "qwen2.5-0.5b-q8_0": { shape: "qwen2.5-0.5b", tokenizer: "qwen2", vocab: 151936, type: "Q8_0" },
  "qwen2.5-1.5b-f16": { shape: "qwen2.5-1.5b", tokenizer: "qwen2", vocab: 151936, type: "F16" },
  "qwen2.5-1.5b-q8_0": { shape: "qwen2.5-1.5b", tokenizer: "qwen2", vocab: 151936, type: "Q8_0" },
  "llama-3.2-1b-f16": { shape: "llama-3.2-1b", tokenizer: "llama-bpe", vocab: 128256, type: "F16" },
} as const;
type ModelName = keyof typeof MODELS;
const selected = (arg("--models")?.split(",") ?? Object.keys(MODELS)) as ModelName[];
for (const m of selected) if (!(m in MODELS)) throw new Error(`--models: unknown ${m} (known: ${Object.keys(MODELS)})`);

const GREEDY: SamplingTransform = { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 };
const DEFAULT: SamplingTransform = { greedy: false, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 };
const TEXT =
  "The committee met on Tuesday to discuss the budget. After a long debate, the members agreed that the new plan " +
  "would cut costs without reducing services, and the chair thanked everyone for their patience and their work.";

async function ensureModel(name: ModelName): Promise<string> {
  mkdirSync(DIR, { recursive: true });
  const path = join(DIR, `random-${name}.gguf`);
  if (existsSync(path)) return path;
  const spec = MODELS[name];
  const started = performance.now();
  const tokenizer = padVocabulary(
    await readTokenizer(bundledVocabulary(spec.tokenizer, join(DIR, "vocab"))),
    spec.vocab,
  );
  const { parameters, bytes } = writeRandomModel(path, {
    shape: REAL_SHAPES[spec.shape],
    tokenizer,
    type: spec.type,
    name: `random-${name}`,
  });
  console.log(
    `[real-shapes] wrote ${path}: ${(parameters / 1e9).toFixed(2)} B parameters, ${(bytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return path;
}

const report: Record<string, unknown> = { threads, reps, date: new Date().toISOString() };
const paths = new Map<ModelName, string>();
for (const m of selected) paths.set(m, await ensureModel(m));

// 1. c(n) ------------------------------------------------------------------------------------------------------
if (!process.argv.includes("--skip-costs")) {
  const costs: Record<string, unknown>[] = [];
  for (const name of selected) {
    const model = await loadModel(paths.get(name)!);
    const context = model.createContext({ contextSize: 512, batchSize: 64, threads, flashAttention: "off" });
    const text = model.tokenize(TEXT.repeat(4), false, false).subarray(0, 64 + 16);
    const prefix = 64;
    context.evaluateSync(text.subarray(0, prefix), 0, prefix, { probs: null, argmax: new Int32Array(0), rowOffset: 0 });
    const argmax = new Int32Array(16);
    const times = new Map<number, number[]>();
    const sampled: number[] = [];
    const greedyOne: number[] = [];
    const rows = new DistributionRows(1, model.vocabSize, false, false, rowLayout(DEFAULT, model.vocabSize));
    const target = { probs: rows.probs, argmax: rows.argmax, rowOffset: 0, sparse: sparseTarget(rows) };
    for (let r = 0; r < reps; r++) {
      for (let n = 1; n <= 16; n++) {
        context.setSampling(GREEDY);
        const started = performance.now();
        context.evaluateSync(text.subarray(prefix, prefix + n), prefix, 0, { probs: null, argmax, rowOffset: 0 });
        const ms = performance.now() - started;
        times.set(n, [...(times.get(n) ?? []), ms]);
        if (n === 1) {
          greedyOne.push(ms);
          context.setSampling(DEFAULT);
          const s = performance.now();
          context.evaluateSync(text.subarray(prefix, prefix + 1), prefix, 0, target);
          sampled.push(performance.now() - s);
        }
      }
    }
    const row: Record<string, unknown> = {
      model: name,
      parameters: model.parameterCount,
      GiB: +(model.sizeBytes / 2 ** 30).toFixed(2),
    };
    for (let n = 1; n <= 16; n++) row[`c(${n})`] = +median(times.get(n)!).toFixed(1);
    row["c(1) default sampling"] = +median(sampled).toFixed(1);
    row["c(1) greedy, same reps"] = +median(greedyOne).toFixed(1);
    costs.push(row);
    console.log(JSON.stringify(row));
    context.dispose();
    model.dispose();
  }
  report.costs = costs;
  console.table(
    costs.map((c) =>
      Object.fromEntries(Object.entries(c).filter(([k]) => !/^c\((3|5|6|7|9|10|11|13|14|15)\)$/.test(k))),
    ),
  );
}

// 2. engine overhead share -------------------------------------------------------------------------------------
if (!process.argv.includes("--skip-overhead")) {
  const pairs: [ModelName, ModelName][] = [
    ["qwen2.5-0.5b-q8_0", "qwen2.5-1.5b-q8_0"],
    ["qwen2.5-0.5b-f16", "qwen2.5-1.5b-f16"],
  ].filter(([a, b]) => paths.has(a as ModelName) && paths.has(b as ModelName)) as [ModelName, ModelName][];
  const overhead: Record<string, unknown>[] = [];
  // The addon's per-row cost at V = 151,936 for each mode (a tiny model with the Qwen2 tokenizer).
  const tiny = await loadModel(await tinyModel(join(DIR, "tiny"), "qwen2", 151936, 1));
  const tinyContext = tiny.createContext({ contextSize: 256, batchSize: 64, threads: 1 });
  const addon = addonRowCosts(
    tinyContext,
    tiny.vocabSize,
    tiny.tokenize(TEXT, false, false).subarray(0, 32),
    [
      { transform: GREEDY, layout: "dense" },
      { transform: DEFAULT, layout: "sparse" },
    ],
    200,
  );
  tinyContext.dispose();
  tiny.dispose();
  report.addonRowUs = { greedy: addon.perRowUs[0], default: addon.perRowUs[1] };
  console.log(
    `[real-shapes] addon per row at V = 151936: greedy ${addon.perRowUs[0]!.toFixed(1)} µs, default sampling (sparse) ${addon.perRowUs[1]!.toFixed(1)} µs`,
  );
  for (const [draftName, targetName] of pairs) {
    const models: LlamaModel[] = [await loadModel(paths.get(draftName)!), await loadModel(paths.get(targetName)!)];
    const contexts = models.map((m) =>
      m.createContext({ contextSize: 1024, batchSize: 64, threads, flashAttention: "off" }),
    );
    const levels = contexts.map(
      (c, i) => new NativeLevel(i === 0 ? draftName : targetName, c, models[i]!.vocabSize, "sync"),
    );
    const prompt = models[1]!.tokenize(TEXT, false, false);
    const vocabulary = { isEndOfGeneration: () => false, tokenPiece: (t: number) => models[1]!.tokenPiece(t) };
    for (const [mode, t] of [
      ["greedy, SYNTHETIC acceptance " + acceptance, GREEDY],
      ["default sampling (t=0.8 top-k 40 top-p 0.95 min-p 0.05), real acceptance ~0", DEFAULT],
    ] as const) {
      for (const c of contexts) c.setSampling(t);
      const chain: ModelLevel[] = t.greedy ? withSyntheticAcceptance(levels, [acceptance], 7) : levels;
      for (const T of [4]) {
        const decoder = new HsdDecoder(chain, { thresholds: [T], greedy: t.greedy, sampling: t, rng: new Rng(3) });
        const it = generate(decoder, vocabulary, prompt, { maxTokens: tokens });
        let step = await it.next();
        while (!step.done) step = await it.next();
        const s = step.value.stats;
        const [draft, target] = s.levels;
        // Rows the addon transformed: one per drafting pass; n + 1 per verification of n drafts.
        const rows = draft!.passes + target!.passes + draft!.drafted;
        const transformMs = (rows * Math.max(0, addon.perRowUs[t.greedy ? 0 : 1]!)) / 1000;
        overhead.push({
          pair: `${draftName} -> ${targetName}`,
          mode,
          T,
          tokens: s.tokens,
          "wall ms": +s.wallMs.toFixed(0),
          "ms/token": +s.msPerToken.toFixed(1),
          "accepted/judged": `${draft!.accepted}/${draft!.judged}`,
          "engine ms (outside score)": +s.engineMs.toFixed(2),
          "rows transformed": rows,
          "transform ms (rows × per-row cost)": Number.isNaN(transformMs) ? "n/a" : +transformMs.toFixed(2),
          "overhead share %": Number.isNaN(transformMs)
            ? "n/a"
            : +((100 * (s.engineMs + transformMs)) / s.wallMs).toFixed(3),
        });
        console.log(JSON.stringify(overhead[overhead.length - 1]));
      }
    }
    for (const c of contexts) c.dispose();
    for (const m of models) m.dispose();
  }
  report.overhead = overhead;
  console.table(overhead);
}

await mkdir(out, { recursive: true });
await writeFile(join(out, "real-shapes.json"), JSON.stringify(report, null, 1));
