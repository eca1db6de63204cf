// Acceptance as the latency model needs it, taken on the user's machine and settings: a(lo, hi), how often
// drafts of lo survive the check of hi. (Pass costs: decode-costs.ts.)

import type { NativeContext, NativeModel, SamplingTransform } from "../native/types.js";
import { Rng } from "../util/rng.js";
import { DistributionRows } from "../levels/level.js";
import { sampleRow } from "../engine/sampling.js";
import { yieldOrAbort } from "../util/yield.js";

export interface AcceptanceMeasureOptions {
  /** Tokens the target generates after each prompt; acceptance is averaged over them. */
  continuationTokens: number;
  seed: number;
  signal?: AbortSignal;
}

/**
 * a[lo][hi] for every ordered pair lo < hi: the mean over positions of the target's own
 * continuations of P(accept) = sum_x min(p_lo(x), p_hi(x)) (sampling) or [argmax_lo = argmax_hi]
 * (greedy). Each model scores each continuation in one pass.
 */
export async function measureAcceptance(
  models: readonly NativeModel[],
  contexts: readonly NativeContext[],
  prompts: readonly Int32Array[],
  transform: SamplingTransform,
  options: AcceptanceMeasureOptions,
  onStep?: () => void,
): Promise<number[][]> {
  const k = models.length;
  const vocab = models[k - 1]!.vocabSize;
  const L = options.continuationTokens;
  for (const c of contexts) c.setSampling(transform);
  const sums = Array.from({ length: k }, () => new Float64Array(k));
  let positions = 0;
  const rng = new Rng(options.seed);
  const rows = Array.from({ length: k }, () => new DistributionRows(L + 1, vocab, transform.greedy));
  const targets = rows.map((r) => ({ probs: r.probs, argmax: r.argmax, rowOffset: 0 }));
  for (const prompt of prompts) {
    const sequence = new Int32Array(prompt.length + L);
    sequence.set(prompt);
    // The target writes the continuation, token by token, under the user's settings.
    const target = contexts[k - 1]!;
    const one = rows[k - 1]!;
    target.evaluateSync(prompt, 0, prompt.length - 1, targets[k - 1]!);
    for (let t = 0; t < L; t++) {
      sequence[prompt.length + t] = transform.greedy ? one.argmax[0]! : sampleRow(one, 0, rng);
      if (t + 1 < L)
        target.evaluateSync(
          sequence.subarray(prompt.length + t, prompt.length + t + 1),
          prompt.length + t,
          0,
          targets[k - 1]!,
        );
    }
    // Every model scores the whole continuation in one pass: rows for positions prompt-1 … end-2.
    for (let m = 0; m < k; m++) {
      contexts[m]!.evaluateSync(sequence.subarray(0, prompt.length + L - 1), 0, prompt.length - 1, targets[m]!);
    }
    for (let lo = 0; lo < k; lo++) {
      for (let hi = lo + 1; hi < k; hi++) {
        sums[lo]![hi]! += agreement(rows[lo]!, rows[hi]!, L, vocab, transform.greedy);
      }
    }
    positions += L;
    for (const c of contexts) c.truncate(0);
    onStep?.();
    await yieldOrAbort(options.signal, "the acceptance calibration");
  }
  return sums.map((row) => Array.from(row, (s) => s / positions));
}

function agreement(lo: DistributionRows, hi: DistributionRows, rows: number, vocab: number, greedy: boolean): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    if (greedy) {
      total += lo.argmax[r] === hi.argmax[r] ? 1 : 0;
      continue;
    }
    let overlap = 0;
    const base = r * vocab;
    for (let x = 0; x < vocab; x++) overlap += Math.min(lo.probs![base + x]!, hi.probs![base + x]!);
    total += overlap;
  }
  return total;
}
