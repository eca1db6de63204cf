// Exactness of the HSD recursion on in-memory models whose laws are known exactly.
import { expect } from "chai";
import { HsdDecoder, type DecoderOptions, type VerificationMutation } from "../src/engine/hsd.js";
import { CopyProposalLevel, SyntheticLevel, narrowed, syntheticFamily } from "./helpers/synthetic-levels.js";
import type { DistributionRows, Level } from "../src/levels/level.js";
import { generate, type Vocabulary } from "../src/engine/generate.js";
import { TextAssembler } from "../src/engine/text.js";
import { Rng } from "../src/util/rng.js";
import { chiSquareFit, detectableTotalVariation } from "./helpers/stats.js";

const VOCAB = 5;
const PREFIX = 3; // the test compares the law of the first 3 generated tokens: 125 outcomes
const SAMPLES = 20000;
/**
 * The correct algorithm must give p > 1e-6 and a wrong one p < 1e-6. Every run uses fixed
 * seeds, so the outcome is deterministic; 1e-6 is far enough in the tail that a correct
 * implementation would need a one-in-a-million draw to fail with any new seed.
 */
const P_THRESHOLD = 1e-6;

function family(levels: number) {
  const laws = syntheticFamily(VOCAB, levels, 7);
  return laws.map((law, k) => new SyntheticLevel(`M${k}`, VOCAB, law));
}

/** Exact law of the first `n` tokens the target generates after `prompt`. */
function exactPrefixLaw(target: SyntheticLevel, prompt: number[], n: number): Map<string, number> {
  const law = new Map<string, number>();
  const seq = new Int32Array(prompt.length + n);
  seq.set(prompt);
  const V = target.vocabSize;
  const probs = new Float32Array(V);
  const walk = (depth: number, mass: number) => {
    if (depth === n) {
      law.set(Array.from(seq.subarray(prompt.length)).join(","), mass);
      return;
    }
    target.distribution(seq, prompt.length + depth, V, probs);
    const copy = Float64Array.from(probs);
    for (let x = 0; x < V; x++) {
      seq[prompt.length + depth] = x;
      walk(depth + 1, mass * copy[x]!);
    }
  };
  walk(0, 1);
  return law;
}

/** Samples the first PREFIX tokens SAMPLES times with HSD and counts each outcome. */
async function samplePrefixes(
  levels: Level[],
  thresholds: number[],
  seed: number,
  mutation?: VerificationMutation,
  prompt: number[] = [1, 3],
  options: Pick<DecoderOptions, "sampling" | "sparseLimit"> = {},
) {
  const decoder = new HsdDecoder(levels, { thresholds, greedy: false, rng: new Rng(seed), mutation, ...options });
  const seq = new Int32Array(64);
  const counts = new Map<string, number>();
  let tokens = 0;
  let passes = 0;
  for (let s = 0; s < SAMPLES; s++) {
    seq.set(prompt);
    let committed = prompt.length;
    while (committed < prompt.length + PREFIX) {
      committed += await decoder.step(seq, committed);
      passes++;
    }
    tokens += committed - prompt.length;
    const key = Array.from(seq.subarray(prompt.length, prompt.length + PREFIX)).join(",");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const expected = exactPrefixLaw(levels[levels.length - 1] as SyntheticLevel, prompt, PREFIX);
  return { fit: chiSquareFit(counts, expected, SAMPLES), tokensPerPass: tokens / passes, expected };
}

const HIERARCHIES: { name: string; levels: number; thresholds: number[] }[] = [
  { name: "K=1 (single draft, T=3)", levels: 2, thresholds: [3] },
  { name: "K=2 (T=2,3)", levels: 3, thresholds: [2, 3] },
  { name: "K=3 (T=1,2,4)", levels: 4, thresholds: [1, 2, 4] },
];

describe("HSD recursion on synthetic models", function () {
  describe("sampling is exact: the first tokens follow the target's law", function () {
    for (const h of HIERARCHIES) {
      it(`${h.name}`, async function () {
        const { fit } = await samplePrefixes(family(h.levels), h.thresholds, 1234);
        expect(
          fit.pValue,
          `chi2=${fit.chiSquare.toFixed(1)} dof=${fit.degreesOfFreedom} TV=${fit.totalVariation.toFixed(4)}`,
        ).to.be.greaterThan(P_THRESHOLD);
      });
    }
    it("autoregressive (K=0) with the same sampler", async function () {
      const { fit } = await samplePrefixes(family(1), [], 99);
      expect(fit.pValue).to.be.greaterThan(P_THRESHOLD);
    });
  });

  describe("mutation check: the test above detects broken verifiers", function () {
    for (const h of HIERARCHIES) {
      it(`sampling the replacement from p instead of the residual fails (${h.name})`, async function () {
        const { fit } = await samplePrefixes(family(h.levels), h.thresholds, 1234, "no-residual");
        expect(fit.pValue, `TV=${fit.totalVariation.toFixed(4)}`).to.be.lessThan(P_THRESHOLD);
      });
    }
    for (const h of HIERARCHIES.filter((x) => x.levels >= 3)) {
      it(`handing the lower level's q upward fails (${h.name})`, async function () {
        const { fit } = await samplePrefixes(family(h.levels), h.thresholds, 1234, "hand-up-lower-q");
        expect(fit.pValue, `TV=${fit.totalVariation.toFixed(4)}`).to.be.lessThan(P_THRESHOLD);
      });
    }
    // Skipping the bonus token changes only WHEN a round stops, a rule that looks at tokens
    // already drawn, so the output law stays exact (docs/ALGORITHM.md §3's induction). What it breaks is
    // speed: each full acceptance wastes the target's extra row. The test pins both facts.
    for (const h of HIERARCHIES) {
      it(`skipping the bonus token stays exact but emits fewer tokens per target pass (${h.name})`, async function () {
        const good = await samplePrefixes(family(h.levels), h.thresholds, 1234);
        const mutant = await samplePrefixes(family(h.levels), h.thresholds, 1234, "no-bonus");
        expect(mutant.fit.pValue).to.be.greaterThan(P_THRESHOLD);
        expect(mutant.tokensPerPass).to.be.lessThan(good.tokensPerPass * 0.97);
      });
    }
  });

  describe("a model-free level at the bottom (point-mass proposals, docs/ALGORITHM.md §8)", function () {
    // A prompt with repeats, so that the one-token lookup proposes on some steps and abstains on others.
    const prompt = [1, 3, 2, 4, 1, 3, 0];
    const copy = () => new CopyProposalLevel("ngram-copy", VOCAB);
    const CHAINS: { name: string; levels: () => Level[]; thresholds: number[] }[] = [
      { name: "lookup > target (T=4)", levels: () => [copy(), family(2)[1]!], thresholds: [4] },
      { name: "lookup > M0 > target (T=3,3)", levels: () => [copy(), ...family(2)], thresholds: [3, 3] },
    ];
    for (const c of CHAINS) {
      it(`sampling is exact: ${c.name}`, async function () {
        const { fit, tokensPerPass } = await samplePrefixes(c.levels(), c.thresholds, 4321, undefined, prompt);
        expect(tokensPerPass, "the lookup must have contributed accepted tokens").to.be.greaterThan(1.05);
        expect(
          fit.pValue,
          `chi2=${fit.chiSquare.toFixed(1)} dof=${fit.degreesOfFreedom} TV=${fit.totalVariation.toFixed(4)}`,
        ).to.be.greaterThan(P_THRESHOLD);
      });
      it(`mutation check: judging a proposal as if drawn from the verifier's p fails (${c.name})`, async function () {
        const { fit } = await samplePrefixes(c.levels(), c.thresholds, 4321, "proposal-hands-up-p", prompt);
        expect(fit.pValue, `TV=${fit.totalVariation.toFixed(4)}`).to.be.lessThan(P_THRESHOLD);
      });
    }
  });

  describe("vocabularies of different sizes (padding, docs/ALGORITHM.md §11)", function () {
    // Laws over 6 ids; a level "with V ids" has the law restricted to ids < V, renormalised (a model that lacks
    // the others). Id 4 (and 5) play the padding ids only the larger vocabulary has; the synthetic laws put real
    // mass on them, as a random-weight target does.
    const level = (name: string, k: number, of: number, width: number) =>
      new SyntheticLevel(name, width, narrowed(syntheticFamily(6, of, 7)[k]!, 6, width));
    const WIDTHS: { name: string; levels: () => Level[]; thresholds: number[] }[] = [
      {
        name: "the target has an id the draft lacks (4 vs 5 ids, T=3)",
        levels: () => [level("M0", 0, 2, 4), level("M1", 1, 2, 5)],
        thresholds: [3],
      },
      {
        name: "K=2, both drafts lack it (4, 4, 5 ids; T=2,3)",
        levels: () => [level("M0", 0, 3, 4), level("M1", 1, 3, 4), level("M2", 2, 3, 5)],
        thresholds: [2, 3],
      },
      {
        name: "K=2, the middle level is the narrowest (5, 4, 5 ids; T=2,2)",
        levels: () => [level("M0", 0, 3, 5), level("M1", 1, 3, 4), level("M2", 2, 3, 5)],
        thresholds: [2, 2],
      },
      {
        name: "the draft has an id the target lacks (6 vs 5 ids, T=3)",
        levels: () => [level("M0", 0, 2, 6), level("M1", 1, 2, 5)],
        thresholds: [3],
      },
      {
        name: "lookup > draft > target (5, 4, 5 ids; T=3,3)",
        levels: () => [new CopyProposalLevel("ngram-copy", 5), level("M0", 0, 2, 4), level("M1", 1, 2, 5)],
        thresholds: [3, 3],
      },
    ];
    const prompt = [1, 3, 2, 4, 1, 3, 0];
    for (const c of WIDTHS) {
      it(`sampling is exact: ${c.name}`, async function () {
        const levels = c.levels();
        const { fit, expected } = await samplePrefixes(levels, c.thresholds, 2024, undefined, prompt);
        const target = levels[levels.length - 1]!;
        const narrowest = Math.min(...levels.slice(0, -1).map((l) => l.vocabSize));
        // How much of the target's law lies on ids some draft lacks: what only the residual and bonus can emit.
        let beyond = 0;
        for (const [key, mass] of expected) if (key.split(",").some((x) => Number(x) >= narrowest)) beyond += mass;
        const tv = detectableTotalVariation(SAMPLES, fit.degreesOfFreedom);
        console.log(
          `      ${c.name}: TV ${fit.totalVariation.toFixed(4)}, p ${fit.pValue.toExponential(2)}; target mass on ids a draft lacks ${beyond.toFixed(3)}; the test detects any TV >= ${tv.toFixed(3)} (power 0.99 at p < 1e-6)`,
        );
        expect(
          fit.pValue,
          `chi2=${fit.chiSquare.toFixed(1)} dof=${fit.degreesOfFreedom} TV=${fit.totalVariation.toFixed(4)} (detects TV >= ${tv.toFixed(3)} with power 0.99)`,
        ).to.be.greaterThan(P_THRESHOLD);
        if (narrowest < target.vocabSize) expect(beyond, "mass on ids a draft lacks").to.be.greaterThan(0.2);
        for (const l of levels) if (l instanceof SyntheticLevel) expect(l.foreignDraftsRead, l.name).to.equal(0);
      });
    }
    it("mutation check: a residual that ignores the target's mass on ids the draft lacks fails", async function () {
      for (const c of WIDTHS.slice(0, 2)) {
        const { fit } = await samplePrefixes(c.levels(), c.thresholds, 2024, "residual-within-draft", prompt);
        console.log(`      ${c.name}, residual-within-draft: TV ${fit.totalVariation.toFixed(4)}`);
        expect(fit.pValue, `${c.name}: TV=${fit.totalVariation.toFixed(4)}`).to.be.lessThan(P_THRESHOLD);
      }
    });
    it("mutation check: an unrestricted draft proposes ids its verifier cannot score (and wastes its block)", async function () {
      const c = WIDTHS[3]!;
      const good = c.levels();
      const bad = c.levels();
      const exact = await samplePrefixes(good, c.thresholds, 2024, undefined, prompt);
      const mutant = await samplePrefixes(bad, c.thresholds, 2024, "unrestricted-draft", prompt);
      // Speculative sampling stays exact for any draft law (the verifier gives such an id probability 0), but a
      // llama.cpp verifier refuses an id outside its vocabulary: the restriction is what keeps it from seeing one.
      expect((good[1] as SyntheticLevel).foreignDraftsRead).to.equal(0);
      expect((bad[1] as SyntheticLevel).foreignDraftsRead).to.be.greaterThan(100);
      expect(mutant.tokensPerPass).to.be.lessThan(exact.tokensPerPass);
    });
    it("greedy output equals the target's greedy output, whose argmax is sometimes an id a draft lacks", async function () {
      const vocab: Vocabulary = {
        isEndOfGeneration: () => false,
        tokenPiece: (t) => new TextEncoder().encode(`<${t}>`),
      };
      for (const c of WIDTHS) {
        const levels = c.levels();
        const target = levels[levels.length - 1]!;
        const run = async (chain: Level[], thresholds: number[]) => {
          const decoder = new HsdDecoder(chain, { thresholds, greedy: true, rng: new Rng(1) });
          const it = generate(decoder, vocab, Int32Array.from(prompt), { maxTokens: 80 });
          let r = await it.next();
          while (!r.done) r = await it.next();
          return r.value.tokens;
        };
        const reference = await run([target], []);
        const narrowest = Math.min(...levels.slice(0, -1).map((l) => l.vocabSize));
        if (narrowest < target.vocabSize)
          expect(
            reference.some((t) => t >= narrowest),
            `${c.name}: the target emits an id a draft lacks`,
          ).to.equal(true);
        expect(await run(levels, c.thresholds), c.name).to.deep.equal(reference);
      }
    });
  });

  describe("sparse rows: the engine's work follows what top-k / top-p / min-p keep (docs/ALGORITHM.md §12)", function () {
    /** A synthetic level that counts the rows it wrote sparse and dense. */
    class Probe extends SyntheticLevel {
      sparse = 0;
      dense = 0;
      override score(sequence: Int32Array, length: number, firstRow: number, rows: DistributionRows, offset: number) {
        super.score(sequence, length, firstRow, rows, offset);
        for (let r = offset; r < offset + length - firstRow; r++) {
          if (rows.isSparse(r)) this.sparse++;
          else this.dense++;
        }
      }
    }
    const TOP2 = { topK: 2, topP: 1, minP: 0 };
    const MINP = { topK: 0, topP: 1, minP: 0.4 };
    const probes = (n: number, cut: { topK: number; minP: number }, widths?: number[]) =>
      syntheticFamily(6, n, 7).map(
        (law, k) => new Probe(`M${k}`, widths?.[k] ?? 5, narrowed(law, 6, widths?.[k] ?? 5), cut),
      );
    const SPARSE: {
      name: string;
      levels: () => Level[];
      thresholds: number[];
      options: Pick<DecoderOptions, "sampling" | "sparseLimit">;
      mixed?: boolean;
    }[] = [
      { name: "top-k 2, K=1 (T=3)", levels: () => probes(2, TOP2), thresholds: [3], options: { sampling: TOP2 } },
      { name: "top-k 2, K=2 (T=2,3)", levels: () => probes(3, TOP2), thresholds: [2, 3], options: { sampling: TOP2 } },
      {
        name: "min-p 0.4, rows of up to 2 entries sparse and longer ones dense, K=2 (T=2,2)",
        levels: () => probes(3, MINP),
        thresholds: [2, 2],
        options: { sampling: MINP, sparseLimit: 2 },
        mixed: true,
      },
      {
        name: "top-k 2 with a draft that lacks the target's last id (4 vs 5 ids, T=3)",
        levels: () => probes(2, TOP2, [4, 5]),
        thresholds: [3],
        options: { sampling: TOP2 },
      },
      {
        name: "lookup > draft > target, top-k 3 (T=3,3)",
        levels: () => [new CopyProposalLevel("ngram-copy", 5), ...probes(2, { topK: 3, minP: 0 })],
        thresholds: [3, 3],
        options: { sampling: { topK: 3, topP: 1, minP: 0 } },
      },
    ];
    const prompt = [1, 3, 2, 4, 1, 3, 0];
    for (const c of SPARSE) {
      it(`sampling is exact: ${c.name}`, async function () {
        const levels = c.levels();
        const { fit } = await samplePrefixes(levels, c.thresholds, 99, undefined, prompt, c.options);
        const tv = detectableTotalVariation(SAMPLES, fit.degreesOfFreedom);
        expect(
          fit.pValue,
          `chi2=${fit.chiSquare.toFixed(1)} dof=${fit.degreesOfFreedom} TV=${fit.totalVariation.toFixed(4)} (detects TV >= ${tv.toFixed(3)})`,
        ).to.be.greaterThan(P_THRESHOLD);
        const written = levels.filter((l): l is Probe => l instanceof Probe);
        const sparse = written.reduce((n, l) => n + l.sparse, 0);
        const dense = written.reduce((n, l) => n + l.dense, 0);
        expect(sparse, "rows written sparse").to.be.greaterThan(1000);
        if (c.mixed) expect(dense, "rows written dense (more entries than a sparse row holds)").to.be.greaterThan(1000);
        else expect(dense, "rows written dense").to.equal(0);
      });
    }
    it("mutation check: the law test still catches a broken verifier on sparse rows", async function () {
      for (const [c, mutation] of [
        [SPARSE[0]!, "no-residual"],
        [SPARSE[2]!, "hand-up-lower-q"],
        [SPARSE[3]!, "residual-within-draft"],
        [SPARSE[4]!, "proposal-hands-up-p"],
      ] as const) {
        const { fit } = await samplePrefixes(c.levels(), c.thresholds, 99, mutation, prompt, c.options);
        expect(fit.pValue, `${mutation} in ${c.name}: TV=${fit.totalVariation.toFixed(4)}`).to.be.lessThan(P_THRESHOLD);
      }
    });
  });

  describe("greedy output equals the target's greedy output", function () {
    const vocab: Vocabulary = { isEndOfGeneration: () => false, tokenPiece: (t) => new TextEncoder().encode(`<${t}>`) };
    async function greedyTokens(levels: Level[], thresholds: number[]): Promise<number[]> {
      const decoder = new HsdDecoder(levels, { thresholds, greedy: true, rng: new Rng(1) });
      const it = generate(decoder, vocab, Int32Array.from([2, 4]), { maxTokens: 60 });
      let r = await it.next();
      while (!r.done) r = await it.next();
      return r.value.tokens;
    }
    for (const h of [
      ...HIERARCHIES,
      { name: "K=3 (T=4,4,4)", levels: 4, thresholds: [4, 4, 4] },
      { name: "K=2 (T=5,1)", levels: 3, thresholds: [5, 1] },
    ]) {
      it(h.name, async function () {
        const levels = family(h.levels);
        const reference = await greedyTokens([levels[levels.length - 1]!], []);
        expect(reference).to.have.length(60);
        expect(await greedyTokens(levels, h.thresholds)).to.deep.equal(reference);
      });
    }
    for (const [name, thresholds, models] of [
      ["lookup > target (T=6)", [6], 1],
      ["lookup > M1 > target (T=4,4)", [4, 4], 2],
      ["lookup > M1 > M2 > target (T=2,3,5)", [2, 3, 5], 3],
    ] as const) {
      it(name, async function () {
        const levels = family(4);
        const reference = await greedyTokens([levels[3]!], []);
        const chain: Level[] = [new CopyProposalLevel("ngram-copy", VOCAB), ...levels.slice(4 - models)];
        expect(await greedyTokens(chain, [...thresholds])).to.deep.equal(reference);
      });
    }
  });

  describe("generation loop", function () {
    const vocab: Vocabulary = {
      isEndOfGeneration: (t) => t === 0,
      tokenPiece: (t) => new TextEncoder().encode(String.fromCharCode(97 + t)),
    };
    it("stops at max tokens exactly, even mid-block", async function () {
      const levels = family(3);
      const decoder = new HsdDecoder(levels.slice(1), { thresholds: [6], greedy: false, rng: new Rng(5) });
      const it = generate(decoder, { ...vocab, isEndOfGeneration: () => false }, Int32Array.from([1]), {
        maxTokens: 7,
      });
      let r = await it.next();
      const streamed: number[] = [];
      while (!r.done) {
        streamed.push(...r.value.tokens);
        r = await it.next();
      }
      expect(r.value.tokens).to.have.length(7);
      expect(streamed).to.deep.equal(r.value.tokens);
      expect(r.value.stopReason).to.equal("max-tokens");
    });
    it("stops at a stop string and cuts the text before it", async function () {
      const levels = family(2);
      const decoder = new HsdDecoder(levels, { thresholds: [3], greedy: true, rng: new Rng(5) });
      const free = generate(decoder, { ...vocab, isEndOfGeneration: () => false }, Int32Array.from([1]), {
        maxTokens: 40,
      });
      let r = await free.next();
      while (!r.done) r = await free.next();
      const stop = r.value.text.slice(10, 13);
      const cut = r.value.text.indexOf(stop);
      const it = generate(decoder, { ...vocab, isEndOfGeneration: () => false }, Int32Array.from([1]), {
        maxTokens: 40,
        stop: [stop],
      });
      let shown = "";
      let s = await it.next();
      while (!s.done) {
        shown += s.value.text;
        s = await it.next();
      }
      expect(s.value.stopReason).to.equal("stop-string");
      expect(s.value.text).to.equal(r.value.text.slice(0, cut));
      expect(shown).to.equal(s.value.text);
    });
    it("an aborted run ends cleanly and the decoder is reusable", async function () {
      const levels = family(3);
      const decoder = new HsdDecoder(levels, { thresholds: [2, 2], greedy: true, rng: new Rng(5) });
      const controller = new AbortController();
      const it = generate(decoder, { ...vocab, isEndOfGeneration: () => false }, Int32Array.from([1]), {
        maxTokens: 50,
        signal: controller.signal,
      });
      await it.next();
      controller.abort();
      let r = await it.next();
      while (!r.done) r = await it.next();
      expect(r.value.stopReason).to.equal("aborted");
      expect(r.value.tokens.length).to.be.lessThan(50);
      const again = generate(decoder, { ...vocab, isEndOfGeneration: () => false }, Int32Array.from([1]), {
        maxTokens: 20,
      });
      let a = await again.next();
      while (!a.done) a = await again.next();
      expect(a.value.tokens).to.have.length(20);
      expect(a.value.tokens.slice(0, r.value.tokens.length)).to.deep.equal(r.value.tokens);
    });
  });
});

describe("streamed text and stop strings (TextAssembler)", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);

  it("holds back a tail that may start a stop string, releases it when it does not, and cuts at the stop", () => {
    const t = new TextAssembler(["STOP", "END"]);
    expect(t.push(bytes("abcST"))).to.equal(false);
    expect(t.takeReady()).to.equal("abc"); // "ST" may begin "STOP"
    expect(t.push(bytes("Xy"))).to.equal(false);
    expect(t.takeReady()).to.equal("STXy");
    expect(t.push(bytes("zE"))).to.equal(false);
    expect(t.takeReady()).to.equal("z");
    expect(t.push(bytes("ND tail"))).to.equal(true);
    expect(t.finish()).to.equal("");
    expect(t.fullText).to.equal("abcSTXyz");
  });

  it("never splits a UTF-8 character across chunks", () => {
    const t = new TextAssembler([]);
    const euro = bytes("€");
    t.push(euro.subarray(0, 2));
    expect(t.takeReady()).to.equal("");
    t.push(euro.subarray(2));
    expect(t.takeReady()).to.equal("€");
  });
});
