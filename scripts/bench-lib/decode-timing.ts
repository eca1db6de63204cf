// Decode-only timing of a generation: from the first chunk that carries tokens (the first target pass, which
// also processed the prompt) to the last one, over the tokens after the first — the steady state the latency
// formula predicts, and what llama.cpp's "decoded … t/s" measures (its clock stops after its last token). What the
// product does after the last token (the report: the online estimates' prediction for the plan that ran, 1.6–6 ms
// per generation here, BENCHMARKS.md) is not decoding; it is measured apart (`tailMs`).

import type { GenerationRun, GenerationReport } from "../../src/api/hsd.js";

export interface DecodeTiming {
  /** ms from the first token-carrying chunk to the last (0 when fewer than two chunks carried tokens). */
  decodeMs: number;
  /** ms from the last token-carrying chunk to the end of the stream (the text's tail, the report). */
  tailMs: number;
  /** Tokens after the first token-carrying chunk. */
  decodeTokens: number;
  result: GenerationReport;
}

export async function timeDecoding(run: GenerationRun): Promise<DecodeTiming> {
  let first: number | null = null;
  let last = 0;
  let firstTokens = 0;
  let count = 0;
  for await (const chunk of run) {
    if (chunk.tokens.length === 0) continue;
    last = performance.now();
    if (first === null) {
      first = last;
      firstTokens = chunk.tokens.length;
    }
    count += chunk.tokens.length;
  }
  const end = performance.now();
  const result = await run.result;
  return {
    decodeMs: first === null ? 0 : last - first,
    decodeTokens: count - firstTokens,
    tailMs: first === null ? 0 : end - last,
    result,
  };
}
