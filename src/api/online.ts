// Planning while generating, as an Hsd instance does it (docs/ALGORITHM.md §10): one OnlinePlanner per sampling
// transform keeps what the generations taught (an OnlineCalibration), the plan the last generation ended with, and
// where the estimates started from. Every generation runs an AdaptiveDecoder over it; at the end what was learned
// goes to the cache, so that the next process starts from it.

import type { AdaptivePlan, PlanSwitch, Replanned } from "../engine/adaptive.js";
import type { Level } from "../levels/level.js";
import type { ContextLookupLevel } from "../levels/ngram-lookup.js";
import type { ModelInfo } from "../gguf/model-info.js";
import type { Calibration, CalibrationSource } from "../calibration/calibrate.js";
import { OnlineCalibration } from "../calibration/online.js";
import { stateOf } from "../calibration/measure.js";
import { livePlan, namedPlan, predictNamed, type NamedPlan } from "./adaptive.js";
import { planFromCalibration, type NgramMode } from "./plan.js";
import type { Replanner } from "./replanner.js";
import { PlanTimes } from "../engine/plan-times.js";
import { isAcceptanceMatrix, isPassCostsList, type CalibrationCache, type EntryCheck } from "../calibration/cache.js";

/** What the cache keeps of a planner: the estimates and the plan they chose. */
export interface LearnedEntry {
  calibration: Calibration;
  plan: NamedPlan;
}

/** What a generation reports of planning while generating. */
export interface OnlineReport {
  /** Whether the plan could change during the generation (false: pinned, only learning). */
  adapt: boolean;
  /** What the estimates started from in this process: an earlier run's ("learned"), a full or a quick calibration. */
  prior: CalibrationSource;
  /** ms this generation waited for the prior (0 once the instance has it). */
  priorMs: number;
  replans: number;
  switches: PlanSwitch[];
  explorationSteps: number;
  /** The plan running at the end. */
  plan: string;
  /** Its expected ms/token under the estimates at the end (what the latency model now predicts for it). */
  predictedMsPerToken: number;
  /** Passes, proposals and verdicts observed by this instance's estimates so far. */
  observations: number;
}

export interface OnlinePlannerOptions {
  prior: Calibration;
  source: CalibrationSource;
  /** The plan to start with (default: the prior's best). */
  plan?: NamedPlan;
  infos: readonly ModelInfo[];
  maxThreshold: number;
  ngram: NgramMode;
  /** Every level in candidate order: model-free levels first, then the models, the target last. */
  levels: readonly Level[];
  lookup: ContextLookupLevel | null;
  /** The lookup's state bounds. */
  states: readonly number[];
  replanner: Replanner;
  /** The clock steps are timed with (tests: a virtual one). */
  now?: () => number;
}

export class OnlinePlanner {
  readonly learner: OnlineCalibration;
  readonly source: CalibrationSource;
  /** The plan the next generation starts with (the one the last ended with). */
  plan: NamedPlan;
  /** What the plans measured while they ran, across this planner's generations (the decoder's measured guard). */
  readonly times = new PlanTimes();
  /** The re-planning budget's clock, across this planner's generations. */
  readonly replanClock = { lastMs: 0, sinceMs: 0 };
  /** Plans produced so far, by label (the decoder hands back live plans). */
  private readonly byLabel = new Map<string, NamedPlan>();
  private explore = 0;

  constructor(private readonly options: OnlinePlannerOptions) {
    this.source = options.source;
    this.learner = new OnlineCalibration(options.prior, {
      lookup: options.lookup,
      states: options.states,
      levels: options.levels,
      maxThreshold: options.maxThreshold,
      ...(options.now ? { now: options.now } : {}),
    });
    this.plan =
      options.plan ?? namedPlan(planFromCalibration(options.prior, options.infos, options.maxThreshold, options.ngram));
    this.byLabel.set(this.plan.label, this.plan);
  }

  private levelOf = (name: string): Level => {
    const level = this.options.levels.find((l) => l.name === name);
    if (!level) throw new Error(`online planner: no level ${name}`);
    return level;
  };

  /** The lookup state of a step (routed plans only). */
  private state = (sequence: Int32Array, committed: number): number =>
    stateOf(this.options.states, this.options.lookup?.match(sequence, committed).length ?? 0);

  /** A named plan over the live levels. */
  live(plan: NamedPlan): AdaptivePlan {
    this.byLabel.set(plan.label, plan);
    return livePlan(plan, this.levelOf, this.state);
  }

  /** The decoder's re-planner: a snapshot of the estimates, planned here or in the worker. */
  replan = (current: AdaptivePlan): Replanned | Promise<Replanned> => {
    const running = this.byLabel.get(current.label) ?? this.plan;
    const input = {
      calibration: this.learner.snapshot(),
      infos: this.options.infos,
      maxThreshold: this.options.maxThreshold,
      ngram: this.options.ngram,
      running,
      explore: this.explore++,
    };
    const result = this.options.replanner.replan(input);
    const toLive = (r: Awaited<typeof result>): Replanned => ({
      best: this.live(r.best),
      currentMsPerToken: r.currentMsPerToken,
      explore: r.explore ? this.live(r.explore) : null,
    });
    return result instanceof Promise ? result.then(toLive) : toLive(result);
  };

  /** The running plan's label → its named plan (after a generation, to start the next one with it). */
  remember(label: string): void {
    this.plan = this.byLabel.get(label) ?? this.plan;
  }

  /** A plan's expected ms/token under the current estimates. */
  predict(plan: NamedPlan): number {
    return predictNamed(
      this.learner.snapshot(),
      this.options.infos,
      this.options.maxThreshold,
      this.options.ngram,
      plan,
    );
  }

  named(label: string): NamedPlan | undefined {
    return this.byLabel.get(label);
  }

  /** What the cache keeps. */
  entry(): LearnedEntry {
    return { calibration: this.learner.snapshot(), plan: this.plan };
  }

  /** Store what was learned (write then rename: an interrupted run leaves the old entry). */
  async save(cache: CalibrationCache, key: string): Promise<void> {
    await cache.put("learned", key, this.entry());
  }
}

/**
 * Whether a cached "learned" entry fits these models, levels and settings (the cache's check: an entry that does
 * not is named in a warning and planning starts from another prior).
 */
export function isLearnedEntry(
  infos: readonly ModelInfo[],
  proposals: readonly string[],
  states: readonly number[],
): EntryCheck<LearnedEntry> {
  const isCosts = isPassCostsList(infos.length);
  const isAcceptance = isAcceptanceMatrix(infos.length);
  return (entry: unknown): entry is LearnedEntry => {
    if (typeof entry !== "object" || entry === null) return false;
    const e = entry as Partial<LearnedEntry>;
    const c = e.calibration;
    if (!c || !Array.isArray(c.models) || c.models.length !== infos.length) return false;
    if (c.models.some((m, i) => m?.file !== infos[i]!.file)) return false;
    if (!isCosts(c.models.map((m) => m.costs)) || !isAcceptance(c.acceptance)) return false;
    const workloadProposals = c.workload?.proposals?.map((p) => p.name) ?? [];
    if (workloadProposals.join() !== proposals.join()) return false;
    if (c.workload && c.workload.states?.length !== Math.max(1, states.length)) return false;
    const names = new Set([...proposals, ...infos.map((m) => m.file)]);
    const plan = e.plan;
    return !!plan && Array.isArray(plan.chains) && plan.chains.every((ch) => ch.names.every((n) => names.has(n)));
  };
}
