// The exact law of what a target generates first, by enumeration (for the sampling-law tests on GGUF models).
import type { Hsd } from "../../src/api/hsd.js";

/** The target's exact probability of each first-two-token outcome, by enumeration. */
export async function exactTwoTokenLaw(
  hsd: Hsd,
  prompt: string,
  s: { temperature: number; topK: number; topP: number; minP: number },
): Promise<Map<string, number>> {
  const model = hsd.target.native;
  const context = model.createContext({ contextSize: 512, batchSize: 512, threads: 1 });
  const law = new Map<string, number>();
  try {
    context.setSampling({ greedy: false, ...s });
    const prompt0 = model.tokenize(prompt, true, false);
    const row = new Float32Array(model.vocabSize);
    const target = { probs: row, argmax: new Int32Array(1), rowOffset: 0 };
    context.evaluateSync(prompt0, 0, prompt0.length - 1, target);
    const first = Array.from(row.entries()).filter(([, p]) => p > 0);
    for (const [x, px] of first) {
      context.evaluateSync(Int32Array.from([x]), prompt0.length, 0, target);
      for (let y = 0; y < row.length; y++) if (row[y]! > 0) law.set(`${x},${y}`, px * row[y]!);
    }
  } finally {
    context.dispose();
  }
  return law;
}
