// The context lookup: a model-free level (docs/ALGORITHM.md §8) that proposes what followed the longest earlier
// match of the text's last tokens, in the prompt or in what was generated. It is the cheapest draft there is
// (microseconds, no forward pass) and, when the output copies the input — quoting, summarising, extending a list,
// code with repeated identifiers, a small model looping — the most accurate one. Without a match it abstains.
//
// Matching: among the earlier occurrences of the last token, the one whose preceding tokens agree with the text's
// for the longest run (up to `maxMatch`), the most recent on ties. Occurrences are found through posting lists
// (token → positions), kept in step with the sequence the engine passes: the level remembers what it indexed and
// re-indexes only past the common prefix, so a rollback (rejected drafts) or a new prompt costs what changed.
// llama.cpp's `ngram-simple` does the same kind of search with one fixed n-gram size and a linear scan.

import type { ProposalLevel } from "./level.js";
import { InvalidOptionError } from "../errors.js";

export interface LookupOptions {
  /** Shortest match (in tokens) the level proposes after; shorter matches abstain. Default 1. */
  minMatch?: number;
  /** Matches are measured up to this many tokens (longer ones count as this long). Default 8. */
  maxMatch?: number;
  /** Earlier occurrences of the last token examined per lookup, most recent first (bounds the cost). Default 256. */
  maxCandidates?: number;
}

/** The match a lookup finds: how many tokens agree, and where the continuation starts (-1: none). */
export interface LookupMatch {
  length: number;
  next: number;
}

export const DEFAULT_LOOKUP = Object.freeze({ minMatch: 1, maxMatch: 8, maxCandidates: 256 });

export class ContextLookupLevel implements ProposalLevel {
  readonly kind = "proposal";
  readonly name = "ngram-lookup";
  readonly minMatch: number;
  readonly maxMatch: number;
  private readonly maxCandidates: number;
  /** The tokens indexed so far (a copy of the sequence's prefix). */
  private tokens = new Int32Array(1024);
  private indexed = 0;
  /** token id → the positions where it occurs, ascending (a growable Int32Array and its length). */
  private readonly postings = new Map<number, { at: Int32Array; n: number }>();

  constructor(
    readonly vocabSize: number,
    options: LookupOptions = {},
  ) {
    this.minMatch = options.minMatch ?? DEFAULT_LOOKUP.minMatch;
    this.maxMatch = options.maxMatch ?? DEFAULT_LOOKUP.maxMatch;
    this.maxCandidates = options.maxCandidates ?? DEFAULT_LOOKUP.maxCandidates;
    if (!Number.isInteger(this.minMatch) || this.minMatch < 1) {
      throw new InvalidOptionError(`n-gram lookup: the shortest match must be an integer >= 1, got ${this.minMatch}`);
    }
    if (!Number.isInteger(this.maxMatch) || this.maxMatch < this.minMatch) {
      throw new InvalidOptionError(
        `n-gram lookup: the longest match (${this.maxMatch}) must be an integer >= the shortest (${this.minMatch})`,
      );
    }
    if (!Number.isInteger(this.maxCandidates) || this.maxCandidates < 1) {
      throw new InvalidOptionError(`n-gram lookup: maxCandidates must be an integer >= 1, got ${this.maxCandidates}`);
    }
  }

  /**
   * The longest match of the last tokens of sequence[0 .. length) with an earlier place in it. Depends on nothing
   * but that prefix, so the router may compute a step's state with it (docs/ALGORITHM.md §9).
   */
  match(sequence: Int32Array, length: number): LookupMatch {
    this.sync(sequence, length);
    if (length < 2) return { length: 0, next: -1 };
    const list = this.postings.get(sequence[length - 1]!);
    let best = 0;
    let next = -1;
    if (!list) return { length: 0, next: -1 };
    // Positions are ascending; the last one is length - 1 itself.
    const stop = Math.max(0, list.n - 1 - this.maxCandidates);
    for (let c = list.n - 2; c >= stop; c--) {
      const i = list.at[c]!;
      let n = 1;
      while (n < this.maxMatch && i - n >= 0 && sequence[i - n] === sequence[length - 1 - n]) n++;
      if (n > best) {
        best = n;
        next = i + 1;
        if (n === this.maxMatch) break;
      }
    }
    return { length: best, next };
  }

  propose(sequence: Int32Array, length: number, max: number): number {
    const m = this.match(sequence, length);
    if (m.length < this.minMatch) return 0;
    const n = Math.min(max, length - m.next);
    // Source [next, next + n) lies before `length`, the destination at and after it: a forward copy is safe.
    for (let j = 0; j < n; j++) sequence[length + j] = sequence[m.next + j]!;
    return n;
  }

  /** Bring the index in line with sequence[0 .. length): drop what changed, add what is new. */
  private sync(sequence: Int32Array, length: number): void {
    let same = 0;
    const limit = Math.min(this.indexed, length);
    while (same < limit && this.tokens[same] === sequence[same]) same++;
    for (let i = this.indexed - 1; i >= same; i--) this.postings.get(this.tokens[i]!)!.n--;
    if (length > this.tokens.length) {
      const grown = new Int32Array(Math.max(length, 2 * this.tokens.length));
      grown.set(this.tokens.subarray(0, same));
      this.tokens = grown;
    }
    for (let i = same; i < length; i++) {
      const token = sequence[i]!;
      this.tokens[i] = token;
      let list = this.postings.get(token);
      if (!list) {
        list = { at: new Int32Array(8), n: 0 };
        this.postings.set(token, list);
      } else if (list.n === list.at.length) {
        const grown = new Int32Array(2 * list.at.length);
        grown.set(list.at);
        list.at = grown;
      }
      list.at[list.n++] = i;
    }
    this.indexed = length;
  }
}
