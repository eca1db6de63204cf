// The engine's own time per token for one method, measured without models: the same recursion, generation loop
// and stream layers as Hsd.generate, over stub levels whose passes cost nothing (stub-level.ts), with the target's
// real vocabulary callbacks (end-of-generation test, token text). What is left is what the latency formula leaves
// out: sampling (draws, residuals, bonus tokens), verification, bookkeeping, async hops, text assembly.
//
// The stubs' greedy verdicts follow the calibrated acceptance rates, so passes per token match the method's;
// at temperature 1 the stubs' fixed rows set acceptance only roughly (see stub-level.ts), so the number of
// residual draws may differ from the real run's.

import { HsdDecoder } from "../../src/engine/hsd.js";
import { generate, type Vocabulary } from "../../src/engine/generate.js";
import { GenerationRun } from "../../src/api/hsd.js";
import { Rng } from "../../src/util/rng.js";
import { stubFamily } from "./stub-level.js";
import { timeDecoding } from "./decode-timing.js";

export interface OverheadMeasurement {
  /** Engine ms per generated token, first chunk to last (as the benchmark times real runs). */
  msPerToken: number;
  tokens: number;
  /** Tokens per target pass the stubs produced (compare with the method's, to judge the stand-in). */
  tokensPerStep: number;
}

export async function measureEngineOverhead(
  thresholds: readonly number[],
  agreement: readonly number[],
  greedy: boolean,
  vocabulary: Vocabulary,
  vocabSize: number,
  options: { tokens: number; runs: number; seed: number },
): Promise<OverheadMeasurement> {
  const capacity = thresholds.reduce((a, b) => a + b, 0) + 2;
  const levels = stubFamily(
    thresholds.length + 1,
    vocabSize,
    capacity,
    options.seed,
    agreement.length > 0 ? agreement : 0,
  );
  const prompt = Int32Array.from({ length: 16 }, (_, i) => 1 + i);
  let ms = 0;
  let tokens = 0;
  let steps = 0;
  for (let r = 0; r <= options.runs; r++) {
    const decoder = new HsdDecoder(levels, { thresholds, greedy, rng: new Rng(options.seed + r) });
    // Two generator layers, as Hsd.generate wraps generate(); a stop-free, EOS-free run of `tokens` tokens.
    const inner = generate(
      decoder,
      { ...vocabulary, isEndOfGeneration: (t) => (vocabulary.isEndOfGeneration(t), false) },
      prompt,
      { maxTokens: options.tokens },
    );
    const middle = (async function* () {
      return yield* inner;
    })();
    const run = new GenerationRun(
      (async function* () {
        return yield* middle;
      })() as never,
    );
    const { decodeMs, decodeTokens, result } = await timeDecoding(run);
    if (r === 0) continue; // warm-up
    ms += decodeMs;
    tokens += decodeTokens;
    steps += result.stats.targetPasses;
  }
  return { msPerToken: tokens === 0 ? 0 : ms / tokens, tokens, tokensPerStep: tokens / Math.max(1, steps) };
}
