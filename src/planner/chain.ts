/**
 * What the planner knows about one level of a chain, and a chain of them: the one input shape of the latency
 * formula (latency.ts), the optimiser (optimizer.ts) and the simulator (simulate.ts), checked once here.
 *
 * A level is either a model (a forward pass scores any block; it drafts one token per pass and verifies blocks)
 * or a proposal level (model-free: it proposes a block from the text so far without a forward pass, possibly
 * shorter than asked or empty, and only ever sits at the bottom of a chain). docs/ALGORITHM.md §8.
 */

import { CostTable, levelTables, type LevelTables, type ModelCosts } from "./costs.js";
import { InvalidOptionError } from "../errors.js";

/**
 * Acceptance of the drafts of one block by the level above: a single rate, or rates by position in the block
 * (a[j] for the j-th draft, j = 0, 1, …, given drafts 0 … j-1 were accepted; the last entry applies to every later
 * position).
 */
export type Acceptance = number | readonly number[];

/** P(accept) per judged draft, from rates by position: Σ_j S_j a_j / Σ_j S_j, S_j the survival to position j. */
export function perJudged(a: Acceptance): number {
  if (typeof a === "number") return a;
  let survive = 1;
  let num = 0;
  let den = 0;
  for (const x of a) {
    num += survive * x;
    den += survive;
    survive *= x;
  }
  return den > 0 ? num / den : 0;
}

/** How a level that is not a model drafts: one proposal per call, of a random length, at a fixed cost. */
export interface ProposalProfile {
  /** ms of one proposal (a lookup in the text; no forward pass). */
  costMs: number;
  /**
   * The law of how many tokens the level could propose if allowed any number: available[n] = P(n tokens) for
   * n < available.length - 1, and the last entry is P(at least that many). Capped at the level's threshold T, a
   * call proposes min(available, T). available[0] is the chance it abstains.
   */
  available: readonly number[];
}

/** One level of a chain, or one candidate of the optimiser. */
export type LevelSpec =
  { kind: "model"; name: string; costs: ModelCosts } | { kind: "proposal"; name: string; proposal: ProposalProfile };

/** "engine": the engine's longest-common-prefix catch-up, tracked exactly (default); "one": one token per pass. */
export type CatchUpMode = "engine" | "one";

/** A chain given level by level, smallest first; the last level is the target. */
export interface ChainSpec {
  levels: LevelSpec[];
  /** T_0 … T_{K-1}: integers >= 1, one per draft level. */
  thresholds: number[];
  /** K entries: acceptance[j] is how level j+1 accepts the drafts of level j (so the last is the target's). */
  acceptance: Acceptance[];
  /** Catch-up modelling (latency.ts, "Catch-up tokens"); default "engine". */
  catchUp?: CatchUpMode;
}

/** A level ready for the formula: tables for a model, the capped length law's source for a proposal level. */
export type PreparedLevel =
  | { kind: "model"; name: string; tables: LevelTables }
  | { kind: "proposal"; name: string; costMs: number; available: Float64Array; tables: LevelTables };

/** A checked chain: one prepared level each, acceptance as the formula reads it. */
export interface PreparedChain {
  levels: PreparedLevel[];
  thresholds: number[];
  acceptance: Acceptance[];
  catchUp: CatchUpMode;
}

export function checkRate(a: unknown, what: string): void {
  if (typeof a !== "number" || !(a >= 0 && a <= 1))
    throw new InvalidOptionError(`${what}: acceptance ${String(a)} is not in [0, 1]`);
}

export function checkAcceptance(a: Acceptance, what: string): void {
  if (typeof a === "number") return checkRate(a, what);
  if (!Array.isArray(a) || a.length === 0)
    throw new InvalidOptionError(`${what}: acceptance by position must be a non-empty array`);
  a.forEach((x, p) => checkRate(x, `${what} at position ${p}`));
}

export function checkThreshold(t: unknown, what: string): void {
  if (!Number.isInteger(t) || (t as number) < 1)
    throw new InvalidOptionError(`${what}: threshold ${String(t)} must be an integer >= 1`);
}

/** A proposal level's length law as a normalised Float64Array (checked). */
function availableLaw(profile: ProposalProfile, what: string): Float64Array {
  if (profile === null || typeof profile !== "object")
    throw new InvalidOptionError(`${what}: proposal must be an object`);
  if (!(Number.isFinite(profile.costMs) && profile.costMs >= 0)) {
    throw new InvalidOptionError(`${what}: proposal costMs ${String(profile.costMs)} must be a finite number >= 0`);
  }
  const law = profile.available;
  if (!Array.isArray(law) || law.length === 0)
    throw new InvalidOptionError(`${what}: proposal.available must be a non-empty array`);
  let total = 0;
  for (const [n, p] of law.entries()) {
    if (!(Number.isFinite(p) && p >= 0))
      throw new InvalidOptionError(`${what}: proposal.available[${n}] = ${String(p)} must be >= 0`);
    total += p;
  }
  if (Math.abs(total - 1) > 1e-6) throw new InvalidOptionError(`${what}: proposal.available sums to ${total}, not 1`);
  return Float64Array.from(law, (p) => p / total);
}

/** Checks one level spec and builds its tables; `where` says where it sits, `label(name)` names it in errors. */
export function prepareLevel(spec: LevelSpec, where: string, label: (name: string) => string): PreparedLevel {
  if (spec === null || typeof spec !== "object") throw new InvalidOptionError(`${where}: a level must be an object`);
  if (typeof spec.name !== "string") throw new InvalidOptionError(`${where}: name must be a string`);
  return prepareNamed(spec, label(spec.name));
}

function prepareNamed(spec: LevelSpec, label: string): PreparedLevel {
  if (spec.kind === "model") return { kind: "model", name: spec.name, tables: levelTables(spec.costs, label) };
  if (spec.kind === "proposal") {
    const available = availableLaw(spec.proposal, label);
    // A proposal costs the same whatever the text: one constant "pass" per call, no catch-up, no shape change.
    const flat = new CostTable(() => spec.proposal.costMs, `${label} proposal`);
    return {
      kind: "proposal",
      name: spec.name,
      costMs: spec.proposal.costMs,
      available,
      tables: { hot: flat, cold: flat, hotShaped: flat, autoregressiveMs: Number.NaN },
    };
  }
  throw new InvalidOptionError(
    `${label}: kind must be "model" or "proposal", got ${String((spec as { kind?: unknown }).kind)}`,
  );
}

/** The law of a proposal level's block at threshold T: min(available, T). */
export function cappedLaw(available: Float64Array, threshold: number): Float64Array {
  const law = new Float64Array(threshold + 1);
  for (let n = 0; n < available.length; n++) law[Math.min(n, threshold)]! += available[n]!;
  return law;
}

/** Checks a chain once (shape, thresholds, rates, level kinds) and prepares its levels. */
export function prepareChain(spec: ChainSpec, where = "chain"): PreparedChain {
  if (spec === null || typeof spec !== "object" || !Array.isArray(spec.levels) || spec.levels.length === 0) {
    throw new InvalidOptionError(`${where}: levels is empty; it needs at least the target`);
  }
  const K = spec.levels.length - 1;
  if (!Array.isArray(spec.thresholds) || spec.thresholds.length !== K) {
    throw new InvalidOptionError(`${where}: ${K + 1} levels need ${K} thresholds, got ${spec.thresholds?.length}`);
  }
  if (!Array.isArray(spec.acceptance) || spec.acceptance.length !== K) {
    throw new InvalidOptionError(
      `${where}: ${K + 1} levels need ${K} acceptance rates, got ${spec.acceptance?.length}`,
    );
  }
  const levels = spec.levels.map((l, i) => prepareLevel(l, `${where}, level ${i}`, (name) => `${where}, ${name}`));
  levels.forEach((l, i) => {
    if (l.kind === "proposal" && i !== 0) {
      throw new InvalidOptionError(
        `${where}: ${l.name} is a proposal level; it can only be the bottom of a chain (level 0)`,
      );
    }
  });
  spec.thresholds.forEach((t, i) => checkThreshold(t, `${where}, ${levels[i]!.name}`));
  spec.acceptance.forEach((a, i) => checkAcceptance(a, `${where}, ${levels[i]!.name} -> ${levels[i + 1]!.name}`));
  const catchUp = spec.catchUp ?? "engine";
  if (catchUp !== "engine" && catchUp !== "one") {
    throw new InvalidOptionError(`${where}: catchUp must be "engine" or "one", got ${String(catchUp)}`);
  }
  return { levels, thresholds: [...spec.thresholds], acceptance: [...spec.acceptance], catchUp };
}

/**
 * The table a verifier's passes cost: cold (other models ran since its last pass), except a verifier directly above
 * a proposal level whose passes follow only its own — true of the target of a two-level chain (latency.ts).
 */
export function verifierTable(verifier: PreparedLevel, below: PreparedLevel, isTarget: boolean) {
  return isTarget && below.kind === "proposal" ? verifier.tables.hotShaped : verifier.tables.cold;
}

/** A model level from plain cost curves (tests, synthetic instances). */
export function modelLevel(name: string, costs: ModelCosts): LevelSpec {
  return { kind: "model", name, costs };
}
