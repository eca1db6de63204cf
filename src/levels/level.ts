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

/**
 * Rows of next-token distributions, allocated once per level and reused for every pass.
 * Row r holds a whole distribution (sampling mode), or only its argmax (greedy mode), or a point mass (a proposal
 * level: probability 1 on argmax[r]). A row covers ids [0, vocabSize): the level's vocabulary, or for a draft the
 * ids every level above it has (docs/ALGORITHM.md §10); ids beyond have probability 0.
 */
export class DistributionRows {
  /** [capacity][vocabSize] probabilities; null in greedy mode (only argmax is kept) and for point masses. */
  readonly probs: Float32Array | null;
  /** The most probable token of each row; for point-mass rows, the proposed token. */
  readonly argmax: Int32Array;

  constructor(
    readonly capacity: number,
    /** The row width: ids [0, vocabSize) can have mass. */
    readonly vocabSize: number,
    greedy: boolean,
    /** Rows of a proposal level: each a point mass on argmax[r]. */
    readonly pointMass = false,
  ) {
    this.probs = greedy || pointMass ? null : new Float32Array(capacity * vocabSize);
    this.argmax = new Int32Array(capacity);
  }

  /** Probability of `token` in row `row` (sampling mode only). */
  prob(row: number, token: number): number {
    if (this.pointMass) return token === this.argmax[row] ? 1 : 0;
    if (token >= this.vocabSize) return 0; // an id this row does not cover (§10)
    return this.probs![row * this.vocabSize + token]!;
  }

  /** A view of one whole dense row (sampling mode, not point masses); no copy. */
  row(row: number): Float32Array {
    return this.probs!.subarray(row * this.vocabSize, (row + 1) * this.vocabSize);
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
   * (tokens committed by a larger vocabulary above it): the level reads each as `ownId` says (§10).
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
 * a level with a larger vocabulary committed can be such ids — padding, in a compatible family (§10) — and any
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
