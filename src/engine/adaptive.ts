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

import type { Decoder, DecoderObserver } from "./hsd.js";
import { RoutedDecoder, type RoutingPolicy, type RoutingStats } from "./routed.js";
import { StatsBook, type Level, type LevelStats } from "../levels/level.js";
import type { Rng } from "../util/rng.js";

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
  /** Every level any plan may use, smallest first (model-free levels first), the target last. */
  levels: readonly Level[];
  /** The longest block any plan may verify (the sequence buffer keeps that much slack). */
  maxDraftBlock: number;
  initial: AdaptivePlan;
  /** Re-plans from what the observer learned; `current` is the running plan. */
  replan: (current: AdaptivePlan) => Replanned;
  /** Told of every pass, proposal and verdict, of each generation's text and of each step's state. */
  observer: DecoderObserver & {
    begin(sequence: Int32Array, promptLength: number): void;
    step(state: number, committed: number): void;
  };
  /** Re-plan once the steps since the last re-plan took this many times what re-planning took (default 100). */
  budget?: number;
  /** Switch only to a plan predicted faster by at least this share (default 0.03). */
  hysteresis?: number;
  /** Every this many steps, one exploration step (default 64; 0: never). */
  exploreEvery?: number;
  /** At least this many steps between re-plans (default 8). */
  replanEvery?: number;
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

/** One switch of plan, for statistics and tests. */
export interface PlanSwitch {
  step: number;
  from: string;
  to: string;
  predictedGain: number;
}

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
  private stepMsSinceReplan = 0;
  private replanMs = 0;
  private stepsSinceReplan = 0;
  readonly switches: PlanSwitch[] = [];
  explorationSteps = 0;
  replans = 0;
  /** A generation started (resetStats): the next step tells the observer its text. */
  private fresh = true;

  constructor(private readonly options: AdaptiveOptions) {
    this.levels = options.levels;
    this.maxDraftBlock = options.maxDraftBlock;
    this.now = options.now ?? (() => performance.now());
    this.current = { plan: options.initial, decoder: this.decoderFor(options.initial) };
    this.initial = this.current;
  }

  private decoderFor(plan: AdaptivePlan): RoutedDecoder {
    return new RoutedDecoder(plan.policy, {
      greedy: this.options.greedy,
      rng: this.options.rng,
      stats: this.book,
      observer: this.options.observer,
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
  }

  async step(sequence: Int32Array, committed: number): Promise<number> {
    const explore = this.options.exploreEvery ?? 64;
    const run = explore > 0 && this.explorer && this.steps % explore === explore - 1 ? this.explorer : this.current;
    if (run !== this.current) this.explorationSteps++;
    if (this.fresh) {
      this.options.observer.begin(sequence, committed);
      this.fresh = false;
    }
    const state = run.plan.policy.state(sequence, committed);
    this.options.observer.step(state, committed);
    const started = this.now();
    let emitted = await run.decoder.stepIn(state, sequence, committed);
    if (this.options.mutation === "retry-short-step" && emitted === 1) {
      const other = run === this.current ? (this.explorer ?? this.initial) : this.current;
      emitted = await other.decoder.stepIn(other.plan.policy.state(sequence, committed), sequence, committed);
    }
    this.stepMsSinceReplan += this.now() - started;
    this.steps++;
    this.stepsSinceReplan++;
    const every = this.options.replanEvery ?? 8;
    if (this.stepsSinceReplan >= every && this.stepMsSinceReplan >= (this.options.budget ?? 100) * this.replanMs) {
      this.replanNow();
    }
    return emitted;
  }

  /** Re-plan from what was learned, and switch if the best plan is faster by the hysteresis margin. */
  replanNow(): void {
    const started = this.now();
    const r = this.options.replan(this.current.plan);
    this.replanMs = this.now() - started;
    this.replans++;
    this.stepMsSinceReplan = 0;
    this.stepsSinceReplan = 0;
    const gain = r.currentMsPerToken / r.best.predictedMsPerToken - 1;
    if (r.best.label !== this.current.plan.label && gain > (this.options.hysteresis ?? 0.03)) {
      this.switches.push({ step: this.steps, from: this.current.plan.label, to: r.best.label, predictedGain: gain });
      this.current = { plan: r.best, decoder: this.decoderFor(r.best) };
    } else {
      this.current.plan = { ...this.current.plan, predictedMsPerToken: r.currentMsPerToken };
    }
    this.explorer =
      r.explore && r.explore.label !== this.current.plan.label
        ? { plan: r.explore, decoder: this.decoderFor(r.explore) }
        : null;
  }

  /** Steps and tokens per state of the running plan (its own RoutedDecoder's count). */
  routing(): RoutingStats {
    return this.current.decoder.routing();
  }
}
