/**
 * hsd's end-to-end benchmark (`npm run bench -- [options]`; `--help` lists them).
 *
 * On the bundled family (or `--models DIR`), for each prompt set (input-grounded and prose, bench-lib/workload.ts)
 * and each decoding mode (greedy, temperature 1 with top-k 40), it runs autoregressive decoding, every single model
 * draft and the context lookup at their best thresholds, the optimiser's routed policy and best fixed chain, other
 * hierarchies, node-llama-cpp's draft-sequence and input-lookup predictors, and llama.cpp's speculative-simple with
 * its draft and n-gram modes — interleaved, repeated — and reports ms/token (median and spread), ratios to
 * autoregressive, to the best single model draft and to llama.cpp's best ngram-simple,draft-simple, the latency
 * model's predictions next to each measurement, and acceptance per level. The plan of each prompt set is the
 * product's own, calibrated on other prompts of the same kind. Writes bench-out/bench.json, bench.md (also printed)
 * and bench.svg.
 *
 * Pieces: scripts/bench-lib/ (options, workload, methods, runner, llama-baseline, llama-cpp, analyse, report, svg).
 * Micro-benchmarks of the hot paths: scripts/bench-micro.ts.
 */

import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Hsd, type GenerateRequest } from "../src/api/hsd.js";
import { defaultContextSize } from "../src/native/model.js";
import { llamaBuildDescription } from "../src/native/load.js";
import { planFromCalibration, policyChains, policyInput, type PlanReport } from "../src/api/plan.js";
import { predictPolicy } from "../src/planner/index.js";
import { analyse, compareCosts, type CostComparison, type MethodResult } from "./bench-lib/analyse.js";
import { LlamaBaseline } from "./bench-lib/llama-baseline.js";
import { ensureLlamaSpeculative, LLAMA_CPP_ANCHOR_BUILD } from "./bench-lib/llama-cpp.js";
import { buildMethods, CalibratedModel, type BenchMethod } from "./bench-lib/methods.js";
import { parseBenchOptions, samplingSettings, type SamplingMode } from "./bench-lib/options.js";
import { workload, type Workload } from "./bench-lib/workload.js";
import { markdownReport, type ReportContext } from "./bench-lib/report.js";
import {
  cellSeed,
  PassRecorder,
  primeCaches,
  runHsd,
  runLlama,
  runLlamaCppRecord,
  type RunRecord,
} from "./bench-lib/runner.js";
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
// The product's default as a new user gets it: an instance of its own whose cache starts empty (a quick prior),
// learning from its own runs only (the pinned methods' runs feed the first instance's estimates).
const adaptiveCache = join(resolve(options.out), "adaptive-cache");
await rm(adaptiveCache, { recursive: true, force: true });
const fresh = options.adaptive
  ? await Hsd.open({
      models: options.models ?? undefined,
      threads: options.threads,
      gpuLayers: options.gpuLayers,
      cacheDir: adaptiveCache,
    })
  : null;
const infos = hsd.models.map((m) => m.info);
if (infos.length < 2) log(`note: ${infos.length} compatible model(s) found: only autoregressive decoding can run`);
for (const r of hsd.rejected) log(`skipped ${r.path}: ${r.reason}`);
const paths = infos.map((m) => m.path);
const contextSize = defaultContextSize(hsd.target.native);
const baseline = options.llama
  ? await LlamaBaseline.create(options.threads, contextSize, hsd.flashAttention !== "off", options.gpuLayers)
  : null;
const llamaCpp = options.llamaCpp && options.gpuLayers === 0 ? ensureLlamaSpeculative(log) : null;
const recorder = new PassRecorder(hsd);

const records: RunRecord[] = [];
/** Results and context per cell "mode/workload". */
const cells: ReportContext["cells"] = [];
const methodsByCell: Record<string, BenchMethod[]> = {};
const resultsByCell: Record<string, MethodResult[]> = {};
const plans: Record<string, PlanReport> = {};
const decodeCosts: Record<string, unknown> = {};
const costsByCell: Record<string, CostComparison[]> = {};

/** The candidate paths of a model method (a lookup level has none; the baselines need model files only). */
const modelPaths = (model: CalibratedModel) => (candidate: number) => paths[model.modelIndex(candidate)]!;

async function runOne(
  method: BenchMethod,
  model: CalibratedModel,
  w: Workload,
  prompt: number,
  mode: SamplingMode,
  seed: number,
  maxTokens: number,
  plan: GenerateRequest["plan"],
  record: boolean,
) {
  const text = w.prompts[prompt]!;
  const pathOf = modelPaths(model);
  if (method.kind === "node-llama-cpp" || method.kind === "node-llama-cpp-lookup") {
    const tokens = hsd.target.native.tokenize(text, true, false);
    return runLlama(
      baseline!,
      method,
      model.files.map((_, i) => (model.plan.candidates[i]!.kind === "model" ? pathOf(i) : "")),
      tokens,
      mode,
      seed,
      maxTokens,
    );
  }
  if (method.kind === "llama.cpp") {
    const models = { target: pathOf(method.chain[method.chain.length - 1]!), draft: pathOf(method.chain[0]!) };
    return runLlamaCppRecord(llamaCpp!, method, models, text, mode, seed, maxTokens, options.threads, contextSize);
  }
  if (method.kind === "hsd-adaptive") {
    await primeCaches(fresh!, text, mode);
    return runHsd(fresh!, method, text, mode, seed, maxTokens, plan, null);
  }
  await primeCaches(hsd, text, mode);
  return runHsd(hsd, method, text, mode, seed, maxTokens, plan, record ? recorder : null);
}

try {
  for (const mode of options.sampling) {
    for (const [wi, name] of options.workloads.entries()) {
      const w = workload(name, options.prompts);
      const cell = `${mode}/${name}`;
      const planRequest = {
        prompts: w.calibration,
        continuationTokens: options.maxTokens,
        maxThreshold: options.maxThreshold,
      };
      log(
        `[${cell}] calibrating (pass costs for n up to ${options.maxThreshold + 2}; acceptance and lookup states on ${w.calibration.length} prompts of this kind) …`,
      );
      // Pass costs once per mode (they do not depend on the prompts); acceptance per prompt set.
      await hsd.calibrate({
        sampling: samplingSettings(mode),
        ...planRequest,
        recalibrate: options.recalibrate && wi === 0,
      });
      const plan = await hsd.plan({ sampling: samplingSettings(mode), ...planRequest });
      // Prediction (3)'s inputs: acceptance and lookup states calibrated on the runs' own prompts.
      log(
        `[${cell}] calibrating acceptance on the benchmark's own prompts (${options.maxTokens}-token continuations) …`,
      );
      const onRuns = await hsd.calibrate({
        sampling: samplingSettings(mode),
        prompts: w.prompts,
        continuationTokens: options.maxTokens,
        maxThreshold: options.maxThreshold,
      });
      const planOnRuns = planFromCalibration(onRuns, infos, options.maxThreshold, hsd.ngram);
      plans[cell] = plan;
      const model = new CalibratedModel(plan);
      const methods = buildMethods(model, {
        maxThreshold: options.maxThreshold,
        others: options.others,
        llama: baseline !== null,
        llamaCpp: llamaCpp !== null,
        adaptive: fresh !== null,
      });
      methodsByCell[cell] = methods;
      log(`[${cell}] ${methods.length} methods:`);
      for (const m of methods) {
        const predicted = m.predicted?.msPerToken ?? m.policyPredictedMsPerToken;
        log(
          `  ${m.label.padEnd(44)} ${m.roles.join(", ").padEnd(16)} predicted ${predicted ? predicted.toFixed(3) : "—"} ms/token`,
        );
      }

      // The latency model's inputs measured the way decoding incurs them (src/calibration/decode-costs.ts,
      // bench-lib/overhead.ts), a slice before every (repetition, prompt) cell, so that they see the same machine
      // load as the runs (on a shared machine the speed drifts by 2x within minutes).
      const promptTokens = w.prompts.map((p) => hsd.target.native.tokenize(p, true, false));
      const lo = Math.min(...promptTokens.map((t) => t.length));
      const hi = Math.min(
        contextSize - 4 * options.maxThreshold - 8,
        Math.max(...promptTokens.map((t) => t.length)) + options.maxTokens,
      );
      const target = hsd.target.native;
      const vocabulary = {
        isEndOfGeneration: (t: number) => target.isEndOfGeneration(t),
        tokenPiece: (t: number) => target.tokenPiece(t),
      };
      let times: PassTimes | null = null;
      const overhead = new Map<string, { ms: number; tokens: number }>();
      const hsdMethods = methods.filter((m) => m.kind === "hsd");
      const maxN = Math.min(
        options.maxThreshold + 2,
        Math.max(2, ...hsdMethods.map((m) => m.thresholds.reduce((a, b) => a + b, 0) + m.chain.length + 1)),
      );
      const slices = options.repetitions * w.prompts.length;
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
      // The engine's own time per token (stub levels, no model work), for the fixed chains and, for the policy, for
      // the best fixed chain (its steps do the same bookkeeping).
      const overheadOf = (m: BenchMethod) =>
        m.kind === "hsd-policy" ? (hsdMethods.find((x) => x.roles.includes("fixed")) ?? m) : m;
      const measureInputs = async (slice: number): Promise<void> => {
        times = mergeTimes(times, await probe.measure(Math.max(1, Math.ceil(16 / slices))));
        for (const m of methods) {
          const stand = overheadOf(m);
          if (stand.kind !== "hsd") continue;
          const o = await measureEngineOverhead(
            stand.thresholds,
            stand.calibratedAcceptance,
            mode === "greedy",
            vocabulary,
            target.vocabSize,
            { tokens: Math.max(100, Math.ceil(3000 / slices)), runs: 1, seed: options.seed + slice },
          );
          const acc = overhead.get(m.id) ?? { ms: 0, tokens: 0 };
          acc.ms += o.msPerToken * o.tokens;
          acc.tokens += o.tokens;
          overhead.set(m.id, acc);
        }
      };

      // Warm-up (not recorded): every method once, so first-call costs (allocations, page faults) stay out.
      for (const m of methods)
        await runOne(m, model, w, 0, mode, 1, Math.min(16, options.maxTokens), planRequest, false);

      const total = options.repetitions * w.prompts.length * methods.length;
      let done = 0;
      for (let rep = 0; rep < options.repetitions; rep++) {
        for (let p = 0; p < w.prompts.length; p++) {
          await measureInputs(rep * w.prompts.length + p);
          const order = rotate(methods, rep * w.prompts.length + p);
          const seed = cellSeed(options.seed, rep, p);
          for (const [slot, m] of order.entries()) {
            const r = await runOne(m, model, w, p, mode, seed, options.maxTokens, planRequest, true);
            records.push({ ...r, cell, repetition: rep, prompt: p, slot });
            done++;
          }
          process.stderr.write(`\r[${cell}] ${done}/${total} runs, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
        }
      }
      process.stderr.write("\n");
      probe.dispose();
      const decode = summariseTimes(times!);
      decodeCosts[cell] = decode;
      const decodeModel = model.withCosts(passCostsFrom(decode));
      const workloadModel = decodeModel.withAcceptance(planOnRuns.acceptance);
      for (const m of methods) {
        const o = overhead.get(m.id);
        if (o) m.overheadMsPerToken = o.ms / o.tokens;
        if (m.kind === "hsd") {
          m.predictedDecode = decodeModel.predict(m.chain, m.thresholds);
          m.predictedWorkload = workloadModel.predict(m.chain, m.thresholds);
        }
        if (m.kind === "hsd-policy") {
          const chains = policyChains(plan);
          const calibration = await hsd.calibrate({ sampling: samplingSettings(mode), ...planRequest });
          m.policyDecodeMsPerToken = predictPolicy(
            policyInput(decodeModel.plan.candidates, calibration.workload!, options.maxThreshold),
            chains,
          );
          m.policyWorkloadMsPerToken = predictPolicy(
            policyInput(decodeModel.plan.candidates, onRuns.workload!, options.maxThreshold),
            chains,
          );
        }
      }
      const mine = records.filter((r) => r.cell === cell);
      resultsByCell[cell] = analyse(model, methods, mine, mode, decodeModel);
      costsByCell[cell] = compareCosts(
        model,
        decodeModel,
        mine,
        [1, 2, 3, 4, 6, 8].filter((n) => n <= maxN),
      );
      cells.push({ cell, mode, workload: name, prompts: w.prompts.length, calibrationPrompts: w.calibration.length });
    }
  }
} finally {
  await baseline?.dispose();
  await fresh?.dispose();
  await hsd.dispose();
}

const wallSeconds = (performance.now() - t0) / 1000;
const first = Object.values(plans)[0]!;
const context: ReportContext = {
  title: `hsd benchmark: ${options.models ? resolve(options.models) : "bundled family"}`,
  command: `npm run bench --${argv.length ? ` ${argv.join(" ")}` : ""}`,
  device: hsd.device,
  llamaBuild: llamaBuildDescription(),
  ...(options.llamaCpp ? { anchorBuild: LLAMA_CPP_ANCHOR_BUILD } : {}),
  threads: options.threads,
  models: first.candidates.flatMap((c) =>
    c.kind === "model" ? [{ file: c.file, parameters: c.parameters, costMs1: c.costs.hot[0]!.ms }] : [],
  ),
  maxTokens: options.maxTokens,
  repetitions: options.repetitions,
  cells,
  plans: Object.fromEntries(
    Object.entries(plans).map(([k, p]) => [k, { fromCache: p.calibration.fromCache, policy: p.policy }]),
  ),
  startedAt: startedAt.toISOString(),
  wallSeconds,
};
const markdown = markdownReport(context, resultsByCell, costsByCell);
await mkdir(options.out, { recursive: true });
const json = {
  context,
  options,
  plans,
  decodeCosts,
  costComparison: costsByCell,
  methods: methodsByCell,
  results: resultsByCell,
  records,
};
await writeFile(join(options.out, "bench.json"), JSON.stringify(json, null, 1));
await writeFile(join(options.out, "bench.md"), markdown + "\n");
await writeFile(join(options.out, "bench.svg"), plotSvg(context.title, resultsByCell) + "\n");
process.stdout.write(markdown + "\n");
log(`wrote ${join(options.out, "bench.json")}, bench.md, bench.svg (${wallSeconds.toFixed(0)} s)`);
