/**
 * Monte-Carlo simulator of the HSD recursion (hsd-notes §2) under the i.i.d. acceptance model, to check the
 * latency formula and to measure what it leaves out.
 *
 * Tokens are abstract ids: a drafted, replacement or bonus token gets a fresh id, an accepted draft keeps its id.
 * An id fixes its whole prefix (it was created once, after one context), so two contexts agree up to position j
 * iff they hold the same id at j - 1; that makes the longest-common-prefix test of §3 a short backward scan.
 *
 * Pass sizes, `catchUp`:
 *  - 'fixed' (default): every pass feeds exactly one catch-up token — level 0's passes feed one token each, a
 *    verification pass over n drafts feeds n + 1 tokens. The formula with `catchUp: "one"` must match this mode.
 *  - 'cache': each model keeps what it has evaluated, truncates to the longest common prefix with its new
 *    context and feeds the missing tokens before its drafts (at least one, to get the distribution of the first
 *    draft), as the engine does (§3). It differs from 'fixed' only when a level above accepted a whole block
 *    (the block's last token was never fed below). The formula's default (`catchUp: "engine"`) models it by
 *    tracking deficits algebraically; this mode checks that independently, by scanning token ids.
 * Both modes consume the random stream identically, so with one seed they see the same acceptance events.
 */

import { CostTable, type PassCost } from "./cost-model.js";
import { CATCH_UP_TOKENS } from "./latency.js";
import { makeRng } from "../util/rng.js";

export interface SimulationInput {
  /** c_0 … c_K, the last is the target. */
  costs: PassCost[];
  /** T_0 … T_{K-1}. */
  thresholds: number[];
  /** acceptance[j]: probability that level j+1 accepts a draft of level j (K entries). */
  acceptance: number[];
  /** Optional: acceptanceByPosition[j][p] replaces acceptance[j] for the p-th draft of a block (last entry repeats). */
  acceptanceByPosition?: (readonly number[] | null | undefined)[];
  /** Optional cost of a pass that follows another model's pass (default `costs`). */
  coldCosts?: PassCost[];
  /** Optional extra cost of a pass whose size differs from the same model's previous pass (default none). */
  reshapeCosts?: PassCost[];
  /** Simulate until at least this many tokens are generated. */
  tokens: number;
  seed: number;
  catchUp?: "fixed" | "cache";
}

export interface SimulatedLevel {
  passes: number;
  /** Tokens fed over all passes. */
  tokensFed: number;
  /** Time in this level's own passes. */
  ms: number;
  /** Calls of the level (draft levels: draft() calls; target: passes). */
  calls: number;
  passesPerToken: number;
  msPerToken: number;
  meanTokensPerPass: number;
  /** passSizeHistogram[s] = passes that fed s tokens. */
  passSizeHistogram: number[];
  /** Draft levels: blockLengthHistogram[n] = calls that returned n tokens (empty for the target). */
  blockLengthHistogram: number[];
  meanBlockLength: number | null;
  /** Levels >= 1: drafts verified and accepted (for acceptance per pass / per draft). */
  draftsVerified: number;
  draftsAccepted: number;
}

export interface SimulationResult {
  tokens: number;
  totalMs: number;
  msPerToken: number;
  targetPasses: number;
  tokensPerTargetPass: number;
  levels: SimulatedLevel[];
}

/** Growable int array with an explicit length (ids of a token sequence). */
class Seq {
  data = new Int32Array(1024);
  length = 0;
  set(i: number, v: number): void {
    if (i >= this.data.length) {
      const grown = new Int32Array(Math.max(this.data.length * 2, i + 1));
      grown.set(this.data);
      this.data = grown;
    }
    this.data[i] = v;
  }
  push(v: number): void {
    this.set(this.length, v);
    this.length++;
  }
}

export function simulate(input: SimulationInput): SimulationResult {
  const K = input.costs.length - 1;
  if (K < 0) throw new Error("simulate: costs is empty");
  if (input.thresholds.length !== K || input.acceptance.length !== K) {
    throw new Error(`simulate: ${K + 1} levels need ${K} thresholds and ${K} acceptance rates`);
  }
  for (const t of input.thresholds) {
    if (!Number.isInteger(t) || t < 1) throw new Error(`simulate: threshold ${t} must be an integer >= 1`);
  }
  for (const a of input.acceptance) {
    if (!(a >= 0 && a <= 1)) throw new Error(`simulate: acceptance ${a} is not in [0, 1]`);
  }
  const cacheMode = (input.catchUp ?? "fixed") === "cache";
  const rng = makeRng(input.seed);
  const tables = input.costs.map((c, i) => new CostTable(c, `simulate level ${i}`));
  if (input.coldCosts && input.coldCosts.length !== K + 1)
    throw new Error(`simulate: coldCosts needs ${K + 1} entries`);
  const coldTables = input.coldCosts
    ? input.coldCosts.map((c, i) => new CostTable(c, `simulate level ${i} (cold)`))
    : tables;
  if (input.reshapeCosts && input.reshapeCosts.length !== K + 1)
    throw new Error(`simulate: reshapeCosts needs ${K + 1} entries`);
  const reshapeTables =
    input.reshapeCosts?.map((c, i) => new CostTable(c, `simulate level ${i} (shape change)`)) ?? null;
  let lastModel = -1; // the model of the previous pass: a pass by another model is cold
  const lastSize = input.costs.map(() => -1); // each model's previous pass size: another size changes shape
  const T = input.thresholds;
  const acc = input.acceptance;

  const stats = input.costs.map(() => ({
    passes: 0,
    tokensFed: 0,
    ms: 0,
    calls: 0,
    sizes: [] as number[],
    blocks: [] as number[],
    verified: 0,
    accepted: 0,
  }));
  const bump = (h: number[], i: number): void => {
    while (h.length <= i) h.push(0);
    h[i]!++;
  };
  const pass = (level: number, size: number): void => {
    const s = stats[level]!;
    s.passes++;
    s.tokensFed += size;
    s.ms += (lastModel === level || lastModel === -1 ? tables : coldTables)[level]!.at(size);
    if (reshapeTables && lastSize[level] !== -1 && lastSize[level] !== size) s.ms += reshapeTables[level]!.at(size);
    lastModel = level;
    lastSize[level] = size;
    bump(s.sizes, size);
  };

  // S: the current context (committed output, then the blocks under construction, level K-1 lowest).
  const S = new Seq();
  let nextId = 1;
  S.push(nextId++); // the prompt's last token
  const evaluated = input.costs.map(() => new Seq());

  /** Tokens model `m` must feed before its drafts to evaluate S[0..ctxLen); updates its cache record. */
  const catchUp = (m: number, ctxLen: number): number => {
    const ev = evaluated[m]!;
    let j = Math.min(ev.length, ctxLen);
    while (j > 0 && ev.data[j - 1] !== S.data[j - 1]) j--;
    if (j === ctxLen) j = ctxLen - 1; // re-feed the last token to get its distribution
    for (let t = j; t < ctxLen; t++) ev.set(t, S.data[t]!);
    ev.length = ctxLen;
    return ctxLen - j;
  };
  /** Model m feeds the n drafts at S[from..from+n) after its catch-up. */
  const feedDrafts = (m: number, from: number, n: number): void => {
    const ev = evaluated[m]!;
    for (let t = 0; t < n; t++) ev.set(from + t, S.data[from + t]!);
    ev.length = from + n;
  };
  /** Accepted count of a block of n drafts; then S keeps `from + k` tokens plus one fresh token. */
  const verify = (level: number, from: number, n: number): number => {
    const u = catchUp(level, from);
    pass(level, (cacheMode ? u : CATCH_UP_TOKENS) + n);
    feedDrafts(level, from, n);
    const byPos = input.acceptanceByPosition?.[level - 1];
    const a = acc[level - 1]!;
    let k = 0;
    if (byPos && byPos.length > 0) while (k < n && rng() < byPos[Math.min(k, byPos.length - 1)]!) k++;
    else while (k < n && rng() < a) k++;
    stats[level]!.verified += n;
    stats[level]!.accepted += k;
    S.length = from + k;
    S.push(nextId++);
    return k;
  };

  /** One call of level i on context S[0..ctxLen); returns the block length (block at S[ctxLen..]). */
  const draft = (i: number, ctxLen: number): number => {
    stats[i]!.calls++;
    if (i === 0) {
      const u = catchUp(0, ctxLen);
      pass(0, cacheMode ? u : CATCH_UP_TOKENS);
      S.length = ctxLen;
      S.push(nextId++);
      for (let t = 1; t < T[0]!; t++) {
        feedDrafts(0, ctxLen + t - 1, 1); // the previous draft is fed, producing the next
        pass(0, 1);
        S.push(nextId++);
      }
      bump(stats[0]!.blocks, T[0]!);
      return T[0]!;
    }
    let len = 0;
    while (len < T[i]!) {
      const from = ctxLen + len;
      const n = draft(i - 1, from);
      const k = verify(i, from, n);
      len += k + 1;
    }
    bump(stats[i]!.blocks, len);
    return len;
  };

  let generated = 0;
  let targetPasses = 0;
  while (generated < input.tokens) {
    const from = S.length;
    if (K === 0) {
      const u = catchUp(0, from);
      pass(0, cacheMode ? u : CATCH_UP_TOKENS);
      S.push(nextId++);
      generated++;
    } else {
      const n = draft(K - 1, from);
      generated += verify(K, from, n) + 1;
    }
    stats[K]!.calls++;
    targetPasses++;
  }

  const totalMs = stats.reduce((s, x) => s + x.ms, 0);
  return {
    tokens: generated,
    totalMs,
    msPerToken: totalMs / generated,
    targetPasses,
    tokensPerTargetPass: generated / targetPasses,
    levels: stats.map((s, i) => {
      const blocks = i === K ? [] : s.blocks;
      const nBlocks = blocks.reduce((x, y) => x + y, 0);
      return {
        passes: s.passes,
        tokensFed: s.tokensFed,
        ms: s.ms,
        calls: s.calls,
        passesPerToken: s.passes / generated,
        msPerToken: s.ms / generated,
        meanTokensPerPass: s.tokensFed / s.passes,
        passSizeHistogram: s.sizes.map((x) => x),
        blockLengthHistogram: blocks,
        meanBlockLength: nBlocks === 0 ? null : blocks.reduce((x, c, n) => x + c * n, 0) / nBlocks,
        draftsVerified: s.verified,
        draftsAccepted: s.accepted,
      };
    }),
  };
}
