// Chains for the planner tests, written the way the scenarios think of them: one cost function per level.
import type { Acceptance, CatchUpMode, ChainSpec, LevelSpec, PassCost } from "../../src/planner/index.js";

export interface CostChain {
  /** Hot costs c_0 … c_K (the last is the target). */
  costs: PassCost[];
  /** Cold costs, one per level (default: hot). */
  cold?: PassCost[];
  /** Shape-change extras, one per level (default: none). */
  reshape?: PassCost[];
  /** The target decoding alone (default: its hot c(1)). */
  autoregressiveMs?: number;
  names?: string[];
  thresholds: number[];
  acceptance: Acceptance[];
  /** Rates by position, one list per pair, replacing `acceptance` where given. */
  byPosition?: (readonly number[] | null)[];
  catchUp?: CatchUpMode;
}

/** Model levels from per-level cost functions. */
export function modelLevels(
  s: Pick<CostChain, "costs" | "cold" | "reshape" | "autoregressiveMs" | "names">,
): LevelSpec[] {
  const K = s.costs.length - 1;
  return s.costs.map((hot, i) => ({
    kind: "model" as const,
    name: s.names?.[i] ?? `level ${i}`,
    costs: {
      hot,
      ...(s.cold ? { cold: s.cold[i]! } : {}),
      ...(s.reshape ? { reshape: s.reshape[i]! } : {}),
      ...(i === K && s.autoregressiveMs !== undefined ? { autoregressiveMs: s.autoregressiveMs } : {}),
    },
  }));
}

/** The `ChainSpec` of a cost chain; other fields (a simulation's tokens and seed) pass through. */
export function chain<T extends CostChain>(s: T): ChainSpec & Omit<T, keyof CostChain> {
  const { costs, cold, reshape, autoregressiveMs, names, byPosition, acceptance, thresholds, catchUp, ...rest } = s;
  return {
    ...(rest as Omit<T, keyof CostChain>),
    levels: modelLevels({ costs, cold, reshape, autoregressiveMs, names }),
    thresholds,
    acceptance: acceptance.map((a, j) => (byPosition?.[j] && byPosition[j]!.length > 0 ? byPosition[j]! : a)),
    ...(catchUp ? { catchUp } : {}),
  };
}
