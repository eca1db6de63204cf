/**
 * The remote-target benchmark (`npm run bench:rpc -- [options]`): the target on an rpc-server (llama.cpp's RPC
 * backend), the drafts local, at several network round-trip times.
 *
 * Each round trip is emulated on this machine: ggml-rpc-server on 127.0.0.1 behind a delay relay that holds every
 * chunk RTT/2 ms each way (test/helpers/delay-relay.ts; RTT 0 = plain loopback, no relay). One server, relay and
 * Hsd instance per RTT, all open at once, so that the runs of every RTT and method can be interleaved: for each
 * repetition and prompt, every RTT in turn (rotated), every method in turn (rotated). Methods: autoregressive (the
 * target alone), every single draft at its best thresholds (by the latency model, from this RTT's own full
 * calibration on other prompts of the workload's kind: each model, and with --ngram auto the context lookup), and
 * the optimiser's pick: with --ngram off (default) its best fixed chain of model drafts (a hierarchy when it
 * predicts one pays), with --ngram auto the product's routed policy (hierarchy "auto", adapt false); and the
 * adaptive default (hierarchy "auto", adapt true: plans while generating from what its earlier runs in this
 * instance learned; its prediction is the online estimates' at the end of each run, median over runs).
 * Greedy, so every method must write the same tokens (checked). Reports median ms/token per method, the latency
 * model's prediction next to each, and the pick's ratio to the best single draft (measured: the best one measured
 * at that RTT; predicted: the latency model's best single draft), then checks the issue's criteria: the pick at
 * least 1.2x the best single draft at some RTT where the model predicts it, and never below 0.97x.
 *
 *   --rtt 0,0.5,2,10    round-trip times, ms          --prompts 4       prose prompts (scripts/bench-lib/prompts.ts)
 *   --tokens 64         tokens per generation          --reps 3          repetitions of every (prompt, RTT, method)
 *   --threads 1         ggml threads per local model   --server-threads 1  ggml-rpc-server's threads
 *   --workload prose    prose | grounded (scripts/bench-lib/workload.ts)   --ngram off   off | auto
 *   --out bench-out     where rpc-<workload>-<ngram>.json and .md go
 */
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { join, resolve } from "node:path";

import { Hsd } from "../src/api/hsd.js";
import { plannedChain, plannerInput, type PlanReport, type PlannedChain } from "../src/api/plan.js";
import { bestThresholds } from "../src/planner/index.js";
import { startDelayRelay, type DelayRelay } from "../test/helpers/delay-relay.js";
import { startRpcServer, ensureRpcBuild, type RpcServerProcess } from "../test/helpers/rpc-server.js";
import { BENCH_PROMPTS } from "./bench-lib/prompts.js";
import { workload } from "./bench-lib/workload.js";
import { rotate } from "./bench-lib/stats.js";
import { median } from "../src/util/stats.js";

const log = (s: string): void => void process.stderr.write(`${s}\n`);

function parseOptions(argv: string[]) {
  const o = {
    rtt: [0, 0.5, 2, 10],
    prompts: 4,
    tokens: 64,
    reps: 3,
    threads: 1,
    serverThreads: 1,
    out: "bench-out",
    workload: "prose" as "prose" | "grounded",
    ngram: "off" as "off" | "auto",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    const n = (min: number) => {
      const x = Number(v());
      if (!Number.isInteger(x) || x < min) throw new Error(`${a} must be an integer >= ${min}`);
      return x;
    };
    if (a === "--rtt") {
      o.rtt = v()
        .split(",")
        .map((s) => Number(s));
      if (o.rtt.some((x) => !(x >= 0))) throw new Error("--rtt: round-trip times in ms, >= 0, e.g. 0,0.5,2,10");
    } else if (a === "--prompts") o.prompts = Math.min(n(1), BENCH_PROMPTS.length);
    else if (a === "--tokens") o.tokens = n(1);
    else if (a === "--reps") o.reps = n(1);
    else if (a === "--threads") o.threads = n(1);
    else if (a === "--server-threads") o.serverThreads = n(1);
    else if (a === "--out") o.out = v();
    else if (a === "--workload") {
      const w = v();
      if (w !== "prose" && w !== "grounded") throw new Error("--workload must be prose or grounded");
      o.workload = w;
    } else if (a === "--ngram") {
      const n = v();
      if (n !== "off" && n !== "auto") throw new Error("--ngram must be off or auto");
      o.ngram = n;
    } else if (a === "--help" || a === "-h") {
      console.log("see the header of scripts/bench-rpc.ts");
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see the header of scripts/bench-rpc.ts)`);
  }
  return o;
}

interface Method {
  /** "autoregressive", "single <draft>", "pick". */
  name: string;
  /** null: the routed policy (hierarchy "auto" from the calibrated plan), or the adaptive default. */
  chain: string[] | null;
  /** Plan while generating (the product's default); its prediction is the online one, filled in after the runs. */
  adapt: boolean;
  thresholds: number[];
  predictedMsPerToken: number;
  /** How the pick reads in the tables. */
  label: string;
}

interface Setup {
  rtt: number;
  server: RpcServerProcess;
  relay: DelayRelay | null;
  hsd: Hsd;
  plan: PlanReport;
  methods: Method[];
  /** ms/token of every run, per method name. */
  runs: Map<string, number[]>;
  /** The online estimates' prediction for the plan running at the end of each adaptive run. */
  adaptivePredicted: number[];
}

const short = (name: string) => name.replace(/^hsd-tiny-|\.gguf$/g, "");
const chainLabel = (c: string[], t: number[]) => c.map(short).join(" > ") + (t.length ? ` [${t.join(",")}]` : "");

/** Autoregressive, every single draft at its best thresholds, and the optimiser's pick, with predictions. */
function methodsOf(plan: PlanReport): Method[] {
  const input = plannerInput(plan.candidates, plan.acceptance, plan.maxThreshold);
  const target = plan.candidates.length - 1;
  const fromChain = (name: string, c: PlannedChain): Method => ({
    name,
    chain: c.chain,
    adapt: false,
    thresholds: c.thresholds,
    predictedMsPerToken: c.predictedMsPerToken,
    label: chainLabel(c.chain, c.thresholds),
  });
  const singles = plan.candidates.slice(0, -1).map((c, i) => {
    const t = bestThresholds(input, [i, target]).thresholds;
    return fromChain(`single ${c.name}`, plannedChain(input, [i, target], t));
  });
  const pick: Method = plan.policy
    ? {
        name: "pick",
        chain: null,
        adapt: false,
        thresholds: [],
        predictedMsPerToken: plan.policy.predictedMsPerToken,
        label:
          "routed: " +
          plan.policy.states
            .map((s) => `${s.name.replace("match ", "m")} ${chainLabel(s.chain, s.thresholds)}`)
            .join("; "),
      }
    : fromChain("pick", plan.best);
  const adaptive: Method = {
    name: "adaptive",
    chain: null,
    adapt: true,
    thresholds: [],
    predictedMsPerToken: NaN,
    label: "adaptive default",
  };
  return [fromChain("autoregressive", plan.autoregressive), ...singles, pick, adaptive];
}

const options = parseOptions(process.argv.slice(2));
const work = workload(options.workload, options.prompts);
const prompts = work.prompts;
const planRequest = { sampling: { greedy: true }, prompts: work.calibration };
const startedAt = new Date();
ensureRpcBuild();

const setups: Setup[] = [];
try {
  // One server, relay and instance per RTT; each calibrated in turn (a full calibration, greedy), then all runs.
  for (const rtt of options.rtt) {
    const server = await startRpcServer({ threads: options.serverThreads });
    const relay = rtt > 0 ? await startDelayRelay({ target: server.endpoint, delayMs: rtt / 2 }) : null;
    const hsd = await Hsd.open({
      rpc: relay?.endpoint ?? server.endpoint,
      ngram: options.ngram,
      threads: options.threads,
    });
    log(`RTT ${rtt} ms: ${hsd.device}; calibrating`);
    const plan = await hsd.plan({ ...planRequest, recalibrate: true });
    const methods = methodsOf(plan);
    log(`  pick ${methods.find((m) => m.name === "pick")!.label}`);
    const runs = new Map(methods.map((m) => [m.name, [] as number[]]));
    setups.push({ rtt, server, relay, hsd, plan, methods, runs, adaptivePredicted: [] });
  }

  const generate = (s: Setup, m: Method, prompt: string) =>
    s.hsd.generate(prompt, {
      hierarchy: m.chain ? { files: m.chain, thresholds: m.thresholds } : "auto",
      sampling: { greedy: true },
      maxTokens: options.tokens,
      adapt: m.adapt,
      plan: { prompts: work.calibration }, // the calibrated plan above (Hsd caches it by this request)
    }).result;

  // Warm-up (untimed), then the interleaved runs. Greedy: every method must give autoregressive's tokens.
  const reference = new Map<string, number[]>();
  const mismatches: string[] = [];
  for (const s of setups) for (const m of s.methods) await generate(s, m, prompts[0]!);
  const loadBefore = os.loadavg();
  let run = 0;
  for (let rep = 0; rep < options.reps; rep++)
    for (const [p, prompt] of prompts.entries())
      for (const s of rotate(setups, rep + p)) {
        for (const m of rotate(s.methods, run++)) {
          const r = await generate(s, m, prompt);
          s.runs.get(m.name)!.push(r.stats.msPerToken);
          if (m.adapt && r.online) s.adaptivePredicted.push(r.online.predictedMsPerToken);
          const ref = reference.get(prompt);
          if (!ref) reference.set(prompt, r.tokens);
          else if (r.tokens.join() !== ref.join()) mismatches.push(`RTT ${s.rtt} ${m.name} "${prompt}"`);
        }
        log(`rep ${rep + 1}/${options.reps}, prompt ${p + 1}/${prompts.length}, RTT ${s.rtt}: done`);
      }
  const loadAfter = os.loadavg();

  // Summary per RTT.
  const rows = setups.map((s) => {
    const adaptive = s.methods.find((m) => m.adapt);
    if (adaptive && s.adaptivePredicted.length) adaptive.predictedMsPerToken = median(s.adaptivePredicted);
    const measured = (name: string) => median(s.runs.get(name)!);
    const byName = new Map(s.methods.map((m) => [m.name, m]));
    const singles = s.methods.filter((m) => m.name.startsWith("single "));
    const bestMeasured = singles.reduce((a, b) => (measured(b.name) < measured(a.name) ? b : a));
    const bestPredicted = singles.reduce((a, b) => (b.predictedMsPerToken < a.predictedMsPerToken ? b : a));
    const pick = byName.get("pick")!;
    const ar = byName.get("autoregressive")!;
    const targetCost = s.plan.candidates[s.plan.candidates.length - 1]!;
    const c1 = targetCost.kind === "model" ? targetCost.costs.hot[0]!.ms : NaN;
    return {
      rtt: s.rtt,
      endpoint: s.relay?.endpoint ?? s.server.endpoint,
      targetPassMs: c1,
      autoregressive: { ms: measured(ar.name), predicted: ar.predictedMsPerToken },
      bestSingle: {
        label: bestMeasured.label,
        ms: measured(bestMeasured.name),
        predicted: bestMeasured.predictedMsPerToken,
      },
      bestSinglePredicted: { label: bestPredicted.label, predicted: bestPredicted.predictedMsPerToken },
      pick: { label: pick.label, ms: measured(pick.name), predicted: pick.predictedMsPerToken },
      pickVsBestSingle: {
        measured: measured(bestMeasured.name) / measured(pick.name),
        predicted: bestPredicted.predictedMsPerToken / pick.predictedMsPerToken,
      },
      adaptive: adaptive && {
        ms: measured(adaptive.name),
        predicted: adaptive.predictedMsPerToken,
        vsBestSingle: measured(bestMeasured.name) / measured(adaptive.name),
      },
      pickVsAutoregressive: {
        measured: measured(ar.name) / measured(pick.name),
        predicted: ar.predictedMsPerToken / pick.predictedMsPerToken,
      },
      methods: s.methods.map((m) => ({
        name: m.name,
        label: m.label,
        predicted: m.predictedMsPerToken,
        runs: s.runs.get(m.name),
        median: measured(m.name),
      })),
    };
  });

  const shown = rows.filter((r) => r.pickVsBestSingle.measured >= 1.2 && r.pickVsBestSingle.predicted >= 1.2);
  const below = rows.filter((r) => r.pickVsBestSingle.measured < 0.97);
  const criteria = {
    pickAtLeast1_2xWherePredicted: shown.map((r) => r.rtt),
    pickBelow0_97x: below.map((r) => r.rtt),
    met: shown.length > 0 && below.length === 0,
  };

  const f = (x: number, d = 2) => x.toFixed(d);
  const md = [
    `Remote target over RPC (${startedAt.toISOString()}): the target on ggml-rpc-server behind a delay relay, drafts local; ` +
      `${options.workload} prompts, ngram ${options.ngram}, ` +
      `greedy, ${prompts.length} prompts x ${options.reps} reps x ${options.tokens} tokens, interleaved. ` +
      `Load average ${loadBefore.map((x) => f(x)).join(", ")} before the runs, ${loadAfter.map((x) => f(x)).join(", ")} after. ` +
      `Command: npm run bench:rpc -- ${process.argv.slice(2).join(" ")}`,
    "",
    "| RTT ms | target c(1) ms | autoregressive ms/tok (pred) | best single draft (measured) ms/tok (pred) | optimiser's pick ms/tok (pred) | pick vs best single: measured (pred) | pick vs AR: measured (pred) | adaptive default ms/tok (online pred), vs best single |",
    "|---:|---:|---:|---|---|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.rtt} | ${f(r.targetPassMs)} | ${f(r.autoregressive.ms)} (${f(r.autoregressive.predicted)}) | ` +
        `${r.bestSingle.label}: ${f(r.bestSingle.ms)} (${f(r.bestSingle.predicted)}) | ` +
        `${r.pick.label}: ${f(r.pick.ms)} (${f(r.pick.predicted)}) | ` +
        `${f(r.pickVsBestSingle.measured)}x (${f(r.pickVsBestSingle.predicted)}x) | ` +
        `${f(r.pickVsAutoregressive.measured)}x (${f(r.pickVsAutoregressive.predicted)}x) | ` +
        (r.adaptive ? `${f(r.adaptive.ms)} (${f(r.adaptive.predicted)}), ${f(r.adaptive.vsBestSingle)}x |` : "– |"),
    ),
    "",
    "Every method, median ms/token (prediction):",
    "",
    ...rows.map(
      (r) =>
        `- RTT ${r.rtt}: ` +
        r.methods
          .map((m) => `${m.name.replace(/hsd-tiny-|\.gguf/g, "")} ${f(m.median)} (${f(m.predicted)})`)
          .join("; "),
    ),
    "",
    `Greedy outputs differing from the first method's: ${mismatches.length === 0 ? "none" : mismatches.join("; ")}.`,
    "",
    `Criteria: pick >= 1.2x the best single draft, measured and predicted, at RTT ${criteria.pickAtLeast1_2xWherePredicted.join(", ") || "none"}; ` +
      `pick below 0.97x at RTT ${criteria.pickBelow0_97x.join(", ") || "none"}: ${criteria.met ? "MET" : "NOT MET"}.`,
  ].join("\n");
  console.log(md);
  const out = resolve(options.out);
  await mkdir(out, { recursive: true });
  const base = `rpc-${options.workload}-ngram-${options.ngram}`;
  await writeFile(join(out, `${base}.md`), md + "\n");
  await writeFile(
    join(out, `${base}.json`),
    JSON.stringify({ startedAt, options, loadBefore, loadAfter, rows, mismatches, criteria }, null, 2) + "\n",
  );
  log(`wrote ${join(out, base)}.md and .json`);
} finally {
  for (const s of setups) {
    await s.hsd.dispose();
    await s.relay?.stop();
    await s.server.kill();
  }
}
