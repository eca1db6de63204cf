// A ModelLevel that does no model work, for timing the recursion itself (verification, sampling, bookkeeping).
// Each level has fixed rows: row r of level k is a softmax of a shared base plus level-specific noise, so
// neighbouring levels agree at a realistic rate (rows are fixed per row index, so sampling-mode agreement is only
// roughly controlled); greedy argmaxes, keyed by sequence position, agree with the target's with `agreement`.
// The rows are copied into the decoder's buffers once (first sight of a buffer); later passes only write the
// argmaxes, so a pass costs O(rows), not O(rows × vocab).

import type { DistributionRows, ModelLevel } from "../../src/levels/level.js";
import { makeRng } from "../../src/util/rng.js";

export class StubLevel implements ModelLevel {
  readonly kind = "model";
  readonly contextSize = 1 << 20;
  tokensEvaluated = 0;
  private readonly seen = new WeakSet<DistributionRows>();

  constructor(
    readonly name: string,
    readonly vocabSize: number,
    readonly probsTable: Float32Array,
    private readonly argmax: Int32Array,
  ) {}

  score(_sequence: Int32Array, length: number, firstRow: number, rows: DistributionRows, rowOffset: number): void {
    if (!this.seen.has(rows)) {
      this.seen.add(rows);
      if (rows.probs) rows.probs.set(this.probsTable.subarray(0, rows.probs.length));
    }
    for (let t = firstRow; t < length; t++) {
      const row = rowOffset + t - firstRow;
      // By sequence position, so that every level's argmax for the same position agrees at the set rate.
      rows.argmax[row] = this.argmax[t % this.argmax.length]!;
    }
    this.tokensEvaluated += length - firstRow;
  }
}

/**
 * `levels` stub levels over `vocab` tokens with `capacity` fixed rows each. `agreement` (one rate, or one per
 * adjacent pair, smallest first) is the greedy acceptance of level k's drafts by level k+1.
 */
export function stubFamily(
  levels: number,
  vocab: number,
  capacity: number,
  seed: number,
  agreement: number | readonly number[] = 0.75,
): StubLevel[] {
  const rng = makeRng(seed);
  const base = new Float32Array(capacity * vocab);
  for (let i = 0; i < base.length; i++) base[i] = 3 * rng();
  const out: StubLevel[] = [];
  for (let k = 0; k < levels; k++) {
    const blur = (levels - 1 - k) / Math.max(1, levels - 1);
    const probs = new Float32Array(capacity * vocab);
    for (let r = 0; r < capacity; r++) {
      let total = 0;
      for (let x = 0; x < vocab; x++) {
        const w = Math.exp(base[r * vocab + x]! + 2 * blur * (rng() - 0.5));
        probs[r * vocab + x] = w;
        total += w;
      }
      for (let x = 0; x < vocab; x++) probs[r * vocab + x]! /= total;
    }
    out.push(new StubLevel(`stub ${k}`, vocab, probs, new Int32Array(0)));
  }
  // Greedy argmaxes by position, top-down: each level agrees with the one above with probability `agreement`.
  let above = Int32Array.from({ length: 256 }, () => Math.floor(rng() * vocab));
  for (let k = levels - 1; k >= 0; k--) {
    const rate = typeof agreement === "number" ? agreement : agreement[k]!;
    const mine =
      k === levels - 1
        ? above
        : Int32Array.from(above, (a) => (rng() < rate ? a : (a + 1 + Math.floor(rng() * (vocab - 1))) % vocab));
    out[k] = new StubLevel(`stub ${k}`, vocab, out[k]!.probsTable, mine);
    above = mine;
  }
  return out;
}
