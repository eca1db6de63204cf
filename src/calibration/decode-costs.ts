// Pass costs measured the way decoding incurs them: the calibration's input to the latency model. (The simpler
// measurePassCosts in measure.ts times n = 1 … T_max+2 back to back at one fixed depth and keeps the median; on
// this project's CPU and GPU runs that under-predicted real decoding by 15–100%.) What this one accounts for:
//  - depth: decoding runs at every depth from the prompt's end to prompt + max tokens; here positions sweep
//    that range (a pass of n tokens advances the position by 1 + n/2, about what verification keeps) and wrap;
//  - hot caches: decoding alternates models (and JS work) between passes; here each timed pass of model m comes
//    right after a one-token pass of another model (cold), and is followed at once by a pass of the same size over
//    the next positions (hot, as autoregressive decoding and level 0's drafting continue): the two tables the
//    formula's `coldCosts` / `costs` take (latency.ts, "cold and hot passes"). One pass of one other model in
//    between is what a chain does (level i-1 runs between two passes of level i). (Repeating the cold pass at
//    the same positions instead measured ~30% below the engine's autoregressive passes: too hot.)
//  - median vs mean: the formula wants E[c(n)], and a shared machine's timing tail is long; here the mean;
//  - contexts: the same context options as Hsd.open (batch size 512 changes llama.cpp's per-pass work).
// Separate contexts are used: touching the engine's own contexts would invalidate NativeLevel's cache record.

import type { FlashAttention, NativeModel, SamplingTransform } from "../native/types.js";
import type { PassCostSample } from "../planner/cost-model.js";
import { DistributionRows } from "../engine/level.js";
import { makeRng } from "../planner/simulate.js";

export interface DecodeCostOptions {
    /** Largest n measured (the planner's T_max + 2). */
    maxN: number;
    /** Context text (token ids), at least `hi + maxN` long; repeated if shorter. */
    text: Int32Array;
    /** Positions sweep lo … hi. */
    lo: number;
    hi: number;
    /** Passes per (model, n). */
    rounds: number;
    threads: number;
    flashAttention?: FlashAttention;
    transform: SamplingTransform;
    seed?: number;
    /** Called after every round (progress bars). */
    onRound?: (done: number, total: number) => void;
}

export interface CostTables {
    /**
     * Mean ms per pass by n, per model: the input of the formula. A 20%-trimmed mean: on a shared machine one
     * descheduled pass among a dozen (tens of ms) would otherwise move the mean of a sub-millisecond pass by 2x.
     */
    mean: PassCostSample[][];
    /** Median ms per pass by n, per model (for comparison with the planner's calibration). */
    median: PassCostSample[][];
}

export interface DecodeCosts {
    /** Passes right after another model's pass. */
    cold: CostTables;
    /** The same pass repeated right after itself. */
    hot: CostTables;
    /** Passes timed per (model, n), each way. */
    samples: number;
}

/** Raw pass times: cold/hot[model][n] = ms of each timed pass. Merge several calls with `mergeTimes`. */
export interface PassTimes {
    cold: number[][][];
    hot: number[][][];
}

export function mergeTimes(into: PassTimes | null, more: PassTimes): PassTimes {
    if (!into) return { cold: more.cold.map((byN) => byN.map((xs) => [...xs])), hot: more.hot.map((byN) => byN.map((xs) => [...xs])) };
    for (const k of ["cold", "hot"] as const) more[k].forEach((byN, m) => byN.forEach((xs, n) => into[k][m]![n]!.push(...xs)));
    return into;
}

function tables(times: number[][][]): CostTables {
    const summarise = (f: (xs: number[]) => number) => times.map((byN) => byN.slice(1).map((xs, i) => ({ n: i + 1, ms: f(xs) })));
    return {
        mean: summarise((xs) => {
            const s = [...xs].sort((a, b) => a - b);
            const cut = Math.floor(s.length * 0.2);
            const kept = s.length - 2 * cut > 0 ? s.slice(cut, s.length - cut) : s;
            return kept.reduce((a, b) => a + b, 0) / kept.length;
        }),
        median: summarise((xs) => {
            const s = [...xs].sort((a, b) => a - b);
            const m = s.length >> 1;
            return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
        }),
    };
}

export function summariseTimes(times: PassTimes): DecodeCosts {
    return { cold: tables(times.cold), hot: tables(times.hot), samples: times.cold[0]?.[1]?.length ?? 0 };
}

export function measureDecodeCosts(models: readonly NativeModel[], options: DecodeCostOptions): PassTimes {
    const { maxN, lo, hi, rounds } = options;
    if (!(lo >= 1 && hi > lo)) throw new Error(`measureDecodeCosts: need 1 <= lo < hi, got ${lo}, ${hi}`);
    const length = hi + 2 * maxN + 1;
    const text = new Int32Array(length);
    for (let i = 0; i < length; i++) text[i] = options.text[i % options.text.length]!;
    const contextSize = Math.min(...models.map((m) => Math.min(m.trainContextSize || 4096, 4096)));
    if (length > contextSize) throw new Error(`measureDecodeCosts: positions up to ${length} exceed the context size ${contextSize}`);
    const contexts = models.map((m) => m.createContext({ contextSize, batchSize: Math.min(512, contextSize), threads: options.threads, flashAttention: options.flashAttention }));
    const times: PassTimes = {
        cold: models.map(() => Array.from({ length: maxN + 1 }, () => [])),
        hot: models.map(() => Array.from({ length: maxN + 1 }, () => [])),
    };
    try {
        const rows = models.map((m) => new DistributionRows(maxN, m.vocabSize, options.transform.greedy));
        const targets = rows.map((r) => ({ probs: r.probs, argmax: r.argmax, rowOffset: 0 }));
        const noRows = { probs: null, argmax: new Int32Array(0), rowOffset: 0 };
        contexts.forEach((c) => {
            c.evaluateSync(text.subarray(0, lo), 0, lo, noRows); // no rows: a fresh context is greedy, so probs may be null
            c.setSampling(options.transform);
        });
        const pos = models.map(() => lo);
        const rng = makeRng(options.seed ?? 11);
        const ns = Array.from({ length: maxN }, (_, i) => i + 1);
        for (let r = 0; r < rounds; r++) {
            // A fresh order of n each round, and the models taking turns pass by pass.
            for (let i = ns.length - 1; i > 0; i--) {
                const j = Math.floor(rng() * (i + 1));
                [ns[i], ns[j]] = [ns[j]!, ns[i]!];
            }
            for (const n of ns) {
                for (let k = 0; k < models.length; k++) {
                    const m = (k + r) % models.length;
                    if (models.length > 1) {
                        // One pass of another model (a random one), untimed: what runs between two passes in a chain.
                        const o = (m + 1 + Math.floor(rng() * (models.length - 1))) % models.length;
                        let po = pos[o]!;
                        if (po + 1 > hi) po = lo;
                        contexts[o]!.evaluateSync(text.subarray(po, po + 1), po, 0, targets[o]!);
                        pos[o] = po + 1;
                    }
                    let p = pos[m]!;
                    if (p + 2 * n > hi) p = lo;
                    let started = performance.now();
                    contexts[m]!.evaluateSync(text.subarray(p, p + n), p, 0, targets[m]!);
                    times.cold[m]![n]!.push(performance.now() - started);
                    started = performance.now();
                    contexts[m]!.evaluateSync(text.subarray(p + n, p + 2 * n), p + n, 0, targets[m]!);
                    times.hot[m]![n]!.push(performance.now() - started);
                    pos[m] = p + n + 1 + (n >> 1);
                }
            }
            options.onRound?.(r + 1, rounds);
        }
    } finally {
        for (const c of contexts) c.dispose();
    }
    return times;
}
