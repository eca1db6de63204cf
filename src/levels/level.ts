// The levels of a hierarchy (docs/ALGORITHM.md §2, §8): what the recursion needs from each kind.
//
//  - A model (`ModelLevel`): "given this token sequence, write your next-token distribution after each of these
//    positions into these rows". It drafts one token per pass at the bottom of a chain and verifies a whole block
//    in one pass above it. It owns its KV cache and decides itself what to (re-)feed; the recursion only says which
//    sequence it wants scored. GGUF models over the addon (native-model.ts) and the tests' in-memory models
//    implement it, so the exactness tests run the recursion the product runs.
//  - A proposal level (`ProposalLevel`, model-free): "propose up to T tokens after this sequence", in one call with
//    no forward pass, possibly fewer or none (it abstains). It only sits at the bottom of a chain. Each proposed
//    token is a point mass: the level above accepts it with probability p(x) and otherwise draws from p without x
//    (§8), which keeps the output exact.

import type { SamplingTransform } from "../native/types.js";

/**
 * How sampling rows are stored (docs/ALGORITHM.md §12): dense (a probability per id) or sparse (the non-zero
 * entries as ids and probabilities), so that the per-position work follows what the sampling settings leave
 * non-zero, not the vocabulary's size.
 */
export interface RowLayout {
  /** Entries a sparse row holds; 0: no sparse rows. */
  sparse: number;
  /** Whether a row may be dense: one with more non-zero entries than `sparse` is written dense. */
  dense: boolean;
}

/** The most entries a sparse row holds when top-k does not bound them (top-p, min-p): beyond, the row is dense. */
export const SPARSE_ROW_ENTRIES = 1024;

/**
 * The row layout for a sampling transform over `width` ids: sparse rows of k entries when top-k keeps at most
 * `limit`; sparse rows of up to `limit` entries with a dense fallback when only top-p or min-p truncates; dense
 * rows when nothing does (every id keeps its mass). Greedy rows hold only the argmax.
 */
export function rowLayout(
  t: Pick<SamplingTransform, "greedy" | "topK" | "topP" | "minP">,
  width: number,
  limit = SPARSE_ROW_ENTRIES,
): RowLayout {
  if (t.greedy) return { sparse: 0, dense: false };
  const topK = t.topK > 0 && t.topK < width;
  if (topK && t.topK <= limit) return { sparse: t.topK, dense: false };
  if (topK || t.topP < 1 || t.minP > 0) return { sparse: Math.min(limit, width), dense: true };
  return { sparse: 0, dense: true };
}

const DENSE: RowLayout = { sparse: 0, dense: true };

/**
 * Rows of next-token distributions, allocated once per level and reused for every pass.
 * Row r holds a whole distribution (sampling mode), or only its argmax (greedy mode), or a point mass (a proposal
 * level: probability 1 on argmax[r]). A row covers ids [0, vocabSize): the level's vocabulary, or for a draft the
 * ids every level above it has (docs/ALGORITHM.md §11); ids beyond have probability 0. A sampling row is dense
 * (probs) or sparse (sparseCounts[r] >= 0 entries in sparseIds / sparseProbs), as `layout` allows (§12).
 */
export class DistributionRows {
  /** [capacity][vocabSize] probabilities of dense rows; null in greedy mode, for point masses and sparse-only rows. */
  readonly probs: Float32Array | null;
  /** The most probable token of each row; for point-mass rows, the proposed token. */
  readonly argmax: Int32Array;
  /** Entries per sparse row (0: no sparse rows). */
  readonly sparseCapacity: number;
  /** [capacity][sparseCapacity] ids and probabilities of sparse rows; null without sparse rows. */
  readonly sparseIds: Int32Array | null;
  readonly sparseProbs: Float32Array | null;
  /** Entries in each row: >= 0 for a sparse row, -1 for a dense one; null without sparse rows. */
  readonly sparseCounts: Int32Array | null;

  constructor(
    readonly capacity: number,
    /** The row width: ids [0, vocabSize) can have mass. */
    readonly vocabSize: number,
    greedy: boolean,
    /** Rows of a proposal level: each a point mass on argmax[r]. */
    readonly pointMass = false,
    layout: RowLayout = DENSE,
  ) {
    const sampling = !greedy && !pointMass;
    this.probs = sampling && layout.dense ? new Float32Array(capacity * vocabSize) : null;
    this.argmax = new Int32Array(capacity);
    this.sparseCapacity = sampling ? layout.sparse : 0;
    const entries = capacity * this.sparseCapacity;
    this.sparseIds = entries > 0 ? new Int32Array(entries) : null;
    this.sparseProbs = entries > 0 ? new Float32Array(entries) : null;
    this.sparseCounts = entries > 0 ? new Int32Array(capacity).fill(-1) : null;
  }

  /** Whether row `row` is stored sparse. */
  isSparse(row: number): boolean {
    return this.sparseCounts !== null && this.sparseCounts[row]! >= 0;
  }

  /** Probability of `token` in row `row` (sampling mode only); a sparse row looks it up among its entries. */
  prob(row: number, token: number): number {
    if (this.pointMass) return token === this.argmax[row] ? 1 : 0;
    if (token >= this.vocabSize) return 0; // an id this row does not cover (§11)
    if (this.isSparse(row)) {
      const base = row * this.sparseCapacity;
      const end = base + this.sparseCounts![row]!;
      for (let e = base; e < end; e++) if (this.sparseIds![e] === token) return this.sparseProbs![e]!;
      return 0;
    }
    return this.probs![row * this.vocabSize + token]!;
  }

  /**
   * Stores a distribution computed in JS (`values`, one probability per id of the row) in row `row`: sparse when
   * its non-zero entries fit, else dense. (Model levels over the addon have it written natively.)
   */
  write(row: number, values: ArrayLike<number>): void {
    if (this.sparseCounts) {
      let n = 0;
      for (let x = 0; x < this.vocabSize; x++) n += values[x]! > 0 ? 1 : 0;
      if (n <= this.sparseCapacity) {
        const base = row * this.sparseCapacity;
        let e = base;
        for (let x = 0; x < this.vocabSize; x++) {
          if (!(values[x]! > 0)) continue;
          this.sparseIds![e] = x;
          this.sparseProbs![e++] = values[x]!;
        }
        this.sparseCounts[row] = n;
        return;
      }
      this.sparseCounts[row] = -1;
    }
    if (!this.probs) throw new Error(`a row of ${this.vocabSize} ids has more entries than this layout holds`);
    for (let x = 0; x < this.vocabSize; x++) this.probs[row * this.vocabSize + x] = values[x]!;
  }

  /** Row `row` becomes a copy of `from`'s row `fromRow` (ids beyond this row's width dropped). Tests only. */
  copyRow(row: number, from: DistributionRows, fromRow: number): void {
    const values = new Float64Array(this.vocabSize);
    for (let x = 0; x < this.vocabSize; x++) values[x] = from.prob(fromRow, x);
    this.write(row, values);
  }
}

/** A language model as a level: it scores sequences in forward passes. */
export interface ModelLevel {
  readonly kind: "model";
  /** For stats and errors: usually the GGUF file name. */
  readonly name: string;
  readonly vocabSize: number;
  /** Largest sequence (prompt + generated + drafts) this level can hold. */
  readonly contextSize: number;
  /** Tokens pushed through the model so far (catch-up and re-fed tokens included). */
  readonly tokensEvaluated: number;
  /**
   * Score `sequence[0 .. length)`: for every token index t in [firstRow, length) write the
   * distribution of the token that follows sequence[0 .. t] into rows[rowOffset + t - firstRow].
   * The level reuses whatever prefix of `sequence` its KV cache already holds.
   * Rows narrower than the vocabulary (rows.vocabSize < vocabSize: a draft under a verifier with fewer ids) get
   * the distribution restricted to ids [0, rows.vocabSize), renormalised. `sequence` may hold ids the level lacks
   * (tokens committed by a larger vocabulary above it): the level reads each as `ownId` says (§11).
   * Returns a Promise when the work runs off the JS thread, nothing when it ran synchronously.
   */
  score(
    sequence: Int32Array,
    length: number,
    firstRow: number,
    rows: DistributionRows,
    rowOffset: number,
  ): Promise<void> | void;
}

/** A model-free level: it proposes a block from the text itself (a lookup), only at the bottom of a chain. */
export interface ProposalLevel {
  readonly kind: "proposal";
  /** For stats and JSON; model-free levels are named "ngram-…". */
  readonly name: string;
  readonly vocabSize: number;
  /**
   * Propose at most `max` tokens to follow sequence[0 .. length), written at sequence[length ..] (the buffer holds
   * at least `max` more); returns how many (0: abstain). Each is proposed with certainty: a point mass.
   */
  propose(sequence: Int32Array, length: number, max: number): number;
}

export type Level = ModelLevel | ProposalLevel;

/**
 * A token id as a level with `vocabSize` ids reads it: an id it lacks is read as its own last id. Only tokens that
 * a level with a larger vocabulary committed can be such ids — padding, in a compatible family (§11) — and any
 * fixed reading keeps the output exact: a draft's distribution may depend on its context in any way, as long as
 * it hands up the distribution it drew from (§3).
 */
export function ownId(token: number, vocabSize: number): number {
  return token < vocabSize ? token : vocabSize - 1;
}

/** Time and work spent by one level; filled by the recursion. */
export class LevelStats {
  /** Forward passes (a model) or proposals (a proposal level). */
  passes = 0;
  /** Tokens pushed through the model (catch-up tokens included); 0 for a proposal level. */
  tokensEvaluated = 0;
  /** Tokens this level proposed to the level above. */
  drafted = 0;
  /** Of those, how many the level above looked at (all up to and including the first rejection). */
  judged = 0;
  /** Of those, how many the level above accepted. */
  accepted = 0;
  /** acceptedAt[j] / judgedAt[j]: acceptance of the j-th token of a proposed block. */
  judgedAt: number[] = [];
  acceptedAt: number[] = [];
  /** Wall time inside score() / propose() for this level, ms. */
  scoreMs = 0;

  constructor(
    readonly name: string,
    readonly kind: Level["kind"],
  ) {}

  /** Accepted per judged draft: the a of the latency model (docs/ALGORITHM.md §5). */
  get acceptanceRate(): number {
    return this.judged === 0 ? 0 : this.accepted / this.judged;
  }

  recordVerdicts(proposed: number, accepted: number): void {
    this.drafted += proposed;
    this.accepted += accepted;
    // Position j was judged iff j <= accepted (the first rejection ends the block).
    const judged = Math.min(proposed, accepted + 1);
    this.judged += judged;
    for (let j = 0; j < judged; j++) {
      this.judgedAt[j] = (this.judgedAt[j] ?? 0) + 1;
      if (j < accepted) this.acceptedAt[j] = (this.acceptedAt[j] ?? 0) + 1;
    }
  }

  toJSON() {
    return {
      name: this.name,
      kind: this.kind,
      passes: this.passes,
      tokensEvaluated: this.tokensEvaluated,
      drafted: this.drafted,
      judged: this.judged,
      accepted: this.accepted,
      acceptanceRate: this.acceptanceRate,
      acceptanceByPosition: this.judgedAt.map((n, j) => (n === 0 ? 0 : (this.acceptedAt[j] ?? 0) / n)),
      judgedByPosition: [...this.judgedAt],
      scoreMs: this.scoreMs,
    };
  }
}

/**
 * The statistics of every level a decoder uses, one record per level object, so that several decoders sharing
 * levels (the per-state chains of a routed policy) add up into one record per level.
 */
export class StatsBook {
  private records = new Map<Level, LevelStats>();

  of(level: Level): LevelStats {
    let s = this.records.get(level);
    if (!s) {
      s = new LevelStats(level.name, level.kind);
      this.records.set(level, s);
    }
    return s;
  }

  /** Start counting afresh (each generation reports its own statistics). */
  reset(): void {
    this.records = new Map();
  }
}
