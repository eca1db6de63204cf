// Hierarchical speculative decoding: the recursion of docs/ALGORITHM.md §2 (why it is exact: §3).
//
//   draft(i, ctx):  i == 0 → T_0 tokens sampled one by one from M_0 (a model), or a proposal of at most T_0
//                            point masses from a model-free level (§8)
//                   else   → repeat { d = draft(i-1, ctx+block); block += verify(i, d) } until |block| >= T_i
//   verify(i, d):   one pass of M_i over d; accept x with min(1, p(x)/q(x)), else emit y ~ norm(max(0, p-q))
//                   and stop; if all are accepted, emit a bonus y ~ p from the same pass.
//                   Every emitted token carries M_i's OWN distribution p upward — that is what keeps it exact.
//   step():         verify(K, draft(K-1, committed))   — K = 0 is autoregressive, K = 1 classic speculation.
//
// All levels write into one working sequence: a block proposed at index `at` lives in
// sequence[at ..], and a verifier overwrites a rejected draft in place with its replacement.
// Level i's distribution for the j-th token of its current block is row j of rows[i], written
// there directly by the model's pass (no copies). Levels may have vocabularies of different sizes
// (§11): the target's rows cover its whole vocabulary, a draft's only the ids every level above it
// has, so that nothing is proposed that a verifier cannot score.

import { DistributionRows, LevelStats, StatsBook, rowLayout, type Level, type ModelLevel } from "../levels/level.js";
import type { SamplingTransform } from "../native/types.js";
import { InvalidOptionError } from "../errors.js";
import { sampleResidual, sampleRow } from "./sampling.js";
import type { Rng } from "../util/rng.js";

/**
 * Deliberately wrong variants of the algorithm, for tests only: they show that the statistical
 * exactness test can tell a broken verifier from a correct one. "proposal-hands-up-p": a proposal level's
 * tokens are judged as if drawn from the verifier's own p (so always accepted) instead of its point mass.
 * "unrestricted-draft": drafts are not restricted to the ids of the levels above (§11), so a draft may propose an
 * id its verifier lacks. "residual-within-draft": the residual ignores the verifier's mass on ids the draft lacks.
 */
export type VerificationMutation =
  | "hand-up-lower-q"
  | "no-residual"
  | "no-bonus"
  | "proposal-hands-up-p"
  | "unrestricted-draft"
  | "residual-within-draft";

export interface DecoderOptions {
  /** T_0 … T_{K-1}: the block length each draft level aims for. */
  thresholds: readonly number[];
  greedy: boolean;
  /**
   * The truncation of the sampling transform (top-k, top-p, min-p): with it, rows are stored sparse where these
   * leave few non-zero entries (docs/ALGORITHM.md §12); without it, every sampling row is dense.
   */
  sampling?: Pick<SamplingTransform, "topK" | "topP" | "minP">;
  /** Most entries of a sparse row when top-k does not bound them (default SPARSE_ROW_ENTRIES; tests lower it). */
  sparseLimit?: number;
  rng: Rng;
  mutation?: VerificationMutation;
  /** Tests only: the mutation applies to steps that start with at least this many committed tokens (default 0). */
  mutationFrom?: number;
  /** Where the levels' statistics go (shared by the chains of a routed policy); default: this decoder's own. */
  stats?: StatsBook;
  /** Told of every pass, proposal and verdict (online learning, docs/ALGORITHM.md §10). */
  observer?: DecoderObserver;
  /** The clock passes are timed with (tests give a virtual one); default performance.now. */
  now?: () => number;
}

/** What a decoder reports as it runs, for a latency model that learns while generating (§10). */
export interface DecoderObserver {
  /** A forward pass of `level` fed `tokens` tokens (catch-up included) and took `ms`. */
  pass(level: Level, tokens: number, ms: number): void;
  /** A model-free level proposed `proposed` tokens when allowed `max`, in `ms`. */
  proposal(level: Level, proposed: number, max: number, ms: number): void;
  /** `verifier` judged a block of `proposed` tokens of `drafter` and accepted the first `accepted`. */
  verdicts(drafter: Level, verifier: Level, proposed: number, accepted: number): void;
}

/** What the generation loop needs from a decoder: one target step at a time, and statistics. */
export interface Decoder {
  /** Every level the decoder may run (for the context limit and the statistics), smallest first. */
  readonly levels: readonly Level[];
  /** Longest block the target may verify in one step (the sequence buffer keeps that much slack). */
  readonly maxDraftBlock: number;
  /** One record per level of `levels`. */
  readonly stats: readonly LevelStats[];
  resetStats(): void;
  /**
   * One target pass. sequence[0 .. committed) is the accepted text; returns how many tokens the pass appended
   * (>= 1). Tokens beyond the returned count in `sequence` are scratch.
   */
  step(sequence: Int32Array, committed: number): Promise<number>;
}

export class HsdDecoder implements Decoder {
  readonly levels: readonly Level[];
  readonly thresholds: readonly number[];
  readonly greedy: boolean;
  private readonly book: StatsBook;
  private readonly observer: DecoderObserver | undefined;
  private readonly now: () => number;
  /** Longest block the top draft level can return (the target scores one more row). */
  readonly maxDraftBlock: number;
  private readonly rows: DistributionRows[];
  private readonly rng: Rng;
  private readonly mutationSpec: VerificationMutation | undefined;
  private readonly mutationFrom: number;
  /** The mutation in force for the current step (tests only). */
  private mutation: VerificationMutation | undefined;
  private seq: Int32Array = new Int32Array(0);

  constructor(levels: readonly Level[], options: DecoderOptions) {
    if (levels.length === 0) throw new InvalidOptionError("HsdDecoder: at least one model (the target) is needed");
    if (options.thresholds.length !== levels.length - 1) {
      throw new InvalidOptionError(
        `HsdDecoder: ${levels.length} levels need ${levels.length - 1} thresholds (one per draft level), got ${options.thresholds.length}`,
      );
    }
    for (const t of options.thresholds) {
      if (!Number.isInteger(t) || t < 1) {
        throw new InvalidOptionError(`HsdDecoder: thresholds must be integers >= 1, got ${t}`);
      }
    }
    levels.forEach((level, i) => {
      if (level.kind === "proposal" && i !== 0) {
        throw new InvalidOptionError(`HsdDecoder: ${level.name} proposes without a model; it can only be level 0`);
      }
    });
    this.levels = levels;
    this.thresholds = options.thresholds;
    this.greedy = options.greedy;
    this.rng = options.rng;
    this.mutationSpec = options.mutation;
    this.mutationFrom = options.mutationFrom ?? 0;
    this.book = options.stats ?? new StatsBook();
    this.observer = options.observer;
    this.now = options.now ?? (() => performance.now());

    // Block bounds: level 0 returns exactly T_0; level i stops once it reaches T_i, and its
    // last round adds at most (block below + 1), so it returns at most T_i + maxBlock(i-1).
    const capacity: number[] = [];
    let maxBlock = 0;
    for (let i = 0; i < levels.length - 1; i++) {
      maxBlock = i === 0 ? options.thresholds[0]! : options.thresholds[i]! + maxBlock;
      capacity.push(maxBlock);
    }
    capacity.push(maxBlock + 1);
    this.maxDraftBlock = maxBlock;
    // Row widths (§11): a draft's rows are restricted to the ids of every level above it; the target's are whole.
    const widths = levels.map((level, i) =>
      options.mutation === "unrestricted-draft"
        ? level.vocabSize
        : Math.min(...levels.slice(i).map((l) => l.vocabSize)),
    );
    const sampling = options.sampling;
    this.rows = capacity.map((c, i) => {
      const layout = sampling
        ? rowLayout({ greedy: options.greedy, ...sampling }, widths[i]!, options.sparseLimit)
        : undefined;
      return new DistributionRows(c, widths[i]!, options.greedy, levels[i]!.kind === "proposal", layout);
    });
  }

  get stats(): LevelStats[] {
    return this.levels.map((level) => this.book.of(level));
  }

  /** Start counting afresh (each generation reports its own statistics). */
  resetStats(): void {
    this.book.reset();
  }

  get depth(): number {
    return this.levels.length - 1;
  }

  async step(sequence: Int32Array, committed: number): Promise<number> {
    if (committed < 1) throw new InvalidOptionError("HsdDecoder.step: the context must hold at least one token");
    if (sequence.length < committed + this.maxDraftBlock + 1) {
      throw new InvalidOptionError("HsdDecoder.step: the sequence buffer is too small for one more block");
    }
    this.seq = sequence;
    this.mutation = committed >= this.mutationFrom ? this.mutationSpec : undefined;
    const K = this.depth;
    const drafted = K > 0 ? await this.draft(K - 1, committed) : 0;
    return this.verify(K, committed, drafted, 0);
  }

  /** Level i proposes a block at sequence[at ..]; returns its length (>= T_i, except a proposal level's: <= T_0). */
  private async draft(i: number, at: number): Promise<number> {
    const target = this.thresholds[i]!;
    const level = this.levels[i]!;
    if (level.kind === "proposal") return this.propose(level, at, target);
    if (i === 0) {
      for (let t = 0; t < target; t++) {
        await this.score(0, at + t, 1, t);
        this.seq[at + t] = this.greedy ? this.rows[0]!.argmax[t]! : sampleRow(this.rows[0]!, t, this.rng);
      }
      return target;
    }
    let length = 0;
    while (length < target) {
      const proposed = await this.draft(i - 1, at + length);
      length += await this.verify(i, at + length, proposed, length);
    }
    return length;
  }

  /**
   * M_i checks the n tokens that level i-1 proposed at sequence[at .. at+n), in ONE pass that also
   * yields the bonus row. Its rows land at rows[i][rowOffset ..]. Returns tokens emitted (accepted + 1).
   */
  private async verify(i: number, at: number, n: number, rowOffset: number): Promise<number> {
    await this.score(i, at + n, n + 1, rowOffset);
    const p = this.rows[i]!;
    const q = i > 0 ? this.rows[i - 1]! : p;
    for (let j = 0; j < n; j++) {
      const x = this.seq[at + j]!;
      if (this.accepts(p, rowOffset + j, q, j, x)) {
        if (this.mutation === "hand-up-lower-q" && !this.greedy && !q.pointMass) p.copyRow(rowOffset + j, q, j);
        continue;
      }
      this.seq[at + j] = this.replacement(p, rowOffset + j, q, j);
      this.verdicts(i, n, j);
      return j + 1;
    }
    if (n > 0) this.verdicts(i, n, n);
    if (this.mutation === "no-bonus" && n > 0) return n;
    this.seq[at + n] = this.greedy ? p.argmax[rowOffset + n]! : sampleRow(p, rowOffset + n, this.rng);
    return n + 1;
  }

  private verdicts(i: number, proposed: number, accepted: number): void {
    const drafter = this.levels[i - 1]!;
    this.book.of(drafter).recordVerdicts(proposed, accepted);
    this.observer?.verdicts(drafter, this.levels[i]!, proposed, accepted);
  }

  /** Speculative sampling's test: keep x with probability min(1, p(x) / q(x)). Greedy: x must be M_i's argmax. */
  private accepts(p: DistributionRows, pRow: number, q: DistributionRows, qRow: number, x: number): boolean {
    if (this.greedy) return p.argmax[pRow] === x;
    const px = p.prob(pRow, x);
    // A point mass has q(x) = 1: keep x with probability p(x).
    const qx = this.mutation === "proposal-hands-up-p" && q.pointMass ? px : q.prob(qRow, x);
    return px >= qx || this.rng.next() * qx < px;
  }

  /** A model-free level 0 proposes at most T_0 tokens (point masses) in one call, without a forward pass. */
  private propose(level: Level & { kind: "proposal" }, at: number, max: number): number {
    const stats = this.book.of(level);
    const started = this.now();
    let n = level.propose(this.seq, at, max);
    const ms = this.now() - started;
    stats.scoreMs += ms;
    stats.passes++;
    const rows = this.rows[0]!;
    for (let j = 0; j < n; j++) {
      const x = this.seq[at + j]!;
      // A proposal ends before an id the levels above lack (§11): a deterministic cut keeps it a point mass.
      if (x >= rows.vocabSize) {
        n = j;
        break;
      }
      rows.argmax[j] = x;
    }
    // What the level really offers (after the cut) is what the online estimates learn from.
    this.observer?.proposal(level, n, max, ms);
    return n;
  }

  private replacement(p: DistributionRows, pRow: number, q: DistributionRows, qRow: number): number {
    if (this.greedy) return p.argmax[pRow]!;
    if (this.mutation === "no-residual") return sampleRow(p, pRow, this.rng);
    if (this.mutation === "residual-within-draft") return sampleResidual(p, pRow, q, qRow, this.rng, q.vocabSize);
    return sampleResidual(p, pRow, q, qRow, this.rng);
  }

  /** Level i scores sequence[0 .. length) and writes its last `rows` next-token rows at rowOffset. */
  private async score(i: number, length: number, rows: number, rowOffset: number): Promise<void> {
    const level = this.levels[i] as ModelLevel;
    const stats = this.book.of(level);
    const started = this.now();
    const evaluatedBefore = level.tokensEvaluated;
    const pending = level.score(this.seq, length, length - rows, this.rows[i]!, rowOffset);
    if (pending) await pending;
    const ms = this.now() - started;
    const fed = level.tokensEvaluated - evaluatedBefore;
    stats.scoreMs += ms;
    stats.passes++;
    stats.tokensEvaluated += fed;
    this.observer?.pass(level, fed, ms);
  }
}
