// What the HSD recursion needs from one model of the hierarchy: "given this token sequence,
// write your next-token distribution after each of these positions into these rows".
// A level owns its KV cache and decides itself what to (re-)feed; the recursion only says
// which sequence it wants scored. Native GGUF models and in-memory synthetic models both
// implement it, so the exactness tests run the same recursion the product runs.

/**
 * Rows of next-token distributions, allocated once per level and reused for every pass.
 * Row r holds a whole distribution (probs, in sampling mode) and its argmax.
 */
export class DistributionRows {
  /** [capacity][vocabSize] probabilities; null in greedy mode, where only argmax is kept. */
  readonly probs: Float32Array | null;
  readonly argmax: Int32Array;

  constructor(
    readonly capacity: number,
    readonly vocabSize: number,
    greedy: boolean,
  ) {
    this.probs = greedy ? null : new Float32Array(capacity * vocabSize);
    this.argmax = new Int32Array(capacity);
  }

  /** Probability of `token` in row `row` (sampling mode only). */
  prob(row: number, token: number): number {
    return this.probs![row * this.vocabSize + token]!;
  }

  /** A view of one whole row (sampling mode only); no copy. */
  row(row: number): Float32Array {
    return this.probs!.subarray(row * this.vocabSize, (row + 1) * this.vocabSize);
  }
}

export interface LevelModel {
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

/** Time and work spent by one level; filled by the recursion. */
export class LevelStats {
  passes = 0;
  /** Tokens pushed through the model (catch-up tokens included). */
  tokensEvaluated = 0;
  /** Tokens this level proposed to the level above. */
  drafted = 0;
  /** Of those, how many the level above looked at (all up to and including the first rejection). */
  judged = 0;
  /** Of those, how many the level above accepted. */
  accepted = 0;
  /** acceptedAt[j] / draftedAt[j]: acceptance of the j-th token of a proposed block. */
  draftedAt: number[] = [];
  acceptedAt: number[] = [];
  /** Wall time inside score() for this level, ms. */
  scoreMs = 0;

  constructor(readonly name: string) {}

  /** Accepted per judged draft: the a of the latency model (hsd-notes §4). */
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
      this.draftedAt[j] = (this.draftedAt[j] ?? 0) + 1;
      if (j < accepted) this.acceptedAt[j] = (this.acceptedAt[j] ?? 0) + 1;
    }
  }

  toJSON() {
    return {
      name: this.name,
      passes: this.passes,
      tokensEvaluated: this.tokensEvaluated,
      drafted: this.drafted,
      judged: this.judged,
      accepted: this.accepted,
      acceptanceRate: this.acceptanceRate,
      acceptanceByPosition: this.draftedAt.map((n, j) => (n === 0 ? 0 : (this.acceptedAt[j] ?? 0) / n)),
      judgedByPosition: [...this.draftedAt],
      scoreMs: this.scoreMs,
    };
  }
}
