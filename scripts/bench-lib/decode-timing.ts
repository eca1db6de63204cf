// Decode-only timing of a generation: from the first chunk that carries tokens (the first target pass, which
// also processed the prompt) to the end, over the tokens after that chunk — the steady state the latency
// formula predicts, and what llama.cpp's "decoded … t/s" measures.

import type { GenerationRun, GenerationReport } from "../../src/api/hsd.js";

export interface DecodeTiming {
  /** ms from the first token-carrying chunk to the end (0 when no chunk carried tokens). */
  decodeMs: number;
  /** Tokens after the first token-carrying chunk. */
  decodeTokens: number;
  result: GenerationReport;
}

export async function timeDecoding(run: GenerationRun): Promise<DecodeTiming> {
  let first: number | null = null;
  let firstTokens = 0;
  let count = 0;
  for await (const chunk of run) {
    if (first === null && chunk.tokens.length > 0) {
      first = performance.now();
      firstTokens = chunk.tokens.length;
    }
    count += chunk.tokens.length;
  }
  const end = performance.now();
  const result = await run.result;
  return { decodeMs: first === null ? 0 : end - first, decodeTokens: count - firstTokens, result };
}
