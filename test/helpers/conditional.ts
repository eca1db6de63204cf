// Tests of a decoder's output against the exact conditional law of a synthetic target, token by token.
import type { Decoder } from "../../src/engine/hsd.js";
import { Rng } from "../../src/util/rng.js";
import type { NextTokenLaw } from "./synthetic-levels.js";
import { chiSquareFit } from "./stats.js";

/**
 * Two tests of every generated token of `generations` runs of `length` tokens after `PROMPT` against the target's exact conditional law given the realised prefix, by
 * blocks of 6 positions (a fault that appears only after a few steps, or a few rollbacks, shows in the later
 * blocks):
 *  - randomised probability-integral transform: u = F(x - 1) + V p(x), V ~ U(0, 1); if the output has the target's
 *    law the u's are i.i.d. uniform (Rosenblatt's theorem), checked by Kolmogorov–Smirnov;
 *  - sequential chi-square: tokens are counted per context (the last two tokens, which the synthetic law depends
 *    on) against the summed conditional probabilities; under the target's law Pearson's statistic is asymptotically
 *    chi-square (a martingale CLT), and it resolves a per-context law error of a few percent (the TV it reports).
 */
export async function conditionalTests(
  decoder: Decoder,
  law: NextTokenLaw,
  PROMPT: readonly number[],
  VOCAB: number,
  generations: number,
  length: number,
) {
  const rng = new Rng(99);
  const blocks = 4;
  const us: number[][] = Array.from({ length: blocks }, () => []);
  const observed = Array.from({ length: blocks }, () => new Map<string, number>());
  const expected = Array.from({ length: blocks }, () => new Map<string, number>());
  const seq = new Int32Array(PROMPT.length + length + decoder.maxDraftBlock + 2);
  const probs = new Float32Array(VOCAB);
  let tokens = 0;
  let steps = 0;
  for (let g = 0; g < generations; g++) {
    seq.set(PROMPT);
    let committed = PROMPT.length;
    while (committed < PROMPT.length + length) {
      committed += await decoder.step(seq, committed);
      steps++;
    }
    tokens += committed - PROMPT.length;
    for (let i = 0; i < length; i++) {
      const at = PROMPT.length + i;
      const b = Math.floor((i * blocks) / length);
      law(seq, at, probs);
      const x = seq[at]!;
      let below = 0;
      for (let y = 0; y < x; y++) below += probs[y]!;
      us[b]!.push(below + rng.next() * probs[x]!);
      const context = `${seq[at - 2]},${seq[at - 1]}`;
      observed[b]!.set(`${context}>${x}`, (observed[b]!.get(`${context}>${x}`) ?? 0) + 1);
      for (let y = 0; y < VOCAB; y++) {
        expected[b]!.set(`${context}>${y}`, (expected[b]!.get(`${context}>${y}`) ?? 0) + probs[y]!);
      }
    }
  }
  const ks = us.map((u) => kolmogorovSmirnov(u));
  const chi = observed.map((o, b) => {
    const n = us[b]!.length;
    const e = new Map([...expected[b]!].map(([k, v]) => [k, v / n]));
    return chiSquareFit(o, e, n);
  });
  return { ks, chi, tokensPerStep: tokens / steps, values: us.reduce((n, u) => n + u.length, 0) };
}

/** KS statistic of samples against U(0,1) and its p-value (asymptotic Kolmogorov distribution). */
function kolmogorovSmirnov(u: number[]): { d: number; pValue: number } {
  const s = [...u].sort((a, b) => a - b);
  const n = s.length;
  let d = 0;
  for (let i = 0; i < n; i++) d = Math.max(d, (i + 1) / n - s[i]!, s[i]! - i / n);
  const lambda = (Math.sqrt(n) + 0.12 + 0.11 / Math.sqrt(n)) * d;
  let p = 0;
  for (let k = 1; k < 100; k++) p += 2 * (-1) ** (k - 1) * Math.exp(-2 * k * k * lambda * lambda);
  return { d, pValue: Math.min(1, Math.max(0, p)) };
}
