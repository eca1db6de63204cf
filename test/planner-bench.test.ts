// The benchmark's pure parts (scripts/bench-lib): statistics, method selection from a calibration, analysis of
// runs, the report and the plot. The end-to-end run itself needs the models and is `npm run bench`.
import { expect } from "chai";
import { batchingNote, type PlanReport } from "../src/api/plan.js";
import type { RunStats } from "../src/engine/generate.js";
import { HsdDecoder } from "../src/engine/hsd.js";
import { Rng } from "../src/util/rng.js";
import { expectedLatency, MeasuredPassCost, type PassCostSample } from "../src/planner/index.js";
import { chain as costChain } from "./helpers/chains.js";
import { analyse, bestSingleOf } from "../scripts/bench-lib/analyse.js";
import { buildMethods, CalibratedModel, shortNames } from "../scripts/bench-lib/methods.js";
import { parseBenchOptions } from "../scripts/bench-lib/options.js";
import { markdownReport, type ReportContext } from "../scripts/bench-lib/report.js";
import { cellSeed, hashTokens, type RunRecord } from "../scripts/bench-lib/runner.js";
import { median, quantile, rotate, summarize } from "../scripts/bench-lib/stats.js";
import { niceAxis, plotSvg } from "../scripts/bench-lib/svg.js";
import { stubFamily } from "../scripts/bench-lib/stub-level.js";

/** A plan report as planFromCalibration writes it, for 4 candidates with affine costs. */
function fakePlan(): PlanReport {
  const files = ["hsd-tiny-0.1M.gguf", "hsd-tiny-0.6M.gguf", "hsd-tiny-1.8M.gguf", "hsd-tiny-5M.gguf"];
  const base = [0.05, 0.1, 0.18, 0.3];
  const acceptance = [
    [null, 0.8, 0.65, 0.6],
    [null, null, 0.8, 0.68],
    [null, null, null, 0.75],
    [null, null, null, null],
  ];
  const chain = (names: string[], thresholds: number[]) => ({
    chain: names,
    thresholds,
    predictedMsPerToken: 0,
    predictedSpeedupVsAutoregressive: 1,
    predictedTokensPerTargetPass: 1,
  });
  const curve = (i: number) => Array.from({ length: 18 }, (_, k) => ({ n: k + 1, ms: base[i]! * (1 + 0.15 * k) }));
  return {
    candidates: files.map((file, i) => ({
      file,
      name: file,
      kind: "model" as const,
      parameters: [0.1e6, 0.6e6, 1.8e6, 5e6][i]!,
      fileSize: 0,
      quantisation: "F16",
      vocabulary: i === 3 ? "the target" : "same tokenizer",
      costs: {
        hot: curve(i),
        cold: curve(i),
        reshape: Array.from({ length: 18 }, (_, k) => ({ n: k + 1, ms: 0.2 * base[i]! })),
        autoregressiveMs: base[i]!,
      },
    })),
    acceptance,
    best: {
      ...chain([files[0]!, files[2]!, files[3]!], [3, 4]),
      predictedSpeedupVsBestSingle: 1,
      method: "exhaustive",
    },
    bestSingle: chain([files[0]!, files[3]!], [3]),
    autoregressive: chain([files[3]!], []),
    policy: null,
    maxThreshold: 16,
    calibration: { device: "test", threads: 1, greedy: true, prompts: 8, fromCache: false },
    notes: [],
  };
}

function fakeStats(levels: number, tokens: number, wallMs: number): RunStats {
  return {
    tokens,
    targetPasses: tokens / 2,
    wallMs,
    msPerToken: wallMs / tokens,
    tokensPerSecond: (1000 * tokens) / wallMs,
    engineMs: 0.1 * wallMs,
    levels: Array.from({ length: levels }, (_, i) => ({
      name: `L${i}`,
      kind: "model" as const,
      passes: tokens,
      tokensEvaluated: 2 * tokens,
      drafted: i < levels - 1 ? 100 : 0,
      judged: i < levels - 1 ? 80 : 0,
      accepted: i < levels - 1 ? 60 : 0,
      acceptanceRate: i < levels - 1 ? 0.75 : 0,
      acceptanceByPosition: i < levels - 1 ? [0.8, 0.7] : [],
      judgedByPosition: i < levels - 1 ? [50, 30] : [],
      scoreMs: 0.2 * wallMs,
    })),
  };
}

describe("bench: statistics and options", () => {
  it("median, quantile, summary and rotation", () => {
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 2, 3])).to.equal(2.5);
    expect(quantile([0, 10], 0.25)).to.equal(2.5);
    const s = summarize([2, 4, 3]);
    expect(s).to.include({ median: 3, min: 2, max: 4, n: 3 });
    expect(s.relativeSpread).to.be.closeTo(2 / 3, 1e-12);
    expect(rotate([1, 2, 3], 4)).to.deep.equal([2, 3, 1]);
    expect(() => median([])).to.throw(/empty/);
    expect(cellSeed(1, 0, 0)).to.not.equal(cellSeed(1, 1, 0));
    expect(hashTokens([1, 2])).to.not.equal(hashTokens([2, 1]));
  });

  it("parses flags and rejects bad values naming the flag", () => {
    const o = parseBenchOptions([
      "--prompts",
      "2",
      "--max-tokens",
      "32",
      "--repetitions",
      "5",
      "--sampling",
      "t1",
      "--no-llama",
    ]);
    expect(o).to.include({ prompts: 2, maxTokens: 32, repetitions: 5, llama: false, threads: 1 });
    expect(o.sampling).to.deep.equal(["t1"]);
    expect(parseBenchOptions([]).sampling).to.deep.equal(["greedy", "t1"]);
    const fail = (args: string[]) => {
      const write = process.stderr.write;
      const exit = process.exit;
      process.stderr.write = (() => true) as typeof process.stderr.write;
      process.exit = ((code: number) => {
        throw new Error(`exit ${code}`);
      }) as typeof process.exit;
      try {
        parseBenchOptions(args);
      } finally {
        process.stderr.write = write;
        process.exit = exit;
      }
    };
    expect(() => fail(["--prompts", "0"])).to.throw(/exit/);
    expect(() => fail(["--sampling", "beam"])).to.throw(/exit/);
  });
});

describe("plan notes", () => {
  it("say when the target's passes do not get cheaper per token with more tokens, and only then", () => {
    const plan = fakePlan();
    // The fixture's costs grow by 15% a token: batching pays, nothing to say.
    expect(batchingNote(plan.candidates, "cpu")).to.equal(null);
    const target = plan.candidates[3]!;
    if (target.kind !== "model") throw new Error("fixture");
    const linear = Array.from({ length: 18 }, (_, k) => ({ n: k + 1, ms: 0.3 * (k + 1) }));
    target.costs = { ...target.costs, hot: linear, cold: linear };
    const note = batchingNote(plan.candidates, "cpu");
    expect(note).to.match(/over 4 tokens costs 4\.0x a one-token pass/);
    expect(note).to.contain("npm run build:llama -- --backend cpu --single-cpu");
    // On a GPU the build hint does not apply; the measurement is still said.
    expect(batchingNote(plan.candidates, "cuda: NVIDIA H200")).to.not.contain("build:llama");
    // Just under the line (c(4) = 3.5 c(1)): no note.
    const under = [1, 2, 3, 4].map((n) => ({ n, ms: 0.3 * (n === 1 ? 1 : n === 4 ? 3.5 : n) }));
    target.costs = { ...target.costs, hot: under, cold: under };
    expect(batchingNote(plan.candidates, "cpu")).to.equal(null);
  });
});

describe("bench: methods from a calibration", () => {
  const plan = fakePlan();
  const model = new CalibratedModel(plan);

  it("short names drop the common prefix at a separator", () => {
    expect(shortNames(plan.candidates.map((c) => c.name))).to.deep.equal(["0.1M", "0.6M", "1.8M", "5M"]);
    expect(shortNames(["ngram-lookup", "a-0.1M.gguf", "a-5M.gguf"])).to.deep.equal(["lookup", "0.1M", "5M"]);
    expect(shortNames(["dev-a.gguf", "dev-b.gguf"])).to.deep.equal(["a", "b"]);
  });

  it("best thresholds of a fixed chain equal brute force over expectedLatency", () => {
    const chain = [0, 1, 3];
    const best = model.bestThresholds(chain, 8);
    let brute = Number.POSITIVE_INFINITY;
    for (let a = 1; a <= 8; a++) {
      for (let b = 1; b <= 8; b++) brute = Math.min(brute, model.predict(chain, [a, b]).msPerToken);
    }
    expect(best.ms).to.be.closeTo(brute, 1e-12);
    expect(model.predict(chain, best.thresholds).msPerToken).to.be.closeTo(best.ms, 1e-12);
  });

  it("runs autoregressive, each single draft at its best T, the optimiser's pick, others, and node-llama-cpp once each", () => {
    const methods = buildMethods(model, { maxThreshold: 8, others: 2, llama: true, llamaCpp: false, adaptive: false });
    const roles = methods.flatMap((m) => m.roles);
    expect(roles.filter((r) => r === "autoregressive")).to.have.length(1);
    expect(roles.filter((r) => r === "single")).to.have.length(3);
    expect(roles.filter((r) => r === "optimiser")).to.have.length(1);
    expect(roles.filter((r) => r === "other")).to.have.length(2);
    expect(new Set(methods.map((m) => m.id)).size).to.equal(methods.length);
    const opt = methods.find((m) => m.roles.includes("optimiser"))!;
    expect(opt.chain).to.deep.equal([0, 2, 3]);
    const others = methods.filter((m) => m.roles.includes("other"));
    expect(others[0]!.chain).to.deep.equal([0, 1, 2, 3]); // the full chain first
    // The prediction is the formula on the report's own samples, assembled here independently of the planner input.
    for (const m of methods.filter((x) => x.kind === "hsd")) {
      const c = m.chain.map((i) => plan.candidates[i]!).filter((x) => x.kind === "model");
      const curve = (samples: PassCostSample[]) => new MeasuredPassCost(samples).cost;
      const byHand = expectedLatency(
        costChain({
          costs: c.map((x) => curve(x.costs.hot)),
          cold: c.map((x) => curve(x.costs.cold)),
          reshape: c.map((x) => curve(x.costs.reshape)),
          autoregressiveMs: c[c.length - 1]!.costs.autoregressiveMs,
          thresholds: m.thresholds,
          acceptance: m.chain.slice(1).map((hi, j) => plan.acceptance[m.chain[j]!]![hi]!),
        }),
      );
      expect(m.predicted!.msPerToken, m.label).to.be.closeTo(byHand.msPerToken, 1e-12);
    }
    const llama = methods.find((m) => m.kind === "node-llama-cpp")!;
    expect(llama.chain).to.deep.equal([0, 3]);
    expect(llama.predicted).to.equal(null);
    // A pick equal to a single draft is one method with two roles.
    const samePick = new CalibratedModel({
      ...plan,
      best: {
        ...plan.best,
        chain: [plan.candidates[0]!.name, plan.candidates[3]!.name],
        thresholds: [model.bestThresholds([0, 3], 8).thresholds[0]!],
      },
    });
    const m2 = buildMethods(samePick, { maxThreshold: 8, others: 0, llama: false, llamaCpp: false, adaptive: false });
    expect(m2).to.have.length(4);
    expect(m2.find((m) => m.roles.includes("optimiser"))!.roles).to.deep.equal(["single", "optimiser"]);
  });
});

describe("bench: analysis, report and plot", () => {
  const plan = fakePlan();
  const model = new CalibratedModel(plan);
  const methods = buildMethods(model, { maxThreshold: 8, others: 1, llama: true, llamaCpp: true, adaptive: false });

  function records(): RunRecord[] {
    const out: RunRecord[] = [];
    for (let rep = 0; rep < 3; rep++) {
      for (let p = 0; p < 2; p++) {
        methods.forEach((m, slot) => {
          const msPerToken = (m.predicted?.msPerToken ?? 0.25) * (1 + 0.05 * rep);
          out.push({
            cell: "greedy/prose",
            method: m.id,
            mode: "greedy",
            repetition: rep,
            prompt: p,
            slot,
            tokens: 50,
            wallMs: 50 * msPerToken * 1.1,
            decodeMs: 48 * msPerToken,
            decodeTokens: 48,
            tokensHash: m.roles.includes("other") && p === 1 ? "different" : "same",
            stats: m.kind === "hsd" ? fakeStats(m.chain.length, 50, 50 * msPerToken) : null,
            // llama.cpp's combinations: the lookup size n = 3 is made the fastest.
            ...(m.kind === "llama.cpp" && m.id.includes("n=3") ? { decodeMs: 48 * 0.2 } : {}),
            predictions: m.kind === "hsd" ? null : { used: 30, unused: 5, validated: 35, refuted: 15 },
          });
        });
      }
    }
    return out;
  }

  it("medians over repetitions, ratios, prediction errors, greedy agreement and acceptance", () => {
    const results = analyse(model, methods, records(), "greedy");
    expect(results).to.have.length(methods.length);
    const ar = results.find((r) => r.roles.includes("autoregressive"))!;
    expect(ar.decodeMsPerToken.median).to.be.closeTo(0.3 * 1.05, 1e-12);
    expect(ar.predictionError).to.be.closeTo(0.05, 1e-9);
    const best = bestSingleOf(results)!;
    const singleMedians = results.filter((r) => r.roles.includes("single")).map((r) => r.decodeMsPerToken.median);
    expect(best.decodeMsPerToken.median).to.equal(Math.min(...singleMedians));
    for (const r of results) {
      expect(r.speedupVsAutoregressive).to.be.closeTo(ar.decodeMsPerToken.median / r.decodeMsPerToken.median, 1e-12);
    }
    const other = results.find((r) => r.roles.includes("other"))!;
    expect(other.greedyMatches).to.deep.equal({ same: 3, of: 6 });
    const single = results.find((r) => r.roles.includes("single"))!;
    const singleChain = methods.find((m) => m.id === single.id)!.chain;
    expect(single.levels![0]!.acceptance).to.deep.equal({
      measured: 0.75,
      calibrated: plan.acceptance[singleChain[0]!]![singleChain[1]!],
      judged: 6 * 80,
    });
    expect(single.levels![0]!.acceptanceByPosition).to.deep.equal([0.8, 0.7]);
    // Replay with the measured acceptance by position is the formula with those rates.
    const chain = methods.find((m) => m.id === single.id)!.chain;
    const replay = expectedLatency(
      costChain({
        costs: chain.map((i) => (n: number) => model.costAt(i, n, "hot")),
        cold: chain.map((i) => (n: number) => model.costAt(i, n, "cold")),
        reshape: chain.map((i) => (n: number) => model.costAt(i, n, "reshape")),
        thresholds: single.thresholds,
        acceptance: [0.75],
        byPosition: [[0.8, 0.7]],
      }),
    );
    expect(single.replay!.measuredAcceptanceByPosition).to.be.closeTo(replay.msPerToken, 1e-12);
    const llama = results.find((r) => r.kind === "node-llama-cpp")!;
    expect(llama.llamaAcceptance).to.equal(0.7);
    // Ratios to llama.cpp's best ngram-simple,draft-simple: its fastest lookup size, measured.
    const combo = results.find((r) => r.id.includes("ngram-simple,draft-simple n=3"))!;
    expect(combo.speedupVsLlamaCppBest).to.equal(1);
    for (const r of results) {
      expect(r.speedupVsLlamaCppBest).to.be.closeTo(combo.decodeMsPerToken.median / r.decodeMsPerToken.median, 1e-12);
    }
    const llamaCppRuns = results.filter((r) => r.kind === "llama.cpp");
    expect(llamaCppRuns.map((r) => r.label)).to.include.members([
      `llama.cpp draft-simple T=${methods.find((m) => m.kind === "node-llama-cpp")!.thresholds[0]}`,
      "llama.cpp ngram-simple",
      "llama.cpp ngram-simple,draft-simple n=12 (default)",
    ]);
  });

  it("the markdown flags predictions more than 10% off, and the SVG is well formed", () => {
    const results = analyse(model, methods, records(), "greedy");
    const ctx: ReportContext = {
      title: "test",
      command: "npm run bench",
      device: "cpu",
      threads: 1,
      models: plan.candidates.flatMap((c) =>
        c.kind === "model" ? [{ file: c.file, parameters: c.parameters, costMs1: c.costs.hot[0]!.ms }] : [],
      ),
      maxTokens: 50,
      repetitions: 3,
      cells: [{ cell: "greedy/prose", mode: "greedy", workload: "prose", prompts: 2, calibrationPrompts: 8 }],
      plans: { "greedy/prose": { fromCache: true, policy: null } },
      startedAt: "now",
      wallSeconds: 1,
    };
    const md = markdownReport(ctx, { "greedy/prose": results });
    expect(md).to.include("| method | role | ms/token median");
    expect(md).to.match(
      /Every hsd method's measured ms\/token is within 10% of prediction \(1\), calibrated before the runs/,
    );
    const off = results.map((r) => (r.predictionError === null ? r : { ...r, predictionError: 0.2 }));
    const offMd = markdownReport(ctx, { "greedy/prose": off });
    expect(offMd).to.include("+20.0% **!**");
    expect(offMd).to.match(/Outside 10% of prediction \(1\), calibrated before the runs: /);
    const svg = plotSvg("a <b> & c", { "greedy/prose": results });
    expect(svg.startsWith("<svg")).to.equal(true);
    expect(svg.trim().endsWith("</svg>")).to.equal(true);
    expect(svg).to.include("a &lt;b&gt; &amp; c");
    expect((svg.match(/<rect /g) ?? []).length).to.equal(results.length + 1);
    expect(niceAxis(0.87)).to.deep.equal({ max: 1, step: 0.2 });
  });

  it("stub levels drive the real recursion with plausible acceptance (used by bench-micro)", async () => {
    for (const greedy of [true, false]) {
      const levels = stubFamily(3, 64, 32, 1);
      const decoder = new HsdDecoder(levels, { thresholds: [2, 4], greedy, rng: new Rng(2) });
      const seq = new Int32Array(4096);
      let tokens = 0;
      for (let i = 0; i < 200; i++) tokens += await decoder.step(seq, 10 + tokens);
      const rate = decoder.stats[0]!.acceptanceRate;
      expect(rate, `greedy=${greedy}`).to.be.within(0.3, 0.99);
      expect(tokens / 200).to.be.above(1);
    }
  });
});
