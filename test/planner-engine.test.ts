// The latency formula against the real engine: the HSD recursion (src/engine/hsd.ts) over NativeLevel
// (src/levels/native-model.ts, the product's longest-common-prefix catch-up), with fake contexts in place of
// llama.cpp whose greedy argmaxes make acceptance i.i.d. with known rates. The fake records every pass's size,
// so the test compares what the engine actually feeds (catch-up included) with the formula's predictions —
// the simulator's 'cache' mode is a re-implementation; this checks the implementation itself.
import { expect } from "chai";
import { HsdDecoder } from "../src/engine/hsd.js";
import { NativeLevel } from "../src/levels/native-model.js";
import type { EvaluateTarget, NativeContext, SamplingTransform } from "../src/native/types.js";
import { Rng } from "../src/util/rng.js";
import { expectedLatency, MeasuredPassCost, type PassCost } from "../src/planner/index.js";
import { chain as costChain } from "./helpers/chains.js";

const VOCAB = 1000;

/** A deterministic 32-bit mix of a prefix hash and a token. */
function mix(h: number, x: number): number {
  let z = (h ^ Math.imul(x + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x2c1b3c6d) >>> 0;
  z = Math.imul(z ^ (z >>> 12), 0x297a2d39) >>> 0;
  return (z ^ (z >>> 15)) >>> 0;
}
const unit = (h: number, salt: number): number => mix(h, 7_000_003 + salt) / 4294967296;

/**
 * Greedy argmax of level `k` of a chain after a prefix with hash h: the target's is a hash of h; level k agrees with
 * level k+1 with probability rates[k] (decided by another hash of h), else it picks any other token.
 * So a draft of level k is accepted by level k+1 with probability rates[k], independently across positions.
 */
function argmaxOf(level: number, top: number, rates: number[], h: number): number {
  if (level === top) return mix(h, 1) % VOCAB;
  const above = argmaxOf(level + 1, top, rates, h);
  return unit(h, level) < rates[level]! ? above : (above + 1 + (mix(h, 2 + level) % (VOCAB - 1))) % VOCAB;
}

class FakeContext implements NativeContext {
  readonly contextSize = 1 << 16;
  readonly batchSize = 512;
  position = 0;
  /** prefixHash[k] = hash of tokens[0..k). */
  private readonly prefixHash = new Uint32Array(this.contextSize + 1);
  readonly passSizes: number[] = [];

  constructor(
    private readonly level: number,
    private readonly top: number,
    private readonly rates: number[],
  ) {}

  setSampling(_t: SamplingTransform): void {}
  evaluate(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): Promise<void> {
    this.evaluateSync(tokens, position, firstOutput, target);
    return Promise.resolve();
  }
  evaluateSync(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): void {
    if (position > this.position)
      throw new Error(`fake context: position ${position} beyond the cache (${this.position})`);
    for (let j = 0; j < tokens.length; j++)
      this.prefixHash[position + j + 1] = mix(this.prefixHash[position + j]!, tokens[j]!);
    this.position = position + tokens.length;
    for (let j = firstOutput; j < tokens.length; j++) {
      target.argmax[target.rowOffset + j - firstOutput] = argmaxOf(
        this.level,
        this.top,
        this.rates,
        this.prefixHash[position + j + 1]!,
      );
    }
    if (firstOutput < tokens.length) this.passSizes.push(tokens.length);
  }
  truncate(position: number): void {
    this.position = Math.min(this.position, position);
  }
  dispose(): void {}
}

/** Runs the engine greedily for `tokens` tokens; returns per-level pass sizes and the number generated. */
async function runEngine(thresholds: number[], rates: number[], tokens: number, prompt = 5) {
  const K = thresholds.length;
  const contexts = Array.from({ length: K + 1 }, (_, i) => new FakeContext(i, K, rates));
  const levels = contexts.map((c, i) => new NativeLevel(`L${i}`, c, VOCAB, "sync"));
  const decoder = new HsdDecoder(levels, { thresholds, greedy: true, rng: new Rng(1) });
  const seq = new Int32Array(prompt + tokens + 3 * (decoder.maxDraftBlock + 2));
  for (let i = 0; i < prompt; i++) seq[i] = 1 + i;
  let committed = prompt;
  // The prompt is fed by every level's first pass: drop those passes from the statistics.
  committed += await decoder.step(seq, committed);
  const firstPasses = contexts.map((c) => c.passSizes.length);
  const start = committed;
  let steps = 0;
  while (committed - start < tokens) {
    committed += await decoder.step(seq, committed);
    steps++;
  }
  return { generated: committed - start, steps, passSizes: contexts.map((c, i) => c.passSizes.slice(firstPasses[i]!)) };
}

/** Step-shaped costs: c(2) well above c(1), as on a GPU, so catch-up tokens matter. */
function stepCost(single: number, plateau: number, perToken: number): PassCost {
  const samples = [{ n: 1, ms: single }];
  for (let n = 2; n <= 40; n++) samples.push({ n, ms: plateau + perToken * n });
  return new MeasuredPassCost(samples).cost;
}

describe("planner: formula vs the real engine's catch-up (NativeLevel over fake contexts)", function () {
  this.timeout(60_000);
  const settings = [
    { name: "K=1 T=4", thresholds: [4], rates: [0.8], costs: [stepCost(0.5, 1.4, 0.01), stepCost(5, 7, 0.08)] },
    {
      name: "K=2 T=2,4",
      thresholds: [2, 4],
      rates: [0.9, 0.8],
      costs: [stepCost(0.5, 1.4, 0.01), stepCost(2, 4, 0.05), stepCost(5, 7, 0.08)],
    },
    {
      name: "K=3 T=2,3,6",
      thresholds: [2, 3, 6],
      rates: [0.9, 0.85, 0.75],
      costs: [stepCost(0.3, 0.9, 0.01), stepCost(0.6, 1.5, 0.02), stepCost(2, 4, 0.05), stepCost(5, 7, 0.08)],
    },
  ];
  for (const s of settings) {
    it(`${s.name}: passes per token, tokens per pass (catch-up included) and model ms per token within 2%`, async () => {
      const run = await runEngine(s.thresholds, s.rates, 30_000);
      const f = expectedLatency(costChain({ costs: s.costs, thresholds: s.thresholds, acceptance: s.rates }));
      const one = expectedLatency(
        costChain({ costs: s.costs, thresholds: s.thresholds, acceptance: s.rates, catchUp: "one" }),
      );
      let ms = 0;
      const rows: string[] = [];
      run.passSizes.forEach((sizes, i) => {
        const lf = f.levels[i]!;
        const passes = sizes.length / run.generated;
        const fed = sizes.reduce((a, b) => a + b, 0) / sizes.length;
        const levelMs = sizes.reduce((a, n) => a + s.costs[i]!(n), 0) / run.generated;
        ms += levelMs;
        rows.push(
          `      level ${i}: passes/token ${passes.toFixed(4)} vs ${lf.passesPerToken.toFixed(4)}, tokens/pass ${fed.toFixed(3)} vs ${lf.meanTokensPerPass.toFixed(3)} ('one': ${one.levels[i]!.meanTokensPerPass.toFixed(3)})`,
        );
        expect(Math.abs(passes / lf.passesPerToken - 1), `level ${i} passes/token`).to.be.below(0.02);
        expect(Math.abs(fed / lf.meanTokensPerPass - 1), `level ${i} tokens/pass`).to.be.below(0.02);
        expect(Math.abs(levelMs / lf.msPerToken - 1), `level ${i} ms/token`).to.be.below(0.02);
      });
      expect(Math.abs(ms / f.msPerToken - 1)).to.be.below(0.02);
      expect(Math.abs(run.generated / run.steps / f.tokensPerTargetPass - 1)).to.be.below(0.02);
      // Shape changes: a pass whose size differs from the same level's previous pass pays c'(n) more.
      const reshapeCosts = s.costs.map((c) => (n: number) => 0.3 * c(1) + 0.02 * n);
      const withReshape = expectedLatency(
        costChain({ costs: s.costs, thresholds: s.thresholds, acceptance: s.rates, reshape: reshapeCosts }),
      );
      let reshapedMs = 0;
      run.passSizes.forEach((sizes, i) => {
        for (let j = 0; j < sizes.length; j++) {
          reshapedMs += s.costs[i]!(sizes[j]!) + (j > 0 && sizes[j] !== sizes[j - 1] ? reshapeCosts[i]!(sizes[j]!) : 0);
        }
      });
      reshapedMs /= run.generated;
      rows.push(
        `      with shape changes: engine ${reshapedMs.toFixed(4)} ms/token, formula ${withReshape.msPerToken.toFixed(4)}`,
      );
      expect(Math.abs(reshapedMs / withReshape.msPerToken - 1), "with shape changes").to.be.below(0.02);
      console.log(
        `    ${s.name}: engine ${ms.toFixed(4)} ms/token, formula ${f.msPerToken.toFixed(4)} (catch-up 'one': ${one.msPerToken.toFixed(4)})\n${rows.join("\n")}`,
      );
    });
  }
});
