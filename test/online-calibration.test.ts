// The online estimates (docs/ALGORITHM.md §10) on hand-fed observations: pass costs follow what passes cost, resist
// descheduled passes, forget at the stated rate and move unseen sizes with the seen ones; the time per step outside
// passes is learned; a model-free level is judged against the committed text in steps that do not run it.
import { expect } from "chai";
import { OnlineCalibration, FORGET } from "../src/calibration/online.js";
import type { Calibration } from "../src/calibration/calibrate.js";
import { ContextLookupLevel } from "../src/levels/ngram-lookup.js";
import type { Level, ModelLevel } from "../src/levels/level.js";
import { MeasuredPassCost } from "../src/planner/index.js";
import { makeRng } from "../src/util/rng.js";

const VOCAB = 8;
const BOUNDS = [0, 1, 2, 4];
const MAX_T = 4;

function model(name: string): ModelLevel {
  return {
    kind: "model",
    name,
    vocabSize: VOCAB,
    contextSize: 4096,
    tokensEvaluated: 0,
    score: () => {},
  };
}

const line = (fixed: number, perToken: number) =>
  Array.from({ length: MAX_T + 2 }, (_, k) => ({ n: k + 1, ms: fixed + perToken * (k + 1) }));

function prior(): Calibration {
  const state = (name: string) => ({
    name,
    positions: 10,
    available: [[0.5, 0.2, 0.1, 0.1, 0.1]],
    acceptance: [
      [null, [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]],
      [null, null, [0.8, 0.8, 0.8, 0.8]],
      [null, null, null],
    ],
  });
  const costs = (fixed: number, perToken: number) => ({
    hot: line(fixed, perToken),
    cold: line(fixed, perToken),
    reshape: line(0, 0),
    autoregressiveMs: fixed + perToken,
  });
  return {
    models: [
      { file: "draft", path: "draft", costs: costs(0.1, 0.01), fromCache: false },
      { file: "target", path: "target", costs: costs(1, 0.1), fromCache: false },
    ],
    acceptance: [
      [0, 0.8],
      [0, 0],
    ],
    workload: {
      proposals: [{ name: "ngram-lookup", costMs: 0 }],
      states: BOUNDS.map((b) => state(`match ${b}`)),
      overall: state("all"),
      paths: [new Array(40).fill(0)],
    },
    lookup: { minMatch: 1, maxMatch: 8, states: BOUNDS },
    acceptanceFromCache: false,
    source: "quick",
    transform: { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 },
    threads: 1,
    device: "test",
    prompts: 1,
    continuationTokens: 16,
  };
}

function setup(now?: () => number) {
  const lookup = new ContextLookupLevel(VOCAB, { minMatch: 1, maxMatch: 8 });
  const draft = model("draft");
  const target = model("target");
  const levels: Level[] = [lookup, draft, target];
  const learner = new OnlineCalibration(prior(), {
    lookup,
    states: BOUNDS,
    levels,
    maxThreshold: MAX_T,
    ...(now ? { now } : {}),
  });
  return { lookup, draft, target, learner };
}

const costAt = (c: Calibration, m: number, n: number) => new MeasuredPassCost(c.models[m]!.costs.hot).at(n);

describe("online estimates (hand-fed observations)", () => {
  it("a pass-cost cell follows what its passes cost, and unseen sizes move with the model's seen ones", () => {
    const { target, learner } = setup();
    for (let i = 0; i < 200; i++) {
      learner.pass(target, 3, 2.6); // prior c(3) = 1.3: the machine is twice as slow
      learner.pass(target, 3, 2.6); // the second of two same-size passes: hot, same shape
    }
    const c = learner.snapshot();
    expect(costAt(c, 1, 3)).to.be.closeTo(2.6, 0.05);
    // Never observed: the prior (1 + 0.1 n) times the observed ratio, 2.
    expect(costAt(c, 1, 5)).to.be.closeTo(2 * 1.5, 0.1);
    // Another model's costs are untouched.
    expect(costAt(c, 0, 3)).to.be.closeTo(0.13, 1e-9);
  });

  it("a descheduled pass does not move a cell by much: passes over 4x the estimate count as 4x", () => {
    const { target, learner } = setup();
    for (let i = 0; i < 400; i++) {
      learner.pass(target, 1, 1.1);
      learner.pass(target, 1, i % 40 === 0 ? 100 : 1.1); // one pass in 40 is 100x
    }
    const hot1 = costAt(learner.snapshot(), 1, 1);
    expect(hot1).to.be.within(1.1, 1.1 + (3 * 4.4) / 40 + 0.05);
  });

  it(`forgets at the stated rate: ${3 * FORGET} passes after the machine's speed halves, the estimate is within 5% of the new cost`, () => {
    const { target, learner } = setup();
    for (let i = 0; i < 300; i++) learner.pass(target, 2, 1.2);
    for (let i = 0; i < 3 * FORGET; i++) learner.pass(target, 2, 2.4);
    expect(costAt(learner.snapshot(), 1, 2)).to.be.closeTo(2.4, 0.05 * 2.4);
  });

  it("learns the time of a step outside its passes", () => {
    let t = 0;
    const { target, learner } = setup(() => t);
    const sequence = new Int32Array(64);
    learner.begin(sequence, 8);
    for (let k = 0; k < 100; k++) {
      learner.step(0, 8 + k, [target]);
      learner.pass(target, 1, 3);
      t += 3 + 0.5; // a 3 ms pass and 0.5 ms of everything else
    }
    expect(learner.snapshot().stepOverheadMs).to.be.closeTo(0.5, 1e-9);
  });

  it("judges the lookup against the committed text in steps that do not run it (a point mass's acceptance is p(x))", () => {
    const { target, learner } = setup();
    // A text that repeats a 5-token motif: after the first round, the lookup's proposals are always right.
    const motif = [1, 2, 3, 4, 5];
    const text = Int32Array.from({ length: 120 }, (_, i) => motif[i % 5]!);
    const sequence = new Int32Array(text.length + 16);
    sequence.set(text.subarray(0, 10));
    learner.begin(sequence, 10);
    const state = (committed: number) => {
      // the state's bounds over the lookup's match length, as the decoders compute it
      const length = learner.options.lookup!.match(sequence, committed).length;
      let s = 0;
      while (s + 1 < BOUNDS.length && BOUNDS[s + 1]! <= length) s++;
      return s;
    };
    for (let committed = 10; committed < 100; committed++) {
      learner.step(state(committed), committed, [target]); // target alone: the lookup never runs
      sequence[committed] = text[committed]!; // the step commits the text's next token
    }
    const c = learner.snapshot();
    const longest = c.workload!.states[BOUNDS.length - 1]!;
    // (lookup, target) at positions 0 and 1 in the longest-match state: every proposal was right (the estimate
    // is shrunk towards the prior's 0.5 by 8 pseudo-verdicts against ~46 fading ones: ≈ 0.93).
    const rates = longest.acceptance[0]![2] as number[];
    expect(rates[0]).to.be.greaterThan(0.9);
    expect(rates[1]).to.be.greaterThan(0.9);
    // And it proposed (available > 0) there: the law moved from the prior's 50% abstentions.
    expect(longest.available[0]![0]).to.be.lessThan(0.1);
  });

  it("and finds it wrong where the text does not follow its matches", () => {
    const { target, learner } = setup();
    // Random tokens out of six: whatever earlier match the lookup finds, its next token is right one time in six.
    const rng = makeRng(5);
    const text = Int32Array.from({ length: 120 }, () => 1 + Math.floor(6 * rng()));
    const sequence = new Int32Array(text.length + 16);
    sequence.set(text.subarray(0, 10));
    learner.begin(sequence, 10);
    for (let committed = 10; committed < 100; committed++) {
      learner.step(1, committed, [target]);
      sequence[committed] = text[committed]!;
    }
    const rates = learner.snapshot().workload!.states[1]!.acceptance[0]![2] as number[];
    expect(rates[0]).to.be.lessThan(0.4);
  });
});
