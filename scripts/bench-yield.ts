/**
 * The cost of giving the event loop a turn before every target pass (src/engine/generate.ts: what makes Ctrl-C, an
 * AbortSignal from a timer and sockets work during synchronous decoding). Interleaved A/B, many rounds:
 *   A: HsdDecoder.step in a loop, as generate() calls it, with no yield;
 *   B: the same with `await yieldToEventLoop()` before each step.
 * Over stub levels (the engine alone: the yield's cost against the cheapest possible pass) and over the bundled
 * family with synchronous evaluation (0.1M → 5M at T=3, and 5M alone: the cost against real passes). generate()
 * does more per pass than the bare step (text, stop rules, a chunk), so B/A here is an upper bound on the cost.
 *   npx tsx scripts/bench-yield.ts [--rounds N] [--steps N] [--models DIR]
 */

import { HsdDecoder } from "../src/engine/hsd.js";
import { Hsd } from "../src/api/hsd.js";
import { Rng } from "../src/util/rng.js";
import { yieldToEventLoop } from "../src/util/yield.js";
import type { Level } from "../src/levels/level.js";
import { stubFamily } from "./bench-lib/stub-level.js";
import { median, quantile } from "./bench-lib/stats.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i > 0 ? Number(process.argv[i + 1]) : fallback;
  if (!(v > 0)) throw new Error(`bench-yield: ${name} must be a positive number`);
  return v;
}
const rounds = arg("--rounds", 40);
const steps = arg("--steps", 64);
const modelsIndex = process.argv.indexOf("--models");
const models = modelsIndex > 0 ? process.argv[modelsIndex + 1] : undefined;

/** ms per step of `steps` steps from `prompt` tokens, yielding before each step or not. */
async function run(decoder: HsdDecoder, prompt: Int32Array, yieldEachPass: boolean): Promise<number> {
  const sequence = new Int32Array(prompt.length + steps * (decoder.maxDraftBlock + 2) + 1);
  sequence.set(prompt);
  let committed = prompt.length;
  // Let the event loop run what earlier runs deferred (V8's foreground tasks wait for a turn of the loop): a run
  // without yields would otherwise leave its backlog to be paid inside the next run with yields.
  await new Promise((resolve) => setTimeout(resolve, 5));
  const started = performance.now();
  for (let s = 0; s < steps; s++) {
    if (yieldEachPass) await yieldToEventLoop();
    committed += await decoder.step(sequence, committed);
  }
  return (performance.now() - started) / steps;
}

async function compare(label: string, levels: Level[], thresholds: number[], prompt: Int32Array): Promise<void> {
  const decoder = new HsdDecoder(levels, { thresholds, greedy: true, rng: new Rng(1) });
  for (let w = 0; w < 3; w++) await run(decoder, prompt, w % 2 === 0); // warm-up
  const a: number[] = [];
  const b: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternate which goes first, so drift and order effects fall on both equally.
    const first = r % 2 === 0;
    const x = await run(decoder, prompt, !first);
    const y = await run(decoder, prompt, first);
    const [withoutYield, withYield] = first ? [x, y] : [y, x];
    a.push(withoutYield);
    b.push(withYield);
    ratios.push(withYield / withoutYield);
  }
  const us = (ms: number) => (ms * 1000).toFixed(2);
  console.log(
    `${label.padEnd(44)} A ${us(median(a))} µs/pass  B ${us(median(b))} µs/pass  ` +
      `B/A median ${median(ratios).toFixed(4)} (IQR ${quantile(ratios, 0.25).toFixed(4)}–${quantile(ratios, 0.75).toFixed(4)}), ` +
      `ratio of medians ${(median(b) / median(a)).toFixed(4)}, +${us(median(b) - median(a))} µs/pass`,
  );
}

console.log(`bench-yield: ${rounds} interleaved rounds of ${steps} target passes each way`);
await compare(
  "stub levels, T=4, vocab 4096",
  stubFamily(2, 4096, 64, 7),
  [4],
  Int32Array.from({ length: 64 }, () => 1),
);
await compare(
  "stub levels, autoregressive",
  stubFamily(1, 4096, 64, 7),
  [],
  Int32Array.from({ length: 64 }, () => 1),
);

const hsd = await Hsd.open({ models, threads: 1 });
try {
  const prompt = hsd.target.native.tokenize("The state of the Union is", true, false);
  for (const m of hsd.models) m.context.setSampling({ greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 });
  const [small, target] = [hsd.models[0]!, hsd.target];
  await compare(`${small.info.file} → ${target.info.file}, T=3, sync`, [small.level, target.level], [3], prompt);
  await compare(`${target.info.file} alone, sync`, [target.level], [], prompt);
} finally {
  await hsd.dispose();
}
