// Every option is checked against what can work, and every deliberate error is an HsdError subclass naming the
// option or file: wrong types, impossible values, thresholds that cannot fit the context, extreme temperatures.
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Hsd, type GenerateRequest, type OpenOptions } from "../src/api/hsd.js";
import { GgufFormatError, HsdError, InvalidOptionError } from "../src/errors.js";
import { bundledFamily } from "./helpers/models.js";

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: Error) => e,
  );
}

describe("options are checked up front, errors are HsdErrors", function () {
  this.timeout(120_000);
  const family = bundledFamily();
  const small = basename(family.files[0]!);
  const target = basename(family.files[family.files.length - 1]!);
  let hsd: Hsd;
  before(async () => {
    hsd = await Hsd.open({ models: family.dir, threads: 1 });
  });
  after(async () => hsd?.dispose());

  const badOpen: [string, unknown, RegExp][] = [
    ["contextSize -5", { contextSize: -5 }, /contextSize must be an integer from 16/],
    ["contextSize 2.5", { contextSize: 2.5 }, /contextSize/],
    ['flashAttention "maybe"', { flashAttention: "maybe" }, /flashAttention must be one of auto, on, off/],
    ['files "x.gguf" (not an array)', { files: "x.gguf" }, /files must be an array of non-empty strings/],
    ["threads 0", { threads: 0 }, /threads must be an integer >= 1/],
    ["gpuLayers -1", { gpuLayers: -1 }, /gpuLayers must be an integer >= 0/],
    ['evaluation "fast"', { evaluation: "fast" }, /evaluation must be one of sync, async/],
    ["models 42", { models: 42 }, /models must be a non-empty string/],
  ];
  for (const [name, options, message] of badOpen) {
    it(`Hsd.open with ${name}: InvalidOptionError`, async function () {
      const error = await failure(Hsd.open(options as OpenOptions));
      expect(error).to.be.instanceOf(InvalidOptionError);
      expect(error.message).to.match(message);
    });
  }

  it("Hsd.open with a folder among the files: GgufFormatError naming it", async function () {
    const error = await failure(Hsd.open({ files: [family.dir] }));
    expect(error).to.be.instanceOf(GgufFormatError);
    expect(error.message)
      .to.contain(family.dir)
      .and.match(/not a regular file \(a directory\)/);
  });

  const pinned = { files: [small, target], thresholds: [3] };
  const badRequests: [string, unknown, RegExp][] = [
    ['stop "abc" (not an array)', { stop: "abc" }, /stop must be an array of non-empty strings/],
    ["stop [42]", { stop: [42] }, /stop must be an array/],
    [
      "thresholds [0]",
      { hierarchy: { files: [small, target], thresholds: [0] } },
      /thresholds\[0\] must be an integer >= 1/,
    ],
    ["maxTokens 0", { maxTokens: 0 }, /maxTokens must be an integer >= 1/],
    [
      "temperature -1",
      { hierarchy: pinned, sampling: { temperature: -1 } },
      /temperature must be a finite number >= 0/,
    ],
    ["temperature NaN", { hierarchy: pinned, sampling: { temperature: NaN } }, /temperature/],
    ["top-p 0", { hierarchy: pinned, sampling: { topP: 0 } }, /top-p must be in \(0, 1\]/],
    ["a signal that is not an AbortSignal", { signal: {} }, /signal must be an AbortSignal/],
    [
      "thresholds larger than the context",
      { hierarchy: { files: [small, target], thresholds: [100_000] }, maxTokens: 4 },
      /thresholds 100000: .*the context holds 512 tokens and the prompt takes \d+; use thresholds that add up to at most \d+/,
    ],
  ];
  for (const [name, request, message] of badRequests) {
    it(`generate with ${name}: InvalidOptionError`, async function () {
      const error = await failure((async () => hsd.generate("Once upon a time", request as GenerateRequest).result)());
      expect(error).to.be.instanceOf(InvalidOptionError);
      expect(error.message).to.match(message);
    });
  }

  it("generate with thresholds larger than one pass (a batch) in a larger context: InvalidOptionError", async function () {
    const wide = await Hsd.open({ files: [family.files[0]!, family.files.at(-1)!], threads: 1, contextSize: 1024 });
    try {
      const run = wide.generate("Once", { hierarchy: { files: [small, target], thresholds: [600] }, maxTokens: 4 });
      const error = await failure(run.result);
      expect(error).to.be.instanceOf(InvalidOptionError);
      expect(error.message).to.match(
        /thresholds 600: .*one pass takes at most 512 tokens; use thresholds that add up to at most 511$/,
      );
    } finally {
      await wide.dispose();
    }
  });

  it("plan with a maxThreshold the calibration cannot fit in the context, or of the wrong type: InvalidOptionError", async function () {
    const tooLarge = await failure(hsd.plan({ maxThreshold: 300 }));
    expect(tooLarge).to.be.instanceOf(InvalidOptionError);
    expect(tooLarge.message).to.match(/--max-threshold 300 .*512-token context.*use at most 103$/);
    const wrongType = await failure(hsd.plan({ maxThreshold: "8" as unknown as number }));
    expect(wrongType).to.be.instanceOf(InvalidOptionError);
    expect(wrongType.message).to.match(/maxThreshold must be an integer >= 1/);
  });

  it("generate with a prompt that is neither text nor token ids: InvalidOptionError", function () {
    expect(() => hsd.generate(42 as unknown as string)).to.throw(
      InvalidOptionError,
      /prompt must be text or an array of token ids/,
    );
  });

  it("a threshold that fits exactly generates; one token more is refused", async function () {
    const prompt = "Once upon a time";
    // The contexts hold 512 tokens (the bundled models' training context); a pass scores the thresholds' sum + 1.
    const fits = 512 - hsd.target.native.tokenize(prompt, true, false).length - 1;
    const request = (t: number): GenerateRequest => ({
      hierarchy: { files: [small, target], thresholds: [t] },
      sampling: { greedy: true },
      maxTokens: 1,
    });
    expect((await hsd.generate(prompt, request(fits)).result).tokens).to.have.length(1);
    expect(await failure(hsd.generate(prompt, request(fits + 1)).result)).to.be.instanceOf(InvalidOptionError);
  });

  it("extreme temperatures: 1e-40 samples the greedy tokens, 1e308 samples (uniformly) instead of refusing", async function () {
    const prompt = "The state of the Union is";
    const greedy = await hsd.generate(prompt, { hierarchy: pinned, sampling: { greedy: true }, maxTokens: 12 }).result;
    const cold = await hsd.generate(prompt, {
      hierarchy: pinned,
      sampling: { temperature: 1e-40, seed: 3 },
      maxTokens: 12,
    }).result;
    expect(cold.tokens).to.deep.equal(greedy.tokens);
    const hot = await hsd.generate(prompt, {
      hierarchy: pinned,
      sampling: { temperature: 1e308, topK: 0, topP: 1, minP: 0, seed: 3 },
      maxTokens: 12,
    }).result;
    expect(hot.tokens.length).to.be.greaterThan(0);
    expect(hot.stopReason).to.not.equal("eos");
  });

  it("every error a bad file or option produces is an HsdError", async function () {
    const dir = mkdtempSync(join(tmpdir(), "hsd-options-"));
    try {
      for (const attempt of [
        () => Hsd.open({ files: [join(dir, "missing.gguf")] }),
        () => Hsd.open({ models: join(dir, "nowhere") }),
        () => Hsd.open({ models: dir }),
        () => hsd.generate("   ").result,
        () => hsd.generate("x", { hierarchy: { files: ["nope.gguf"] } }).result,
      ])
        expect(await failure(attempt())).to.be.instanceOf(HsdError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
