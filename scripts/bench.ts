/**
 * hsd's end-to-end benchmark (`npm run bench -- [options]`; `--help` lists them).
 *
 * On the bundled family (or `--models DIR`), for a fixed prompt set and greedy / temperature 1 decoding, it runs
 * autoregressive decoding, every single draft at its best threshold, the optimiser's hierarchy, a few other
 * hierarchies and node-llama-cpp's DraftSequenceTokenPredictor with the best single draft — interleaved, repeated
 * — and reports ms/token (median and spread), tokens/s, ratios to autoregressive and to the best single draft,
 * the latency formula's prediction next to each measurement, and acceptance per level (measured vs calibrated).
 * Writes bench-out/bench.json, bench-out/bench.md (also printed) and bench-out/bench.svg.
 *
 * Pieces: scripts/bench-lib/ (options, prompts, methods, runner, llama-baseline, analyse, report, svg, and the
 * --synthetic-acceptance hook, which points at scripts/gpu/bench-synthetic.ts). Micro-benchmarks of the hot paths: scripts/bench-micro.ts.
 */

import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Hsd } from "../src/api/hsd.js";
import { defaultContextSize } from "../src/native/model.js";
import { planFromCalibration } from "../src/api/plan.js";
import { analyse, compareCosts, type CostComparison, type MethodResult } from "./bench-lib/analyse.js";
import { LlamaBaseline } from "./bench-lib/llama-baseline.js";
import { buildMethods, CalibratedModel, type BenchMethod } from "./bench-lib/methods.js";
import { parseBenchOptions, samplingSettings, type SamplingMode } from "./bench-lib/options.js";
import { BENCH_PROMPTS } from "./bench-lib/prompts.js";
import { markdownReport, type ReportContext } from "./bench-lib/report.js";
import { cellSeed, PassRecorder, primeCaches, runHsd, runLlama, type RunRecord } from "./bench-lib/runner.js";
import { rotate } from "./bench-lib/stats.js";
import {
  DecodeCostProbe,
  mergeTimes,
  passCostsFrom,
  summariseTimes,
  type PassTimes,
} from "../src/calibration/decode-costs.js";
import { measureEngineOverhead } from "./bench-lib/overhead.js";
import { toTransform } from "../src/api/sampling.js";
import { plotSvg } from "./bench-lib/svg.js";

const log = (s: string): void => void process.stderr.write(`${s}\n`);

const argv = process.argv.slice(2);
const options = parseBenchOptions(argv);

const startedAt = new Date();
const t0 = performance.now();
const hsd = await Hsd.open({
  models: options.models ?? undefined,
  threads: options.threads,
  gpuLayers: options.gpuLayers,
});
const infos = hsd.models.map((m) => m.info);
if (infos.length < 2) log(`note: ${infos.length} compatible model(s) found: only autoregressive decoding can run`);
for (const r of hsd.rejected) log(`skipped ${r.path}: ${r.reason}`);
const prompts = BENCH_PROMPTS.slice(0, options.prompts);
const promptTokens = prompts.map((p) => hsd.target.native.tokenize(p, true, false));
const paths = infos.map((m) => m.path);
const contextSize = defaultContextSize(hsd.target.native);
const baseline =
  options.llama && infos.length >= 2
    ? await LlamaBaseline.create(options.threads, contextSize, hsd.flashAttention !== "off", options.gpuLayers)
    : null;
const recorder = new PassRecorder(hsd);

const records: RunRecord[] = [];
const methodsByMode: Record<string, BenchMethod[]> = {};
const resultsByMode: Record<string, MethodResult[]> = {};
const calibrationByMode: ReportContext["calibration"] = {};
const plans: Record<string, unknown> = {};
const decodeCosts: Record<string, unknown> = {};
const costsByMode: Record<string, CostComparison[]> = {};
let names: string[] = infos.map((m) => m.file);
let costMs1: number[] = [];
let costMode = "";

async function runOne(
  method: BenchMethod,
  prompt: number,
  mode: SamplingMode,
  seed: number,
  maxTokens: number,
  record: boolean,
) {
  if (method.kind === "node-llama-cpp")
    return runLlama(baseline!, method, paths, promptTokens[prompt]!, mode, seed, maxTokens);
  await primeCaches(hsd, prompts[prompt]!, mode);
  return runHsd(hsd, method, prompts[prompt]!, mode, seed, maxTokens, record ? recorder : null);
}

try {
  for (const mode of options.sampling) {
    log(
      `[${mode}] calibrating (pass costs for n up to ${options.maxThreshold + 2}, acceptance on the calibration prompts) …`,
    );
    const calibration = await hsd.calibrate({
      sampling: samplingSettings(mode),
      maxThreshold: options.maxThreshold,
      recalibrate: options.recalibrate,
    });
    const plan = planFromCalibration(calibration, infos, options.maxThreshold);
    // Prediction (3)'s acceptance: calibrated on the benchmark's own prompts, continuations as long as the runs.
    log(`[${mode}] calibrating acceptance on the benchmark's prompts (${options.maxTokens}-token continuations) …`);
    const workload = await hsd.calibrate({
      sampling: samplingSettings(mode),
      maxThreshold: options.maxThreshold,
      recalibrate: options.recalibrate,
      prompts: [...prompts],
      continuationTokens: options.maxTokens,
    });
    plans[mode] = plan;
    calibrationByMode[mode] = { fromCache: plan.calibration.fromCache, acceptance: plan.acceptance };
    const model = new CalibratedModel(plan);
    names = model.names;
    costMs1 = model.files.map((_, i) => model.costAt(i, 1, "hot"));
    costMode = mode;
    const methods = buildMethods(model, {
      maxThreshold: options.maxThreshold,
      others: options.others,
      llama: baseline !== null,
    });
    methodsByMode[mode] = methods;

    log(`[${mode}] ${methods.length} methods (calibration ${plan.calibration.fromCache ? "from cache" : "measured"}):`);
    for (const m of methods)
      log(
        `  ${m.label.padEnd(28)} ${m.roles.join(", ").padEnd(24)} planner's prediction ${m.predicted ? m.predicted.msPerToken.toFixed(3) : "—"} ms/token`,
      );

    // The latency model's inputs measured the way decoding incurs them (src/calibration/decode-costs.ts, bench-lib/overhead.ts), a
    // slice before every (repetition, prompt) cell, so that they see the same machine load as the runs (on a
    // shared machine the speed drifts by 2x within minutes). Pass sizes up to the largest any method can make.
    const lo = Math.min(...promptTokens.map((t) => t.length));
    const hi = Math.max(...promptTokens.map((t) => t.length)) + options.maxTokens;
    const target = hsd.target.native;
    const vocabulary = {
      isEndOfGeneration: (t: number) => target.isEndOfGeneration(t),
      tokenPiece: (t: number) => target.tokenPiece(t),
    };
    let times: PassTimes | null = null;
    const overhead = new Map<string, { ms: number; tokens: number }>();
    const maxN = Math.min(
      options.maxThreshold + 2,
      Math.max(2, ...methods.map((m) => m.thresholds.reduce((a, b) => a + b, 0) + m.chain.length + 1)),
    );
    const slices = options.repetitions * prompts.length;
    // One probe (its own contexts) for the whole mode: fresh contexts per slice would time first-pass costs.
    const probe = new DecodeCostProbe(
      hsd.models.map((m) => m.native),
      {
        maxN,
        text: Int32Array.from(promptTokens.flatMap((t) => Array.from(t))),
        lo,
        hi,
        threads: options.threads,
        flashAttention: hsd.flashAttention,
        transform: toTransform(samplingSettings(mode)),
        seed: options.seed,
      },
    );
    const measureInputs = async (slice: number): Promise<void> => {
      times = mergeTimes(times, await probe.measure(Math.max(1, Math.ceil(16 / slices))));
      for (const m of methods) {
        if (m.kind !== "hsd") continue;
        const o = await measureEngineOverhead(
          m.thresholds,
          m.calibratedAcceptance,
          mode === "greedy",
          vocabulary,
          target.vocabSize,
          {
            tokens: Math.max(100, Math.ceil(3000 / slices)),
            runs: 1,
            seed: options.seed + slice,
          },
        );
        const acc = overhead.get(m.id) ?? { ms: 0, tokens: 0 };
        acc.ms += o.msPerToken * o.tokens;
        acc.tokens += o.tokens;
        overhead.set(m.id, acc);
      }
    };

    // Warm-up (not recorded): every method once, so first-call costs (allocations, page faults) stay out.
    for (const m of methods) await runOne(m, 0, mode, 1, Math.min(16, options.maxTokens), false);

    const total = options.repetitions * prompts.length * methods.length;
    let done = 0;
    for (let rep = 0; rep < options.repetitions; rep++) {
      for (let p = 0; p < prompts.length; p++) {
        await measureInputs(rep * prompts.length + p);
        const order = rotate(methods, rep * prompts.length + p);
        const seed = cellSeed(options.seed, rep, p);
        for (const [slot, m] of order.entries()) {
          const r = await runOne(m, p, mode, seed, options.maxTokens, true);
          records.push({ ...r, repetition: rep, prompt: p, slot });
          done++;
        }
        process.stderr.write(`\r[${mode}] ${done}/${total} runs, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      }
    }
    process.stderr.write("\n");
    probe.dispose();
    const decode = summariseTimes(times!);
    decodeCosts[mode] = decode;
    const decodeModel = model.withCosts(passCostsFrom(decode));
    const workloadModel = decodeModel.withAcceptance(workload.acceptance);
    for (const m of methods) {
      if (m.kind !== "hsd") continue;
      m.predictedDecode = decodeModel.predict(m.chain, m.thresholds);
      m.predictedWorkload = workloadModel.predict(m.chain, m.thresholds);
      const o = overhead.get(m.id)!;
      m.overheadMsPerToken = o.ms / o.tokens;
    }
    resultsByMode[mode] = analyse(
      model,
      methods,
      records.filter((r) => r.mode === mode),
      mode,
      decodeModel,
    );
    costsByMode[mode] = compareCosts(
      model,
      decodeModel,
      records.filter((r) => r.mode === mode),
      [1, 2, 3, 4, 6, 8].filter((n) => n <= maxN),
    );
  }
} finally {
  await baseline?.dispose();
  await hsd.dispose();
}

const wallSeconds = (performance.now() - t0) / 1000;
const context: ReportContext = {
  title: `hsd benchmark: ${options.models ? resolve(options.models) : "bundled family"}`,
  command: `npm run bench --${argv.length ? ` ${argv.join(" ")}` : ""}`,
  device: hsd.device,
  threads: options.threads,
  models: infos.map((m, i) => ({ file: m.file, parameters: m.parameterCount, costMs1: costMs1[i] ?? Number.NaN })),
  costMode,
  prompts: prompts.length,
  maxTokens: options.maxTokens,
  repetitions: options.repetitions,
  calibration: calibrationByMode,
  startedAt: startedAt.toISOString(),
  wallSeconds,
  names,
};
const markdown = markdownReport(context, resultsByMode, costsByMode);
await mkdir(options.out, { recursive: true });
const json = {
  context,
  options,
  prompts,
  plans,
  decodeCosts,
  costComparison: costsByMode,
  methods: methodsByMode,
  results: resultsByMode,
  records,
};
await writeFile(join(options.out, "bench.json"), JSON.stringify(json, null, 1));
await writeFile(join(options.out, "bench.md"), markdown + "\n");
await writeFile(join(options.out, "bench.svg"), plotSvg(context.title, resultsByMode) + "\n");
process.stdout.write(markdown + "\n");
log(`wrote ${join(options.out, "bench.json")}, bench.md, bench.svg (${wallSeconds.toFixed(0)} s)`);
