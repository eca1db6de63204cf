/**
 * The exact expected latency per token of an HSD chain under the i.i.d. acceptance model (hsd-notes §4).
 *
 * Levels 0 … K: level 0 is the smallest drafter, level K the target. Level i (1 <= i <= K) accepts each draft of
 * level i-1 independently with probability a_i. Level 0 returns exactly T_0 tokens per call; level i
 * (1 <= i < K) runs rounds — call level i-1, verify its block in one pass — until its block holds >= T_i tokens
 * (the last round is not cut, so N_i can exceed T_i); the target verifies one block of level K-1 per pass.
 *
 * Everything follows from two facts:
 *  - Calls of a level are i.i.d. (the acceptance model has no memory), so one round of level i draws a block
 *    length n ~ N_{i-1} and an accepted count A with P(A=k | n) = a^k (1-a) for k < n and a^n for k = n, and
 *    adds A + 1 tokens (accepted drafts + one replacement or bonus token). The step S = A + 1 has one law,
 *    q(j) = P(S = j), for every round, so the running total is a renewal process: a DP over totals 0 … T_i - 1
 *    gives E[R_i] and the law of N_i exactly.
 *  - Wald's identity: the rounds stop at a stopping time, so E[cost of a call] = E[R_i] · E[cost of a round]
 *    with E[cost of a round] = E[c_i(N_{i-1} + 1)] + C_{i-1}; and the long-run ms per token is
 *    E[cost per target pass] / E[tokens per target pass] (renewal-reward).
 *
 * Modelling choices *(ours)*, shared with the simulator in 'fixed' mode:
 *  - Pass sizes. Level 0 makes T_0 passes of one token: the first feeds the one catch-up token (the token chosen
 *    by the level above, which produces the distribution of draft 1), the others feed the previous draft. A
 *    verification pass of level i >= 1 over n drafts feeds n + 1 tokens (one catch-up token + the drafts) and
 *    costs c_i(n + 1). In the engine the catch-up is sometimes longer (when the level above accepted a whole
 *    block, its last token was never fed to the level below); `simulate.ts` in 'cache' mode measures that gap.
 *    The catch-up count is the constant CATCH_UP_TOKENS, applied in `roundCost` and `baseLevel` only.
 *  - Acceptance enters only through `survival`/`stepLaw`: position-dependent acceptance (a_j for the j-th draft
 *    of a block) would replace a^k by the product a_1 … a_k there and nothing else.
 */

import { CostTable, type PassCost } from "./cost-model.js";

/** Tokens a pass feeds before its drafts in the common case (see module comment). */
export const CATCH_UP_TOKENS = 1;

/** What one call of a draft level hands upward, as far as the formula needs it. */
export interface LevelState {
    /** law[n] = P(N = n): law of the block length one call returns. */
    law: Float64Array;
    /** C: expected ms of one call, including every call to the levels below it. */
    cost: number;
    /** Expected passes of this level's model per call (T_0 for level 0, E[R_i] above). */
    passes: number;
    /** Expected ms of this level's own passes per call (excluding levels below). */
    ownCost: number;
}

/** Law of the step S = A + 1 of one verification round of a block drawn from `law`, with acceptance `a`. */
export interface StepLaw {
    /** q[j] = P(S = j), j >= 1 (q[0] = 0). */
    q: Float64Array;
    /** E[S]: expected tokens a round adds (= E[G] when the verifier is the target). */
    mean: number;
    /** E[A]: expected accepted drafts per round. */
    meanAccepted: number;
}

/** Level 0: T_0 single-token passes. */
export function baseLevel(table: CostTable, threshold: number): LevelState {
    const law = new Float64Array(threshold + 1);
    law[threshold] = 1;
    // First pass carries the catch-up token(s), the others one draft each.
    const own = table.at(CATCH_UP_TOKENS) + (threshold - 1) * table.at(1);
    return { law, cost: own, passes: threshold, ownCost: own };
}

/**
 * Step law of a round: P(A = k) = a^k (1 - a) P(N > k) + a^k P(N = k), k = 0 … max N.
 * a^k is the survival probability of the first k drafts; a = 0 and a = 1 need no special case (0^0 = 1).
 */
export function stepLaw(law: Float64Array, a: number): StepLaw {
    const maxN = law.length - 1;
    const q = new Float64Array(maxN + 2);
    // tail = P(N > k), built from the top.
    let tail = 0;
    const tails = new Float64Array(maxN + 1);
    for (let n = maxN; n >= 0; n--) {
        tails[n] = tail;
        tail += law[n]!;
    }
    let survival = 1; // a^k
    let mean = 0;
    for (let k = 0; k <= maxN; k++) {
        const p = survival * ((1 - a) * tails[k]! + law[k]!);
        q[k + 1] = p;
        mean += p * (k + 1);
        survival *= a;
    }
    return { q, mean, meanAccepted: mean - 1 };
}

/** E[c(N + catch-up)]: the expected cost of one verification pass of `table`'s model over a block ~ `law`. */
export function expectedPassCost(law: Float64Array, table: CostTable): number {
    let e = 0;
    for (let n = 1; n < law.length; n++) {
        const p = law[n]!;
        if (p !== 0) e += p * table.at(n + CATCH_UP_TOKENS);
    }
    return e;
}

/** Mean of a law over block lengths. */
export function lawMean(law: Float64Array): number {
    let m = 0;
    for (let n = 0; n < law.length; n++) m += n * law[n]!;
    return m;
}

/**
 * Level i >= 1 from the level below: rounds with i.i.d. steps ~ `step` until the total reaches `threshold`.
 * reach[s] = P(the running total ever equals s), s < T; every visit starts exactly one round, so
 * E[R] = Σ_{s<T} reach[s]; a step from s to s + j >= T ends the call with N = s + j.
 * `roundCost` = E[c_i(N_{i-1} + 1)] + C_{i-1}; `ownPassCost` = E[c_i(N_{i-1} + 1)].
 */
export function raiseLevel(step: StepLaw, ownPassCost: number, belowCost: number, threshold: number): LevelState {
    const q = step.q;
    const maxStep = q.length - 1;
    const reach = new Float64Array(threshold);
    const law = new Float64Array(threshold + maxStep);
    reach[0] = 1;
    let rounds = 0;
    for (let s = 0; s < threshold; s++) {
        const r = reach[s]!;
        if (r === 0) continue;
        rounds += r;
        for (let j = 1; j <= maxStep; j++) {
            const p = r * q[j]!;
            if (p === 0) continue;
            const t = s + j;
            if (t < threshold) reach[t]! += p;
            else law[t]! += p;
        }
    }
    return {
        law,
        cost: rounds * (ownPassCost + belowCost),
        passes: rounds,
        ownCost: rounds * ownPassCost,
    };
}

/** One level up in a single call: step law, pass cost, DP. */
export function nextLevel(below: LevelState, table: CostTable, a: number, threshold: number): LevelState {
    return raiseLevel(stepLaw(below.law, a), expectedPassCost(below.law, table), below.cost, threshold);
}

/** L = (E[c_K(N+1)] + C_{K-1}) / E[G] for a target over a top draft level. */
export function topLatency(below: LevelState, table: CostTable, a: number): number {
    return (expectedPassCost(below.law, table) + below.cost) / stepLaw(below.law, a).mean;
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

/** A chain given level by level. */
export interface ChainSpec {
    /** c_0 … c_K; the last is the target. */
    costs: PassCost[];
    /** T_0 … T_{K-1}: integers >= 1, one per draft level. */
    thresholds: number[];
    /**
     * K rates: acceptance[j] is the probability that level j+1 accepts a draft of level j (a_{j+1} in the notes),
     * so acceptance[K-1] is the target's acceptance of the top draft level.
     */
    acceptance: number[];
    /** Names for error messages and output (default "level i"). */
    names?: string[];
}

/** Predicted figures for one level, to print next to measured ones. */
export interface LevelPrediction {
    level: number;
    name: string;
    /** T_i (null for the target). */
    threshold: number | null;
    /** Rate at which this level accepts drafts from the level below (null for level 0). */
    acceptance: number | null;
    /** blockLaw[n] = P(N_i = n), the length of the block one call returns (null for the target). */
    blockLaw: number[] | null;
    /** E[N_i] (null for the target). */
    meanBlockLength: number | null;
    /** Expected calls of this level per generated token (target: passes per token). */
    callsPerToken: number;
    /** Expected passes of this level's model per call (level 0: T_0; level i: E[R_i]; target: 1). */
    passesPerCall: number;
    /** Expected passes of this level's model per generated token. */
    passesPerToken: number;
    /** Expected tokens fed per pass (level 0: 1; level i: E[N_{i-1}] + 1). */
    meanTokensPerPass: number;
    /** Expected drafts accepted per verification pass (null for level 0). */
    acceptedPerPass: number | null;
    /** Expected ms per generated token spent in this level's own passes; these sum to msPerToken. */
    msPerToken: number;
}

export interface LatencyPrediction {
    /** L: expected ms per generated token. */
    msPerToken: number;
    /** c_K(1): autoregressive ms per token of the target. */
    autoregressiveMsPerToken: number;
    /** c_K(1) / L. */
    speedup: number;
    /** E[G]: expected tokens per target pass (1 for K = 0). */
    tokensPerTargetPass: number;
    /** Levels 0 … K. */
    levels: LevelPrediction[];
}

function checkRate(a: number, what: string): void {
    if (typeof a !== "number" || !(a >= 0 && a <= 1)) throw new Error(`${what}: acceptance ${String(a)} is not in [0, 1]`);
}

function checkThreshold(t: number, what: string): void {
    if (!Number.isInteger(t) || t < 1) throw new Error(`${what}: threshold ${String(t)} must be an integer >= 1`);
}

/** Build cost tables for a spec, checking its shape. */
function tablesFor(spec: ChainSpec): { tables: CostTable[]; names: string[] } {
    const K = spec.costs.length - 1;
    if (K < 0) throw new Error("expectedLatency: costs is empty; it needs at least the target");
    if (spec.thresholds.length !== K) {
        throw new Error(`expectedLatency: ${K + 1} levels need ${K} thresholds, got ${spec.thresholds.length}`);
    }
    if (spec.acceptance.length !== K) {
        throw new Error(`expectedLatency: ${K + 1} levels need ${K} acceptance rates, got ${spec.acceptance.length}`);
    }
    const names = spec.costs.map((_, i) => spec.names?.[i] ?? `level ${i}`);
    spec.thresholds.forEach((t, i) => checkThreshold(t, `expectedLatency, ${names[i]}`));
    spec.acceptance.forEach((a, i) => checkRate(a, `expectedLatency, ${names[i]} -> ${names[i + 1]}`));
    return { tables: spec.costs.map((c, i) => new CostTable(c, names[i]!)), names };
}

/**
 * Exact expected latency per token of a chain, with per-level predictions.
 * `tables` may be passed to reuse memoised cost tables (one per level).
 */
export function expectedLatency(spec: ChainSpec, tables?: CostTable[]): LatencyPrediction {
    const checked = tablesFor(spec);
    const tbl = tables ?? checked.tables;
    const names = checked.names;
    const K = spec.costs.length - 1;
    const target = tbl[K]!;
    const ar = target.at(1);
    if (K === 0) {
        return {
            msPerToken: ar,
            autoregressiveMsPerToken: ar,
            speedup: 1,
            tokensPerTargetPass: 1,
            levels: [
                {
                    level: 0, name: names[0]!, threshold: null, acceptance: null, blockLaw: null, meanBlockLength: null,
                    callsPerToken: 1, passesPerCall: 1, passesPerToken: 1, meanTokensPerPass: 1, acceptedPerPass: null,
                    msPerToken: ar,
                },
            ],
        };
    }
    // Bottom-up: states[i] for draft levels, plus the step law each level (and the target) sees.
    const states: LevelState[] = [baseLevel(tbl[0]!, spec.thresholds[0]!)];
    const steps: (StepLaw | null)[] = [null];
    for (let i = 1; i < K; i++) {
        const below = states[i - 1]!;
        const step = stepLaw(below.law, spec.acceptance[i - 1]!);
        steps.push(step);
        states.push(raiseLevel(step, expectedPassCost(below.law, tbl[i]!), below.cost, spec.thresholds[i]!));
    }
    const top = states[K - 1]!;
    const topStep = stepLaw(top.law, spec.acceptance[K - 1]!);
    steps.push(topStep);
    const targetPass = expectedPassCost(top.law, target);
    const eG = topStep.mean;
    const L = (targetPass + top.cost) / eG;

    // Calls per token, top-down: the target makes 1/E[G] passes per token, each calling level K-1 once;
    // each call of level i makes passes_i calls of level i-1.
    const calls = new Array<number>(K + 1);
    calls[K] = 1 / eG;
    calls[K - 1] = 1 / eG;
    for (let i = K - 1; i >= 1; i--) calls[i - 1] = calls[i]! * states[i]!.passes;

    const levels: LevelPrediction[] = [];
    for (let i = 0; i <= K; i++) {
        const isTarget = i === K;
        const st = isTarget ? null : states[i]!;
        const passesPerCall = isTarget ? 1 : st!.passes;
        const meanBelow = i === 0 ? null : lawMean(states[i - 1]!.law);
        const ownPerCall = isTarget ? targetPass : st!.ownCost;
        levels.push({
            level: i,
            name: names[i]!,
            threshold: isTarget ? null : spec.thresholds[i]!,
            acceptance: i === 0 ? null : spec.acceptance[i - 1]!,
            blockLaw: st ? Array.from(st.law) : null,
            meanBlockLength: st ? lawMean(st.law) : null,
            callsPerToken: calls[i]!,
            passesPerCall,
            passesPerToken: calls[i]! * passesPerCall,
            meanTokensPerPass: meanBelow === null ? 1 : meanBelow + CATCH_UP_TOKENS,
            acceptedPerPass: i === 0 ? null : steps[i]!.meanAccepted,
            msPerToken: calls[i]! * ownPerCall,
        });
    }
    return { msPerToken: L, autoregressiveMsPerToken: ar, speedup: ar / L, tokensPerTargetPass: eG, levels };
}

/** Closed form for one draft (K = 1): (T c_0(1) + c_1(T+1)) (1 - a) / (1 - a^{T+1}), with the a = 1 limit. */
export function singleDraftLatency(c0: PassCost, c1: PassCost, a: number, threshold: number): number {
    checkRate(a, "singleDraftLatency");
    checkThreshold(threshold, "singleDraftLatency");
    const tokens = a === 1 ? threshold + 1 : (1 - a ** (threshold + 1)) / (1 - a);
    return (threshold * c0(1) + c1(threshold + 1)) / tokens;
}
