// The pass-cost calibration (src/calibration/decode-costs.ts) on real models: which sizes it measures, that every
// way of timing a pass gets samples, and that its summary is what the latency formula can take.
import { expect } from "chai";
import { calibrationSizes, DecodeCostProbe, PASS_KINDS, summariseTimes } from "../src/calibration/decode-costs.js";
import { GREEDY, loadModel, type NativeModel } from "../src/native/index.js";
import { MeasuredPassCost } from "../src/planner/costs.js";
import { bundledFamily } from "./helpers/models.js";

describe("calibration: pass costs in the decoding pattern", function () {
  this.timeout(120_000);

  it("measures every size up to 6, then a widening grid that always ends at the largest", () => {
    expect(calibrationSizes(1)).to.deep.equal([1]);
    expect(calibrationSizes(4)).to.deep.equal([1, 2, 3, 4]);
    expect(calibrationSizes(7)).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
    expect(calibrationSizes(8)).to.deep.equal([1, 2, 3, 4, 5, 6, 8]);
    expect(calibrationSizes(18)).to.deep.equal([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 18]);
    expect(calibrationSizes(30)).to.deep.equal([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 28, 30]);
  });

  describe("on two bundled models", () => {
    let models: NativeModel[] = [];
    before(async () => {
      const files = bundledFamily().files;
      models = await Promise.all([files[0]!, files[files.length - 1]!].map((f) => loadModel(f)));
    });
    after(() => models.forEach((m) => m.dispose()));

    it("times each grid size four ways, the model decoding alone once per round, and summarises into valid cost tables", async () => {
      const text = models[1]!.tokenize(
        "The history of the country is the history of its people. ".repeat(20),
        true,
        false,
      );
      const probe = new DecodeCostProbe(models, {
        maxN: 8,
        text,
        lo: 16,
        hi: 120,
        threads: 1,
        flashAttention: "off",
        transform: GREEDY,
        seed: 3,
      });
      let rounds = 0;
      const times = await probe.measure(2, (done) => (rounds = done));
      probe.dispose();
      expect(rounds).to.equal(2);
      const sizes = calibrationSizes(8);
      for (const kind of PASS_KINDS) {
        times[kind].forEach((byN, m) => {
          byN.forEach((xs, n) => {
            // Decoding alone is one-token steps (10 timed per round, fewer if the model ends early).
            const expected = kind === "steady" ? (n === 1 ? -1 : 0) : sizes.includes(n) ? 2 : 0;
            if (expected === -1) expect(xs.length, `${kind} model ${m}`).to.be.within(1, 20);
            else expect(xs.length, `${kind} model ${m} n=${n}`).to.equal(expected);
            for (const ms of xs) expect(ms, `${kind} model ${m} n=${n}`).to.be.above(0);
          });
        });
      }
      const summary = summariseTimes(times);
      for (const table of [summary.hot, summary.cold, summary.reshape]) {
        table.mean.forEach((samples) => {
          expect(samples.map((s) => s.n)).to.deep.equal(sizes);
          expect(() => new MeasuredPassCost(samples)).to.not.throw();
        });
      }
      summary.steady.mean.forEach((samples) => expect(samples.map((s) => s.n)).to.deep.equal([1]));
    });

    it("stops at the time budget once the minimum rounds are done", async () => {
      const text = models[1]!.tokenize("It is the duty of every citizen to ".repeat(20), true, false);
      const probe = new DecodeCostProbe(models, {
        maxN: 3,
        text,
        lo: 16,
        hi: 100,
        threads: 1,
        flashAttention: "off",
        transform: GREEDY,
      });
      const times = await probe.measure(50, undefined, 0, 3);
      probe.dispose();
      expect(times.cold[0]![1]!).to.have.length(3);
    });
  });
});
