// Planning while generating (docs/ALGORITHM.md §10) on in-memory models with a virtual clock, so that pass costs
// are known and runs are deterministic: the text changes mid-generation (a draft model that predicted the first part
// well knows nothing of the second, which copies the prompt), the online calibration sees the draft's acceptance
// collapse, and the decoder switches plan — while greedy output stays the target's and sampled output keeps the
// target's law.
import { expect } from "chai";
import { AdaptiveDecoder, type AdaptiveMutation } from "../src/engine/adaptive.js";
import { HsdDecoder, type Decoder } from "../src/engine/hsd.js";
import { generate } from "../src/engine/generate.js";
import type { Calibration } from "../src/calibration/calibrate.js";
import { stateOf } from "../src/calibration/measure.js";
import { ContextLookupLevel } from "../src/levels/ngram-lookup.js";
import type { DistributionRows, Level, ModelLevel } from "../src/levels/level.js";
import { OnlinePlanner } from "../src/api/online.js";
import { fixedPlan } from "../src/api/adaptive.js";
import { inThreadReplanner } from "../src/api/replanner.js";
import type { ModelInfo } from "../src/gguf/model-info.js";
import { Rng } from "../src/util/rng.js";
import { SyntheticLevel, syntheticFamily } from "./helpers/synthetic-levels.js";
import { conditionalTests } from "./helpers/conditional.js";

const VOCAB = 6;
const PROMPT = [3, 1, 4, 1, 5, 2, 0, 5, 3, 4, 2, 1, 0, 3, 5, 4, 2, 0, 1, 4];
/** From this many generated tokens on, the target copies the prompt. */
const SWITCH_AT = 24;
const BOUNDS = [0, 1, 2, 3, 4, 6, 8];

/** A virtual clock that passes advance by their cost: deterministic "measured" times. */
class Clock {
  t = 0;
  now = () => this.t;
}

/** A synthetic model whose passes cost `fixed + perToken · n` ms on the virtual clock. */
class TimedLevel implements ModelLevel {
  readonly kind = "model";
  constructor(
    readonly inner: SyntheticLevel,
    private readonly clock: Clock,
    private readonly fixed: number,
    private readonly perToken: number,
  ) {}
  get name() {
    return this.inner.name;
  }
  get vocabSize() {
    return this.inner.vocabSize;
  }
  get contextSize() {
    return this.inner.contextSize;
  }
  get tokensEvaluated() {
    return this.inner.tokensEvaluated;
  }
  score(sequence: Int32Array, length: number, firstRow: number, rows: DistributionRows, rowOffset: number): void {
    const before = this.inner.tokensEvaluated;
    this.inner.score(sequence, length, firstRow, rows, rowOffset);
    this.clock.t += this.fixed + this.perToken * (this.inner.tokensEvaluated - before);
  }
}

/** The target: the synthetic law on prose, then (from SWITCH_AT generated tokens) 0.9 on copying the prompt. */
function copyingLaw(base: (c: Int32Array, n: number, out: Float32Array) => void) {
  return (context: Int32Array, length: number, out: Float32Array) => {
    base(context, length, out);
    const generated = length - PROMPT.length;
    if (generated < SWITCH_AT) return;
    const copy = PROMPT[(generated - SWITCH_AT) % PROMPT.length]!;
    for (let x = 0; x < VOCAB; x++) out[x] = 0.1 * out[x]! + (x === copy ? 0.9 : 0);
  };
}

function setup(clock: Clock, draftFixedMs = 0.1) {
  const laws = syntheticFamily(VOCAB, 2, 21);
  const draft = new TimedLevel(new SyntheticLevel("draft.gguf", VOCAB, laws[0]!), clock, draftFixedMs, 0.01);
  const target = new TimedLevel(new SyntheticLevel("target.gguf", VOCAB, copyingLaw(laws[1]!)), clock, 1, 0.1);
  const lookup = new ContextLookupLevel(VOCAB);
  const levels: Level[] = [lookup, draft, target];
  const levelOf = (name: string) => levels.find((l) => l.name === name)!;
  const state = (sequence: Int32Array, committed: number) => stateOf(BOUNDS, lookup.match(sequence, committed).length);
  return { draft, target, lookup, levels, levelOf, state };
}

const curve = (fixed: number, perToken: number) =>
  Array.from({ length: 18 }, (_, k) => ({ n: k + 1, ms: fixed + perToken * (k + 1) }));

/** What an earlier calibration said: the draft agrees well; the lookup rarely matches and is not trusted much. */
function prior(): Calibration {
  const state = (name: string) => ({
    name,
    positions: 10,
    available: [[0.7, 0.1, 0.1, 0.05, 0.05]],
    acceptance: [
      [null, [0.3], [0.3]],
      [null, null, [0.85]],
      [null, null, null],
    ],
  });
  const states = BOUNDS.map((b, s) => state(s + 1 < BOUNDS.length ? `match ${b}` : `match ${b}+`));
  const model = (file: string, fixed: number, perToken: number) => ({
    file,
    path: file,
    costs: {
      hot: curve(fixed, perToken),
      cold: curve(fixed, perToken),
      reshape: curve(0, 0),
      autoregressiveMs: fixed + perToken,
    },
    fromCache: false,
  });
  return {
    models: [model("draft.gguf", 0.1, 0.01), model("target.gguf", 1, 0.1)],
    acceptance: [
      [0, 0.85],
      [0, 0],
    ],
    workload: {
      proposals: [{ name: "ngram-lookup", costMs: 0 }],
      states,
      overall: state("all"),
      paths: [new Array(40).fill(0)],
    },
    lookup: { minMatch: 1, maxMatch: 8, states: BOUNDS },
    acceptanceFromCache: false,
    source: "calibrated",
    transform: { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 },
    threads: 1,
    device: "virtual",
    prompts: 1,
    continuationTokens: 16,
  };
}

// One vocabulary for both models (planning compares them: src/gguf/vocabulary.ts).
const VOCABULARY = {
  model: "test",
  tokens: Array.from({ length: VOCAB }, (_, i) => `t${i}`),
  types: null,
  merges: [],
  specials: {},
};
const INFOS = ["draft.gguf", "target.gguf"].map(
  (file, i) =>
    ({
      path: file,
      file,
      name: file,
      architecture: "test",
      parameterCount: (i + 1) * 1e6,
      fileSize: 0,
      quantisation: "F32",
      vocabSize: VOCAB,
      vocabFingerprint: "x",
      vocabulary: VOCABULARY,
      contextLength: null,
    }) satisfies ModelInfo,
);

function adaptive(
  greedy: boolean,
  seed: number,
  clock: Clock,
  replanEvery = 8,
  mutation?: AdaptiveMutation,
  options: { draftFixedMs?: number; replan?: boolean } = {},
) {
  const s = setup(clock, options.draftFixedMs);
  const start = prior();
  start.transform = greedy ? start.transform : { greedy: false, temperature: 1, topK: 0, topP: 1, minP: 0 };
  const planner = new OnlinePlanner({
    prior: start,
    source: "calibrated",
    infos: INFOS,
    maxThreshold: 8,
    ngram: "auto",
    levels: s.levels,
    lookup: s.lookup,
    states: BOUNDS,
    replanner: inThreadReplanner,
    now: clock.now,
  });
  const initial = planner.live(planner.plan);
  const alone = fixedPlan(["target.gguf"], [], Number.NaN);
  const baseline = planner.live({ ...alone, predictedMsPerToken: planner.predict(alone) });
  const decoder = new AdaptiveDecoder({
    greedy,
    rng: new Rng(seed),
    levels: s.levels,
    maxDraftBlock: 20,
    initial,
    replan: options.replan === false ? null : planner.replan,
    observer: planner.learner,
    now: clock.now,
    times: planner.times,
    baseline,
    exploreEvery: 0,
    replanEvery,
    mutation,
  });
  const learner = planner.learner;
  return { ...s, decoder, learner, initial, baseline };
}

const vocabulary = { isEndOfGeneration: () => false, tokenPiece: (t: number) => new TextEncoder().encode(`<${t}>`) };

async function tokensOf(decoder: Decoder, maxTokens: number) {
  const prompt = Int32Array.from(PROMPT);
  const it = generate(decoder, vocabulary, prompt, { maxTokens });
  let r = await it.next();
  while (!r.done) r = await it.next();
  return r.value.tokens;
}

describe("planning while generating (synthetic models, virtual clock)", function () {
  this.timeout(120_000);

  it("the text changes mid-generation: the draft's acceptance collapses, the decoder switches plan, greedy output stays the target's", async () => {
    const clock = new Clock();
    const a = adaptive(true, 1, clock);
    const reference = await tokensOf(new HsdDecoder([a.target], { thresholds: [], greedy: true, rng: new Rng(1) }), 96);
    const tokens = await tokensOf(a.decoder, 96);
    expect(tokens).to.deep.equal(reference);
    expect(a.decoder.replans).to.be.greaterThan(3);
    expect(a.decoder.switches.length, JSON.stringify(a.decoder.switches)).to.be.at.least(1);
    const last = a.decoder.switches[a.decoder.switches.length - 1]!;
    expect(last.step).to.be.greaterThan(5);
    expect(a.decoder.plan.label).to.not.equal(a.initial.label);
    console.log(
      `      initial plan: ${a.initial.label}\n      switches: ${a.decoder.switches.map((s) => `step ${s.step}: -> ${s.to} (predicted ${(100 * s.predictedGain).toFixed(0)}% faster)`).join("; ")}`,
    );
  });

  it("the measured guard: a draft that costs more in the run than the estimates say gives way to the target alone once measured, with the target's greedy tokens", async () => {
    // Passes of the draft cost 2 ms on the clock, the estimates say 0.1 ms, and nothing re-plans (the model stays
    // wrong): only the measurement can tell that the target alone (1.1 ms a token) is faster.
    const clock = new Clock();
    const a = adaptive(true, 1, clock, 8, undefined, { draftFixedMs: 2, replan: false });
    expect(a.initial.label).to.not.equal(a.baseline.label);
    const reference = await tokensOf(
      new HsdDecoder([a.target], { thresholds: [], greedy: true, rng: new Rng(1) }),
      160,
    );
    const tokens = await tokensOf(a.decoder, 160);
    expect(tokens).to.deep.equal(reference);
    expect(a.decoder.plan.label).to.equal(a.baseline.label);
    expect(a.decoder.times.msPerToken(a.baseline.label)).to.be.lessThan(a.decoder.times.msPerToken(a.initial.label)!);
    const fallback = a.decoder.switches.find((s) => s.to === a.baseline.label)!;
    expect(fallback.from).to.equal(a.initial.label);
    console.log(
      `      ${a.initial.label}: ${a.decoder.times.msPerToken(a.initial.label)!.toFixed(2)} ms/token measured; target alone ${a.decoder.times.msPerToken(a.baseline.label)!.toFixed(2)}; fell back at step ${fallback.step}`,
    );
    // With the draft as cheap as estimated, the guard still measures the target alone, and keeps whichever plan
    // measured faster (here the text turns to copying the prompt, where the draft knows nothing, after 24 tokens).
    const b = adaptive(true, 1, new Clock(), 8, undefined, { replan: false });
    await tokensOf(b.decoder, 160);
    const draftMs = b.decoder.times.msPerToken(b.initial.label)!;
    const aloneMs = b.decoder.times.msPerToken(b.baseline.label)!;
    expect(aloneMs).to.not.equal(null);
    expect(b.decoder.plan.label).to.equal(draftMs > aloneMs * 1.03 ? b.baseline.label : b.initial.label);
  });

  it("with switching on, every token of 48-token generations follows the target's conditional law (PIT and sequential chi-square)", async () => {
    // One adaptive decoder over many generations: it keeps learning and switching across them (as a server would).
    const clock = new Clock();
    const a = adaptive(false, 3, clock, 200);
    const law = a.target.inner.law;
    const r = await conditionalTests(a.decoder, law, PROMPT, VOCAB, 1500, 48);
    const worst = Math.min(...r.ks.map((k) => k.pValue), ...r.chi.map((c) => c.pValue));
    console.log(
      `      ${r.values} tokens, ${a.decoder.switches.length} switches over ${a.decoder.replans} re-plans; KS D ${r.ks.map((k) => k.d.toFixed(4)).join(" ")}, context TV ${r.chi.map((x) => x.totalVariation.toFixed(4)).join(" ")}; min p ${worst.toExponential(2)}`,
    );
    expect(a.decoder.switches.length).to.be.at.least(1);
    expect(worst).to.be.greaterThan(1e-6);
  });

  it("catches a decoder that retries a short step under another plan (the same tests, the same size)", async () => {
    const clock = new Clock();
    const a = adaptive(false, 4, clock, 200, "retry-short-step");
    const r = await conditionalTests(a.decoder, a.target.inner.law, PROMPT, VOCAB, 1500, 48);
    const worst = Math.min(...r.ks.map((k) => k.pValue), ...r.chi.map((c) => c.pValue));
    console.log(`      mutant: min p ${worst.toExponential(2)}`);
    expect(worst).to.be.lessThan(1e-6);
  });
});
