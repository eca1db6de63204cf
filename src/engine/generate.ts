// The generation loop around the recursion: one target pass per iteration, then the stop rules
// (end-of-generation token, token budget, stop strings, abort, full context), streaming text as
// it becomes final. Cutting a pass's tokens at a stop keeps exactness: a prefix of the target's
// stream is distributed as the target's prefix.

import type { Decoder } from "./hsd.js";
import type { RoutingStats } from "./routed.js";
import { TextAssembler } from "./text.js";
import { HsdError, PromptTooLongError, InvalidOptionError } from "../errors.js";
import { yieldToEventLoop } from "../util/yield.js";

export interface Vocabulary {
  isEndOfGeneration(token: number): boolean;
  /** The bytes of one token's text (may be part of a UTF-8 character). */
  tokenPiece(token: number): Uint8Array;
}

export type StopReason = "eos" | "max-tokens" | "stop-string" | "aborted" | "context-full";

export interface GenerateOptions {
  maxTokens: number;
  /** Generation ends before the first occurrence of any of these strings. */
  stop?: readonly string[];
  /**
   * Checked before every target pass, after the event loop has had a turn (so a timer or signal handler can fire
   * it even when the passes run synchronously); generation ends cleanly and the engine stays usable.
   */
  signal?: AbortSignal;
}

export interface GenerationChunk {
  tokens: number[];
  text: string;
}

export interface RunStats {
  tokens: number;
  targetPasses: number;
  wallMs: number;
  msPerToken: number;
  tokensPerSecond: number;
  /** Time outside the models' score() calls: the engine's own overhead. */
  engineMs: number;
  levels: ReturnType<import("../levels/level.js").LevelStats["toJSON"]>[];
  /** With a routed policy: steps and tokens per state, and each state's chain. */
  routing?: RoutingStats;
}

export interface GenerationResult {
  tokens: number[];
  text: string;
  stopReason: StopReason;
  stats: RunStats;
}

export async function* generate(
  decoder: Decoder,
  vocabulary: Vocabulary,
  prompt: Int32Array,
  options: GenerateOptions,
): AsyncGenerator<GenerationChunk, GenerationResult, void> {
  if (prompt.length === 0) throw new InvalidOptionError("generate: the prompt is empty (no tokens to condition on)");
  const vocabSize = decoder.levels[decoder.levels.length - 1]!.vocabSize;
  const outside = prompt.findIndex((t) => !(t >= 0 && t < vocabSize));
  if (outside >= 0)
    throw new HsdError(
      `generate: prompt token ${outside} is ${prompt[outside]}, outside the ${vocabSize}-token vocabulary (a tokenizer that does not fit its vocabulary: a corrupt model file?)`,
    );
  if (!Number.isInteger(options.maxTokens) || options.maxTokens < 1) {
    throw new InvalidOptionError(`generate: maxTokens must be a positive integer, got ${options.maxTokens}`);
  }
  const contextLimit = Math.min(
    ...decoder.levels.map((level) => (level.kind === "model" ? level.contextSize : Infinity)),
  );
  if (prompt.length + 1 > contextLimit) {
    throw new PromptTooLongError(prompt.length, contextLimit);
  }
  const slack = decoder.maxDraftBlock + 1;
  const sequence = new Int32Array(contextLimit + slack);
  sequence.set(prompt);
  let committed = prompt.length;

  const text = new TextAssembler(options.stop ?? []);
  const output: number[] = [];
  decoder.resetStats();
  let targetPasses = 0;
  let stopReason: StopReason | null = null;
  const started = performance.now();

  while (stopReason === null) {
    // With synchronous evaluation nothing else runs until the generation ends unless the loop yields: no Ctrl-C, no
    // timer, no abort, no socket. One turn of the event loop per target pass costs well under 1% (BENCHMARKS.md).
    await yieldToEventLoop();
    if (options.signal?.aborted) {
      stopReason = "aborted";
      break;
    }
    if (committed + slack > contextLimit) {
      stopReason = "context-full";
      break;
    }
    const emitted = await decoder.step(sequence, committed);
    targetPasses++;
    const fresh: number[] = [];
    for (let j = 0; j < emitted; j++) {
      const token = sequence[committed + j]!;
      if (vocabulary.isEndOfGeneration(token)) {
        stopReason = "eos";
        break;
      }
      fresh.push(token);
      if (text.push(vocabulary.tokenPiece(token))) {
        stopReason = "stop-string";
        break;
      }
      if (output.length + fresh.length >= options.maxTokens) {
        stopReason = "max-tokens";
        break;
      }
    }
    committed += emitted;
    output.push(...fresh);
    const piece = text.takeReady();
    if (fresh.length > 0 || piece.length > 0) yield { tokens: fresh, text: piece };
  }
  const tail = text.finish();
  if (tail.length > 0) yield { tokens: [], text: tail };

  const wallMs = performance.now() - started;
  const scoreMs = decoder.stats.reduce((sum, s) => sum + s.scoreMs, 0);
  return {
    tokens: output,
    text: text.fullText,
    stopReason,
    stats: {
      tokens: output.length,
      targetPasses,
      wallMs,
      msPerToken: output.length === 0 ? 0 : wallMs / output.length,
      tokensPerSecond: wallMs === 0 ? 0 : (output.length * 1000) / wallMs,
      engineMs: wallMs - scoreMs,
      levels: decoder.stats.map((s) => s.toJSON()),
      ...(hasRouting(decoder) ? { routing: decoder.routing() } : {}),
    },
  };
}

/** Decoders that route steps by state report what each state did. */
function hasRouting(decoder: Decoder): decoder is Decoder & { routing(): RoutingStats } {
  return typeof (decoder as { routing?: unknown }).routing === "function";
}
