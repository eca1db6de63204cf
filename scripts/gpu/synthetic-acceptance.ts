// SYNTHETIC acceptance, for benchmarks only: a level wrapper that keeps the real model's forward passes (so
// every pass costs what it really costs) but overwrites the verdicts of its verification rows, so that a draft
// token from the level below is accepted with a chosen probability `a`, independently at every position.
//
// Why: on random-weight models (scripts/gpu/make-random-gguf.py) the argmaxes of two models agree by chance
// only, so real acceptance is ~0 and HSD cannot be timed in the regime it is built for. With this wrapper the
// engine runs its real recursion, KV-cache rollbacks, catch-up tokens and passes, under the i.i.d. acceptance the
// latency model assumes (docs/ALGORITHM.md §5), which makes measured ms/token directly comparable with the planner's
// prediction. The output text is meaningless; greedy mode only (in sampling mode the verdict is a probability
// ratio of whole distributions, which this does not fake).
//
// Which rows judge what: the recursion asks a level to score sequence[0 .. length) and write rows for token
// indices t in [firstRow, length); row t is the level's next-token choice after sequence[0 .. t], so it judges
// sequence[t + 1] when t + 1 < length (a draft of the level below, put there before the pass). The last row
// (t = length - 1) is the bonus / next-token row: it judges nothing and is left as the model computed it. A
// drafting pass of level 0 (one row, t = length - 1) is therefore never touched, and neither is an
// autoregressive target.

import type { DistributionRows, ModelLevel } from "../../src/levels/level.js";
import { Rng } from "../../src/util/rng.js";

export class SyntheticAcceptanceLevel implements ModelLevel {
  readonly kind = "model";
  readonly name: string;
  readonly vocabSize: number;
  readonly contextSize: number;
  /** Rows whose verdict this wrapper decided, and how many of those it made accept. */
  judgedRows = 0;
  acceptedRows = 0;
  private readonly rng: Rng;

  /**
   * @param inner the real level (its passes run unchanged)
   * @param acceptance probability that this level accepts a draft token of the level below it, in [0, 1]
   * @param seed seeds this wrapper's own random stream (verdicts and replacement tokens)
   */
  constructor(
    readonly inner: ModelLevel,
    readonly acceptance: number,
    seed: number,
  ) {
    if (!(typeof acceptance === "number" && acceptance >= 0 && acceptance <= 1)) {
      throw new RangeError(
        `SyntheticAcceptanceLevel(${inner.name}): acceptance must be in [0, 1], got ${String(acceptance)}`,
      );
    }
    if (inner.vocabSize < 2)
      throw new RangeError(`SyntheticAcceptanceLevel(${inner.name}): needs a vocabulary of >= 2 tokens`);
    this.name = inner.name;
    this.vocabSize = inner.vocabSize;
    this.contextSize = inner.contextSize;
    this.rng = new Rng(seed);
  }

  get tokensEvaluated(): number {
    return this.inner.tokensEvaluated;
  }

  score(
    sequence: Int32Array,
    length: number,
    firstRow: number,
    rows: DistributionRows,
    rowOffset: number,
  ): Promise<void> | void {
    if (rows.probs !== null) {
      throw new Error(
        `SyntheticAcceptanceLevel(${this.name}): synthetic acceptance is for greedy decoding only (rows hold distributions)`,
      );
    }
    const pending = this.inner.score(sequence, length, firstRow, rows, rowOffset);
    if (pending) return pending.then(() => this.overwriteVerdicts(sequence, length, firstRow, rows, rowOffset));
    this.overwriteVerdicts(sequence, length, firstRow, rows, rowOffset);
  }

  /** Row for token t judges sequence[t + 1]: accept (argmax := that token) with probability a, else any other token. */
  private overwriteVerdicts(
    sequence: Int32Array,
    length: number,
    firstRow: number,
    rows: DistributionRows,
    rowOffset: number,
  ): void {
    for (let t = firstRow; t + 1 < length; t++) {
      const draft = sequence[t + 1]!;
      const row = rowOffset + t - firstRow;
      this.judgedRows++;
      if (this.rng.next() < this.acceptance) {
        rows.argmax[row] = draft;
        this.acceptedRows++;
      } else {
        // Uniform over the other ids of the row (its width: docs/ALGORITHM.md §11): never the draft itself.
        const width = rows.vocabSize;
        rows.argmax[row] = (draft + 1 + Math.floor(this.rng.next() * (width - 1))) % width;
      }
    }
  }
}

/**
 * Wraps a chain (smallest first, target last) for a synthetic-acceptance run: level 0 drafts unchanged, level i
 * (i >= 1) accepts drafts of level i - 1 with probability rates[i - 1]. Each wrapper gets its own seed.
 */
export function withSyntheticAcceptance(
  levels: readonly ModelLevel[],
  rates: readonly number[],
  seed: number,
): ModelLevel[] {
  if (rates.length !== levels.length - 1) {
    throw new Error(
      `withSyntheticAcceptance: ${levels.length} levels need ${levels.length - 1} acceptance rates, got ${rates.length}`,
    );
  }
  return levels.map((level, i) =>
    i === 0 ? level : new SyntheticAcceptanceLevel(level, rates[i - 1]!, (seed + 0x9e3779b9 * i) >>> 0),
  );
}
