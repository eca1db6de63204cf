// What the addon's per-row work costs at a vocabulary size V, apart from llama.cpp's pass: shared by
// scripts/bench-vocab.ts and scripts/bench-real-shapes.ts.
//
// The baseline is a greedy one-token pass with vocabLimit 1: llama.cpp's pass (logits for all V ids included) and
// the N-API call, with an argmax over one id. Any other pass minus the baseline is what the addon adds for that
// row: the argmax over V (greedy), or the transform and the row handed to JS (sampling, dense or sparse). The
// models are tiny random-weight qwen2 models carrying a real tokenizer, so that the pass is short and the
// difference resolvable; the addon's cost depends on V and the logits' spread, not on the model's depth.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { SamplingTransform } from "../../src/native/types.js";
import type { NativeContext } from "../../src/native/types.js";
import { DistributionRows, rowLayout } from "../../src/levels/level.js";
import { sparseTarget } from "../../src/levels/native-model.js";
import { median } from "../../src/util/stats.js";
import { bundledVocabulary, padVocabulary, readTokenizer, writeRandomModel } from "../lib/random-model.js";

/** A tiny qwen2 model (32-wide, one block) with llama.cpp's `tokenizer` padded to `size` ids, written once in `dir`. */
export async function tinyModel(dir: string, tokenizer: string, size: number, seed: number): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `tiny-${tokenizer}-${size}-${seed}.gguf`);
  if (existsSync(path)) return path;
  const tok = padVocabulary(await readTokenizer(bundledVocabulary(tokenizer, join(dir, "vocab"))), size);
  writeRandomModel(path, {
    shape: {
      architecture: "qwen2",
      embedding: 32,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      feedForward: 64,
      tied: true,
      ropeBase: 1e6,
      contextLength: 4096,
    },
    tokenizer: tok,
    type: "F16",
    name: `tiny-${tokenizer}`,
    seed,
    embeddingStd: 0.5,
  });
  return path;
}

export type Layout = "dense" | "sparse";

/**
 * µs the addon adds per row for each (transform, layout), against the baseline, from `reps` interleaved rounds of
 * one-token passes over the last token of `prefix` (the rest is evaluated first).
 */
export function addonRowCosts(
  context: NativeContext,
  vocabSize: number,
  prefix: Int32Array,
  cases: readonly { transform: SamplingTransform; layout: Layout }[],
  reps: number,
): { baselineMs: number; perRowUs: number[] } {
  const at = prefix.length - 1;
  context.truncate(0);
  context.evaluateSync(prefix.subarray(0, at), 0, at, { probs: null, argmax: new Int32Array(0), rowOffset: 0 });
  const one = prefix.subarray(at);
  const baseline = { probs: null, argmax: new Int32Array(1), rowOffset: 0, vocabLimit: 1 };
  const targets = cases.map(({ transform, layout }) => {
    const rows = new DistributionRows(
      1,
      vocabSize,
      transform.greedy,
      false,
      layout === "sparse" ? rowLayout(transform, vocabSize) : undefined,
    );
    return { probs: rows.probs, argmax: rows.argmax, rowOffset: 0, sparse: sparseTarget(rows) };
  });
  const greedy: SamplingTransform = { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 };
  const base: number[] = [];
  const times = cases.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    context.setSampling(greedy);
    let started = performance.now();
    context.evaluateSync(one, at, 0, baseline);
    base.push(performance.now() - started);
    cases.forEach((c, i) => {
      context.setSampling(c.transform);
      started = performance.now();
      context.evaluateSync(one, at, 0, targets[i]!);
      times[i]!.push(performance.now() - started);
    });
  }
  const baselineMs = median(base);
  return { baselineMs, perRowUs: times.map((t) => 1000 * (median(t) - baselineMs)) };
}
