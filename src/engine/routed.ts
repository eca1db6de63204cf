// A routed policy (docs/ALGORITHM.md §9): before each target step, a state computed from the committed text only
// picks the chain that runs the step. Each step is an exact speculative step given the committed prefix, and the
// choice depends on nothing but that prefix, so the output keeps the target's law (greedy: the target's tokens).
//
// One HsdDecoder per distinct chain; they share the level objects (a model skipped in a step catches up on the
// tokens it missed in its next pass, through its KV-cache prefix check, §4), the random stream, and one statistics
// record per level.

import type { Decoder, DecoderObserver, DecoderOptions } from "./hsd.js";
import { HsdDecoder } from "./hsd.js";
import { StatsBook, type Level, type LevelStats } from "../levels/level.js";
import { InvalidOptionError } from "../errors.js";

/** One chain of a policy: its levels (smallest first, ending with the target) and thresholds. */
export interface RouteChain {
  levels: readonly Level[];
  thresholds: readonly number[];
}

export interface RoutingPolicy {
  /** The names of the states, for statistics. */
  readonly states: readonly string[];
  /**
   * The state of the committed prefix sequence[0 .. committed). It must not read past `committed`: a state that
   * depends on the step's own draws biases the output (the "route-after-draft" mutant shows it).
   */
  state(sequence: Int32Array, committed: number): number;
  /** The chain of each state (states may share one). */
  readonly chains: readonly RouteChain[];
}

/** Steps and tokens per state in one generation. */
export interface RoutingStats {
  states: { name: string; chain: string[]; thresholds: number[]; steps: number; tokens: number }[];
}

/**
 * A deliberately wrong router, for tests only: it runs the state's chain and, when that step accepted no draft,
 * runs the step again with the next chain — the route then depends on the step's own draws.
 */
export type RoutingMutation = "route-after-draft";

export class RoutedDecoder implements Decoder {
  readonly levels: readonly Level[];
  readonly maxDraftBlock: number;
  private readonly book: StatsBook;
  /** decoders[c] runs chain c; byState[s] = c. */
  private readonly decoders: HsdDecoder[] = [];
  private readonly byState: number[];
  private steps: number[];
  private tokens: number[];
  private readonly mutation: RoutingMutation | undefined;

  constructor(
    readonly policy: RoutingPolicy,
    options: Pick<DecoderOptions, "greedy" | "rng" | "sampling"> & {
      mutation?: RoutingMutation;
      /** Shared statistics (an adaptive decoder keeps one record per level across the policies it runs). */
      stats?: StatsBook;
      observer?: DecoderObserver;
      now?: () => number;
    },
  ) {
    this.mutation = options.mutation;
    this.book = options.stats ?? new StatsBook();
    if (policy.chains.length !== policy.states.length) {
      throw new InvalidOptionError(
        `a policy needs one chain per state: ${policy.states.length} states, ${policy.chains.length} chains`,
      );
    }
    const keys: string[] = [];
    this.byState = policy.chains.map((chain) => {
      const key = `${chain.levels.map((l) => l.name).join(">")}:${chain.thresholds.join(",")}`;
      let c = keys.indexOf(key);
      if (c < 0) {
        c = keys.length;
        keys.push(key);
        this.decoders.push(
          new HsdDecoder(chain.levels, {
            thresholds: chain.thresholds,
            greedy: options.greedy,
            sampling: options.sampling,
            rng: options.rng,
            stats: this.book,
            observer: options.observer,
            now: options.now,
          }),
        );
      }
      return c;
    });
    const target = policy.chains[0]!.levels[policy.chains[0]!.levels.length - 1];
    for (const chain of policy.chains) {
      if (chain.levels[chain.levels.length - 1] !== target) {
        throw new InvalidOptionError("every chain of a policy must end with the same target");
      }
    }
    // Every level once, proposal levels first, then models in the order the chains use them (smallest first).
    const all = [...new Set(policy.chains.flatMap((c) => c.levels))];
    this.levels = [
      ...all.filter((l) => l.kind === "proposal"),
      ...all.filter((l) => l.kind === "model" && l !== target),
      target!,
    ];
    this.maxDraftBlock = Math.max(...this.decoders.map((d) => d.maxDraftBlock));
    this.steps = policy.states.map(() => 0);
    this.tokens = policy.states.map(() => 0);
  }

  get stats(): LevelStats[] {
    return this.levels.map((level) => this.book.of(level));
  }

  resetStats(): void {
    this.book.reset();
    this.steps = this.policy.states.map(() => 0);
    this.tokens = this.policy.states.map(() => 0);
  }

  async step(sequence: Int32Array, committed: number): Promise<number> {
    return this.stepIn(this.policy.state(sequence, committed), sequence, committed);
  }

  /** One step in state `s` (which the caller computed from the committed text with `policy.state`). */
  async stepIn(s: number, sequence: Int32Array, committed: number): Promise<number> {
    const c = this.byState[s]!;
    let emitted = await this.decoders[c]!.step(sequence, committed);
    if (this.mutation === "route-after-draft" && emitted === 1 && this.decoders.length > 1) {
      emitted = await this.decoders[(c + 1) % this.decoders.length]!.step(sequence, committed);
    }
    this.steps[s]!++;
    this.tokens[s]! += emitted;
    return emitted;
  }

  /** Steps and tokens per state since the last reset. */
  routing(): RoutingStats {
    return {
      states: this.policy.states.map((name, s) => {
        const chain = this.policy.chains[s]!;
        return {
          name,
          chain: chain.levels.map((l) => l.name),
          thresholds: [...chain.thresholds],
          steps: this.steps[s]!,
          tokens: this.tokens[s]!,
        };
      }),
    };
  }
}
