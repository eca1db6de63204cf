// Greedy divergences at argmax ties: a batched pass and a one-token pass round differently (llama.cpp uses other
// kernels), so where the target's top two tokens are within ~1e-4 of each other either may come out. Tests that
// compare greedy outputs accept a divergence only there.
import type { NativeModel } from "../../src/native/index.js";

/** Divergences where the top-two gap is below this are numerical ties. */
export const TIE_GAP = 1e-4;

/** The gap between the target's two most probable next tokens after prompt + tokens, one-token passes. */
export async function topTwoGap(model: NativeModel, prompt: string, tokens: number[]): Promise<number> {
  const sequence = Int32Array.from([...model.tokenize(prompt, true, false), ...tokens]);
  const context = model.createContext({ contextSize: 512, batchSize: 512, threads: 1 });
  try {
    context.setSampling({ greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0 });
    const probs = new Float32Array(model.vocabSize);
    for (let i = 0; i < sequence.length; i++) {
      context.evaluateSync(sequence.subarray(i, i + 1), i, 0, { probs, argmax: new Int32Array(1), rowOffset: 0 });
    }
    const sorted = Array.from(probs).sort((a, b) => b - a);
    return sorted[0]! - sorted[1]!;
  } finally {
    context.dispose();
  }
}
