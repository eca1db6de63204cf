// In-memory models with known next-token distributions, for testing the recursion's exactness
// without GGUF files: the exact law of the target's output can be enumerated and compared with
// what HSD samples.

import { ownId, type DistributionRows, type ModelLevel, type ProposalLevel } from "../../src/levels/level.js";

/** A next-token law: writes probabilities for the token after `context[0 .. length)` into `out`. */
export type NextTokenLaw = (context: Int32Array, length: number, out: Float32Array) => void;

/**
 * A model whose next-token law is `law`, read as llama.cpp models are read by NativeLevel: ids it lacks in the
 * context are read as ownId (those at the positions it judges are counted in `foreignDraftsRead`), and rows narrower than its vocabulary get the law
 * restricted to their ids, renormalised (the addon's vocabLimit; docs/ALGORITHM.md §11).
 */
export class SyntheticLevel implements ModelLevel {
  readonly kind = "model";
  readonly contextSize = 1 << 20;
  tokensEvaluated = 0;
  /** Ids this level lacks that it was asked to read at the positions it scores (a draft it cannot judge). */
  foreignDraftsRead = 0;
  private readonly scratch: Float32Array;
  private readonly row: Float64Array;
  private context = new Int32Array(64);

  constructor(
    readonly name: string,
    readonly vocabSize: number,
    readonly law: NextTokenLaw,
    /** Truncation as the sampling transform's (top-k, then min-p), after the restriction to a row's width. */
    readonly truncation?: { topK: number; minP: number },
  ) {
    this.scratch = new Float32Array(vocabSize);
    this.row = new Float64Array(vocabSize);
  }

  score(sequence: Int32Array, length: number, firstRow: number, rows: DistributionRows, rowOffset: number): void {
    this.tokensEvaluated += length - firstRow;
    if (this.context.length < length) this.context = new Int32Array(2 * length);
    for (let t = 0; t < length; t++) {
      this.context[t] = ownId(sequence[t]!, this.vocabSize);
      if (t > firstRow && sequence[t]! >= this.vocabSize) this.foreignDraftsRead++;
    }
    for (let t = firstRow; t < length; t++) {
      const row = rowOffset + t - firstRow;
      this.distribution(this.context, t + 1, rows.vocabSize, this.row);
      let best = 0;
      for (let x = 1; x < rows.vocabSize; x++) if (this.row[x]! > this.row[best]!) best = x;
      rows.argmax[row] = best;
      if (rows.probs || rows.sparseIds) rows.write(row, this.row);
    }
  }

  /** The row this level writes after context[0 .. length) at `width` ids: law, restriction, truncation. */
  distribution(context: Int32Array, length: number, width: number, out: Float64Array | Float32Array): void {
    this.law(context, length, this.scratch);
    let mass = 0;
    for (let x = 0; x < width; x++) mass += this.scratch[x]!;
    for (let x = 0; x < width; x++) out[x] = this.scratch[x]! / mass;
    const cut = this.truncation;
    if (!cut) return;
    const order = Array.from({ length: width }, (_, x) => x).sort((a, b) => out[b]! - out[a]! || a - b);
    const kept = order.slice(0, cut.topK > 0 ? cut.topK : width).filter((x) => out[x]! >= cut.minP * out[order[0]!]!);
    let keptMass = 0;
    for (const x of kept) keptMass += out[x]!;
    const values = kept.map((x) => out[x]! / keptMass);
    out.fill(0, 0, width);
    kept.forEach((x, i) => (out[x] = values[i]!));
  }
}

/** The law over the first `width` ids of `law` (over more ids), renormalised: a model that lacks the others. */
export function narrowed(law: NextTokenLaw, from: number, width: number): NextTokenLaw {
  const full = new Float32Array(from);
  return (context, length, out) => {
    law(context, length, full);
    let mass = 0;
    for (let x = 0; x < width; x++) mass += full[x]!;
    for (let x = 0; x < width; x++) out[x] = full[x]! / mass;
  };
}

/**
 * A family of related laws over a small vocabulary: level `k` of `levels` is the target's law
 * blurred by a level-specific perturbation that shrinks as k grows, so that neighbouring levels
 * agree more than distant ones, as real model families do. The law depends on the last two
 * tokens, so block boundaries and catch-up tokens matter.
 */
export function syntheticFamily(vocabSize: number, levels: number, seed: number): NextTokenLaw[] {
  const laws: NextTokenLaw[] = [];
  for (let k = 0; k < levels; k++) {
    const blur = (levels - 1 - k) / Math.max(1, levels - 1); // 1 for the smallest, 0 for the target
    laws.push((context, length, out) => {
      const a = length >= 1 ? context[length - 1]! : vocabSize;
      const b = length >= 2 ? context[length - 2]! : vocabSize;
      let total = 0;
      for (let x = 0; x < vocabSize; x++) {
        const base = hashUnit(seed, a, b, x, -1) * 3;
        const noise = (hashUnit(seed, a, b, x, k) - 0.5) * 4 * blur;
        const w = Math.exp(base + noise);
        out[x] = w;
        total += w;
      }
      for (let x = 0; x < vocabSize; x++) out[x] = out[x]! / total;
    });
  }
  return laws;
}

/** A deterministic value in [0, 1) from small integers (an integer hash, not a PRNG stream). */
function hashUnit(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    h = Math.imul(h ^ (part & 0xffff), 0x01000193) >>> 0;
    h = Math.imul(h ^ (part >>> 16), 0x01000193) >>> 0;
    h ^= h >>> 15;
  }
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  h ^= h >>> 12;
  return (h >>> 0) / 4294967296;
}

/**
 * A model-free level for the exactness tests: it proposes what followed the latest earlier occurrence of the last
 * token (a one-token lookup), up to `max` tokens, and abstains when the last token never occurred before. Its
 * proposals are deterministic given the context, so each is a point mass (docs/ALGORITHM.md §8).
 */
export class CopyProposalLevel implements ProposalLevel {
  readonly kind = "proposal";

  constructor(
    readonly name: string,
    readonly vocabSize: number,
  ) {}

  propose(sequence: Int32Array, length: number, max: number): number {
    const last = sequence[length - 1]!;
    for (let at = length - 2; at >= 0; at--) {
      if (sequence[at] !== last) continue;
      let n = 0;
      while (n < max && at + 1 + n < length) {
        sequence[length + n] = sequence[at + 1 + n]!;
        n++;
      }
      return n;
    }
    return 0;
  }
}
