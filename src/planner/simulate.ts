/**
 * Monte-Carlo simulator of the HSD recursion (docs/ALGORITHM.md §2) under the i.i.d. acceptance model, to check the
 * latency formula (§5) and to measure what it leaves out. It takes the formula's own input, a `ChainSpec`.
 *
 * Tokens are abstract ids: a drafted, replacement or bonus token gets a fresh id, an accepted draft keeps its id.
 * An id fixes its whole prefix (it was created once, after one context), so two contexts agree up to position j
 * iff they hold the same id at j - 1; that makes the longest-common-prefix test of §4 a short backward scan.
 *
 * Pass sizes, `catchUp` (the same names and default as the formula's):
 *  - "engine" (default): each model keeps what it has evaluated, truncates to the longest common prefix with its
 *    new context and feeds the missing tokens before its drafts (at least one, to get the distribution of the
 *    first draft), as the engine does (§4). The formula models it by tracking deficits algebraically; this mode
 *    checks that independently, by scanning token ids.
 *  - "one": every pass feeds exactly one catch-up token — level 0's passes feed one token each, a verification
 *    pass over n drafts feeds n + 1 tokens. The formula with `catchUp: "one"` must match this mode.
 * A proposal level at the bottom (§8) proposes min(L, T_0) fresh ids, L drawn from its length law, at its flat
 * cost; it keeps no cache. Both modes consume the random stream identically, so with one seed they see the same
 * acceptance events.
 */

import { prepareChain, cappedLaw, type ChainSpec } from "./chain.js";
import { makeRng } from "../util/rng.js";

export interface SimulationInput extends ChainSpec {
  /** Simulate until at least this many tokens are generated. */
  tokens: number;
  seed: number;
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
  const chain = prepareChain(input, "simulate");
  const K = chain.levels.length - 1;
  const cacheMode = chain.catchUp === "engine";
  const rng = makeRng(input.seed);
  const bottom = chain.levels[0]!;
  let lastModel = -1; // the model of the previous pass: a pass by another model is cold
  const lastSize = chain.levels.map(() => -1); // each model's previous pass size: another size changes shape
  const T = chain.thresholds;
  /** Acceptance of the p-th draft of a block verified by `level`. */
  const rate = (level: number, p: number): number => {
    const a = chain.acceptance[level - 1]!;
    return typeof a === "number" ? a : a[Math.min(p, a.length - 1)]!;
  };

  const stats = chain.levels.map(() => ({
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
    const tables = chain.levels[level]!.tables;
    s.passes++;
    s.tokensFed += size;
    s.ms += (lastModel === level || lastModel === -1 ? tables.hot : tables.cold).at(size);
    const reshape = tables.cold.reshape; // the same extra after any pass (costs.ts, LevelTables)
    if (reshape && lastSize[level] !== -1 && lastSize[level] !== size) s.ms += reshape.at(size);
    lastModel = level;
    lastSize[level] = size;
    bump(s.sizes, size);
  };

  // S: the current context (committed output, then the blocks under construction, level K-1 lowest).
  const S = new Seq();
  let nextId = 1;
  S.push(nextId++); // the prompt's last token
  const evaluated = chain.levels.map(() => new Seq());

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
    pass(level, (cacheMode ? u : 1) + n);
    feedDrafts(level, from, n);
    let k = 0;
    while (k < n && rng() < rate(level, k)) k++;
    stats[level]!.verified += n;
    stats[level]!.accepted += k;
    S.length = from + k;
    S.push(nextId++);
    return k;
  };

  /** One call of level i on context S[0..ctxLen); returns the block length (block at S[ctxLen..]). */
  const draft = (i: number, ctxLen: number): number => {
    stats[i]!.calls++;
    if (i === 0 && bottom.kind === "proposal") {
      // One lookup: no forward pass, no cache; the block's length is drawn from the capped law.
      const law = cappedLaw(bottom.available, T[0]!);
      let u = rng();
      let n = 0;
      while (n < law.length - 1 && u >= law[n]!) u -= law[n++]!;
      const s = stats[0]!;
      s.passes++;
      s.ms += bottom.costMs; // no model ran: the next pass is hot or cold as the one before it left things
      S.length = ctxLen;
      for (let t = 0; t < n; t++) S.push(nextId++);
      bump(stats[0]!.blocks, n);
      return n;
    }
    if (i === 0) {
      const u = catchUp(0, ctxLen);
      pass(0, cacheMode ? u : 1);
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
      pass(0, cacheMode ? u : 1);
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
