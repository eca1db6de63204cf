// Quick correctness check of the GPU build on the bundled models (models/tiny, real weights):
//  1. every model's next-token distributions over a text, with all layers on the GPU vs on the CPU: largest
//     probability difference and argmax agreement (f16 GPU kernels round differently, so small differences are
//     expected; argmax flips only where the top two are nearly tied);
//  2. greedy HSD with every model as a level, on the GPU, vs the target alone on the GPU: the same tokens (hsd's
//     exactness promise; a mismatch is reported with the position, since batched and one-token passes may
//     break near-ties differently);
//  3. c(n) of each model on the GPU for n = 1, 4, 8, 16 (for information).
//
//   node --import tsx scripts/gpu/gpu-check.ts [--models models/tiny] [--gpu-layers 999] [--out FILE.json]
// Exits 1 when check 1 or 2 fails (argmax agreement < 0.9, probability difference > 0.05, or HSD != target).
import fs from "node:fs";
import path from "node:path";

import {
  GREEDY,
  loadModel,
  nativeBackend,
  nativeDevices,
  type LlamaModel,
  type SamplingTransform,
} from "../../src/native/index.js";
import { NativeLevel } from "../../src/levels/native-model.js";
import { HsdDecoder } from "../../src/engine/hsd.js";
import { generate } from "../../src/engine/generate.js";
import { measurePassCosts } from "./pass-costs.js";
import { Rng } from "../../src/util/rng.js";

const TEXT =
  "The committee met on Tuesday to discuss the budget. After a long debate, the members agreed that the new plan " +
  "would cut costs without reducing services. The chairman thanked everyone and closed the meeting before noon.";
const T1: SamplingTransform = { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0 };
const CTX = { contextSize: 512, batchSize: 512, threads: 2 };

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

function rows(model: LlamaModel, tokens: Int32Array): { probs: Float32Array; argmax: Int32Array } {
  const ctx = model.createContext(CTX);
  try {
    ctx.setSampling(T1);
    const probs = new Float32Array(tokens.length * model.vocabSize);
    const argmax = new Int32Array(tokens.length);
    ctx.evaluateSync(tokens, 0, 0, { probs, argmax, rowOffset: 0 });
    return { probs, argmax };
  } finally {
    ctx.dispose();
  }
}

async function greedyTokens(
  models: LlamaModel[],
  thresholds: number[],
  prompt: Int32Array,
  maxTokens: number,
): Promise<number[]> {
  const contexts = models.map((m) => m.createContext(CTX));
  try {
    for (const c of contexts) c.setSampling(GREEDY);
    const levels = contexts.map(
      (c, i) => new NativeLevel(path.basename(models[i]!.path), c, models[i]!.vocabSize, "sync"),
    );
    const decoder = new HsdDecoder(levels, { thresholds, greedy: true, rng: new Rng(1) });
    const target = models[models.length - 1]!;
    const vocabulary = {
      isEndOfGeneration: (t: number) => target.isEndOfGeneration(t),
      tokenPiece: (t: number) => target.tokenPiece(t),
    };
    const it = generate(decoder, vocabulary, prompt, { maxTokens });
    let step = await it.next();
    while (!step.done) step = await it.next();
    return step.value.tokens;
  } finally {
    for (const c of contexts) c.dispose();
  }
}

async function main(): Promise<void> {
  const dir = arg("--models", "models/tiny");
  const gpuLayers = Number(arg("--gpu-layers", "999"));
  const out = arg("--out", "");
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".gguf"))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(a).size - fs.statSync(b).size);
  if (files.length === 0) throw new Error(`gpu-check: no .gguf files in ${dir}`);
  const report: Record<string, unknown> = {
    backend: nativeBackend(),
    devices: nativeDevices(),
    gpuLayers,
    models: [] as unknown[],
  };
  let ok = true;

  const gpuModels: LlamaModel[] = [];
  for (const file of files) {
    const cpu = await loadModel(file, { gpuLayers: 0 });
    const gpu = await loadModel(file, { gpuLayers });
    gpuModels.push(gpu);
    const tokens = gpu.tokenize(TEXT, true, false);
    const a = rows(cpu, tokens);
    const b = rows(gpu, tokens);
    let maxDiff = 0;
    for (let i = 0; i < a.probs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.probs[i]! - b.probs[i]!));
    let same = 0;
    for (let i = 0; i < a.argmax.length; i++) if (a.argmax[i] === b.argmax[i]) same++;
    const agreement = same / a.argmax.length;
    const costCtx = gpu.createContext(CTX);
    const costs = measurePassCosts(gpu, costCtx, tokens, GREEDY, {
      maxTokens: 16,
      depth: 16,
      repetitions: 10,
      warmup: 3,
    });
    costCtx.dispose();
    const pass = agreement >= 0.9 && maxDiff <= 0.05;
    ok &&= pass;
    const entry = {
      file: path.basename(file),
      params: gpu.parameterCount,
      tokens: tokens.length,
      maxProbDiff: maxDiff,
      argmaxAgreement: agreement,
      pass,
      gpuCostMs: Object.fromEntries(costs.filter((s) => [1, 4, 8, 16].includes(s.n)).map((s) => [s.n, s.ms])),
    };
    (report.models as unknown[]).push(entry);
    console.log(
      `[gpu-check] ${entry.file}: GPU vs CPU max |dp| ${maxDiff.toExponential(2)}, argmax agreement ${(100 * agreement).toFixed(1)}% ` +
        `(${tokens.length} rows) ${pass ? "ok" : "FAIL"}; GPU c(n) ${JSON.stringify(entry.gpuCostMs)}`,
    );
    cpu.dispose();
  }

  if (gpuModels.length >= 2) {
    const prompt = gpuModels[0]!.tokenize(TEXT, true, false);
    const thresholds = gpuModels.slice(0, -1).map((_, i) => 2 + i);
    const target = await greedyTokens([gpuModels[gpuModels.length - 1]!], [], prompt, 64);
    const hsd = await greedyTokens(gpuModels, thresholds, prompt, 64);
    let first = -1;
    for (let i = 0; i < Math.max(target.length, hsd.length); i++) {
      if (target[i] !== hsd[i]) {
        first = i;
        break;
      }
    }
    report.hsdExactness = {
      thresholds,
      targetTokens: target.length,
      hsdTokens: hsd.length,
      firstMismatch: first,
      equal: first < 0,
    };
    ok &&= first < 0;
    console.log(
      `[gpu-check] greedy HSD (${gpuModels.length} levels, T=[${thresholds.join(",")}]) vs target alone on the GPU: ` +
        (first < 0 ? `identical (${hsd.length} tokens)` : `FIRST MISMATCH at token ${first}`),
    );
  } else {
    report.hsdExactness = "skipped: one model only";
    console.log("[gpu-check] HSD exactness skipped: one bundled model only");
  }
  report.ok = ok;
  if (out) fs.writeFileSync(out, JSON.stringify(report, null, 1) + "\n");
  for (const m of gpuModels) m.dispose();
  process.exitCode = ok ? 0 : 1;
}

main().catch((e: unknown) => {
  console.error(`gpu-check: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
