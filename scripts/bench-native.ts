// What does the N-API layer add to a decode?  npm run bench:native [-- options]
//
// For k = 1..16 tokens per pass it times the same work three ways, on the largest models/tiny/*.gguf:
//   cpp    context.timeDecodeLoop(): truncate + llama_decode + transform, timed inside C++ (the floor)
//   sync   context.evaluateSync() timed from JS (argument checks, typed-array access, the N-API call)
//   async  await context.evaluate() timed from JS (plus the libuv worker hand-off and promise resolution)
// Rounds interleave the three (in rotating order) so that load drift on a shared machine hits all alike; times
// are medians over the rounds. Overhead % = median over rounds of (js - cpp) within the round, / median(cpp):
// pairing within a round cancels slow load drift, and the median ignores rounds hit by preemption. The plain
// difference of medians and the minima are in the JSON too.
// Writes build/bench-native.json.
//
// Options: --model PATH, --rounds N (100), --threads N (1), --position N (64: tokens already in the cache),
//          --max-k N (16), --greedy (argmax only; default is full distributions at temperature 1)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

import { loadModel, loadNative, packageRoot, type SamplingTransform } from "../src/native/index.js";
import { median } from "../src/util/stats.js";

function parseArgs(argv: string[]) {
  const o = { model: "", rounds: 100, threads: 1, position: 64, maxK: 16, greedy: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === "--model") o.model = argv[++i] ?? "";
    else if (a === "--rounds") o.rounds = num();
    else if (a === "--threads") o.threads = num();
    else if (a === "--position") o.position = num();
    else if (a === "--max-k") o.maxK = num();
    else if (a === "--greedy") o.greedy = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

function largestModel(): string {
  const dir = path.join(packageRoot, "models", "tiny");
  const files = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".gguf"))
        .map((f) => path.join(dir, f))
    : [];
  if (files.length === 0) throw new Error(`no models in ${dir}; pass --model PATH`);
  return files.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const modelPath = o.model || largestModel();
  const native = loadNative();
  const model = await loadModel(modelPath);
  const ctx = model.createContext({
    contextSize: o.position + o.maxK + 16,
    batchSize: Math.max(o.maxK, 1),
    threads: o.threads,
  });
  const sampling: SamplingTransform = { greedy: o.greedy, temperature: 1, topK: 0, topP: 1, minP: 0 };
  const V = model.vocabSize;

  // A real text as context and as the tokens of each pass.
  const text =
    "The history of the country is the history of its people, of the work they did and the choices they made. ".repeat(
      20,
    );
  const stream = model.tokenize(text, false, false);
  if (stream.length < o.position + o.maxK) throw new Error("the sample text is too short for --position/--max-k");
  const prefix = stream.subarray(0, o.position);
  for (let p = 0; p < prefix.length; p += ctx.batchSize) {
    const chunk = prefix.subarray(p, Math.min(prefix.length, p + ctx.batchSize));
    ctx.evaluateSync(chunk, p, chunk.length, { probs: null, argmax: new Int32Array(1), rowOffset: 0 }); // no output rows
  }
  ctx.setSampling(sampling);

  const target = {
    probs: o.greedy ? null : new Float32Array(o.maxK * V),
    argmax: new Int32Array(o.maxK),
    rowOffset: 0,
  };
  console.log(
    `model ${path.relative(process.cwd(), modelPath)} (${model.description}, vocab ${V}), backend ${native.config.backend}, ` +
      `${o.threads} thread(s), cache depth ${o.position}, ${o.greedy ? "greedy" : "full distributions at T=1"}, ${o.rounds} rounds`,
  );
  console.log(" k   cpp ms   sync ms  async ms   sync %   async %   sync +us  async +us   (+us: paired median)");

  const rows: Array<Record<string, number>> = [];
  for (let k = 1; k <= o.maxK; k++) {
    const toks = stream.slice(o.position, o.position + k);
    const cpp: number[] = [],
      sync: number[] = [],
      asyn: number[] = [];
    const runs: Array<() => Promise<void> | void> = [
      () => void cpp.push(ctx.timeDecodeLoop(toks, o.position, 0, 1)[0]!),
      () => {
        const t0 = performance.now();
        ctx.evaluateSync(toks, o.position, 0, target);
        sync.push(performance.now() - t0);
      },
      async () => {
        const t0 = performance.now();
        await ctx.evaluate(toks, o.position, 0, target);
        asyn.push(performance.now() - t0);
      },
    ];
    for (let w = 0; w < 3; w++) for (const r of runs) await r(); // warm-up
    cpp.length = sync.length = asyn.length = 0;
    for (let i = 0; i < o.rounds; i++) for (let j = 0; j < 3; j++) await runs[(i + j) % 3]!();
    const syncExtra = median(sync.map((x, i) => x - cpp[i]!));
    const asyncExtra = median(asyn.map((x, i) => x - cpp[i]!));
    const row = {
      k,
      cppMs: median(cpp),
      syncMs: median(sync),
      asyncMs: median(asyn),
      syncExtraMs: syncExtra,
      asyncExtraMs: asyncExtra,
      syncOverheadPct: 0,
      asyncOverheadPct: 0,
      syncMedianDiffPct: 0,
      asyncMedianDiffPct: 0,
      cppMinMs: Math.min(...cpp),
      syncMinMs: Math.min(...sync),
      asyncMinMs: Math.min(...asyn),
    };
    row.syncOverheadPct = (syncExtra / row.cppMs) * 100;
    row.asyncOverheadPct = (asyncExtra / row.cppMs) * 100;
    row.syncMedianDiffPct = ((row.syncMs - row.cppMs) / row.cppMs) * 100;
    row.asyncMedianDiffPct = ((row.asyncMs - row.cppMs) / row.cppMs) * 100;
    rows.push(row);
    console.log(
      `${String(k).padStart(2)} ${row.cppMs.toFixed(3).padStart(8)} ${row.syncMs.toFixed(3).padStart(9)} ${row.asyncMs.toFixed(3).padStart(9)}` +
        ` ${row.syncOverheadPct.toFixed(1).padStart(8)} ${row.asyncOverheadPct.toFixed(1).padStart(9)}` +
        ` ${(syncExtra * 1000).toFixed(1).padStart(10)} ${(asyncExtra * 1000).toFixed(1).padStart(10)}`,
    );
  }
  const worstSync = Math.max(...rows.map((r) => r.syncOverheadPct!));
  const worstAsync = Math.max(...rows.map((r) => r.asyncOverheadPct!));
  console.log(`worst overhead: sync ${worstSync.toFixed(1)}%, async ${worstAsync.toFixed(1)}% (target <= 5%)`);

  const out = {
    model: path.relative(packageRoot, modelPath),
    description: model.description,
    vocabSize: V,
    backend: native.config.backend,
    libDir: native.config.libDir,
    cpu: os.cpus()[0]?.model ?? "unknown",
    threads: o.threads,
    position: o.position,
    rounds: o.rounds,
    sampling,
    date: new Date().toISOString(),
    rows,
    worstSyncOverheadPct: worstSync,
    worstAsyncOverheadPct: worstAsync,
  };
  fs.mkdirSync(path.join(packageRoot, "build"), { recursive: true });
  fs.writeFileSync(path.join(packageRoot, "build", "bench-native.json"), JSON.stringify(out, null, 2) + "\n");
  console.log("wrote build/bench-native.json");
  ctx.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
