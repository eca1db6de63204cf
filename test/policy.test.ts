// The routed-policy planner (src/planner/policy.ts, docs/ALGORITHM.md §9): Dinkelbach's iteration against brute
// force over every policy of a small instance, and the properties the product relies on.
import { expect } from "chai";
import {
  affinePassCost,
  choosePolicy,
  type Acceptance,
  type LevelSpec,
  type PolicyInput,
} from "../src/planner/index.js";
import { makeRng } from "../src/util/rng.js";

/** Two states along a text of repeated spans: "no match" (the lookup abstains) and "match" (it proposes well). */
function instance(seed: number): PolicyInput {
  const rng = makeRng(seed);
  const candidates: LevelSpec[] = [
    { kind: "proposal", name: "ngram-lookup", proposal: { costMs: 0.01, available: [1] } },
    {
      kind: "model",
      name: "draft",
      costs: { hot: affinePassCost(0.1 + 0.1 * rng(), 0.04), cold: affinePassCost(0.15, 0.05) },
    },
    { kind: "model", name: "target", costs: { hot: affinePassCost(1 + rng(), 0.25), reshape: affinePassCost(0.2, 0) } },
  ];
  const modelRates = (a: number): (Acceptance | null)[][] => [
    [null, null, null],
    [null, null, a],
    [null, null, null],
  ];
  const noMatch = modelRates(0.6 + 0.2 * rng());
  const match = modelRates(0.85);
  match[0] = [null, [0.9, 0.85, 0.8], [0.95, 0.92, 0.9, 0.9]];
  noMatch[0] = [null, [0.1], [0.1]];
  // Paths: spans of 12 matched positions (state 1) between 20 unmatched ones (state 0).
  const path: number[] = [];
  for (let r = 0; r < 6; r++) path.push(...new Array(20).fill(0), ...new Array(12).fill(1));
  return {
    candidates,
    states: [
      { name: "match 0", available: [[1, 0, 0, 0, 0, 0]], acceptance: noMatch },
      { name: "match 2+", available: [[0.05, 0.05, 0.1, 0.1, 0.2, 0.5]], acceptance: match },
    ],
    maxThreshold: 4,
    maxDepth: 2,
    paths: [path],
  };
}

describe("planner: routed policies (Dinkelbach over states)", () => {
  it("equals brute force over every pair of per-state chains (its own walk for each), on random instances", () => {
    for (const seed of [1, 4]) {
      const input = instance(seed);
      const plan = choosePolicy(input);
      // Brute force: every option in each state, each combination scored as choosePolicy scores a policy.
      const all = choosePolicy({ ...input, allowed: () => true });
      expect(all.predictedMsPerToken).to.equal(plan.predictedMsPerToken);
      let best = Number.POSITIVE_INFINITY;
      const fixedChains = new Set<string>();
      for (const a of chainsOf(input)) {
        for (const b of chainsOf(input)) {
          const key = (c: { chain: number[]; thresholds: number[] }) => `${c.chain}:${c.thresholds}`;
          fixedChains.add(key(a));
          const only = choosePolicy({
            ...input,
            allowed: (s, chain) =>
              s === 0
                ? key({ chain, thresholds: a.thresholds }) === key(a)
                : key({ chain, thresholds: b.thresholds }) === key(b),
          });
          best = Math.min(best, only.predictedMsPerToken);
        }
      }
      expect(plan.predictedMsPerToken, `seed ${seed}`).to.be.closeTo(best, 1e-9 * best);
      expect(plan.predictedMsPerToken).to.be.at.most(plan.bestFixed.predictedMsPerToken * (1 + 1e-12));
      // On this text the policy routes: the lookup where it matches, a model draft (or none) where it does not.
      expect(plan.states[1]!.names[0]).to.equal("ngram-lookup");
      expect(plan.states[0]!.names[0]).to.not.equal("ngram-lookup");
      expect(plan.states.reduce((s, x) => s + x.frequency, 0)).to.be.closeTo(1, 1e-12);
      // Long lookup blocks cross the matched spans in few steps: their share of steps is below their share of text.
      expect(plan.states[1]!.frequency).to.be.below(12 / 32);
    }
  });

  it("charges a model's catch-up after the steps that skipped it", () => {
    const input = instance(7);
    const plan = choosePolicy(input);
    // The state after a matched span runs the draft, which missed the span: its step costs more than the same chain
    // run in every state (the formula alone).
    const s0 = plan.states[0]!;
    if (s0.names.includes("draft")) {
      const fixed = choosePolicy({ ...input, allowed: (_s, chain) => chain.join() === s0.chain.join() });
      const same = fixed.states[0]!;
      expect(s0.msPerStep).to.be.above(same.msPerStep - 1e-12);
    }
    expect(() => choosePolicy({ ...input, paths: [] })).to.throw(/calibration paths/);
  });
});

describe("planner: a policy's target-alone steps", () => {
  /**
   * The target's steady autoregressive rate (1.0 ms: llama.cpp reuses the one-token graph) is below its hot one-token
   * pass measured among other sizes (1.25 ms), and a draft chain costs 1.24 ms a token: priced at the hot pass, a
   * target-alone step lost to the draft, and the plan was a policy predicted 0.8x autoregressive (seen on a real
   * calibration). A run of target-alone steps costs the autoregressive rate; after a block, one shape change.
   */
  function input(): PolicyInput {
    const base = instance(3);
    const target = base.candidates[2]!;
    if (target.kind !== "model") throw new Error("fixture");
    target.costs = { hot: affinePassCost(1.25, 0.3), reshape: affinePassCost(0.2, 0), autoregressiveMs: 1.0 };
    const draft = base.candidates[1]!;
    if (draft.kind !== "model") throw new Error("fixture");
    draft.costs = { hot: affinePassCost(0.3, 0.02), cold: affinePassCost(0.3, 0.02) };
    // Only "match 0" along the text: the lookup never proposes, so the choice is the draft or the target alone.
    return { ...base, paths: [new Array(200).fill(0)] };
  }

  it("cost the autoregressive rate in a run, so a draft chain slower than that is not picked", () => {
    const plan = choosePolicy(input());
    expect(plan.states[0]!.names).to.deep.equal(["target"]);
    // 200 positions, one step each; the first follows the prompt's pass, a shape change: c(1) + reshape = 1.75 ms.
    expect(plan.predictedMsPerToken).to.be.closeTo(1.0 + (1.75 - 1.0) / 200, 1e-9);
    expect(plan.bestFixed.names).to.deep.equal(["target"]);
  });

  it("pay a shape change after a block", () => {
    const base = input();
    // Alternate matched spans (the lookup proposes 4 tokens, all kept) with unmatched stretches.
    const path: number[] = [];
    for (let r = 0; r < 10; r++) path.push(...new Array(8).fill(1), ...new Array(4).fill(0));
    const plan = choosePolicy({ ...base, paths: [path] });
    const alone = plan.states[0]!;
    expect(alone.names).to.deep.equal(["target"]);
    expect(plan.states[1]!.names[0]).to.equal("ngram-lookup");
    // Every unmatched stretch starts after a lookup block: some of its steps (the walk's share) pay the shape change,
    // the rest run at the autoregressive rate.
    expect(alone.msPerStep).to.be.above(1.0 + 0.1 * 0.75);
    expect(alone.msPerStep).to.be.below(1.75 - 0.1 * 0.75);
  });
});

/** Every (chain, thresholds) option choosePolicy enumerates for the instance, as plain records. */
function chainsOf(input: PolicyInput): { chain: number[]; thresholds: number[] }[] {
  const out: { chain: number[]; thresholds: number[] }[] = [{ chain: [2], thresholds: [] }];
  for (const bottom of [0, 1])
    for (let t = 1; t <= input.maxThreshold; t++) out.push({ chain: [bottom, 2], thresholds: [t] });
  for (let t0 = 1; t0 <= input.maxThreshold; t0++)
    for (let t1 = 1; t1 <= input.maxThreshold; t1++) out.push({ chain: [0, 1, 2], thresholds: [t0, t1] });
  return out;
}
