// The context lookup (a model-free level) and routed policies (docs/ALGORITHM.md §8–9) on in-memory models whose
// laws are known exactly: what the lookup proposes, greedy identity, the output law (first tokens, chi-square) and,
// for every token of 24-token generations, a probability-integral-transform test against the target's conditional
// law given the realised prefix — with mutants each test must catch.
import { expect } from "chai";
import { HsdDecoder, type VerificationMutation } from "../src/engine/hsd.js";
import { RoutedDecoder, type RoutingMutation, type RoutingPolicy } from "../src/engine/routed.js";
import { generate, type Vocabulary } from "../src/engine/generate.js";
import { ContextLookupLevel } from "../src/levels/ngram-lookup.js";
import { NgramTable, NgramTableLevel } from "../src/levels/ngram-table.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Decoder } from "../src/engine/hsd.js";
import type { Level } from "../src/levels/level.js";
import { Rng } from "../src/util/rng.js";
import { SyntheticLevel, syntheticFamily } from "./helpers/synthetic-levels.js";
import { chiSquareFit } from "./helpers/stats.js";
import { conditionalTests } from "./helpers/conditional.js";

const VOCAB = 5;
const P_THRESHOLD = 1e-6;
const family = (n: number) => syntheticFamily(VOCAB, n, 7).map((law, k) => new SyntheticLevel(`M${k}`, VOCAB, law));

describe("context lookup (model-free level)", () => {
  const seq = (...xs: number[]) => {
    const s = new Int32Array(64);
    s.set(xs);
    return s;
  };

  it("proposes what followed the longest earlier match of the last tokens, most recent on ties", () => {
    const lookup = new ContextLookupLevel(10, { maxMatch: 4 });
    //          0  1  2  3  4  5  6  7  8  9
    const s = seq(1, 2, 3, 4, 9, 2, 3, 5, 7, 2, 3);
    // Last tokens "2 3": earlier at 1-2 (preceded by 1) and 5-6 (preceded by 9); the text before the end is 7,
    // so both match 2 tokens; the most recent wins: what followed 5-6 is 5 7 2 3.
    expect(lookup.match(s, 11)).to.deep.equal({ length: 2, next: 7 });
    expect(lookup.propose(s, 11, 3)).to.equal(3);
    expect(Array.from(s.subarray(11, 14))).to.deep.equal([5, 7, 2]);
    // A longer match wins over a more recent one: "... 9 2 3" again matches 3 tokens at 4-6.
    const t = seq(1, 2, 3, 4, 9, 2, 3, 5, 7, 2, 3, 8, 9, 2, 3);
    expect(lookup.match(t, 15)).to.deep.equal({ length: 3, next: 7 });
  });

  it("abstains without a match or below the shortest match, and never copies past the text", () => {
    const lookup = new ContextLookupLevel(10, { minMatch: 2, maxMatch: 8 });
    expect(lookup.propose(seq(1, 2, 3, 4), 4, 5)).to.equal(0);
    expect(lookup.propose(seq(1, 2, 5, 2), 4, 5)).to.equal(0); // a 1-token match only
    const s = seq(7, 1, 2, 1, 2);
    // "1 2" occurred at 1-2; what followed is "1 2" (positions 3-4): only 2 tokens exist after it.
    expect(lookup.propose(s, 5, 6)).to.equal(2);
    expect(Array.from(s.subarray(5, 7))).to.deep.equal([1, 2]);
  });

  it("keeps its index in step with rollbacks and new texts", () => {
    const lookup = new ContextLookupLevel(10, { maxMatch: 8 });
    const s = seq(1, 2, 3, 1, 2);
    expect(lookup.match(s, 5).length).to.equal(2);
    // Roll back and write another continuation: the old tokens must be forgotten.
    s.set([4, 4, 4, 4], 1);
    expect(lookup.match(s, 5)).to.deep.equal({ length: 3, next: 4 });
    expect(lookup.match(seq(9, 8), 2)).to.deep.equal({ length: 0, next: -1 });
    expect(lookup.match(s, 5)).to.deep.equal({ length: 3, next: 4 });
  });

  it("rejects impossible options, naming them", () => {
    expect(() => new ContextLookupLevel(10, { minMatch: 0 })).to.throw(/shortest match/);
    expect(() => new ContextLookupLevel(10, { minMatch: 4, maxMatch: 2 })).to.throw(/longest match \(2\)/);
  });
});

describe("static n-gram table (model-free level)", () => {
  const header = { order: 3, vocabSize: 10, fingerprint: "test", source: "unit test" };

  it("proposes the most frequent continuation of the longest known context, and stops below the confidence", () => {
    // "1 2" is followed by 3 twice and 4 once; "2 3" by 5; "9" never occurs as a context.
    const table = NgramTable.build([[1, 2, 3, 5, 1, 2, 3, 5, 1, 2, 4]], header, 1);
    const level = new NgramTableLevel(table, { minConfidence: 0.6 });
    const s = new Int32Array(16);
    s.set([7, 1, 2]);
    expect(level.propose(s, 3, 4)).to.equal(4); // 3 (2/3), 5, then "3 5" -> 1, "5 1" -> 2
    expect(Array.from(s.subarray(3, 7))).to.deep.equal([3, 5, 1, 2]);
    s.set([9]);
    expect(level.propose(s, 1, 4)).to.equal(0);
    expect(new NgramTableLevel(table, { minConfidence: 0.9 }).propose(Int32Array.from([1, 2, 0, 0]), 2, 2)).to.equal(0);
  });

  it("round-trips through its file and refuses a damaged one, naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hsd-table-"));
    try {
      const table = NgramTable.build([[1, 2, 3, 1, 2, 3, 1, 2]], header, 1);
      const path = join(dir, "t.table");
      await table.save(path);
      const again = await NgramTable.load(path);
      expect(again.header).to.deep.equal(table.header);
      expect(again.size).to.equal(table.size);
      expect(again.lookup([1, 2], 2)).to.deep.equal(table.lookup([1, 2], 2));
      writeFileSync(path, readFileSync(path).subarray(0, readFileSync(path).length - 5));
      await NgramTable.load(path).then(
        () => expect.fail("a truncated table loaded"),
        (e: Error) => expect(e.message).to.match(/t\.table: not a usable n-gram table \(truncated records\)/),
      );
      await NgramTable.load(join(dir, "missing.table")).then(
        () => expect.fail("a missing table loaded"),
        (e: Error) => expect(e.message).to.match(/missing\.table: cannot read the n-gram table/),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A prompt with repeats, so that the lookup matches on some steps and not on others. */
const PROMPT = [1, 3, 2, 4, 1, 3, 0, 2, 4];

/** Routes by the lookup's match on the committed text: a match of 2+ runs lookup>target, else M0>target. */
function routedPolicy(levels: SyntheticLevel[], lookup: ContextLookupLevel): RoutingPolicy {
  const [m0, target] = [levels[0]!, levels[levels.length - 1]!];
  return {
    states: ["match <2", "match 2+"],
    state: (sequence, committed) => (lookup.match(sequence, committed).length >= 2 ? 1 : 0),
    chains: [
      { levels: [m0, target], thresholds: [3] },
      { levels: [lookup, target], thresholds: [4] },
    ],
  };
}

/** A table counted in the synthetic target's own greedy output (so that it proposes often, and often right). */
function synthTable(): NgramTableLevel {
  const target = family(2)[1]!;
  const seq = new Int32Array(4000);
  const probs = new Float32Array(VOCAB);
  seq.set(PROMPT);
  const rng = new Rng(3);
  for (let i = PROMPT.length; i < seq.length; i++) {
    target.law(seq, i, probs);
    let u = rng.next();
    let x = 0;
    while (x < VOCAB - 1 && (u -= probs[x]!) >= 0) x++;
    seq[i] = x;
  }
  const table = NgramTable.build([seq], { order: 3, vocabSize: VOCAB, fingerprint: "synthetic", source: "test" }, 2);
  return new NgramTableLevel(table, { minConfidence: 0.3 });
}

interface Config {
  name: string;
  make: (mutation?: VerificationMutation | RoutingMutation) => Decoder;
}

function configs(): Config[] {
  const chain = (levels: () => Level[], thresholds: number[]) => (mutation?: VerificationMutation | RoutingMutation) =>
    new HsdDecoder(levels(), {
      thresholds,
      greedy: false,
      rng: new Rng(11),
      mutation: mutation as VerificationMutation,
      mutationFrom: PROMPT.length + 8,
    });
  return [
    { name: "K=1 (T=3)", make: chain(() => family(2), [3]) },
    { name: "K=2 (T=2,3)", make: chain(() => family(3), [2, 3]) },
    { name: "lookup > target (T=4)", make: chain(() => [new ContextLookupLevel(VOCAB), family(2)[1]!], [4]) },
    {
      name: "lookup > M0 > target (T=3,3)",
      make: chain(() => [new ContextLookupLevel(VOCAB), ...family(2)], [3, 3]),
    },
    {
      name: "n-gram table > target (T=3)",
      make: chain(() => [synthTable(), family(2)[1]!], [3]),
    },
    {
      name: "routed: match 2+ -> lookup > target, else M0 > target",
      make: (mutation) =>
        new RoutedDecoder(routedPolicy(family(2), new ContextLookupLevel(VOCAB)), {
          greedy: false,
          rng: new Rng(11),
          mutation: mutation as RoutingMutation,
        }),
    },
  ];
}

describe("exactness with model-free levels and routing (synthetic models)", function () {
  this.timeout(240_000);
  const GENERATIONS = 4000;
  const LENGTH = 24;

  describe("every token of 24-token generations follows the target's conditional law (PIT and sequential chi-square)", () => {
    for (const c of configs()) {
      it(c.name, async () => {
        const decoder = c.make();
        const target = (decoder.levels[decoder.levels.length - 1] as SyntheticLevel)!;
        const r = await conditionalTests(decoder, target.law, PROMPT, VOCAB, GENERATIONS, LENGTH);
        const worst = Math.min(...r.ks.map((k) => k.pValue), ...r.chi.map((c) => c.pValue));
        console.log(
          `    ${c.name}: ${r.values} tokens, ${r.tokensPerStep.toFixed(2)} tokens/step; by block of 6 positions: KS D ${r.ks.map((k) => k.d.toFixed(4)).join(" ")}, context TV ${r.chi.map((x) => x.totalVariation.toFixed(4)).join(" ")}; min p ${worst.toExponential(2)}`,
        );
        expect(worst).to.be.greaterThan(P_THRESHOLD);
      });
    }
  });

  describe("mutation check: these tests catch faults that appear only after 8 generated tokens", () => {
    const cases: [string, VerificationMutation | RoutingMutation][] = [
      ["K=1 (T=3)", "no-residual"],
      ["K=2 (T=2,3)", "hand-up-lower-q"],
      ["lookup > target (T=4)", "proposal-hands-up-p"],
      ["lookup > M0 > target (T=3,3)", "proposal-hands-up-p"],
      ["n-gram table > target (T=3)", "proposal-hands-up-p"],
      ["routed: match 2+ -> lookup > target, else M0 > target", "route-after-draft"],
    ];
    for (const [name, mutation] of cases) {
      it(`${mutation} in ${name}`, async () => {
        const c = configs().find((x) => x.name === name)!;
        const decoder = c.make(mutation);
        const target = (decoder.levels[decoder.levels.length - 1] as SyntheticLevel)!;
        const r = await conditionalTests(decoder, target.law, PROMPT, VOCAB, GENERATIONS, LENGTH);
        console.log(
          `    ${mutation}: by block: KS D ${r.ks.map((k) => k.d.toFixed(4)).join(" ")}, context TV ${r.chi.map((x) => x.totalVariation.toFixed(4)).join(" ")}, chi-square p ${r.chi.map((x) => x.pValue.toExponential(1)).join(" ")}`,
        );
        // The first block (positions 0-5) comes before the fault: it must still look exact.
        if (mutation !== "route-after-draft") expect(r.chi[0]!.pValue).to.be.greaterThan(P_THRESHOLD);
        expect(Math.min(...r.ks.map((k) => k.pValue), ...r.chi.map((c) => c.pValue))).to.be.lessThan(P_THRESHOLD);
      });
    }
  });

  it("the routed policy's first 3 tokens follow the target's law (chi-square, 20 000 runs); the route-after-draft mutant fails", async () => {
    for (const mutation of [undefined, "route-after-draft"] as const) {
      const levels = family(2);
      const lookup = new ContextLookupLevel(VOCAB);
      const decoder = new RoutedDecoder(routedPolicy(levels, lookup), { greedy: false, rng: new Rng(5), mutation });
      const counts = new Map<string, number>();
      const seq = new Int32Array(64);
      for (let s = 0; s < 20000; s++) {
        seq.set(PROMPT);
        let committed = PROMPT.length;
        while (committed < PROMPT.length + 3) committed += await decoder.step(seq, committed);
        const key = Array.from(seq.subarray(PROMPT.length, PROMPT.length + 3)).join(",");
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      const expected = new Map<string, number>();
      const probs = new Float32Array(VOCAB);
      const walk = (prefix: number[], mass: number) => {
        if (prefix.length === PROMPT.length + 3) return void expected.set(prefix.slice(PROMPT.length).join(","), mass);
        levels[1]!.law(Int32Array.from(prefix), prefix.length, probs);
        const copy = Array.from(probs);
        copy.forEach((p, x) => walk([...prefix, x], mass * p));
      };
      walk([...PROMPT], 1);
      const fit = chiSquareFit(counts, expected, 20000);
      const routing = decoder.routing();
      expect(routing.states[1]!.steps, "the lookup chain ran").to.be.greaterThan(1000);
      if (mutation) expect(fit.pValue, `TV=${fit.totalVariation.toFixed(4)}`).to.be.lessThan(P_THRESHOLD);
      else expect(fit.pValue, `TV=${fit.totalVariation.toFixed(4)}`).to.be.greaterThan(P_THRESHOLD);
    }
  });

  it("greedy output equals the target's greedy output for routed policies and lookup chains", async () => {
    const vocab: Vocabulary = { isEndOfGeneration: () => false, tokenPiece: (t) => new TextEncoder().encode(`<${t}>`) };
    const run = async (decoder: Decoder) => {
      const it = generate(decoder, vocab, Int32Array.from(PROMPT), { maxTokens: 80 });
      let r = await it.next();
      while (!r.done) r = await it.next();
      return r.value;
    };
    const levels = family(3);
    const greedy = { greedy: true, rng: new Rng(1) };
    const reference = (await run(new HsdDecoder([levels[2]!], { thresholds: [], ...greedy }))).tokens;
    const lookup = new ContextLookupLevel(VOCAB);
    const decoders: Decoder[] = [
      new HsdDecoder([lookup, levels[2]!], { thresholds: [6], ...greedy }),
      new HsdDecoder([lookup, levels[1]!, levels[2]!], { thresholds: [3, 4], ...greedy }),
      new RoutedDecoder(routedPolicy([levels[0]!, levels[2]!], lookup), greedy),
      new RoutedDecoder(
        {
          states: ["0", "1", "2+"],
          state: (s, c) => Math.min(2, lookup.match(s, c).length),
          chains: [
            { levels: [levels[2]!], thresholds: [] },
            { levels: [levels[0]!, levels[1]!, levels[2]!], thresholds: [2, 2] },
            { levels: [lookup, levels[1]!, levels[2]!], thresholds: [5, 2] },
          ],
        },
        greedy,
      ),
    ];
    for (const d of decoders) {
      const r = await run(d);
      expect(r.tokens).to.deep.equal(reference);
      if (d instanceof RoutedDecoder) {
        const steps = r.stats.routing!.states.map((s) => s.steps);
        expect(steps.filter((n) => n > 0).length, `states used: ${steps}`).to.be.greaterThan(1);
      }
    }
  });
});
