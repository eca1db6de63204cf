// Vocabularies that differ only by padding, on a real tokenizer (docs/ALGORITHM.md §11): small random-weight
// qwen2 models carrying llama.cpp's Qwen2 tokenizer, padded as the converter pads to 151,936 ids (Qwen2.5-0.5B's
// size) and 152,064 (Qwen2.5-7B's), written at test time from the llama.cpp bundle of node-llama-cpp
// (test/helpers/padded-models.ts). The target puts much of its mass on padding ids only it has.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { linkSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hsd } from "../src/api/hsd.js";
import { HsdDecoder, type VerificationMutation } from "../src/engine/hsd.js";
import { scanModelFolder } from "../src/models/scan.js";
import { Rng } from "../src/util/rng.js";
import { chiSquareFit, detectableTotalVariation } from "./helpers/stats.js";
import { exactTwoTokenLaw } from "./helpers/exact-law.js";
import { EDITED_ID, LARGE, SMALL, writePaddedModels, type PaddedFiles } from "./helpers/padded-models.js";

const CLI = fileURLToPath(new URL("../ts-lib/cli/main.js", import.meta.url));
const PROMPTS = [
  "Hello",
  "She said Hello",
  "The state of the Union is",
  "Once upon a time",
  "def main():",
  "Hello world, this is",
  "In the early years of the century,",
  "We must never forget that Hello",
];

describe("vocabularies that differ only by padding (real Qwen2 tokenizer, 151,936 vs 152,064 ids)", function () {
  this.timeout(600_000);
  let dir: string;
  let files: PaddedFiles;
  let hsd: Hsd;
  let names: string[];

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), "hsd-padded-"));
    files = await writePaddedModels(dir, join(dir, "vocab"));
    hsd = await Hsd.open({ models: files.pair, threads: 1 });
    names = hsd.models.map((m) => m.info.file);
  });
  after(async function () {
    await hsd?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("groups the two sizes as one family, the larger the target", function () {
    expect(names).to.deep.equal([basename(files.draft), basename(files.target)]);
    expect(hsd.models.map((m) => m.native.vocabSize)).to.deep.equal([SMALL, LARGE]);
    expect(hsd.rejected).to.deep.equal([]);
  });

  it("refuses a real mismatch, naming the first differing id (a changed text, another tokenizer, another EOS)", async function () {
    const mixed = join(dir, "mixed");
    mkdirSync(mixed);
    for (const f of [files.draft, files.target, files.editedText, files.otherTokenizer, files.otherEos])
      linkSync(f, join(mixed, basename(f)));
    const scan = await scanModelFolder(mixed);
    expect(scan.models.map((m) => m.file)).to.deep.equal(names);
    const why = new Map(scan.rejected.map((r) => [basename(r.path), r.reason]));
    const target = basename(files.target);
    expect(why.get(basename(files.editedText))).to.equal(
      `its vocabulary differs from the target ${target}'s: id ${EDITED_ID} is "<edited>" (normal) here and "atus" (normal) in the target`,
    );
    expect(why.get(basename(files.otherTokenizer))).to.match(
      /^its vocabulary differs from the target .*'s: id \d+ is ".*" \(normal\) here and ".*" \(normal\) in the target$/,
    );
    expect(why.get(basename(files.otherEos))).to.match(/eos token id 151645 vs 151643/);
    // Named files must all take part: a refusal is an error there.
    const err = await Hsd.open({ files: [files.editedText, files.target] }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.name).to.equal("VocabularyMismatchError");
    expect(err?.message).to.match(new RegExp(`id ${EDITED_ID} is`));
  });

  it("`hsd plan` uses both models and says why", function () {
    const cache = mkdtempSync(join(tmpdir(), "hsd-padded-cache-"));
    try {
      const args = ["plan", "--models", files.pair, "--threads", "1", "--greedy", "--max-threshold", "3"];
      const run = (extra: string[]) =>
        spawnSync(process.execPath, [CLI, ...args, "--calibration-tokens", "8", "--ngram", "off", ...extra], {
          encoding: "utf8",
          env: { ...process.env, HSD_CACHE_DIR: cache },
          timeout: 300_000,
        });
      const json = run(["--json"]);
      expect(json.status, json.stderr).to.equal(0);
      const plan = JSON.parse(json.stdout);
      expect(plan.candidates.map((c: { name: string }) => c.name)).to.deep.equal(names);
      expect(plan.candidates[0].vocabulary).to.equal(
        "same tokenizer; the target has 128 extra padding ids (151936 vs 152064 tokens)",
      );
      expect(plan.candidates[1].vocabulary).to.equal("the target");
      expect(plan.rejected).to.deep.equal([]);
      const text = run([]);
      expect(text.status, text.stderr).to.equal(0);
      expect(text.stdout).to.include(`${names[0]}: same tokenizer; the target has 128 extra padding ids`);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it(`greedy: the output through the pair is the target's own, padding ids included, on ${PROMPTS.length} prompts`, async function () {
    let padding = 0;
    for (const prompt of PROMPTS) {
      const greedy = { sampling: { greedy: true }, maxTokens: 24 };
      const reference = (
        await hsd.generate(prompt, { ...greedy, hierarchy: { files: [names[1]!], thresholds: [] } }).result
      ).tokens;
      padding += reference.filter((t) => t >= SMALL).length;
      for (const T of [1, 3, 6]) {
        const r = await hsd.generate(prompt, { ...greedy, hierarchy: { files: names, thresholds: [T] } }).result;
        expect(r.tokens, `${prompt} T=${T}`).to.deep.equal(reference);
        expect(r.stats.levels[0]!.accepted, "drafts were accepted").to.be.greaterThan(0);
      }
      const lookup = await hsd.generate(prompt, {
        ...greedy,
        hierarchy: { files: ["ngram-lookup", ...names], thresholds: [4, 3] },
      }).result;
      expect(lookup.tokens, `${prompt} lookup > draft > target`).to.deep.equal(reference);
    }
    expect(padding, "the target emitted padding ids the draft lacks").to.be.at.least(PROMPTS.length / 4);
  });

  it("greedy: a draft with more ids than its target never proposes the ones the target lacks", async function () {
    const wide = await Hsd.open({ models: files.wideDraftPair, threads: 1 });
    try {
      const [draft, target] = wide.models.map((m) => m.info.file);
      expect(wide.models.map((m) => m.native.vocabSize)).to.deep.equal([LARGE, SMALL]);
      for (const prompt of PROMPTS) {
        const greedy = { sampling: { greedy: true }, maxTokens: 16 };
        const reference = (
          await wide.generate(prompt, { ...greedy, hierarchy: { files: [target!], thresholds: [] } }).result
        ).tokens;
        const r = await wide.generate(prompt, { ...greedy, hierarchy: { files: [draft!, target!], thresholds: [3] } })
          .result;
        expect(r.tokens, prompt).to.deep.equal(reference);
      }
    } finally {
      await wide.dispose();
    }
  });

  it("sampling: the first two tokens follow the target's exact law across the pair, mostly on padding ids only the target has; a residual that ignores them fails", async function () {
    const prompt = "Hello";
    const sampling = { temperature: 1, topK: 4, topP: 1, minP: 0 };
    const exact = await exactTwoTokenLaw(hsd, prompt, sampling);
    let beyond = 0;
    for (const [key, mass] of exact) if (key.split(",").some((x) => Number(x) >= SMALL)) beyond += mass;
    expect(beyond, "the target's mass on ids the draft lacks").to.be.greaterThan(0.5);
    for (const m of hsd.models) m.context.setSampling({ greedy: false, ...sampling });
    const levels = hsd.models.map((m) => m.level);
    const tokens = hsd.target.native.tokenize(prompt, true, false);
    const SAMPLES = 1500;
    for (const mutation of [undefined, "residual-within-draft"] as (VerificationMutation | undefined)[]) {
      const decoder = new HsdDecoder(levels, { thresholds: [2], greedy: false, sampling, rng: new Rng(7), mutation });
      const counts = new Map<string, number>();
      const seq = new Int32Array(64);
      let accepted = 0;
      for (let s = 0; s < SAMPLES; s++) {
        seq.set(tokens);
        let committed = tokens.length;
        while (committed < tokens.length + 2) committed += await decoder.step(seq, committed);
        const key = `${seq[tokens.length]},${seq[tokens.length + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        accepted = decoder.stats[0]!.accepted;
      }
      const fit = chiSquareFit(counts, exact, SAMPLES);
      const tv = detectableTotalVariation(SAMPLES, fit.degreesOfFreedom);
      const label = `${mutation ?? "engine"}: chi2=${fit.chiSquare.toFixed(1)} dof=${fit.degreesOfFreedom} TV=${fit.totalVariation.toFixed(3)} (detects TV >= ${tv.toFixed(3)} with power 0.99)`;
      console.log(`      ${label}; ${accepted} drafts accepted`);
      if (mutation) expect(fit.pValue, label).to.be.lessThan(1e-6);
      else {
        expect(fit.pValue, label).to.be.greaterThan(1e-6);
        expect(accepted, "drafts were accepted").to.be.greaterThan(SAMPLES / 10);
      }
    }
  });
});
