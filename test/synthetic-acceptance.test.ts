// The synthetic-acceptance wrapper used by the GPU benchmark (scripts/gpu/bench-synthetic.ts): on in-memory
// models, the acceptance the recursion measures must be the rate the wrapper was given, independently of the
// position in a block, and the rows that judge nothing (drafting passes, bonus rows) must be left alone.
import { expect } from "chai";
import { HsdDecoder } from "../src/engine/hsd.js";
import { DistributionRows, type ModelLevel } from "../src/levels/level.js";
import { SyntheticLevel, syntheticFamily } from "./helpers/synthetic-levels.js";
import { SyntheticAcceptanceLevel, withSyntheticAcceptance } from "../scripts/gpu/synthetic-acceptance.js";
import { chain as costChain } from "./helpers/chains.js";
import { affinePassCost, expectedLatency } from "../src/planner/index.js";
import { Rng } from "../src/util/rng.js";

const VOCAB = 40;

function family(levels: number): SyntheticLevel[] {
  return syntheticFamily(VOCAB, levels, 11).map((law, k) => new SyntheticLevel(`M${k}`, VOCAB, law));
}

/** Runs `passes` target passes greedily; returns the decoder (its stats) and the tokens generated. */
async function run(
  levels: ModelLevel[],
  thresholds: number[],
  passes: number,
): Promise<{ decoder: HsdDecoder; tokens: number }> {
  const decoder = new HsdDecoder(levels, { thresholds, greedy: true, rng: new Rng(5) });
  const prompt = [3, 1, 4, 1, 5];
  const seq = new Int32Array(prompt.length + passes * (decoder.maxDraftBlock + 1) + decoder.maxDraftBlock + 1);
  seq.set(prompt);
  let committed = prompt.length;
  for (let p = 0; p < passes; p++) committed += await decoder.step(seq, committed);
  return { decoder, tokens: committed - prompt.length };
}

/** |measured - a| within 4.5 binomial standard deviations (fixed seeds: deterministic, far from the edge). */
function expectRate(accepted: number, judged: number, a: number, what: string): void {
  expect(judged, `${what}: judged`).to.be.greaterThan(500);
  const sd = Math.sqrt((a * (1 - a)) / judged);
  expect(Math.abs(accepted / judged - a), `${what}: ${accepted}/${judged} vs ${a}`).to.be.lessThan(4.5 * sd + 1e-12);
}

describe("synthetic acceptance (benchmark wrapper)", function () {
  it("makes a two-level chain accept at the given rates, at every block position", async function () {
    const rates = [0.6, 0.85];
    const { decoder } = await run(withSyntheticAcceptance(family(3), rates, 1), [3, 4], 3000);
    for (const [i, a] of rates.entries()) {
      const s = decoder.stats[i]!;
      expectRate(s.accepted, s.judged, a, `level ${i} overall`);
      for (let j = 0; j < 3; j++) expectRate(s.acceptedAt[j] ?? 0, s.judgedAt[j]!, a, `level ${i} position ${j}`);
    }
  });

  it("is not what the unwrapped models do (the real agreement differs)", async function () {
    const { decoder } = await run(family(3), [3, 4], 1500);
    expect(Math.abs(decoder.stats[0]!.acceptanceRate - 0.6)).to.be.greaterThan(0.05);
  });

  it("matches the planner's expected tokens per target pass", async function () {
    const rates = [0.7, 0.9];
    const thresholds = [2, 5];
    const passes = 6000;
    const { tokens } = await run(withSyntheticAcceptance(family(3), rates, 2), thresholds, passes);
    const c = affinePassCost(1, 0.1);
    const predicted = expectedLatency(
      costChain({ costs: [c, c, c], thresholds, acceptance: rates }),
    ).tokensPerTargetPass;
    expect(tokens / passes).to.be.closeTo(predicted, 0.03 * predicted);
  });

  it("accepts everything at a = 1 and nothing at a = 0", async function () {
    const all = await run(withSyntheticAcceptance(family(2), [1], 3), [4], 200);
    expect(all.decoder.stats[0]!.accepted).to.equal(all.decoder.stats[0]!.drafted);
    expect(all.tokens).to.equal(200 * 5);
    const none = await run(withSyntheticAcceptance(family(2), [0], 3), [4], 200);
    expect(none.decoder.stats[0]!.accepted).to.equal(0);
    expect(none.tokens).to.equal(200);
  });

  it("leaves the bonus row and drafting passes as the model computed them", function () {
    const [inner] = family(1);
    const level = new SyntheticAcceptanceLevel(inner!, 0.5, 9);
    const seq = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const plain = new DistributionRows(8, VOCAB, true);
    inner!.score(seq, 8, 3, plain, 0); // rows for t = 3 … 7
    let accepted = 0;
    for (let trial = 0; trial < 50; trial++) {
      const rows = new DistributionRows(8, VOCAB, true);
      level.score(seq, 8, 3, rows, 2);
      // Judged rows: row for t accepts seq[t + 1] (argmax := it) at rate 0.5, else names another token.
      for (let r = 0; r < 4; r++) if (rows.argmax[2 + r] === seq[3 + r + 1]) accepted++;
      expect(rows.argmax[2 + 4], "bonus row").to.equal(plain.argmax[4]);
      const one = new DistributionRows(1, VOCAB, true);
      level.score(seq, 6, 5, one, 0); // a drafting pass: one row, t = length - 1
      expect(one.argmax[0], "drafting row").to.equal(plain.argmax[2]);
    }
    expect(accepted, "rows holding the drafted token = the level's accept count").to.equal(level.acceptedRows);
    // Judged rows either hold the drafted token (accept) or another one (reject), about half each.
    expect(level.judgedRows).to.equal(200);
    expect(level.acceptedRows).to.be.within(70, 130);
  });

  it("waits for an asynchronous inner level before deciding", async function () {
    const [inner] = family(1);
    const slow: ModelLevel = {
      kind: "model",
      name: "slow",
      vocabSize: VOCAB,
      contextSize: 1 << 20,
      get tokensEvaluated() {
        return inner!.tokensEvaluated;
      },
      score: (s, l, f, rows, o) =>
        new Promise<void>((resolve) => setTimeout(() => resolve(inner!.score(s, l, f, rows, o)), 1)),
    };
    const level = new SyntheticAcceptanceLevel(slow, 1, 4);
    const seq = Int32Array.from([5, 6, 7, 8]);
    const rows = new DistributionRows(4, VOCAB, true);
    await level.score(seq, 4, 0, rows, 0);
    expect(Array.from(rows.argmax.subarray(0, 3))).to.deep.equal([6, 7, 8]);
  });

  it("refuses sampling mode and rates outside [0, 1]", function () {
    const [inner] = family(1);
    expect(() => new SyntheticAcceptanceLevel(inner!, 1.2, 1)).to.throw(/acceptance must be in \[0, 1\]/);
    expect(() => new SyntheticAcceptanceLevel(inner!, Number.NaN, 1)).to.throw(/acceptance/);
    const level = new SyntheticAcceptanceLevel(inner!, 0.5, 1);
    expect(() => level.score(Int32Array.from([1, 2]), 2, 0, new DistributionRows(2, VOCAB, false), 0)).to.throw(
      /greedy/,
    );
    expect(() => withSyntheticAcceptance(family(3), [0.5], 1)).to.throw(/2 acceptance rates/);
  });
});
