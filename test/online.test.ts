// Planning while generating through the API (docs/ALGORITHM.md §10) on the bundled GGUF family: the default
// generation starts from a quick prior, learns, keeps the target's greedy tokens, stores what it learned for the
// next instance, ignores a damaged store; a pinned plan can learn and report the estimates' prediction; the
// re-planning worker answers as the calling thread does.
import { expect } from "chai";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Hsd } from "../src/api/hsd.js";
import { InvalidOptionError } from "../src/errors.js";
import { replanNamed, fixedPlan, type ReplanInput } from "../src/api/adaptive.js";
import { WorkerReplanner } from "../src/api/replanner.js";
import { calibrate } from "../src/calibration/calibrate.js";
import { bundledFamily } from "./helpers/models.js";
import { TIE_GAP, topTwoGap } from "./helpers/ties.js";

const GREEDY = { greedy: true } as const;
const PROMPTS = [
  "The history of the railroad in America begins with",
  "one two three four, one two three four, one two three four, one two three four, one two",
  "We must never forget that the strength of our nation",
];

describe("planning while generating (API, bundled family)", function () {
  this.timeout(600_000);
  const family = bundledFamily();
  const target = basename(family.files[family.files.length - 1]!);
  let cache: string;
  let saved: string | undefined;
  before(() => {
    saved = process.env.HSD_CACHE_DIR;
    cache = mkdtempSync(join(tmpdir(), "hsd-online-"));
    process.env.HSD_CACHE_DIR = cache;
  });
  after(() => {
    if (saved === undefined) delete process.env.HSD_CACHE_DIR;
    else process.env.HSD_CACHE_DIR = saved;
    rmSync(cache, { recursive: true, force: true });
  });

  it("the default generation plans while generating, keeps the target's greedy tokens, and the next instance starts from what it learned", async () => {
    const hsd = await Hsd.open({ threads: 1 });
    const learnedFiles = () => readdirSync(cache).filter((f) => f.startsWith("learned-"));
    try {
      let first = true;
      for (const prompt of PROMPTS) {
        const alone = await hsd.generate(prompt, {
          hierarchy: { files: [target] },
          sampling: GREEDY,
          maxTokens: 48,
        }).result;
        expect(alone.online, "a pinned run does not learn unless asked").to.equal(null);
        const r = await hsd.generate(prompt, { sampling: GREEDY, maxTokens: 48 }).result;
        const at = r.tokens.findIndex((t, i) => t !== alone.tokens[i]);
        if (at >= 0 || r.tokens.length !== alone.tokens.length) {
          // Only at an argmax tie (helpers/ties.ts) may the outputs part.
          const gap = await topTwoGap(hsd.target.native, prompt, alone.tokens.slice(0, at));
          expect(gap, `"${prompt}" differs at token ${at}`).to.be.lessThan(TIE_GAP);
        }
        expect(r.plan).to.equal(null);
        expect(r.online!.adapt).to.equal(true);
        expect(r.online!.prior).to.equal("quick");
        // Only the first generation waits for the prior.
        if (first) expect(r.online!.priorMs).to.be.greaterThan(0);
        else expect(r.online!.priorMs).to.equal(0);
        first = false;
        expect(r.online!.predictedMsPerToken).to.be.greaterThan(0);
      }
      expect(learnedFiles()).to.have.length(1);
    } finally {
      await hsd.dispose();
    }
    const next = await Hsd.open({ threads: 1 });
    try {
      const r = await next.generate(PROMPTS[0]!, { sampling: GREEDY, maxTokens: 16 }).result;
      expect(r.online!.prior).to.equal("learned");
    } finally {
      // What this generation learned is written after its stream ended; dispose() waits for the write.
      await next.dispose();
    }
    // A damaged store is ignored: the next instance starts from the (cached) quick calibration and rewrites it.
    writeFileSync(join(cache, learnedFiles()[0]!), '{"calibration": {"models": [');
    const third = await Hsd.open({ threads: 1 });
    try {
      const r = await third.generate(PROMPTS[0]!, { sampling: GREEDY, maxTokens: 16 }).result;
      expect(r.online!.prior).to.equal("quick");
    } finally {
      await third.dispose();
    }
  });

  it("a pinned plan can learn (its prediction under the estimates is reported) but not adapt", async () => {
    const hsd = await Hsd.open({ threads: 1 });
    try {
      const files = [basename(family.files[0]!), target];
      const r = await hsd.generate(PROMPTS[0]!, {
        hierarchy: { files, thresholds: [3] },
        learn: true,
        sampling: GREEDY,
        maxTokens: 32,
      }).result;
      expect(r.online!.adapt).to.equal(false);
      expect(r.online!.switches).to.deep.equal([]);
      expect(r.online!.plan).to.equal(`${files.join(">")}:3`);
      expect(r.online!.predictedMsPerToken).to.be.greaterThan(0);
      let error: unknown = null;
      try {
        await hsd.generate(PROMPTS[0]!, { hierarchy: { files, thresholds: [3] }, adapt: true }).result;
      } catch (e) {
        error = e;
      }
      expect(error).to.be.instanceOf(InvalidOptionError);
      expect(String(error)).to.match(/adapt/);
    } finally {
      await hsd.dispose();
    }
  });

  it("the re-planning worker gives what re-planning on the calling thread gives", async () => {
    const hsd = await Hsd.open({ threads: 1 });
    const worker = new WorkerReplanner();
    try {
      const calibration = await calibrate(hsd.models, {
        transform: { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 },
        threads: 1,
        device: "test",
        maxThreshold: 8,
        quick: true,
        lookup: { minMatch: 1, maxMatch: 8, states: [0, 1, 2, 3, 4, 6, 8] },
      });
      const input: ReplanInput = {
        calibration,
        infos: hsd.models.map((m) => m.info),
        maxThreshold: 8,
        ngram: "auto",
        running: fixedPlan([target], [], 1),
        explore: 1,
      };
      const here = replanNamed(input);
      const there = await worker.replan(input);
      expect(worker.background).to.equal(true);
      expect(there).to.deep.equal(here);
      // Exploration offers the first draft candidate alone over the target, unless that is already the best plan
      // (which the quick estimates of a fast machine can make it).
      const offered = here.explore ?? here.best;
      expect(offered.chains[0]!.names).to.deep.equal([basename(family.files[0]!), target]);
    } finally {
      await worker.close();
      await hsd.dispose();
    }
  });
});
