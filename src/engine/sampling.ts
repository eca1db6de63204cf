// Drawing tokens from distribution rows: plain sampling, and the residual of speculative sampling. Each runs over
// a row's non-zero entries: all of a dense row's ids, or a sparse row's entries (docs/ALGORITHM.md §12), so that
// the work follows what the sampling settings keep, not the vocabulary's size. The residual is drawn at most once
// per verification pass.

import type { DistributionRows } from "../levels/level.js";
import { HsdError } from "../errors.js";
import type { Rng } from "../util/rng.js";

/** x ~ rows[row] by inverse CDF (over a sparse row's entries in their stored order: the same law). */
export function sampleRow(rows: DistributionRows, row: number, rng: Rng): number {
  let u = rng.next();
  let last = -1;
  if (rows.isSparse(row)) {
    const ids = rows.sparseIds!;
    const probs = rows.sparseProbs!;
    const base = row * rows.sparseCapacity;
    const end = base + rows.sparseCounts![row]!;
    for (let e = base; e < end; e++) {
      const p = probs[e]!;
      if (p <= 0) continue;
      last = ids[e]!;
      u -= p;
      if (u < 0) return last;
    }
  } else {
    const probs = rows.probs!;
    const base = row * rows.vocabSize;
    for (let x = 0; x < rows.vocabSize; x++) {
      const p = probs[base + x]!;
      if (p <= 0) continue;
      last = x;
      u -= p;
      if (u < 0) return x;
    }
  }
  // Float32 rows sum to 1 only up to rounding: the leftover mass belongs to the last token.
  if (last < 0) throw new HsdError("sampleRow: the distribution row is all zeros");
  return last;
}

/** A dense row of zeros that sparse rows are scattered into (and cleared after), grown as needed. */
let scatter = new Float32Array(0);

/**
 * y ~ norm(max(0, P[pRow] - Q[qRow])): the replacement token after a rejection. It is what
 * makes speculative sampling exact; sampling from P instead over-weights the tokens Q favours.
 * It runs over P's non-zero entries (max(0, P - Q) is 0 elsewhere) within P's whole width: Q may be
 * narrower (a draft restricted to fewer ids, §11), and P's mass on the ids beyond Q's width is
 * reachable only here and in the bonus token. A sparse Q is scattered into a dense scratch row for
 * the lookups. `width` < P's width is the "residual-within-draft" test mutant.
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
  // q's probabilities as a dense row: its own, or its sparse entries scattered.
  let qq: Float32Array;
  let qBase: number;
  const qSparse = q.isSparse(qRow);
  if (qSparse) {
    if (scatter.length < q.vocabSize) scatter = new Float32Array(q.vocabSize);
    qq = scatter;
    qBase = 0;
    const start = qRow * q.sparseCapacity;
    for (let e = start; e < start + q.sparseCounts![qRow]!; e++) qq[q.sparseIds![e]!] = q.sparseProbs![e]!;
  } else {
    qq = q.probs!;
    qBase = qRow * q.vocabSize;
  }
  const shared = Math.min(width, q.vocabSize);
  try {
    if (p.isSparse(pRow)) {
      const ids = p.sparseIds!;
      const probs = p.sparseProbs!;
      const start = pRow * p.sparseCapacity;
      const end = start + p.sparseCounts![pRow]!;
      const excess = (e: number) => {
        const x = ids[e]!;
        if (x >= width) return 0;
        return x < shared ? probs[e]! - qq[qBase + x]! : probs[e]!;
      };
      let total = 0;
      for (let e = start; e < end; e++) total += Math.max(0, excess(e));
      if (!(total > 1e-12)) return sampleRow(p, pRow, rng); // see the dense case below
      let u = rng.next() * total;
      let last = -1;
      for (let e = start; e < end; e++) {
        const d = excess(e);
        if (d <= 0) continue;
        last = ids[e]!;
        u -= d;
        if (u < 0) return last;
      }
      return last;
    }
    const pp = p.probs!;
    const pBase = pRow * p.vocabSize;
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
  } finally {
    if (qSparse) {
      const start = qRow * q.sparseCapacity;
      for (let e = start; e < start + q.sparseCounts![qRow]!; e++) scatter[q.sparseIds![e]!] = 0;
    }
  }
}

/**
 * The residual of a point-mass proposal x: norm(max(0, p - δ_x)) is p without x, renormalised (docs/ALGORITHM.md
 * §8). A rejection happened with probability 1 - p(x) > 0, so some other token has mass.
 */
function sampleExcluding(p: DistributionRows, pRow: number, excluded: number, rng: Rng): number {
  const total = 1 - p.prob(pRow, excluded);
  if (!(total > 1e-12)) return sampleRow(p, pRow, rng); // rounding: p is (numerically) the point mass itself
  let u = rng.next() * total;
  let last = -1;
  if (p.isSparse(pRow)) {
    const start = pRow * p.sparseCapacity;
    for (let e = start; e < start + p.sparseCounts![pRow]!; e++) {
      const x = p.sparseIds![e]!;
      const d = p.sparseProbs![e]!;
      if (x === excluded || d <= 0) continue;
      last = x;
      u -= d;
      if (u < 0) return x;
    }
    return last;
  }
  const pp = p.probs!;
  const base = pRow * p.vocabSize;
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
