// Running the methods: interleaved (every prompt of every repetition runs each method once, in an order rotated
// from one prompt to the next), each hsd run after a prime that leaves every model's KV cache holding the prompt.
//
// What is timed. `decodeMs` runs from the first chunk of tokens (the first target pass) to the last, over the
// tokens after that chunk: the steady-state decoding the latency formula predicts, without prompt processing.
// The node-llama-cpp baseline is timed the same way (first token to last). The whole-run time (`wallMs`,
// prompt and first pass included) is kept too.
//
// Why prime. A model's first pass of a run feeds the prompt (or what its cache lacks of it); the engine's
// longest-common-prefix reuse means that cost depends on which method ran before. A 1-token generation through
// every model first makes each run start from the same state: every cache holds the prompt (plus at most a
// couple of tokens of the prime's own output).

import { createHash } from "node:crypto";
import type { GenerateRequest, Hsd } from "../../src/api/hsd.js";
import { runLlamaCpp } from "./llama-cpp.js";
import type { RunStats } from "../../src/engine/generate.js";
import type { BenchMethod } from "./methods.js";
import type { LlamaBaseline } from "./llama-baseline.js";
import { samplingSettings, type SamplingMode } from "./options.js";
import { timeDecoding } from "./decode-timing.js";

/**
 * Times every pass the engine makes, by wrapping the evaluate calls of the Hsd instance's own contexts (the
 * product code is unchanged; two performance.now() calls per pass). A pass is "cold" when the previous pass, of
 * any context, was another model's. The engine's pass sizes are exactly its catch-up + drafts, so these are the
 * in-run c_i(n) the formula's costs stand for.
 */
export class PassRecorder {
  /** sink[model] = Map "n:cold" -> {ms, count}; null while not recording (primes, warm-up). */
  sink: Map<string, { ms: number; count: number }>[] | null = null;
  private last = -1;

  constructor(hsd: Hsd) {
    hsd.models.forEach((m, index) => {
      const ctx = m.context;
      const sync = ctx.evaluateSync.bind(ctx);
      const async = ctx.evaluate.bind(ctx);
      ctx.evaluateSync = (tokens, position, firstOutput, target) => {
        const cold = this.last !== index;
        this.last = index;
        const started = performance.now();
        sync(tokens, position, firstOutput, target);
        this.note(index, tokens.length, cold, performance.now() - started);
      };
      ctx.evaluate = async (tokens, position, firstOutput, target) => {
        const cold = this.last !== index;
        this.last = index;
        const started = performance.now();
        await async(tokens, position, firstOutput, target);
        this.note(index, tokens.length, cold, performance.now() - started);
      };
    });
  }

  private note(model: number, n: number, cold: boolean, ms: number): void {
    const sink = this.sink?.[model];
    if (!sink) return;
    const key = `${n}:${cold ? 1 : 0}`;
    const x = sink.get(key) ?? { ms: 0, count: 0 };
    x.ms += ms;
    x.count++;
    sink.set(key, x);
  }

  /** Start a fresh record for `models` contexts. */
  start(models: number): void {
    this.sink = Array.from({ length: models }, () => new Map());
    this.last = -1;
  }

  /** Stop recording; returns what was recorded as plain rows. */
  stop(): PassTimeRow[] {
    const rows: PassTimeRow[] = [];
    this.sink?.forEach((map, model) => {
      for (const [key, v] of map) {
        const [n, cold] = key.split(":").map(Number) as [number, number];
        rows.push({ model, n, cold: cold === 1, ms: v.ms, count: v.count });
      }
    });
    this.sink = null;
    return rows;
  }
}

/** Σ ms and count of the passes of one model with n tokens, cold or hot, in one run. */
export interface PassTimeRow {
  model: number;
  n: number;
  cold: boolean;
  ms: number;
  count: number;
}

export interface RunRecord {
  /** "mode/prompt set". */
  cell: string;
  method: string;
  mode: SamplingMode;
  repetition: number;
  prompt: number;
  /** Position of this run in its prompt's interleaved order. */
  slot: number;
  tokens: number;
  wallMs: number;
  decodeMs: number;
  decodeTokens: number;
  /** hsd runs: ms from the last token to the end of the stream (the report's bookkeeping; not decoding). */
  tailMs?: number;
  /** sha256 of the token ids (greedy: every exact method must give the target's tokens). */
  tokensHash: string;
  /** hsd runs: the engine's statistics. */
  stats: RunStats | null;
  /** node-llama-cpp runs: its prediction counters. */
  predictions: { used: number; unused: number; validated: number; refuted: number } | null;
  /** hsd runs: every pass's time by model (index into the candidates), size and cold/hot (PassRecorder). */
  passTimes?: PassTimeRow[];
  /** hsd runs: the online estimates at the end of the run (prediction for the plan that ran, switches). */
  online?: {
    predictedMsPerToken: number;
    plan: string;
    prior: string;
    replans: number;
    switches: number;
    explorationSteps: number;
  } | null;
}

export function hashTokens(tokens: readonly number[]): string {
  return createHash("sha256").update(Int32Array.from(tokens)).digest("hex").slice(0, 16);
}

/** Seed of one (repetition, prompt) cell: the same for every method of the cell. */
export function cellSeed(base: number, repetition: number, prompt: number): number {
  return (base + 7919 * repetition + 104_729 * prompt) % 2_147_483_647;
}

export async function primeCaches(hsd: Hsd, prompt: string, mode: SamplingMode): Promise<void> {
  const files = hsd.models.map((m) => m.info.file);
  const run = hsd.generate(prompt, {
    hierarchy: { files, thresholds: files.slice(1).map(() => 1) },
    sampling: { ...samplingSettings(mode), seed: 1 },
    maxTokens: 1,
  });
  await run.result;
}

export async function runHsd(
  hsd: Hsd,
  method: BenchMethod,
  prompt: string,
  mode: SamplingMode,
  seed: number,
  maxTokens: number,
  plan: GenerateRequest["plan"],
  recorder: PassRecorder | null = null,
): Promise<Omit<RunRecord, "cell" | "repetition" | "prompt" | "slot">> {
  recorder?.start(hsd.models.length);
  const run = hsd.generate(prompt, {
    ...(method.kind === "hsd-adaptive"
      ? // The product's default: nothing but T_max (the quick prior uses the built-in prompts).
        { hierarchy: "auto" as const, adapt: true, plan: { maxThreshold: plan?.maxThreshold } }
      : method.kind === "hsd-policy"
        ? // The plan of a full calibration on this prompt set's calibration prompts, pinned.
          { hierarchy: "auto" as const, adapt: false, plan }
        : { hierarchy: { files: method.files, thresholds: method.thresholds }, plan }),
    // Every pinned method feeds the instance's online estimates, which report their prediction for it.
    learn: true,
    sampling: { ...samplingSettings(mode), seed },
    maxTokens,
  });
  const { decodeMs, decodeTokens, tailMs, result } = await timeDecoding(run);
  const online = result.online;
  const passTimes = recorder?.stop();
  return {
    method: method.id,
    mode,
    tokens: result.tokens.length,
    wallMs: result.stats.wallMs,
    decodeMs,
    tailMs,
    decodeTokens,
    tokensHash: hashTokens(result.tokens),
    stats: result.stats,
    predictions: null,
    ...(passTimes ? { passTimes } : {}),
    online: online
      ? {
          predictedMsPerToken: online.predictedMsPerToken,
          plan: online.plan,
          prior: online.prior,
          replans: online.replans,
          switches: online.switches.length,
          explorationSteps: online.explorationSteps,
        }
      : null,
  };
}

/** One run of llama.cpp's speculative-simple (a process of its own). */
export function runLlamaCppRecord(
  binary: string,
  method: BenchMethod,
  paths: { target: string; draft: string },
  prompt: string,
  mode: SamplingMode,
  seed: number,
  maxTokens: number,
  threads: number,
  contextSize: number,
): Omit<RunRecord, "cell" | "repetition" | "prompt" | "slot"> {
  const r = runLlamaCpp(binary, method.llamaCpp!, paths, prompt, mode, seed, maxTokens, threads, contextSize);
  return {
    method: method.id,
    mode,
    tokens: r.decodeTokens,
    wallMs: r.decodeMs,
    decodeMs: r.decodeMs,
    decodeTokens: r.decodeTokens,
    tokensHash: "",
    stats: null,
    predictions: {
      used: r.accepted,
      unused: r.drafted - r.accepted,
      validated: r.accepted,
      refuted: r.drafted - r.accepted,
    },
  };
}

export async function runLlama(
  baseline: LlamaBaseline,
  method: BenchMethod,
  paths: readonly string[],
  promptTokens: Int32Array,
  mode: SamplingMode,
  seed: number,
  maxTokens: number,
): Promise<Omit<RunRecord, "cell" | "repetition" | "prompt" | "slot">> {
  const target = paths[method.chain[method.chain.length - 1]!]!;
  const r =
    method.kind === "node-llama-cpp-lookup"
      ? await baseline.generate(target, null, 0, promptTokens, mode, seed, maxTokens)
      : await baseline.generate(
          target,
          paths[method.chain[0]!]!,
          method.thresholds[0]!,
          promptTokens,
          mode,
          seed,
          maxTokens,
        );
  return {
    method: method.id,
    mode,
    tokens: r.tokens.length,
    wallMs: r.wallMs,
    decodeMs: r.decodeMs,
    decodeTokens: r.decodeTokens,
    tokensHash: hashTokens(r.tokens),
    stats: null,
    predictions: r.predictions,
  };
}
