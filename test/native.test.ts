// Tests of the native layer (addon + src/native) on the real bundled GGUF models (models/tiny/*.gguf; the
// folder can be overridden with HSD_TEST_MODEL_DIR). Every llama.cpp context uses 1 thread.
import { expect } from "chai";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import {
  defaultThreads,
  loadModel,
  llamaBuildDescription,
  loadNative,
  packageRoot,
  physicalCoresFromCpuinfo,
  type LlamaContext,
  type LlamaModel,
  type SamplingTransform,
} from "../src/native/index.js";
import { readModelInfo } from "../src/gguf/model-info.js";

const modelDir = process.env.HSD_TEST_MODEL_DIR ?? path.join(packageRoot, "models", "tiny");
// Smallest first.
const modelFiles = fs.existsSync(modelDir)
  ? fs
      .readdirSync(modelDir)
      .filter((f) => f.endsWith(".gguf"))
      .map((f) => path.join(modelDir, f))
      .sort((a, b) => fs.statSync(a).size - fs.statSync(b).size)
  : [];

const CTX = { contextSize: 256, batchSize: 32, threads: 1 };
/** HSD_TEST_GPU_LAYERS=999 runs the same tests with every layer on the GPU (scripts/gpu/device-build.sh). */
const GPU = { gpuLayers: Number(process.env.HSD_TEST_GPU_LAYERS ?? 0) };
const T1: SamplingTransform = { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0 };
const TEXT =
  "The committee met on Tuesday to discuss the budget. After a long debate, the members agreed that the new plan " +
  "would cut costs without reducing services.";

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function argmaxOf(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Evaluates `tokens` at `position` with every row as output; returns the distributions and argmaxes. */
function evalRows(ctx: LlamaContext, tokens: Int32Array, position: number, V: number) {
  const probs = new Float32Array(tokens.length * V);
  const argmax = new Int32Array(tokens.length);
  ctx.evaluateSync(tokens, position, 0, { probs, argmax, rowOffset: 0 });
  return { probs, argmax };
}

describe("native layer", function () {
  let model: LlamaModel; // the smallest model
  let prompt: Int32Array;

  before(async function () {
    expect(modelFiles.length, `no GGUF models in ${modelDir}`).to.be.greaterThanOrEqual(1);
    model = await loadModel(modelFiles[0]!, GPU);
    prompt = model.tokenize(TEXT, false, false);
    expect(prompt.length).to.be.greaterThanOrEqual(20);
  });

  after(function () {
    model?.dispose();
  });

  describe("loading", function () {
    it("reports model facts and metadata", function () {
      expect(model.path).to.equal(modelFiles[0]);
      expect(model.vocabSize).to.be.greaterThan(256);
      expect(model.parameterCount).to.be.greaterThan(0);
      expect(model.sizeBytes).to.be.greaterThan(0);
      expect(model.trainContextSize).to.be.greaterThan(0);
      expect(model.description).to.be.a("string").and.not.equal("");
      const meta = model.metadata();
      expect(meta["general.architecture"]).to.be.a("string");
      expect(meta["tokenizer.ggml.model"]).to.be.a("string");
    });

    it("loads the backends once and names the devices", function () {
      const n = loadNative();
      expect(n.devices.some((d) => d.type === "cpu")).to.equal(true);
      expect(n.config.backend).to.be.a("string");
      expect(() => n.addon.loadBackends("/somewhere/else")).to.throw(/already loaded/);
    });

    it("says which llama.cpp build it runs on, and on Linux which CPU backend library ggml chose", function () {
      const n = loadNative();
      const said = llamaBuildDescription();
      if (n.config.source === "build-llama") expect(said).to.contain(`a local build (${n.config.libDir})`);
      else expect(said).to.match(/^prebuilt @node-llama-cpp\//);
      // The CPU plugin is loaded by now (a model is open); on Linux its file name comes from /proc/self/maps.
      if (process.platform === "linux") expect(said).to.match(/; CPU backend libggml-cpu[\w-]*\.so/);
    });

    describe("bad files give an Error naming the path, and the process keeps running", function () {
      let dir: string;
      const fixtures: Record<string, string> = {};
      before(function () {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hsd-native-"));
        const good = fs.readFileSync(modelFiles[0]!);
        const write = (name: string, data: Uint8Array | string) => {
          const p = path.join(dir, name);
          fs.writeFileSync(p, data);
          fixtures[name] = p;
        };
        fixtures["missing.gguf"] = path.join(dir, "missing.gguf");
        write("not-gguf.gguf", "this is a text file, not a model\n".repeat(100));
        write("empty.gguf", "");
        write("truncated-data.gguf", good.subarray(0, Math.floor(good.length * 0.6)));
        write("truncated-header.gguf", good.subarray(0, 200));
        // A valid GGUF header that lists no tensors: passes the file checks, then llama.cpp itself refuses it.
        const noTensors = Buffer.from(good);
        noTensors.writeBigUInt64LE(0n, 8);
        write("no-tensors.gguf", noTensors);
        // Deterministic "random" bytes (a hash chain), once plain and once behind a valid GGUF magic + version.
        const rnd = Buffer.alloc(1 << 16);
        let h = Buffer.from("hsd");
        for (let i = 0; i < rnd.length; i += 32) {
          h = crypto.createHash("sha256").update(h).digest();
          h.copy(rnd, i);
        }
        write("random.gguf", rnd);
        const magic = Buffer.from(rnd);
        magic.write("GGUF", 0, "latin1");
        magic.writeUInt32LE(3, 4);
        write("gguf-magic-random.gguf", magic);
      });
      after(function () {
        fs.rmSync(dir, { recursive: true, force: true });
      });

      for (const name of [
        "missing.gguf",
        "not-gguf.gguf",
        "empty.gguf",
        "truncated-data.gguf",
        "truncated-header.gguf",
        "random.gguf",
        "gguf-magic-random.gguf",
        "no-tensors.gguf",
      ]) {
        it(name, async function () {
          let err: unknown;
          try {
            await loadModel(fixtures[name]!);
          } catch (e) {
            err = e;
          }
          expect(err).to.be.instanceOf(Error);
          expect((err as Error).message).to.include(fixtures[name]!);
          if (process.env.HSD_TEST_VERBOSE) console.log(`      ${(err as Error).message}`);
        });
      }

      it("a directory is rejected too", async function () {
        const err = await loadModel(dir).then(
          () => null,
          (e: Error) => e,
        );
        expect(err?.message).to.include(dir);
      });

      it("still evaluates afterwards", function () {
        const ctx = model.createContext(CTX);
        const argmax = new Int32Array(4).fill(-1); // every row must be written
        ctx.evaluateSync(prompt.subarray(0, 4), 0, 0, { probs: null, argmax, rowOffset: 0 });
        for (const a of argmax) expect(a).to.be.within(0, model.vocabSize - 1);
        ctx.dispose();
      });
    });
  });

  describe("vocabulary", function () {
    it("tokenize/detokenize round trip", function () {
      for (const text of [TEXT, "Numbers 1234 and 3.14, symbols #@!, and unicode: naïve café, 東京."]) {
        const toks = model.tokenize(text, false, false);
        expect(model.detokenize(toks, false, false)).to.equal(text);
        // Token pieces are bytes; concatenated they are the UTF-8 of the text (pieces may split a character).
        const bytes = Buffer.concat(Array.from(toks, (t) => model.tokenPiece(t)));
        expect(bytes.toString("utf8")).to.equal(text);
      }
    });

    it("marks the end-of-generation token", function () {
      expect(model.eosToken).to.be.within(0, model.vocabSize - 1);
      expect(model.isEndOfGeneration(model.eosToken)).to.equal(true);
      expect(model.isEndOfGeneration(prompt[0]!)).to.equal(false);
      expect(() => model.isEndOfGeneration(model.vocabSize)).to.throw(RangeError);
      // Values whose cast to an integer would be undefined behaviour are refused before any cast.
      for (const bad of [Number.NaN, 2 ** 40, -(2 ** 40), 1.5])
        expect(() => model.isEndOfGeneration(bad), String(bad)).to.throw(RangeError);
    });

    it("the vocabulary fingerprint (read from the GGUF header) is the same across the family", async function () {
      const fp = (await readModelInfo(modelFiles[0]!)).vocabFingerprint;
      expect(fp).to.match(/^[0-9a-f]{64}$/);
      for (const f of modelFiles.slice(1)) expect((await readModelInfo(f)).vocabFingerprint, f).to.equal(fp);
      const vocabOnly = await loadModel(modelFiles[0]!, { vocabOnly: true });
      expect(() => vocabOnly.createContext(CTX)).to.throw(/vocabOnly/);
      vocabOnly.dispose();
    });

    it("the fingerprint changes when one token's text changes", async function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hsd-vocab-"));
      try {
        const bytes = Buffer.from(fs.readFileSync(modelFiles[0]!));
        const { id, offset, text } = findTokenText(bytes, 300);
        // Same length, one byte changed: every offset in the file stays valid.
        const changed = text.slice(0, -1) + (text.endsWith("q") ? "z" : "q");
        bytes.write(changed, offset, "latin1");
        const p = path.join(dir, "changed-vocab.gguf");
        fs.writeFileSync(p, bytes);
        const m = await loadModel(p, { vocabOnly: true });
        expect(m.vocabSize).to.equal(model.vocabSize);
        expect(m.detokenize(Int32Array.of(id), false, false)).to.equal(changed);
        expect(model.detokenize(Int32Array.of(id), false, false)).to.equal(text);
        m.dispose();
        expect((await readModelInfo(p)).vocabFingerprint).to.not.equal(
          (await readModelInfo(modelFiles[0]!)).vocabFingerprint,
        );
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("evaluation", function () {
    let ctx: LlamaContext;
    let V: number;
    beforeEach(function () {
      ctx = model.createContext(CTX);
      ctx.setSampling(T1);
      V = model.vocabSize;
    });
    afterEach(function () {
      ctx.dispose();
    });

    it("a block of 12 tokens in one pass equals 12 single-token passes", function () {
      const prefix = prompt.subarray(0, 5);
      const block = prompt.subarray(5, 17);
      evalRows(ctx, prefix, 0, V);
      const one = evalRows(ctx, block, 5, V);
      expect(ctx.position).to.equal(17);

      const ctx2 = model.createContext(CTX);
      ctx2.setSampling(T1);
      evalRows(ctx2, prefix, 0, V);
      const single = new Float32Array(12 * V);
      for (let j = 0; j < 12; j++) {
        const r = evalRows(ctx2, block.subarray(j, j + 1), 5 + j, V);
        single.set(r.probs, j * V);
      }
      ctx2.dispose();
      const d = maxAbsDiff(one.probs, single);
      if (process.env.HSD_TEST_VERBOSE) console.log(`      max |block - single| = ${d.toExponential(2)}`);
      expect(d).to.be.at.most(1e-3);
    });

    it("flash attention on and off give the same distributions; a bad mode is refused", function () {
      const rows: Float32Array[] = [];
      for (const flashAttention of ["on", "off"] as const) {
        const c = model.createContext({ ...CTX, flashAttention });
        c.setSampling(T1);
        rows.push(evalRows(c, prompt.subarray(0, 12), 0, V).probs);
        c.dispose();
      }
      expect(maxAbsDiff(rows[0]!, rows[1]!)).to.be.at.most(1e-3);
      expect(() => model.createContext({ ...CTX, flashAttention: "maybe" as never })).to.throw(/flashAttention/);
    });

    it("truncate + re-evaluate gives identical distributions (and really drops the KV entries)", function () {
      const a = prompt.subarray(0, 16);
      const first = evalRows(ctx, a, 0, V);
      const tail = prompt.subarray(8, 16);
      const tailFirst = first.probs.slice(8 * V);
      // Overwrite positions 8.. with other tokens, roll back, evaluate the original tail again.
      ctx.truncate(8);
      expect(ctx.position).to.equal(8);
      const other = prompt.subarray(16, 24);
      const different = evalRows(ctx, other, 8, V);
      expect(maxAbsDiff(different.probs, tailFirst)).to.be.greaterThan(1e-3);
      ctx.truncate(8);
      const again = evalRows(ctx, tail, 8, V);
      expect(maxAbsDiff(again.probs, tailFirst)).to.equal(0);
      // evaluate() at an earlier position truncates by itself.
      const viaPosition = evalRows(ctx, tail, 8, V);
      expect(maxAbsDiff(viaPosition.probs, tailFirst)).to.equal(0);
    });

    it("writes rows >= firstOutput at rowOffset and leaves the rest alone", function () {
      const probs = new Float32Array(10 * V).fill(-1);
      const argmax = new Int32Array(10).fill(-1);
      ctx.evaluateSync(prompt.subarray(0, 6), 0, 4, { probs, argmax, rowOffset: 3 });
      expect(Array.from(argmax)).to.deep.equal([-1, -1, -1, argmax[3], argmax[4], -1, -1, -1, -1, -1]);
      expect(probs[3 * V - 1]).to.equal(-1);
      expect(probs[5 * V]).to.equal(-1);
      const ref = evalRows(ctx, prompt.subarray(0, 6), 0, V);
      expect(maxAbsDiff(probs.subarray(3 * V, 5 * V), ref.probs.subarray(4 * V, 6 * V))).to.equal(0);
    });

    it("greedy argmax equals the argmax of the temperature-1 distribution", function () {
      const r = evalRows(ctx, prompt.subarray(0, 16), 0, V);
      for (let j = 0; j < 16; j++)
        expect(r.argmax[j], `row ${j}`).to.equal(argmaxOf(r.probs.subarray(j * V, (j + 1) * V)));
      ctx.setSampling({ ...T1, greedy: true });
      const argmax = new Int32Array(16);
      ctx.evaluateSync(prompt.subarray(0, 16), 0, 0, { probs: null, argmax, rowOffset: 0 });
      expect(Array.from(argmax)).to.deep.equal(Array.from(r.argmax));
    });

    it("applies temperature -> softmax -> top-k -> top-p -> min-p -> renormalise, as documented", function () {
      const base = evalRows(ctx, prompt.subarray(0, 8), 0, V).probs;
      const settings: SamplingTransform[] = [
        { greedy: false, temperature: 0.7, topK: 0, topP: 1, minP: 0 },
        { greedy: false, temperature: 1.3, topK: 40, topP: 1, minP: 0 },
        { greedy: false, temperature: 1, topK: 0, topP: 0.9, minP: 0 },
        { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0.05 },
        { greedy: false, temperature: 0.8, topK: 50, topP: 0.8, minP: 0.02 },
        { greedy: false, temperature: 1.5, topK: 3000, topP: 0.95, minP: 0 },
      ];
      for (const s of settings) {
        ctx.setSampling(s);
        const got = evalRows(ctx, prompt.subarray(0, 8), 0, V).probs;
        for (let j = 0; j < 8; j++) {
          const want = referenceTransform(base.subarray(j * V, (j + 1) * V), s);
          const row = got.subarray(j * V, (j + 1) * V);
          expect(maxAbsDiff(row, want), JSON.stringify(s)).to.be.at.most(2e-5);
          const kept = row.filter((p) => p > 0).length;
          if (s.topK > 0) expect(kept).to.be.at.most(s.topK);
          expect(row.reduce((a, b) => a + b, 0)).to.be.closeTo(1, 1e-4);
        }
      }
    });

    it("vocabLimit: rows over the first ids only are the distribution restricted to them (docs/ALGORITHM.md §11)", function () {
      const base = evalRows(ctx, prompt.subarray(0, 4), 0, V).probs;
      const limit = Math.floor(V / 3);
      for (const s of [T1, { greedy: false, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 }]) {
        ctx.setSampling(s);
        const probs = new Float32Array(4 * limit);
        const argmax = new Int32Array(4);
        ctx.evaluateSync(prompt.subarray(0, 4), 0, 0, { probs, argmax, rowOffset: 0, vocabLimit: limit });
        for (let j = 0; j < 4; j++) {
          const restricted = base.slice(j * V, j * V + limit);
          const want = referenceTransform(restricted, s);
          const row = probs.subarray(j * limit, (j + 1) * limit);
          expect(maxAbsDiff(row, want), JSON.stringify(s)).to.be.at.most(2e-5);
          expect(argmax[j]).to.equal(argmaxOf(restricted));
        }
      }
      ctx.setSampling({ ...T1, greedy: true });
      const argmax = new Int32Array(4);
      ctx.evaluateSync(prompt.subarray(0, 4), 0, 0, { probs: null, argmax, rowOffset: 0, vocabLimit: 7 });
      expect(Math.max(...argmax)).to.be.below(7);
      ctx.setSampling(T1);
      const t = { probs: new Float32Array(4 * V), argmax, rowOffset: 0 };
      for (const bad of [0, V + 1, 2.5, Number.NaN])
        expect(() => ctx.evaluateSync(prompt.subarray(0, 4), 0, 0, { ...t, vocabLimit: bad })).to.throw(
          RangeError,
          /vocabLimit/,
        );
    });

    it("sparse rows hold the same distribution as dense ones; rows that do not fit are written dense (docs/ALGORITHM.md §12)", function () {
      const base = evalRows(ctx, prompt.subarray(0, 8), 0, V).probs;
      const cases: { s: SamplingTransform; capacity: number; vocabLimit?: number }[] = [
        { s: { greedy: false, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 }, capacity: 40 },
        { s: { greedy: false, temperature: 1.3, topK: 40, topP: 1, minP: 0 }, capacity: 64 },
        { s: { greedy: false, temperature: 1, topK: 5, topP: 0.5, minP: 0.2 }, capacity: 5, vocabLimit: 300 },
        { s: { greedy: false, temperature: 1, topK: 0, topP: 0.9, minP: 0 }, capacity: 64 },
        { s: { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0.05 }, capacity: 64 },
        { s: { greedy: false, temperature: 0.7, topK: 0, topP: 0.8, minP: 0.02 }, capacity: 64 },
        { s: { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0.3 }, capacity: 8, vocabLimit: 1000 },
        { s: { greedy: false, temperature: 1.5, topK: 3000, topP: 0.95, minP: 0 }, capacity: 1024 },
      ];
      let sparseRows = 0;
      let denseRows = 0;
      for (const { s, capacity, vocabLimit } of cases) {
        ctx.setSampling(s);
        const W = vocabLimit ?? V;
        const alwaysSparse = s.topK > 0 && s.topK <= capacity;
        const sparse = {
          capacity,
          ids: new Int32Array(8 * capacity),
          probs: new Float32Array(8 * capacity),
          counts: new Int32Array(8),
        };
        const probs = alwaysSparse ? null : new Float32Array(8 * W);
        const argmax = new Int32Array(8);
        ctx.evaluateSync(prompt.subarray(0, 8), 0, 0, { probs, argmax, rowOffset: 0, vocabLimit, sparse });
        for (let j = 0; j < 8; j++) {
          const restricted = base.slice(j * V, j * V + W);
          const want = referenceTransform(restricted, s);
          const n = sparse.counts[j]!;
          let row: Float32Array;
          if (n >= 0) {
            sparseRows++;
            row = new Float32Array(W);
            for (let e = 0; e < n; e++) row[sparse.ids[j * capacity + e]!] = sparse.probs[j * capacity + e]!;
            expect(n, JSON.stringify(s)).to.equal(want.filter((p) => p > 0).length);
          } else {
            denseRows++;
            expect(alwaysSparse, "a dense row only where top-k does not bound the entries").to.equal(false);
            row = probs!.subarray(j * W, (j + 1) * W);
            expect(row.filter((p) => p > 0).length).to.be.greaterThan(capacity);
          }
          expect(maxAbsDiff(row, want), JSON.stringify(s)).to.be.at.most(2e-5);
          expect(argmax[j]).to.equal(argmaxOf(restricted));
        }
      }
      expect(sparseRows).to.be.greaterThan(denseRows);
      expect(denseRows, "some top-p / min-p rows keep more than 64 entries").to.be.greaterThan(0);
      // Without top-k bounding the entries, a row may need the dense buffer.
      ctx.setSampling({ ...T1, topP: 0.9 });
      const sparse = { capacity: 4, ids: new Int32Array(4), probs: new Float32Array(4), counts: new Int32Array(1) };
      expect(() =>
        ctx.evaluateSync(prompt.subarray(0, 1), 0, 0, { probs: null, argmax: new Int32Array(1), rowOffset: 0, sparse }),
      ).to.throw(TypeError, /probs/);
      for (const capacity of [0, V + 1, 1.5])
        expect(() =>
          ctx.evaluateSync(prompt.subarray(0, 1), 0, 0, {
            probs: new Float32Array(V),
            argmax: new Int32Array(1),
            rowOffset: 0,
            sparse: { ...sparse, capacity },
          }),
        ).to.throw(RangeError, /capacity/);
    });

    it("rejects bad arguments with clear errors", function () {
      const argmax = new Int32Array(4);
      const probs = new Float32Array(4 * V);
      const t = { probs, argmax, rowOffset: 0 };
      expect(() => ctx.evaluateSync(prompt.subarray(0, 2), 5, 0, t)).to.throw(RangeError, /position/);
      expect(() => ctx.evaluateSync(Int32Array.of(V), 0, 0, t)).to.throw(RangeError, /outside the vocabulary/);
      expect(() => ctx.evaluateSync(new Int32Array(0), 0, 0, t)).to.throw(RangeError, /tokens.length/);
      expect(() => ctx.evaluateSync(new Int32Array(33), 0, 0, t)).to.throw(RangeError, /batchSize/);
      expect(() =>
        ctx.evaluateSync(prompt.subarray(0, 4), 0, 0, { probs: new Float32Array(V), argmax, rowOffset: 0 }),
      ).to.throw(RangeError, /probs/);
      expect(() => ctx.evaluateSync(prompt.subarray(0, 4), 0, 0, { probs: null, argmax, rowOffset: 0 })).to.throw(
        TypeError,
        /probs/,
      );
      expect(() =>
        ctx.evaluateSync(prompt.subarray(0, 4), 0, 0, { probs, argmax: new Int32Array(2), rowOffset: 0 }),
      ).to.throw(RangeError, /argmax/);
      expect(() => ctx.setSampling({ ...T1, temperature: 0 })).to.throw(RangeError, /temperature/);
      expect(() => ctx.setSampling({ ...T1, topP: 1.5 })).to.throw(RangeError, /topP/);
      expect(() => model.createContext({ contextSize: 8, batchSize: 0, threads: 1 })).to.throw(RangeError);
      expect(ctx.position).to.equal(0);
    });

    it("async evaluate matches evaluateSync; one evaluation in flight per context", async function () {
      const sync = evalRows(ctx, prompt.subarray(0, 12), 0, V);
      const probs = new Float32Array(12 * V);
      const argmax = new Int32Array(12);
      const p = ctx.evaluate(prompt.subarray(0, 12), 0, 0, { probs, argmax, rowOffset: 0 });
      expect(() => ctx.evaluateSync(prompt.subarray(0, 1), 0, 0, { probs, argmax, rowOffset: 0 })).to.throw(
        /in flight/,
      );
      const second = await ctx.evaluate(prompt.subarray(0, 1), 0, 0, { probs, argmax, rowOffset: 0 }).then(
        () => null,
        (e: Error) => e,
      );
      expect(second?.message).to.match(/in flight/);
      expect(() => ctx.truncate(0)).to.throw(/in flight/);
      await p;
      expect(maxAbsDiff(probs, sync.probs)).to.equal(0);
      expect(ctx.position).to.equal(12);
    });
  });

  describe("several contexts and models", function () {
    it("two contexts on one model, evaluated concurrently, do not interfere", async function () {
      const V = model.vocabSize;
      const c1 = model.createContext(CTX);
      const c2 = model.createContext(CTX);
      c1.setSampling(T1);
      c2.setSampling(T1);
      const refA = evalRows(c1, prompt.subarray(0, 10), 0, V).probs;
      const refB = evalRows(c2, prompt.subarray(10, 20), 0, V).probs;
      c1.truncate(0);
      c2.truncate(0);
      const a = { probs: new Float32Array(10 * V), argmax: new Int32Array(10), rowOffset: 0 };
      const b = { probs: new Float32Array(10 * V), argmax: new Int32Array(10), rowOffset: 0 };
      await Promise.all([c1.evaluate(prompt.subarray(0, 10), 0, 0, a), c2.evaluate(prompt.subarray(10, 20), 0, 0, b)]);
      expect(maxAbsDiff(a.probs, refA)).to.equal(0);
      expect(maxAbsDiff(b.probs, refB)).to.equal(0);
      c1.dispose();
      c2.dispose();
    });

    // Three llama_models loaded together: the three largest files, or (while fewer exist) some loaded twice.
    it("three models at once", async function () {
      const distinct = modelFiles.slice(-3);
      const files = [0, 1, 2].map((i) => distinct[i % distinct.length]!);
      const models = await Promise.all(files.map((f) => loadModel(f, GPU)));
      try {
        const ctxs = models.map((m) => m.createContext(CTX));
        ctxs.forEach((c) => c.setSampling(T1));
        const toks = prompt.subarray(0, 8);
        const refs = ctxs.map((c, i) => evalRows(c, toks, 0, models[i]!.vocabSize).probs);
        const outs = models.map((m) => ({
          probs: new Float32Array(8 * m.vocabSize),
          argmax: new Int32Array(8),
          rowOffset: 0,
        }));
        await Promise.all(ctxs.map((c, i) => c.evaluate(toks, 0, 0, outs[i]!)));
        outs.forEach((o, i) => expect(maxAbsDiff(o.probs, refs[i]!), files[i]).to.equal(0));
        if (distinct.length > 1) expect(maxAbsDiff(refs[0]!, refs[1]!)).to.be.greaterThan(1e-4); // really different models
      } finally {
        models.forEach((m) => m.dispose());
      }
    });
  });

  describe("dispose while a decode is pending", function () {
    it("context.dispose() rejects the pending evaluate()", async function () {
      const m = await loadModel(modelFiles[modelFiles.length - 1]!, GPU);
      const ctx = m.createContext(CTX);
      ctx.setSampling(T1);
      const toks = m.tokenize(TEXT, false, false).subarray(0, 32);
      const target = { probs: new Float32Array(32 * m.vocabSize), argmax: new Int32Array(32), rowOffset: 0 };
      const p = ctx.evaluate(toks, 0, 0, target);
      ctx.dispose();
      const err = await p.then(
        () => null,
        (e: Error) => e,
      );
      expect(err).to.be.instanceOf(Error);
      expect(err!.message).to.match(/context was disposed/);
      expect(() => ctx.position).to.throw(/disposed/);
      // The model is still fine.
      const c2 = m.createContext(CTX);
      expect(evalRows(c2, toks.subarray(0, 2), 0, m.vocabSize).argmax.length).to.equal(2);
      m.dispose();
    });

    it("model.dispose() rejects the pending evaluate() of every context", async function () {
      const m = await loadModel(modelFiles[modelFiles.length - 1]!, GPU);
      const toks = m.tokenize(TEXT, false, false).subarray(0, 32);
      const c1 = m.createContext(CTX);
      const c2 = m.createContext(CTX);
      const mk = () => ({ probs: null, argmax: new Int32Array(32), rowOffset: 0 });
      const p1 = c1.evaluate(toks, 0, 0, mk());
      const p2 = c2.evaluate(toks, 0, 0, mk());
      m.dispose();
      const errs = await Promise.all(
        [p1, p2].map((p) =>
          p.then(
            () => null,
            (e: Error) => e,
          ),
        ),
      );
      for (const err of errs) expect(err?.message).to.match(/model of this context was disposed/);
      expect(c1.disposed && c2.disposed && m.disposed).to.equal(true);
      expect(() => m.createContext(CTX)).to.throw(/disposed/);
      expect(() => m.tokenize("x", false, false)).to.throw(/disposed/);
      m.dispose(); // twice is fine
    });
  });

  describe("threads", function () {
    it("counts physical cores", function () {
      const cpuinfo = [0, 1, 2, 3]
        .map((p) => `processor\t: ${p}\nphysical id\t: ${p >> 1 ? 1 : 0}\ncore id\t\t: ${p % 2}\n`)
        .concat(
          [4, 5, 6, 7].map((p) => `processor\t: ${p}\nphysical id\t: ${(p - 4) >> 1 ? 1 : 0}\ncore id\t\t: ${p % 2}\n`),
        )
        .join("\n");
      expect(physicalCoresFromCpuinfo(cpuinfo)).to.equal(4); // 2 sockets x 2 cores, hyper-threaded
      expect(physicalCoresFromCpuinfo("")).to.equal(0);
      expect(defaultThreads()).to.be.within(1, os.availableParallelism());
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------

/**
 * The documented transform in float64, from a temperature-1 distribution p (= softmax(logits)):
 * softmax(logits / T) = normalise(p^(1/T)); then top-k, top-p over the survivors, min-p, renormalise.
 * Order: probability desc, token id asc.
 */
function referenceTransform(p: Float32Array, s: SamplingTransform): Float32Array {
  const V = p.length;
  const q = new Float64Array(V);
  let z = 0;
  for (let i = 0; i < V; i++) z += q[i] = Math.pow(p[i]!, 1 / s.temperature);
  for (let i = 0; i < V; i++) q[i]! /= z;
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => q[b]! - q[a]! || a - b);
  let keep = s.topK > 0 ? Math.min(s.topK, V) : V;
  if (s.topP < 1) {
    let mass = 0;
    for (let i = 0; i < keep; i++) mass += q[order[i]!]!;
    let cum = 0;
    for (let i = 0; i < keep; i++) {
      cum += q[order[i]!]!;
      if (cum >= s.topP * mass) {
        keep = i + 1;
        break;
      }
    }
  }
  if (s.minP > 0) {
    const thr = s.minP * q[order[0]!]!;
    let n = 0;
    while (n < keep && q[order[n]!]! >= thr) n++;
    keep = Math.max(1, n);
  }
  const out = new Float32Array(V);
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += q[order[i]!]!;
  for (let i = 0; i < keep; i++) out[order[i]!] = q[order[i]!]! / kept;
  return out;
}

/**
 * The first token at or after `from` whose text is plain printable ASCII (2+ chars), with the byte offset of its
 * text in a GGUF file's tokenizer.ggml.tokens array (a minimal GGUF v2/v3 walk).
 */
function findTokenText(buf: Buffer, from: number): { id: number; offset: number; text: string } {
  let o = 4 + 4; // magic, version
  o += 8; // tensor count
  const nKv = Number(buf.readBigUInt64LE(o));
  o += 8;
  const str = () => {
    const n = Number(buf.readBigUInt64LE(o));
    const s = buf.toString("latin1", o + 8, o + 8 + n);
    const start = o + 8;
    o += 8 + n;
    return { s, start };
  };
  const size: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skip = (type: number) => {
    if (type === 8) str();
    else if (type === 9) {
      const et = buf.readUInt32LE(o);
      const n = Number(buf.readBigUInt64LE(o + 4));
      o += 12;
      for (let i = 0; i < n; i++) skip(et);
    } else o += size[type]!;
  };
  for (let k = 0; k < nKv; k++) {
    const key = str().s;
    const type = buf.readUInt32LE(o);
    o += 4;
    if (key === "tokenizer.ggml.tokens") {
      const n = Number(buf.readBigUInt64LE(o + 4));
      o += 12; // element type (string), count
      for (let i = 0; i < n; i++) {
        const { s, start } = str();
        if (i >= from && /^[a-z]{2,}$/i.test(s)) return { id: i, offset: start, text: s };
      }
      throw new Error("no plain ASCII token found");
    }
    skip(type);
  }
  throw new Error("tokenizer.ggml.tokens not found");
}
