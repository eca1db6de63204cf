// Drawing tokens from distribution rows: plain sampling, and the residual of speculative
// sampling. O(vocab) each; the residual is drawn at most once per verification pass.

import type { DistributionRows } from "../levels/level.js";
import { HsdError } from "../errors.js";
import type { Rng } from "../util/rng.js";

/** x ~ rows[row] by inverse CDF. */
export function sampleRow(rows: DistributionRows, row: number, rng: Rng): number {
  const probs = rows.probs!;
  const base = row * rows.vocabSize;
  let u = rng.next();
  let last = -1;
  for (let x = 0; x < rows.vocabSize; x++) {
    const p = probs[base + x]!;
    if (p <= 0) continue;
    last = x;
    u -= p;
    if (u < 0) return x;
  }
  // Float32 rows sum to 1 only up to rounding: the leftover mass belongs to the last token.
  if (last < 0) throw new HsdError("sampleRow: the distribution row is all zeros");
  return last;
}

/**
 * y ~ norm(max(0, P[pRow] - Q[qRow])): the replacement token after a rejection. It is what
 * makes speculative sampling exact; sampling from P instead over-weights the tokens Q favours.
 * It runs over P's whole width: Q may be narrower (a draft restricted to fewer ids, §10), and
 * P's mass on the ids beyond Q's width is reachable only here and in the bonus token.
 * `width` < P's width is the "residual-within-draft" test mutant.
 */
export function sampleResidual(
  p: DistributionRows,
  pRow: number,
  q: DistributionRows,
  qRow: number,
  rng: Rng,
  width = p.vocabSize,
): number {
  if (q.pointMass) return sampleExcluding(p, pRow, q.argmax[qRow]!, rng);
  const pp = p.probs!;
  const qq = q.probs!;
  const pBase = pRow * p.vocabSize;
  const qBase = qRow * q.vocabSize;
  const shared = Math.min(width, q.vocabSize);
  let total = 0;
  for (let x = 0; x < shared; x++) {
    const d = pp[pBase + x]! - qq[qBase + x]!;
    if (d > 0) total += d;
  }
  for (let x = shared; x < width; x++) total += pp[pBase + x]!;
  // A rejection is only possible where P < Q somewhere, so total > 0 up to float rounding.
  // If rounding ate it all, P and Q are equal and P itself is the right law.
  if (!(total > 1e-12)) return sampleRow(p, pRow, rng);
  let u = rng.next() * total;
  let last = -1;
  for (let x = 0; x < width; x++) {
    const d = x < shared ? pp[pBase + x]! - qq[qBase + x]! : pp[pBase + x]!;
    if (d <= 0) continue;
    last = x;
    u -= d;
    if (u < 0) return x;
  }
  return last;
}

/**
 * The residual of a point-mass proposal x: norm(max(0, p - δ_x)) is p without x, renormalised (docs/ALGORITHM.md
 * §8). A rejection happened with probability 1 - p(x) > 0, so some other token has mass.
 */
function sampleExcluding(p: DistributionRows, pRow: number, excluded: number, rng: Rng): number {
  const pp = p.probs!;
  const base = pRow * p.vocabSize;
  const total = 1 - pp[base + excluded]!;
  if (!(total > 1e-12)) return sampleRow(p, pRow, rng); // rounding: p is (numerically) the point mass itself
  let u = rng.next() * total;
  let last = -1;
  for (let x = 0; x < p.vocabSize; x++) {
    if (x === excluded) continue;
    const d = pp[base + x]!;
    if (d <= 0) continue;
    last = x;
    u -= d;
    if (u < 0) return x;
  }
  return last;
}
