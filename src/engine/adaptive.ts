// Planning while generating (docs/ALGORITHM.md §10): a decoder that runs the current routed policy, tells an
// observer (an online calibration) about every pass and verdict, and between target steps re-plans from what was
// learned, switching policy when the new one is predicted faster by a margin (hysteresis: it never thrashes between
// near-equal plans). Re-planning costs time on the JS thread, so it runs only when the generation time since the
// last re-plan is `budget` times what re-planning took (≤ 1/budget of the time). Every `exploreEvery` steps one step
// may run an exploration policy — the best under the prior's acceptance where little was learned — so that a
// level dropped when drafting stopped paying is tried again; its cost is bounded by that share of the steps.
//
// Exactness: a switch happens only between target steps and depends on what earlier steps produced and timed, never
// on the coming step's own draws; each step is exact given the committed prefix (§3, §9), so the output keeps the
// target's law (greedy: the target's tokens).

import type { Decoder, DecoderObserver, DecoderOptions } from "./hsd.js";
import { RoutedDecoder, type RoutingPolicy, type RoutingStats } from "./routed.js";
import { StatsBook, type Level, type LevelStats } from "../levels/level.js";
import type { Rng } from "../util/rng.js";
import { InvalidOptionError } from "../errors.js";
import { PlanTimes } from "./plan-times.js";

/** A plan the decoder can run: a routed policy and the latency model's prediction for it. */
export interface AdaptivePlan {
  policy: RoutingPolicy;
  predictedMsPerToken: number;
  /** A short name for logs and statistics. */
  label: string;
}

/** What re-planning returns: the best plan now, the running plan's prediction now, and an exploration plan. */
export interface Replanned {
  best: AdaptivePlan;
  /** The running plan's predicted ms/token under the same (new) estimates. */
  currentMsPerToken: number;
  /** Worth one step now and then (null: nothing worth exploring). */
  explore: AdaptivePlan | null;
}

export interface AdaptiveOptions {
  greedy: boolean;
  rng: Rng;
  /** The transform's truncation, so that every policy's rows are sparse where it allows (docs/ALGORITHM.md §12). */
  sampling?: DecoderOptions["sampling"];
  /** Every level any plan may use, smallest first (model-free levels first), the target last. */
  levels: readonly Level[];
  /** The longest block any plan may verify (the sequence buffer keeps that much slack). */
  maxDraftBlock: number;
  initial: AdaptivePlan;
  /**
   * Re-plans from what the observer learned; `current` is the running plan. A promise (re-planning in a worker)
   * is picked up at the first step after it settles; the generation does not wait for it.
   */
  replan: ((current: AdaptivePlan) => Replanned | Promise<Replanned>) | null;
  /** Told of every pass, proposal and verdict, of each generation's text and of each step's state (null: none). */
  observer: AdaptiveObserver | null;
  /**
   * Re-plan once the steps since the last re-plan took this many times what re-planning took (default 100: on the
   * generating thread, re-planning takes at most 1% of the time; in a worker, 1 keeps it busy at most half the time).
   */
  budget?: number;
  /** Switch only to a plan predicted faster by at least this share (default 0.03). */
  hysteresis?: number;
  /** Every this many steps, one exploration step (default 64; 0: never). */
  exploreEvery?: number;
  /** At least this many steps between re-plans (default 8). */
  replanEvery?: number;
  /**
   * The last re-plan's time and the step time since, shared across the generations of one planner: a re-plan costs
   * 0.1–0.5 s of CPU, so a decoder of its own per generation would re-plan at once in every generation, and short
   * generations would never earn the next one. Default: this decoder's own.
   */
  replanClock?: ReplanClock;
  /**
   * What plans measured (ms/token by label), shared across the generations of one planner; plans are compared by it
   * once measured (plan-times.ts). Default: a new one.
   */
  times?: PlanTimes;
  /**
   * The target alone: measured in a burst of steps once the running plan has a measurement, and run instead when
   * it measured faster (null: no fallback).
   */
  baseline?: AdaptivePlan | null;
  now?: () => number;
  /** Tests only: a deliberate fault the exactness tests must catch. */
  mutation?: AdaptiveMutation;
}

/**
 * "retry-short-step": a step that emitted one token is thrown away and run again under another plan, as if trying a
 * better plan on the spot. The retry depends on the step's own draws (its first draft was rejected), so the first
 * token's law leans toward where the draft was confident.
 */
export type AdaptiveMutation = "retry-short-step";

/** What the decoder tells its observer: passes, proposals and verdicts, each generation's text, each step's state. */
export type AdaptiveObserver = DecoderObserver & {
  begin(sequence: Int32Array, promptLength: number): void;
  /** A step starts in `state` with `committed` tokens of text and will run the chain `running`. */
  step(state: number, committed: number, running: readonly Level[]): void;
};

/** How long the last re-plan took and how much step time has passed since (ms). */
export interface ReplanClock {
  lastMs: number;
  sinceMs: number;
}

/** One switch of plan, for statistics and tests. */
export interface PlanSwitch {
  step: number;
  from: string;
  to: string;
  predictedGain: number;
}

/** Steps of the target alone that measure it (MIN_MEASURED_TOKENS tokens: one each). */
const BURST_STEPS = 32;

export class AdaptiveDecoder implements Decoder {
  readonly levels: readonly Level[];
  readonly maxDraftBlock: number;
  private readonly book = new StatsBook();
  private readonly now: () => number;
  private current: { plan: AdaptivePlan; decoder: RoutedDecoder };
  private explorer: { plan: AdaptivePlan; decoder: RoutedDecoder } | null = null;
  /** The plan it started with (the "retry-short-step" mutant's fallback). */
  private readonly initial: { plan: AdaptivePlan; decoder: RoutedDecoder };
  private steps = 0;
  /** The re-planning budget's clock: kept across generations (see AdaptiveOptions.replanClock). */
  private readonly clock: ReplanClock;
  private stepsSinceReplan = 0;
  readonly switches: PlanSwitch[] = [];
  explorationSteps = 0;
  replans = 0;
  /** Re-plans that failed (the running plan is kept). */
  replanErrors = 0;
  /** A re-plan running elsewhere, and one that finished and waits for the next step. */
  private pending: Promise<void> | null = null;
  private ready: Replanned | null = null;
  /** A generation started (resetStats): the next step tells the observer its text. */
  private fresh = true;
  readonly times: PlanTimes;
  private readonly baseline: { plan: AdaptivePlan; decoder: RoutedDecoder } | null;
  /** Steps left in a burst of the baseline being measured. */
  private burstLeft = 0;
  /** Whether the baseline was measured in this generation already (one burst per generation at most). */
  private burstDone = false;

  constructor(private readonly options: AdaptiveOptions) {
    this.levels = options.levels;
    this.maxDraftBlock = options.maxDraftBlock;
    this.now = options.now ?? (() => performance.now());
    this.current = { plan: options.initial, decoder: this.decoderFor(options.initial) };
    if (this.current.decoder.maxDraftBlock > this.maxDraftBlock)
      throw new InvalidOptionError(
        `AdaptiveDecoder: the initial plan's blocks (${this.current.decoder.maxDraftBlock}) exceed maxDraftBlock ${this.maxDraftBlock}`,
      );
    this.initial = this.current;
    this.times = options.times ?? new PlanTimes();
    this.clock = options.replanClock ?? { lastMs: 0, sinceMs: 0 };
    const baseline = options.baseline ?? null;
    this.baseline = baseline ? { plan: baseline, decoder: this.decoderFor(baseline) } : null;
  }

  private decoderFor(plan: AdaptivePlan): RoutedDecoder {
    return new RoutedDecoder(plan.policy, {
      greedy: this.options.greedy,
      rng: this.options.rng,
      sampling: this.options.sampling,
      stats: this.book,
      ...(this.options.observer ? { observer: this.options.observer } : {}),
      now: this.options.now,
    });
  }

  get plan(): AdaptivePlan {
    return this.current.plan;
  }

  get stats(): LevelStats[] {
    return this.levels.map((l) => this.book.of(l));
  }

  /** The generation loop calls this as each generation starts. */
  resetStats(): void {
    this.book.reset();
    this.current.decoder.resetStats();
    this.fresh = true;
    this.burstDone = false;
    this.burstLeft = 0;
  }

  async step(sequence: Int32Array, committed: number): Promise<number> {
    if (this.ready) {
      this.apply(this.ready);
      this.ready = null;
    }
    const explore = this.options.exploreEvery ?? 64;
    const bursting = this.burstLeft > 0 && this.baseline !== null;
    const run = bursting
      ? this.baseline!
      : explore > 0 && this.explorer && this.steps % explore === explore - 1
        ? this.explorer
        : this.current;
    if (run !== this.current) this.explorationSteps++;
    // The first step of a generation also evaluates the prompt: not a step of any plan's steady state.
    const first = this.fresh;
    if (this.fresh) {
      this.options.observer?.begin(sequence, committed);
      this.fresh = false;
    }
    const state = run.plan.policy.state(sequence, committed);
    this.options.observer?.step(state, committed, run.plan.policy.chains[state]!.levels);
    const started = this.now();
    let emitted = await run.decoder.stepIn(state, sequence, committed);
    if (this.options.mutation === "retry-short-step" && emitted === 1) {
      const other = run === this.current ? (this.explorer ?? this.initial) : this.current;
      emitted = await other.decoder.stepIn(other.plan.policy.state(sequence, committed), sequence, committed);
    }
    const stepMs = this.now() - started;
    this.clock.sinceMs += stepMs;
    // Single exploration steps run cold among the current plan's: only the current plan's steps and bursts count.
    if (!first && (run === this.current || bursting))
      this.times.add(run.plan.label, stepMs, emitted, run.plan.predictedMsPerToken);
    if (bursting) this.burstLeft--;
    this.guard();
    this.steps++;
    this.stepsSinceReplan++;
    const every = this.options.replanEvery ?? 8;
    if (
      this.options.replan !== null &&
      this.pending === null &&
      this.stepsSinceReplan >= every &&
      this.clock.sinceMs >= (this.options.budget ?? 100) * this.clock.lastMs
    ) {
      this.replanNow();
    }
    return emitted;
  }

  /**
   * The measured guard (plan-times.ts): once the running plan has a measurement, measure the target alone in a burst
   * of consecutive steps (one per generation, while it has none), and run the target alone when it measured faster
   * by the hysteresis margin. Decided from finished steps' times only, so exactness is untouched (§10).
   */
  private guard(): void {
    const base = this.baseline;
    if (!base || base.plan.label === this.current.plan.label || this.burstLeft > 0) return;
    const current = this.times.msPerToken(this.current.plan.label);
    if (current === null) return;
    const alone = this.times.msPerToken(base.plan.label);
    if (alone === null) {
      if (!this.burstDone) {
        this.burstDone = true;
        this.burstLeft = BURST_STEPS;
      }
      return;
    }
    if (current > alone * (1 + (this.options.hysteresis ?? 0.03)) && base.decoder.maxDraftBlock <= this.maxDraftBlock) {
      this.switches.push({
        step: this.steps,
        from: this.current.plan.label,
        to: base.plan.label,
        predictedGain: current / alone - 1,
      });
      this.current = base;
    }
  }

  /** Re-plan from what was learned (switching if the best plan is faster by the hysteresis margin). */
  replanNow(): void {
    if (!this.options.replan) return;
    const started = this.now();
    this.replans++;
    this.clock.sinceMs = 0;
    this.stepsSinceReplan = 0;
    const result = this.options.replan(this.current.plan);
    if (!(result instanceof Promise)) {
      this.clock.lastMs = this.now() - started;
      this.apply(result);
      return;
    }
    this.pending = result.then(
      (r) => {
        this.clock.lastMs = this.now() - started;
        this.ready = r;
        this.pending = null;
      },
      () => {
        this.replanErrors++;
        this.pending = null;
      },
    );
  }

  /** Whether a re-plan is running elsewhere (tests wait on `settled`). */
  get settled(): Promise<void> {
    return this.pending ?? Promise.resolve();
  }

  private apply(r: Replanned): void {
    // Plans are compared by what they measured where they have run long enough, by their prediction (corrected by
    // how far measured plans were from theirs) where not.
    const gain =
      this.times.expected(this.current.plan.label, r.currentMsPerToken) /
        this.times.expected(r.best.label, r.best.predictedMsPerToken) -
      1;
    const candidate =
      r.best.label !== this.current.plan.label && gain > (this.options.hysteresis ?? 0.03)
        ? this.decoderFor(r.best)
        : null;
    // A plan whose blocks outgrow the sequence's slack (fixed when the generation started) is not taken.
    if (candidate && candidate.maxDraftBlock <= this.maxDraftBlock) {
      this.switches.push({ step: this.steps, from: this.current.plan.label, to: r.best.label, predictedGain: gain });
      this.current = { plan: r.best, decoder: candidate };
    } else {
      this.current.plan = { ...this.current.plan, predictedMsPerToken: r.currentMsPerToken };
    }
    const explorer = r.explore && r.explore.label !== this.current.plan.label ? this.decoderFor(r.explore) : null;
    this.explorer =
      explorer && explorer.maxDraftBlock <= this.maxDraftBlock ? { plan: r.explore!, decoder: explorer } : null;
  }

  /** Steps and tokens per state of the running plan (its own RoutedDecoder's count). */
  routing(): RoutingStats {
    return this.current.decoder.routing();
  }
}
