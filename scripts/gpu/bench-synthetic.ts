// GPU benchmark of the HSD engine on random-weight models with SYNTHETIC acceptance (see
// scripts/gpu/synthetic-acceptance.ts): real passes, real costs, real recursion and KV-cache handling; the verdicts
// of verification rows are drawn with ASSUMED acceptance rates, so the numbers answer "what would HSD gain on this
// hardware at these acceptance rates", not "what acceptance do these models have".
//
//   node --import tsx scripts/gpu/bench-synthetic.ts --models DIR [options]      (tsx: run from the repo root)
//
// 1. loads every *.gguf in DIR (smallest file first; the largest is the target) with --gpu-layers (default 999);
// 2. measures c_i(n), n = 1 … --max-n, at context depth --depth (src/calibration/measure.ts);
// 3. plans with src/planner (chooseHierarchy) under the assumed acceptance matrix;
// 4. runs, greedy, --tokens tokens after a --depth-token random prompt, --repeats times each: autoregressive
//    target, every single draft at its best T, the planner's pick, and every chain of 2+ drafts at its best
//    thresholds; reports measured ms/token next to the planner's prediction, the measured acceptance and tokens
//    per target pass, and the engine's own overhead (engineMs / wallMs: time outside the models' passes).
// Writes bench-synthetic.json and bench-synthetic.md into --out after every configuration (a run cut short by a
// time limit still leaves its results). --budget-s stops starting new configurations after that many seconds.
//
// Options: --out DIR (build/gpu-bench) --gpu-layers N (999) --threads N (min(8, physical cores)) --max-n N (18)
//   --depth N (512) --tokens N (128) --warmup-tokens N (8) --repeats N (3) --cost-reps N (10) --cost-warmup N (3)
//   --max-threshold N (16) --acceptance JSON|FILE (a[lo][hi] matrix; default: the table below) --budget-s S (300)
//   --evaluation sync|async (sync) --seed N (1) --note TEXT (put in the report, e.g. the GPU's name)
//   --only KINDS (comma list of autoregressive, planner, single, chain: run only those configurations)
//   --flash-attention auto|on|off (auto: llama.cpp decides)
import fs from "node:fs";
import path from "node:path";

import {
  GREEDY,
  defaultThreads,
  loadModel,
  nativeBackend,
  nativeDevices,
  type LlamaContext,
  type LlamaModel,
} from "../../src/native/index.js";
import { NativeLevel } from "../../src/levels/native-model.js";
import { HsdDecoder } from "../../src/engine/hsd.js";
import { generate, type RunStats, type Vocabulary } from "../../src/engine/generate.js";
import { withSyntheticAcceptance } from "./synthetic-acceptance.js";
import { measurePassCosts } from "./pass-costs.js";
import {
  bestThresholds as plannerBestThresholds,
  chooseHierarchy,
  predictChain,
  type PassCostSample,
  type PlannerInput,
} from "../../src/planner/index.js";
import { Rng } from "../../src/util/rng.js";
import { median } from "../../src/util/stats.js";

// ---------------------------------------------------------------------------------------------------- options
interface Options {
  models: string;
  out: string;
  gpuLayers: number;
  threads: number;
  maxN: number;
  depth: number;
  tokens: number;
  warmupTokens: number;
  repeats: number;
  costReps: number;
  costWarmup: number;
  maxThreshold: number;
  acceptance: number[][] | null;
  budgetS: number;
  evaluation: "sync" | "async";
  seed: number;
  note: string;
  only: string[] | null;
  flashAttention: "auto" | "on" | "off";
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    models: "",
    out: "build/gpu-bench",
    gpuLayers: 999,
    threads: Math.min(8, defaultThreads()),
    maxN: 18,
    depth: 512,
    tokens: 128,
    warmupTokens: 8,
    repeats: 3,
    costReps: 10,
    costWarmup: 3,
    maxThreshold: 16,
    acceptance: null,
    budgetS: 300,
    evaluation: "sync",
    seed: 1,
    note: "",
    only: null,
    flashAttention: "auto",
  };
  const ints: Record<string, keyof Options> = {
    "--gpu-layers": "gpuLayers",
    "--threads": "threads",
    "--max-n": "maxN",
    "--depth": "depth",
    "--tokens": "tokens",
    "--warmup-tokens": "warmupTokens",
    "--repeats": "repeats",
    "--cost-reps": "costReps",
    "--cost-warmup": "costWarmup",
    "--max-threshold": "maxThreshold",
    "--budget-s": "budgetS",
    "--seed": "seed",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      if (i + 1 >= argv.length) throw new Error(`bench-synthetic: ${a} needs a value`);
      return argv[++i]!;
    };
    if (a in ints) {
      const v = Number(val());
      if (!Number.isInteger(v) || v < 0) throw new Error(`bench-synthetic: ${a} needs an integer >= 0`);
      (o as unknown as Record<string, number>)[ints[a]!] = v;
    } else if (a === "--models") o.models = val();
    else if (a === "--out") o.out = val();
    else if (a === "--note") o.note = val();
    else if (a === "--flash-attention") {
      const v = val();
      if (v !== "auto" && v !== "on" && v !== "off")
        throw new Error("bench-synthetic: --flash-attention is auto, on or off");
      o.flashAttention = v;
    } else if (a === "--only") {
      o.only = val()
        .split(",")
        .map((x) => x.trim());
      for (const k of o.only) {
        if (!["autoregressive", "planner", "single", "chain"].includes(k))
          throw new Error(`bench-synthetic: --only takes autoregressive,planner,single,chain; got ${k}`);
      }
    } else if (a === "--evaluation") {
      const v = val();
      if (v !== "sync" && v !== "async") throw new Error("bench-synthetic: --evaluation is sync or async");
      o.evaluation = v;
    } else if (a === "--acceptance") {
      const v = val();
      const text = fs.existsSync(v) ? fs.readFileSync(v, "utf8") : v;
      o.acceptance = JSON.parse(text) as number[][];
    } else throw new Error(`bench-synthetic: unknown argument ${a} (see the header of scripts/gpu/bench-synthetic.ts)`);
  }
  if (!o.models) throw new Error("bench-synthetic: --models DIR is required");
  if (o.maxN < 2 || o.tokens < 1 || o.repeats < 1 || o.costReps < 1 || o.maxThreshold < 1 || o.threads < 1) {
    throw new Error("bench-synthetic: --max-n >= 2, --tokens/--repeats/--cost-reps/--max-threshold/--threads >= 1");
  }
  return o;
}

/**
 * ASSUMED acceptance (greedy), a[lo][hi] for models sorted small -> large. For the four Qwen2.5-like sizes it is
 * the table below (neighbours agree more than distant sizes, the target agrees most with its nearest draft);
 * for other counts a smooth rule of the same shape. These are inputs, not measurements.
 */
function defaultAcceptance(k: number): number[][] {
  const a = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  if (k === 4) {
    const table: [number, number, number][] = [
      [0, 1, 0.8],
      [0, 2, 0.75],
      [0, 3, 0.7],
      [1, 2, 0.85],
      [1, 3, 0.8],
      [2, 3, 0.9],
    ];
    for (const [lo, hi, v] of table) a[lo]![hi] = v;
    return a;
  }
  for (let lo = 0; lo < k; lo++) {
    for (let hi = lo + 1; hi < k; hi++)
      a[lo]![hi] = Math.min(0.95, Math.max(0.3, 0.9 - 0.1 * (hi - lo - 1) - 0.05 * (k - 1 - hi)));
  }
  return a;
}

// ------------------------------------------------------------------------------------------------------ types
interface ModelEntry {
  label: string;
  file: string;
  bytes: number;
  params: number;
  model: LlamaModel;
  context: LlamaContext;
  level: NativeLevel | null;
  costs: PassCostSample[];
}

interface Config {
  kind: "autoregressive" | "single" | "planner" | "chain";
  chain: number[];
  thresholds: number[];
}

interface ConfigResult {
  kind: Config["kind"];
  plannerPick: boolean;
  chain: string[];
  thresholds: number[];
  acceptance: number[];
  predicted: { msPerToken: number; tokensPerTargetPass: number; speedup: number; passesPerToken: number[] };
  measured: {
    msPerToken: number;
    msPerTokenRuns: number[];
    tokensPerTargetPass: number;
    speedupVsAutoregressive: number | null;
    engineOverhead: number;
    acceptance: number[];
    passesPerToken: number[];
    scoreMsPerToken: number[];
  };
  runs: RunStats[];
}

// ------------------------------------------------------------------------------------------------------- main
const NO_TEXT = new Uint8Array(0);
const VOCABULARY: Vocabulary = { isEndOfGeneration: () => false, tokenPiece: () => NO_TEXT };

function labelOf(file: string): string {
  const m = /(\d+(?:\.\d+)?[bBmM])\.gguf$/.exec(file);
  return m ? m[1]!.toUpperCase() : file.replace(/\.gguf$/, "");
}

function fmt(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(digits);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const elapsedS = () => (performance.now() - started) / 1000;
  const log = (msg: string) => console.log(`[bench-synthetic ${elapsedS().toFixed(1)}s] ${msg}`);
  fs.mkdirSync(o.out, { recursive: true });

  const files = fs
    .readdirSync(o.models)
    .filter((f) => f.endsWith(".gguf"))
    .map((f) => path.join(o.models, f))
    .sort((a, b) => fs.statSync(a).size - fs.statSync(b).size);
  if (files.length < 2)
    throw new Error(
      `bench-synthetic: ${o.models} holds ${files.length} .gguf file(s); need a target and at least one draft`,
    );
  const K = files.length - 1;
  const acceptance = o.acceptance ?? defaultAcceptance(files.length);
  for (let lo = 0; lo < K; lo++) {
    for (let hi = lo + 1; hi <= K; hi++) {
      const v = acceptance[lo]?.[hi];
      if (typeof v !== "number" || !(v >= 0 && v <= 1))
        throw new Error(`bench-synthetic: acceptance[${lo}][${hi}] = ${String(v)}; need a number in [0, 1]`);
    }
  }

  // Room for the prompt, the generated tokens and the longest block any chain may propose.
  const maxBlock = o.maxThreshold * K + 1;
  const contextSize = Math.ceil((o.depth + o.tokens + o.warmupTokens + 2 * maxBlock + o.maxN + 8) / 256) * 256;
  // measurePassCosts feeds the whole --depth prefix in one call, so the batch must hold it.
  const batchSize = Math.max(64, o.depth, o.maxN + 2, maxBlock + 2);
  const backend = nativeBackend();
  const devices = nativeDevices();
  log(
    `backend ${backend}; devices: ${devices.map((d) => `${d.name} (${d.description}, ${(d.memoryTotal / 2 ** 30).toFixed(0)} GiB)`).join("; ")}`,
  );
  log(
    `${files.length} models, gpuLayers ${o.gpuLayers}, threads ${o.threads}, context ${contextSize}, batch ${batchSize}, depth ${o.depth}`,
  );

  const entries: ModelEntry[] = [];
  for (const file of files) {
    const t = performance.now();
    const model = await loadModel(file, { gpuLayers: o.gpuLayers });
    const context = model.createContext({
      contextSize,
      batchSize,
      threads: o.threads,
      flashAttention: o.flashAttention,
    });
    entries.push({
      label: labelOf(path.basename(file)),
      file: path.basename(file),
      bytes: fs.statSync(file).size,
      params: model.parameterCount,
      model,
      context,
      level: null,
      costs: [],
    });
    log(
      `loaded ${path.basename(file)} (${(model.parameterCount / 1e9).toFixed(2)} B params, vocab ${model.vocabSize}) in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
  }
  const vocab = entries[K]!.model.vocabSize;
  for (const e of entries) {
    if (e.model.vocabSize !== vocab)
      throw new Error(`bench-synthetic: ${e.file} has ${e.model.vocabSize} tokens, the target ${vocab}`);
  }

  // A random prompt (ids below the last token, which the random GGUFs use as end-of-text).
  const rng = new Rng(o.seed);
  const prompt = new Int32Array(o.depth + o.maxN + 1);
  for (let i = 0; i < prompt.length; i++) prompt[i] = Math.floor(rng.next() * (vocab - 1));

  // ---- pass costs
  for (const e of entries) {
    const t = performance.now();
    e.costs = measurePassCosts(e.model, e.context, prompt, GREEDY, {
      maxTokens: o.maxN,
      depth: o.depth,
      repetitions: o.costReps,
      warmup: o.costWarmup,
    });
    e.level = new NativeLevel(e.file, e.context, vocab, o.evaluation);
    log(
      `c(n) ${e.label}: ${e.costs.map((s) => s.ms.toFixed(2)).join(" ")} ms (${((performance.now() - t) / 1000).toFixed(1)} s)`,
    );
  }
  // ---- plans
  const input: PlannerInput = {
    candidates: entries.map((e) => ({ kind: "model", name: e.label, costs: { hot: e.costs } })),
    acceptance,
    maxThreshold: o.maxThreshold,
  };
  const rates = (chain: number[]) => chain.slice(1).map((hi, j) => acceptance[chain[j]!]![hi]!);
  const predict = (chain: number[], thresholds: number[]) => predictChain(input, chain, thresholds);
  const bestThresholds = (chain: number[]): { thresholds: number[]; ms: number } => {
    const plan = plannerBestThresholds(input, chain);
    return { thresholds: plan.thresholds, ms: plan.predictedMsPerToken };
  };
  const tPlan = performance.now();
  const pick = chooseHierarchy(input);
  log(
    `planner (${pick.method}, ${pick.evaluated} evaluated, ${(performance.now() - tPlan).toFixed(0)} ms): ${pick.names.join(" -> ")} T=[${pick.thresholds.join(",")}] predicted ${pick.predictedMsPerToken.toFixed(3)} ms/token`,
  );

  const configs: Config[] = [{ kind: "autoregressive", chain: [K], thresholds: [] }];
  configs.push({ kind: "planner", chain: [...pick.chain], thresholds: [...pick.thresholds] });
  for (let m = 0; m < K; m++)
    configs.push({ kind: "single", chain: [m, K], thresholds: bestThresholds([m, K]).thresholds });
  // Every chain of 2+ drafts, at its own best thresholds (cheap to predict; ordered by predicted latency).
  const multi: { chain: number[]; thresholds: number[]; ms: number }[] = [];
  for (let mask = 1; mask < 1 << K; mask++) {
    const drafts = [...Array(K).keys()].filter((i) => mask & (1 << i));
    if (drafts.length < 2) continue;
    const chain = [...drafts, K];
    multi.push({ chain, ...bestThresholds(chain) });
  }
  multi.sort((a, b) => a.ms - b.ms);
  for (const m of multi) configs.push({ kind: "chain", chain: m.chain, thresholds: m.thresholds });
  // The planner's pick runs once (as "planner"), even where it coincides with a single draft or a chain.
  const same = (a: Config, b: Config) =>
    a.chain.join() === b.chain.join() && a.thresholds.join() === b.thresholds.join();
  const unique = configs.filter((c, i) => {
    if (o.only && !o.only.includes(c.kind)) return false;
    if (i === 1) return c.chain.length > 1; // a pick of "no draft" is the autoregressive run
    return c.kind === "autoregressive" || !same(c, configs[1]!);
  });

  // ---- runs
  const results: ConfigResult[] = [];
  const skipped: string[] = [];
  let arMs: number | null = null;
  const report = () =>
    writeReports(o, entries, acceptance, pick, results, skipped, {
      backend,
      devices,
      contextSize,
      batchSize,
      elapsedS: elapsedS(),
    });
  for (const [ci, c] of unique.entries()) {
    const name = `${c.kind} ${c.chain.map((i) => entries[i]!.label).join("->")} T=[${c.thresholds.join(",")}]`;
    if (elapsedS() > o.budgetS) {
      skipped.push(name);
      log(`skipped (time budget ${o.budgetS} s): ${name}`);
      continue;
    }
    const chainRates = rates(c.chain);
    const run = async (maxTokens: number, seed: number) => {
      const levels = withSyntheticAcceptance(
        c.chain.map((i) => entries[i]!.level!),
        chainRates,
        seed,
      );
      const decoder = new HsdDecoder(levels, { thresholds: c.thresholds, greedy: true, rng: new Rng(seed) });
      const it = generate(decoder, VOCABULARY, prompt.subarray(0, o.depth), { maxTokens });
      let step = await it.next();
      while (!step.done) step = await it.next();
      return step.value.stats;
    };
    await run(o.warmupTokens, o.seed + 1000 + ci); // fills every level's KV cache with the prompt; warms the kernels
    const runs: RunStats[] = [];
    for (let r = 0; r < o.repeats; r++) runs.push(await run(o.tokens, o.seed + 7919 * (r + 1) + ci));

    const p = predict(c.chain, c.thresholds);
    const tokens = runs.reduce((s, x) => s + x.tokens, 0);
    const passes = runs.reduce((s, x) => s + x.targetPasses, 0);
    const ms = median(runs.map((x) => x.msPerToken));
    if (c.kind === "autoregressive") arMs = ms;
    const perLevel = (f: (l: RunStats["levels"][number]) => number) =>
      c.chain.map((_, i) => runs.reduce((s, x) => s + f(x.levels[i]!), 0));
    const judged = perLevel((l) => l.judged);
    const accepted = perLevel((l) => l.accepted);
    results.push({
      kind: c.kind,
      plannerPick: same(c, configs[1]!),
      chain: c.chain.map((i) => entries[i]!.label),
      thresholds: c.thresholds,
      acceptance: chainRates,
      predicted: {
        msPerToken: p.msPerToken,
        tokensPerTargetPass: p.tokensPerTargetPass,
        speedup: p.speedup,
        passesPerToken: p.levels.map((l) => l.passesPerToken),
      },
      measured: {
        msPerToken: ms,
        msPerTokenRuns: runs.map((x) => x.msPerToken),
        // Tokens the target's passes emitted (1 + accepted drafts each): the cut of the last pass at --tokens
        // does not bias it, unlike output tokens / passes.
        tokensPerTargetPass: c.chain.length === 1 ? 1 : 1 + accepted[c.chain.length - 2]! / passes,
        speedupVsAutoregressive: arMs === null ? null : arMs / ms,
        engineOverhead: runs.reduce((s, x) => s + x.engineMs, 0) / runs.reduce((s, x) => s + x.wallMs, 0),
        // Level i's drafts are judged by level i + 1; the target drafts nothing.
        acceptance: judged.slice(0, -1).map((j, i) => (j === 0 ? 0 : accepted[i]! / j)),
        passesPerToken: perLevel((l) => l.passes).map((n) => n / tokens),
        scoreMsPerToken: perLevel((l) => l.scoreMs).map((n) => n / tokens),
      },
      runs,
    });
    const last = results[results.length - 1]!;
    log(
      `${name}: measured ${fmt(ms, 3)} ms/token (runs ${last.measured.msPerTokenRuns.map((x) => fmt(x, 3)).join(", ")}), ` +
        `predicted ${fmt(p.msPerToken, 3)}; tokens/pass ${fmt(last.measured.tokensPerTargetPass)} vs ${fmt(p.tokensPerTargetPass)}; ` +
        `engine overhead ${fmt(100 * last.measured.engineOverhead, 1)}%`,
    );
    report();
  }
  report();
  console.log("\n" + fs.readFileSync(path.join(o.out, "bench-synthetic.md"), "utf8"));
  for (const e of entries) {
    e.context.dispose();
    e.model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------- reports
function writeReports(
  o: Options,
  entries: ModelEntry[],
  acceptance: number[][],
  pick: ReturnType<typeof chooseHierarchy>,
  results: ConfigResult[],
  skipped: string[],
  env: {
    backend: string;
    devices: ReturnType<typeof nativeDevices>;
    contextSize: number;
    batchSize: number;
    elapsedS: number;
  },
): void {
  const K = entries.length - 1;
  const json = {
    what: "HSD engine on random-weight models with SYNTHETIC (assumed) acceptance; greedy; scripts/gpu/bench-synthetic.ts",
    date: new Date().toISOString(),
    note: o.note,
    backend: env.backend,
    devices: env.devices,
    options: { ...o, acceptance: undefined },
    contextSize: env.contextSize,
    batchSize: env.batchSize,
    elapsedS: env.elapsedS,
    models: entries.map((e) => ({ label: e.label, file: e.file, bytes: e.bytes, params: e.params, costs: e.costs })),
    assumedAcceptance: acceptance,
    planner: {
      chain: pick.names,
      thresholds: pick.thresholds,
      predictedMsPerToken: pick.predictedMsPerToken,
      method: pick.method,
    },
    results,
    skipped,
  };
  fs.writeFileSync(path.join(o.out, "bench-synthetic.json"), JSON.stringify(json, null, 1) + "\n");

  const L: string[] = [];
  const gpu =
    env.devices
      .filter((d) => d.type === "gpu")
      .map((d) => d.description)
      .join(", ") || "no GPU device";
  L.push("# HSD on random-weight models, synthetic acceptance");
  L.push("");
  L.push(
    `Produced by \`scripts/gpu/bench-synthetic.ts\` on ${json.date} (${env.backend} backend; ${gpu}; gpuLayers ${o.gpuLayers}, ` +
      `${o.threads} threads, flash attention ${o.flashAttention}${o.note ? `; ${o.note}` : ""}). Greedy; prompt of ${o.depth} random tokens, ${o.tokens} generated tokens per run, ` +
      `${o.repeats} runs per configuration (median shown), evaluation ${o.evaluation}.`,
  );
  L.push("");
  L.push(
    "**The acceptance rates are ASSUMED** (table below), not measured: the models have random weights, and a wrapper " +
      "(scripts/gpu/synthetic-acceptance.ts) overwrites each verification verdict with an independent draw at the assumed " +
      'rate. Passes, costs, KV-cache rollback and the recursion are real. "predicted" is the planner\'s expectedLatency ' +
      "with the measured c_i(n) below.",
  );
  L.push("");
  L.push("## Models");
  L.push("");
  L.push("| model | file | parameters | GiB |");
  L.push("| --- | --- | ---: | ---: |");
  for (const e of entries)
    L.push(`| ${e.label} | ${e.file} | ${(e.params / 1e9).toFixed(2)} B | ${(e.bytes / 2 ** 30).toFixed(2)} |`);
  L.push("");
  L.push(`## Pass cost c_i(n), ms (median of ${o.costReps}, depth ${o.depth})`);
  L.push("");
  L.push(`| n | ${entries.map((e) => e.label).join(" | ")} |`);
  L.push(`| ---: | ${entries.map(() => "---:").join(" | ")} |`);
  for (let n = 1; n <= o.maxN; n++) L.push(`| ${n} | ${entries.map((e) => fmt(e.costs[n - 1]?.ms, 3)).join(" | ")} |`);
  L.push("");
  L.push("## Assumed acceptance a(draft → verifier)");
  L.push("");
  L.push(
    `| draft \\ verifier | ${entries
      .slice(1)
      .map((e) => e.label)
      .join(" | ")} |`,
  );
  L.push(
    `| --- | ${entries
      .slice(1)
      .map(() => "---:")
      .join(" | ")} |`,
  );
  for (let lo = 0; lo < K; lo++) {
    L.push(
      `| ${entries[lo]!.label} | ${entries
        .slice(1)
        .map((_, j) => (j + 1 > lo ? fmt(acceptance[lo]![j + 1]) : ""))
        .join(" | ")} |`,
    );
  }
  L.push("");
  L.push(`## Results (planner's pick: ${pick.names.join(" → ")}, T = [${pick.thresholds.join(", ")}])`);
  L.push("");
  L.push(
    "| configuration | chain | T | predicted ms/token | measured ms/token | measured / predicted | speed-up (measured) | speed-up (predicted) | tokens/target pass (pred / meas) | acceptance measured | engine overhead |",
  );
  L.push("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |");
  for (const r of results) {
    L.push(
      `| ${r.kind}${r.plannerPick && r.kind !== "planner" ? " (= planner)" : ""} | ${r.chain.join(" → ")} | ${r.thresholds.join(", ") || "–"} | ` +
        `${fmt(r.predicted.msPerToken, 3)} | ${fmt(r.measured.msPerToken, 3)} | ${fmt(r.measured.msPerToken / r.predicted.msPerToken)} | ` +
        `${fmt(r.measured.speedupVsAutoregressive)} | ${fmt(r.predicted.speedup)} | ${fmt(r.predicted.tokensPerTargetPass)} / ${fmt(r.measured.tokensPerTargetPass)} | ` +
        `${r.measured.acceptance.map((a) => fmt(a)).join(", ") || "–"} | ${fmt(100 * r.measured.engineOverhead, 1)}% |`,
    );
  }
  if (skipped.length) L.push("", `Skipped (time budget ${o.budgetS} s): ${skipped.join("; ")}.`);
  L.push("");
  L.push(
    "Engine overhead = time outside the models' score() calls / wall time (stats.engineMs / wallMs). Measured ms/token = " +
      "wall time / generated tokens, prompt excluded (every level's KV cache holds the prompt from a warm-up run); the last " +
      "target pass is cut at the token budget, which adds about half a pass of work per run. Passes per token by level, " +
      "measured vs predicted, and every run's raw stats are in bench-synthetic.json.",
  );
  fs.writeFileSync(path.join(o.out, "bench-synthetic.md"), L.join("\n") + "\n");
}

main().catch((e: unknown) => {
  console.error(`bench-synthetic: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
