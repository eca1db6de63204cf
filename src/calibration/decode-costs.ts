// Pass costs measured the way decoding incurs them: the calibration's input to the latency model. (The simpler
// measurePassCosts in scripts/gpu/pass-costs.ts times n = 1 … T_max+2 back to back at one fixed depth and keeps the median; on
// this project's CPU and GPU runs that under-predicted real decoding by 15–100%.) What this one accounts for:
//  - depth: decoding runs at every depth from the prompt's end to prompt + max tokens; here each model's passes
//    move through that range and wrap;
//  - hot caches: decoding alternates models (and JS work) between passes; here each timed pass of model m comes
//    either right after passes of every other model (cold: what precedes a target pass or level 0's first pass in
//    a chain) or as m's second pass after them (hot, as level 0's drafting continues): the formula's `coldCosts` /
//    `costs` (latency.ts, "cold and hot passes"); and the one-token pass deep in a run of m's own passes (steady:
//    steps 3 … 12 of the engine decoding m alone, `autoregressiveMs`), which on this CPU costs less than the
//    second pass after other models but more than a tight loop of passes without the engine's JS between them.
//    (Repeating the cold pass at the same positions instead measured ~30% below the engine's autoregressive
//    passes: too hot.)
//  - shape changes: llama.cpp reuses a context's compute graph when a pass has the size of that context's previous
//    pass and rebuilds it otherwise (latency.ts, "shape changes"). Each (model, n) is timed four ways — cold and
//    hot, each after a pass of the same size (graph reused) and after one of another size (rebuilt) — giving the
//    same-size `costs` / `coldCosts` and the extra of a size change, `reshape` (the mean of the cold and hot
//    extras: a rebuild right after other models ran cost up to twice the one measured between warm passes);
//  - median vs mean: the formula wants E[c(n)], and a shared machine's timing tail is long; here a 20%-trimmed
//    mean (CostTables);
//  - contexts: the same context options as Hsd.open (contextOptions: the batch size changes llama.cpp's per-pass work).
// Separate contexts are used: touching the engine's own contexts would invalidate NativeLevel's cache record.

import type { EvaluateTarget, FlashAttention, NativeContext, NativeModel, SamplingTransform } from "../native/types.js";
import { contextOptions, defaultContextSize } from "../native/model.js";
import type { PassCosts, PassCostSample } from "../planner/costs.js";
import { DistributionRows, rowLayout } from "../levels/level.js";
import { HsdDecoder } from "../engine/hsd.js";
import { generate } from "../engine/generate.js";
import { feedable, NativeLevel, sparseTarget } from "../levels/native-model.js";
import { makeRng, Rng, shuffle } from "../util/rng.js";
import { median, trimmedMean } from "../util/stats.js";
import { InvalidOptionError } from "../errors.js";
import { yieldOrAbort } from "../util/yield.js";

export interface DecodeCostOptions {
  /** Largest n measured (the planner's T_max + 2). */
  maxN: number;
  /** Context text (token ids), at least `hi + maxN` long; repeated if shorter. */
  text: Int32Array;
  /** Positions sweep lo … hi. */
  lo: number;
  hi: number;
  threads: number;
  flashAttention?: FlashAttention;
  transform: SamplingTransform;
  seed?: number;
  /** Pass sizes to time (default: calibrationSizes(maxN)); others are interpolated. */
  sizes?: readonly number[];
  /** Stops the measurement (AbortedError) between passes. */
  signal?: AbortSignal;
}

export interface CostTables {
  /**
   * Mean ms per pass by n, per model: the input of the formula. A 20%-trimmed mean: on a shared machine one
   * descheduled pass among a dozen (tens of ms) would otherwise move the mean of a sub-millisecond pass by 2x.
   */
  mean: PassCostSample[][];
  /** Median ms per pass by n, per model (for comparison). */
  median: PassCostSample[][];
}

export interface DecodeCosts {
  /** Passes right after another model's pass, the same size as the model's previous pass. */
  cold: CostTables;
  /** Passes right after the same model's pass of the same size. */
  hot: CostTables;
  /** Extra ms of a pass whose size differs from the model's previous pass (mean of the cold and hot extras, >= 0). */
  reshape: CostTables;
  /** One-token passes deep in a run of the model's own one-token passes: autoregressive decoding (n = 1 only). */
  steady: CostTables;
  /** Passes timed per (model, n), each way. */
  samples: number;
}

/** How a pass is timed: four ways per (model, n), and "steady" (the model decoding alone, n = 1; see the module comment). */
export const PASS_KINDS = ["cold", "hot", "coldReshape", "hotReshape", "steady"] as const;
export type PassKind = (typeof PASS_KINDS)[number];

/** Raw pass times: times[kind][model][n] = ms of each timed pass. Merge several calls with `mergeTimes`. */
export type PassTimes = Record<PassKind, number[][][]>;

export function mergeTimes(into: PassTimes | null, more: PassTimes): PassTimes {
  if (!into)
    return Object.fromEntries(PASS_KINDS.map((k) => [k, more[k].map((byN) => byN.map((xs) => [...xs]))])) as PassTimes;
  for (const k of PASS_KINDS) more[k].forEach((byN, m) => byN.forEach((xs, n) => into[k][m]![n]!.push(...xs)));
  return into;
}

function tables(times: number[][][]): CostTables {
  const summarise = (f: (xs: number[]) => number) =>
    times.map((byN) => byN.slice(1).flatMap((xs, i) => (xs.length > 0 ? [{ n: i + 1, ms: f(xs) }] : [])));
  return { mean: summarise(trimmedMean), median: summarise(median) };
}

/** The size-change extra, per statistic: ((coldReshape - cold) + (hotReshape - hot)) / 2, at least 0. */
function reshapeTables(times: PassTimes): CostTables {
  const extra = (f: (xs: number[]) => number) =>
    times.cold.map((byN, m) =>
      byN.slice(1).flatMap((xs, i) => {
        if (xs.length === 0) return []; // a size the grid skips
        const n = i + 1;
        const at = (k: PassKind) => f(times[k][m]![n]!);
        return [{ n, ms: Math.max(0, (at("coldReshape") - at("cold") + at("hotReshape") - at("hot")) / 2) }];
      }),
    );
  return { mean: extra(trimmedMean), median: extra(median) };
}

/**
 * The pass sizes measured: every n up to 6, then a widening grid up to maxN (pass costs between grid points are
 * interpolated linearly by MeasuredPassCost). Halves calibration time at T_max = 16 with no visible loss: c(n) is
 * close to linear above a few tokens on the CPU and flat-then-linear on a GPU.
 */
export function calibrationSizes(maxN: number): number[] {
  const sizes: number[] = [];
  for (let n = 1; n <= Math.min(maxN, 6); n++) sizes.push(n);
  for (let n = 8; n < maxN; n += n < 12 ? 2 : 4) sizes.push(n);
  if (maxN > 6 && sizes[sizes.length - 1] !== maxN) sizes.push(maxN);
  return sizes;
}

/**
 * Each model's `PassCosts` from a summary (trimmed means). A model that ends every generation at once (end of
 * generation first) gives no steady samples: its autoregressive ms is then its hot c(1).
 */
export function passCostsFrom(costs: DecodeCosts): PassCosts[] {
  return costs.hot.mean.map((hot, i) => ({
    hot,
    cold: costs.cold.mean[i]!,
    reshape: costs.reshape.mean[i]!,
    autoregressiveMs: costs.steady.mean[i]![0]?.ms ?? hot[0]!.ms,
  }));
}

export function summariseTimes(times: PassTimes): DecodeCosts {
  return {
    cold: tables(times.cold),
    hot: tables(times.hot),
    reshape: reshapeTables(times),
    steady: tables(times.steady),
    samples: times.cold[0]?.[1]?.length ?? 0,
  };
}

/**
 * Contexts of every model, kept between measurements so that a benchmark can take a few rounds between its runs
 * (fresh contexts would add first-pass costs to every slice). Separate from the engine's own contexts: touching
 * those would invalidate NativeLevel's cache record.
 */
export class DecodeCostProbe {
  private readonly contexts: NativeContext[];
  private readonly text: Int32Array;
  /** The text as each model reads it (ids it lacks as ownId, docs/ALGORITHM.md §11). */
  private readonly texts: Int32Array[];
  private readonly pos: number[];
  private readonly targets: EvaluateTarget[];
  private readonly rng: () => number;
  /** Per model: the engine decoding it alone, on its own context (the steady, autoregressive measurement). */
  private readonly autoregressive: { decoder: HsdDecoder; context: NativeContext }[];

  constructor(
    private readonly models: readonly NativeModel[],
    private readonly options: DecodeCostOptions,
  ) {
    const { maxN, lo, hi } = options;
    if (!(lo >= 1 && hi > lo)) throw new InvalidOptionError(`measureDecodeCosts: need 1 <= lo < hi, got ${lo}, ${hi}`);
    const length = hi + 3 * maxN + 3;
    this.text = new Int32Array(length);
    for (let i = 0; i < length; i++) this.text[i] = options.text[i % options.text.length]!;
    this.texts = models.map((m) => feedable(this.text, m.vocabSize));
    const contextSize = Math.min(...models.map(defaultContextSize));
    if (length > contextSize)
      throw new InvalidOptionError(
        `measureDecodeCosts: positions up to ${length} exceed the context size ${contextSize}`,
      );
    this.contexts = models.map((m) =>
      m.createContext(
        contextOptions(m, { contextSize, threads: options.threads, flashAttention: options.flashAttention }),
      ),
    );
    // Rows laid out as the engine lays them out (dense or sparse, docs/ALGORITHM.md §12): the transform's cost is
    // part of each pass.
    const t = options.transform;
    const rows = models.map((m) => new DistributionRows(maxN, m.vocabSize, t.greedy, false, rowLayout(t, m.vocabSize)));
    this.targets = rows.map((r) => ({ probs: r.probs, argmax: r.argmax, rowOffset: 0, sparse: sparseTarget(r) }));
    const noRows = { probs: null, argmax: new Int32Array(0), rowOffset: 0 };
    this.contexts.forEach((c, m) => {
      c.evaluateSync(this.texts[m]!.subarray(0, lo), 0, lo, noRows); // no rows: a fresh context is greedy, so probs may be null
      c.setSampling(options.transform);
    });
    this.pos = models.map(() => lo);
    this.rng = makeRng(options.seed ?? 11);
    this.autoregressive = models.map((m, i) => {
      const context = m.createContext(
        contextOptions(m, { contextSize, threads: options.threads, flashAttention: options.flashAttention }),
      );
      context.setSampling(options.transform);
      const level = new NativeLevel(`calibration ${i}`, context, m.vocabSize, "sync");
      const decoder = new HsdDecoder([level], {
        thresholds: [],
        greedy: options.transform.greedy,
        sampling: options.transform,
        rng: new Rng((options.seed ?? 11) + i),
      });
      return { decoder, context };
    });
  }

  /**
   * Autoregressive decoding as a generation does it (the product's generation loop over an HsdDecoder with no
   * draft: a pass, sampling, text, a streamed chunk, …), from a prompt ending in lo … hi: the ms between
   * consecutive chunks after the first two, for `steps` tokens. (A tight loop of passes alone measured 5–20%
   * below the passes inside generations: the engine's and the stream's JS between passes costs the model some
   * of its cached state.)
   */
  private async decodeAlone(m: number, steps: number): Promise<number[]> {
    const { decoder } = this.autoregressive[m]!;
    const { lo, hi } = this.options;
    const end = lo + Math.floor(this.rng() * Math.max(1, hi - lo - steps));
    const model = this.models[m]!;
    const vocabulary = {
      isEndOfGeneration: (t: number) => model.isEndOfGeneration(t),
      tokenPiece: (t: number) => model.tokenPiece(t),
    };
    const times: number[] = [];
    let last = -1;
    let chunks = 0;
    for await (const _chunk of generate(decoder, vocabulary, this.text.subarray(0, end), { maxTokens: steps })) {
      const now = performance.now();
      if (chunks >= 2) times.push(now - last);
      last = now;
      chunks++;
    }
    return times;
  }

  /** One pass of model m over n tokens at its next positions (wrapping to lo past hi); returns its ms. */
  private pass(m: number, n: number): number {
    let p = this.pos[m]!;
    if (p + n > this.options.hi) p = this.options.lo;
    const started = performance.now();
    this.contexts[m]!.evaluateSync(this.texts[m]!.subarray(p, p + n), p, 0, this.targets[m]!);
    const ms = performance.now() - started;
    this.pos[m] = p + n;
    return ms;
  }

  /**
   * A pass of every other model, in a random order, of 1 … 4 tokens (at most maxN; verification passes carry a
   * block): what runs between two passes of the target (all the drafts) or before level 0's first pass of a call
   * (the verifiers above it). With a single one-token pass of one other model instead, cold passes measured 10–35%
   * below the same passes inside the engine's chains: the model's weights were then still partly in the caches.
   */
  private others(m: number): void {
    const order = shuffle(
      this.models.map((_, i) => i).filter((i) => i !== m),
      this.rng,
    );
    for (const o of order) this.pass(o, 1 + Math.floor(this.rng() * Math.min(4, this.options.maxN)));
  }

  /**
   * Up to `rounds` rounds: each times every (model, n) four ways, n from `calibrationSizes` in a fresh random order
   * each round. With `budgetMs`, stops after the round that passes it (but not before `minRounds`): large models
   * on a CPU would otherwise make the first calibration take many minutes.
   */
  async measure(
    rounds: number,
    onRound?: (done: number, total: number) => void,
    budgetMs = Number.POSITIVE_INFINITY,
    minRounds = 4,
  ): Promise<PassTimes> {
    const started = performance.now();
    const { maxN } = this.options;
    const k = this.models.length;
    const times = Object.fromEntries(
      PASS_KINDS.map((kind) => [kind, this.models.map(() => Array.from({ length: maxN + 1 }, () => [] as number[]))]),
    ) as PassTimes;
    const ns = [...(this.options.sizes ?? calibrationSizes(maxN))];
    for (let r = 0; r < rounds; r++) {
      shuffle(ns, this.rng);
      for (const n of ns) {
        const otherSize = n === 1 ? 2 : 1;
        for (let step = 0; step < k; step++) {
          const m = (step + r) % k;
          const record = (kind: PassKind, ms: number) => times[kind][m]![n]!.push(ms);
          // Untimed passes set up what precedes each timed one. Hot passes are the second after the
          // other models ran, as level 0's second pass of a call is (the most common hot pass).
          this.pass(m, otherSize);
          this.others(m);
          record("coldReshape", this.pass(m, n));
          record("hot", this.pass(m, n));
          this.others(m);
          record("cold", this.pass(m, n));
          this.others(m);
          this.pass(m, otherSize);
          record("hotReshape", this.pass(m, n));
          // Autoregressive decoding: steps 3 … 12 of the engine decoding m alone (ten samples: it is one
          // number per model, and the whole of the no-draft prediction).
          if (n === 1) for (const ms of await this.decodeAlone(m, 12)) record("steady", ms);
          await yieldOrAbort(this.options.signal, "the pass-cost calibration");
        }
      }
      if (r + 1 >= minRounds && r + 1 < rounds && performance.now() - started > budgetMs) {
        onRound?.(rounds, rounds);
        break;
      }
      onRound?.(r + 1, rounds);
    }
    return times;
  }

  dispose(): void {
    for (const c of this.contexts) c.dispose();
    for (const a of this.autoregressive) a.context.dispose();
  }
}

/** One calibration's worth: fresh contexts, `rounds` rounds, contexts freed. */
export async function measureDecodeCosts(
  models: readonly NativeModel[],
  options: DecodeCostOptions & {
    rounds: number;
    budgetMs?: number;
    minRounds?: number;
    onRound?: (done: number, total: number) => void;
  },
): Promise<PassTimes> {
  const probe = new DecodeCostProbe(models, options);
  try {
    return await probe.measure(options.rounds, options.onRound, options.budgetMs, options.minRounds);
  } finally {
    probe.dispose();
  }
}
