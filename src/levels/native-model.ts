// A model level backed by a llama.cpp context (docs/ALGORITHM.md §4): before each pass the
// KV cache is cut back to the longest common prefix of what it holds and the sequence it is
// asked to score, and the missing tokens (catch-up: replacements and bonus tokens chosen above)
// go into the same pass as the drafts. Rows narrower than the vocabulary are the distribution
// restricted to their ids (the addon's vocabLimit), and ids the model lacks are fed as ownId (§11).
// Sparse rows are written by the addon as their non-zero entries (§12).

import { ownId, type DistributionRows, type ModelLevel } from "./level.js";
import type { EvaluateTarget, NativeContext } from "../native/types.js";
import { ContextOverflowError, HsdError } from "../errors.js";

export type EvaluationMode = "sync" | "async";

export class NativeLevel implements ModelLevel {
  readonly kind = "model";
  readonly vocabSize: number;
  readonly contextSize: number;
  tokensEvaluated = 0;
  /** The tokens in the KV cache, position by position. */
  private readonly cached: Int32Array;
  private cachedLength = 0;
  private readonly target: EvaluateTarget = { probs: null, argmax: new Int32Array(0), rowOffset: 0 };

  constructor(
    readonly name: string,
    readonly context: NativeContext,
    vocabSize: number,
    readonly mode: EvaluationMode = "async",
  ) {
    this.vocabSize = vocabSize;
    this.contextSize = context.contextSize;
    this.cached = new Int32Array(context.contextSize);
  }

  score(
    sequence: Int32Array,
    length: number,
    firstRow: number,
    rows: DistributionRows,
    rowOffset: number,
  ): Promise<void> | void {
    if (length > this.contextSize) {
      throw new ContextOverflowError(this.name, length, this.contextSize);
    }
    const outputs = length - firstRow;
    if (outputs > this.context.batchSize) {
      throw new HsdError(
        `${this.name}: ${outputs} output rows in one pass exceed the batch size ${this.context.batchSize}; use smaller thresholds`,
      );
    }
    let start = Math.min(commonPrefix(this.cached, this.cachedLength, sequence, length), firstRow);

    this.target.probs = rows.probs;
    this.target.argmax = rows.argmax;
    this.target.rowOffset = rowOffset;
    this.target.vocabLimit = rows.vocabSize < this.vocabSize ? rows.vocabSize : undefined;
    this.target.sparse = sparseTarget(rows);

    // A long prompt goes through in batch-sized chunks; only the last chunk produces rows.
    const lastChunkStart = Math.min(firstRow, Math.max(start, length - this.context.batchSize));
    while (start < lastChunkStart) {
      const end = Math.min(start + this.context.batchSize, lastChunkStart);
      this.context.evaluateSync(
        feedable(sequence.subarray(start, end), this.vocabSize),
        start,
        end - start,
        this.target,
      );
      this.remember(sequence, start, end);
      start = end;
    }

    const tokens = feedable(sequence.subarray(start, length), this.vocabSize);
    const firstOutput = firstRow - start;
    if (this.mode === "sync") {
      this.context.evaluateSync(tokens, start, firstOutput, this.target);
      this.remember(sequence, start, length);
      return;
    }
    // The cache is invalid while the decode runs: mark it empty, and record what it holds
    // only once the pass succeeded (a failed or aborted pass must not leave a stale record).
    this.cachedLength = Math.min(this.cachedLength, start);
    return this.context
      .evaluate(tokens, start, firstOutput, this.target)
      .then(() => this.remember(sequence, start, length));
  }

  private remember(sequence: Int32Array, start: number, end: number): void {
    this.cached.set(sequence.subarray(start, end), start);
    this.cachedLength = end;
    this.tokensEvaluated += end - start;
  }
}

function commonPrefix(a: Int32Array, aLength: number, b: Int32Array, bLength: number): number {
  const n = Math.min(aLength, bLength);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** `tokens` as a model with `vocabSize` ids can be fed them: itself, or a copy with the ids it lacks read as ownId. */
export function feedable(tokens: Int32Array, vocabSize: number): Int32Array {
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i]! >= vocabSize) return tokens.map((t) => ownId(t, vocabSize));
  }
  return tokens;
}

/** The addon's sparse output for `rows` (EvaluateTarget.sparse), or null when its rows are never sparse. */
export function sparseTarget(rows: DistributionRows): EvaluateTarget["sparse"] {
  return rows.sparseIds
    ? { capacity: rows.sparseCapacity, ids: rows.sparseIds, probs: rows.sparseProbs!, counts: rows.sparseCounts! }
    : null;
}
