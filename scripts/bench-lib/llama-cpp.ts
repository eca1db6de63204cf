// llama.cpp's own speculative decoding as the benchmark's anchor: its `speculative-simple` example, built from the
// llama.cpp source that node-llama-cpp bundles (llama/gitRelease.bundle, the release of the prebuilt libraries hsd
// runs on), static, native CPU, only the example's targets (build/llama-spec-build; several minutes on 2 cores,
// once). One process per run; its own log gives the decode speed ("decoded N tokens in X seconds", prompt
// processing excluded, as the benchmark's decode timing excludes hsd's first pass) and its draft counters.
//
// Its modes (`--spec-type`, common/speculative.cpp): draft-simple (a draft model, drafting --spec-draft-n-max
// tokens; --spec-draft-p-min 0 so that it drafts every time), the n-gram modes ngram-simple (the last size-n tokens
// looked up in the context, the size-m that followed proposed), ngram-map-k, ngram-mod, ngram-cache, and lists of
// them: "ngram-simple,draft-simple" tries the n-gram lookup first and the draft model when it finds nothing.

import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { SamplingMode } from "./options.js";

const SOURCE = resolve("build/llama.cpp-src");
const BUILD = resolve("build/llama-spec-build");
export const LLAMA_SPECULATIVE = join(BUILD, "bin", "llama-speculative-simple");

/** One llama.cpp configuration: the spec types and their parameters. */
export interface LlamaCppConfig {
  /** Label in the report, e.g. "ngram-simple,draft-simple n=2". */
  label: string;
  types: string[];
  /** Tokens drafted per step by the draft model (draft-simple). */
  draftMax?: number;
  /** ngram-simple's lookup size n. */
  ngramSize?: number;
}

export interface LlamaCppRun {
  decodeMs: number;
  decodeTokens: number;
  drafted: number;
  accepted: number;
}

/** Runs a command to the end and returns its output (stdout and stderr); a non-zero exit throws with its tail. */
export function run(cmd: string, args: string[], cwd?: string): string {
  // Output through a file: the example logs from a background thread, and through a pipe its last lines (the
  // timings) were sometimes lost at exit.
  const dir = mkdtempSync(join(tmpdir(), "hsd-llama-cpp-"));
  const log = join(dir, "log");
  const fd = openSync(log, "w");
  try {
    const r = spawnSync(cmd, args, { stdio: ["ignore", fd, fd], cwd });
    const out = readFileSync(log, "utf8");
    if (r.status !== 0)
      throw new Error(`${cmd} ${args.slice(0, 4).join(" ")} … failed (${r.status}):\n${out.slice(-2000)}`);
    return out;
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * How the anchor is built. GGML_NATIVE=OFF: ggml's default x86 instruction set (AVX2/FMA/F16C), the same kernels as
 * hsd's own CPU build (`npm run build:llama -- --backend cpu --single-cpu`), so that the comparison is of the two
 * speculative loops and not of two builds of ggml: on one AVX-512 host GGML_NATIVE=ON made a one-token pass of the
 * 5M target 1.7x dearer than the AVX2 kernels (llama-bench pp1 at depth 64: 0.82 vs 0.47 ms) and 2- and 16-token
 * passes cost the same (BENCHMARKS.md, "Which llama.cpp build").
 */
const ANCHOR_CMAKE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DBUILD_SHARED_LIBS=OFF",
  "-DGGML_NATIVE=OFF",
  "-DLLAMA_BUILD_COMMON=ON",
  "-DLLAMA_BUILD_EXAMPLES=ON",
  "-DLLAMA_BUILD_TOOLS=OFF",
  "-DLLAMA_BUILD_SERVER=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_CURL=OFF",
  "-DLLAMA_OPENSSL=OFF",
];

/** The anchor's build, in words, for the report. */
export const LLAMA_CPP_ANCHOR_BUILD = `built from node-llama-cpp's bundled source (static, ${ANCHOR_CMAKE_FLAGS.filter((f) => f.includes("NATIVE")).join(" ")})`;

/** Builds llama-speculative-simple from the bundled source if it is not there yet; returns its path. */
export function ensureLlamaSpeculative(log: (s: string) => void): string {
  // A build made with other flags (an earlier version of this script) is rebuilt: the stamp records the flags.
  const stamp = join(BUILD, "hsd-anchor-flags.txt");
  const flags = ANCHOR_CMAKE_FLAGS.join(" ");
  if (existsSync(LLAMA_SPECULATIVE) && existsSync(stamp) && readFileSync(stamp, "utf8") === flags)
    return LLAMA_SPECULATIVE;
  if (!existsSync(join(SOURCE, "CMakeLists.txt"))) {
    const bundle = resolve("node_modules/node-llama-cpp/llama/gitRelease.bundle");
    if (!existsSync(bundle))
      throw new Error(`${bundle} is missing: node-llama-cpp's bundle holds the llama.cpp source`);
    run("git", ["clone", "-q", bundle, SOURCE]);
  }
  log(`building llama-speculative-simple in ${BUILD} (several minutes on 2 cores, once)…`);
  run("cmake", ["-S", SOURCE, "-B", BUILD, "-G", "Ninja", ...ANCHOR_CMAKE_FLAGS]);
  run("ninja", ["-C", BUILD, "llama-speculative-simple"]);
  writeFileSync(stamp, flags);
  return LLAMA_SPECULATIVE;
}

/** One generation with llama.cpp's speculative-simple: the same prompt, settings, threads and context as hsd's runs. */
export function runLlamaCpp(
  binary: string,
  config: LlamaCppConfig,
  models: { target: string; draft: string },
  prompt: string,
  mode: SamplingMode,
  seed: number,
  maxTokens: number,
  threads: number,
  contextSize: number,
): LlamaCppRun {
  const sampling =
    mode === "greedy"
      ? ["--temp", "0", "--top-k", "1"]
      : ["--temp", "1", "--top-k", "40", "--top-p", "1", "--min-p", "0"];
  const args = [
    "-m",
    models.target,
    "-md",
    models.draft,
    "--spec-type",
    config.types.join(","),
    "--spec-draft-p-min",
    "0",
    "--spec-draft-n-min",
    "0",
    ...(config.draftMax ? ["--spec-draft-n-max", String(config.draftMax)] : []),
    ...(config.ngramSize ? ["--spec-ngram-simple-size-n", String(config.ngramSize)] : []),
    "-t",
    String(threads),
    "-td",
    String(threads),
    "-fa",
    "off",
    "-c",
    String(contextSize),
    "-n",
    String(maxTokens),
    ...sampling,
    "--seed",
    String(seed),
    "-p",
    prompt,
  ];
  // The example logs from a background thread and now and then exits before its last lines (the timings) are
  // written, after a complete run: such a run is repeated (at most twice more), never guessed.
  let out = run(binary, args);
  for (let retry = 0; retry < 2 && !/decoded\s+\d+ tokens in/.test(out); retry++) out = run(binary, args);
  const speed = /decoded\s+(\d+) tokens in\s+([\d.]+) seconds/.exec(out);
  if (!speed)
    throw new Error(`could not read the decode time from llama-speculative-simple's output:\n${out.slice(-1500)}`);
  const drafted = /n_drafted\s*=\s*(\d+)/.exec(out);
  const accepted = /n_accept\s*=\s*(\d+)/.exec(out);
  return {
    decodeTokens: Number(speed[1]),
    decodeMs: 1000 * Number(speed[2]),
    drafted: drafted ? Number(drafted[1]) : 0,
    accepted: accepted ? Number(accepted[1]) : 0,
  };
}

/** The llama.cpp configurations the benchmark runs: draft alone, each n-gram mode alone, and the combination. */
export function llamaCppConfigs(draftMax: number): LlamaCppConfig[] {
  const configs: LlamaCppConfig[] = [{ label: `draft-simple T=${draftMax}`, types: ["draft-simple"], draftMax }];
  for (const mode of ["ngram-simple", "ngram-map-k", "ngram-mod", "ngram-cache"])
    configs.push({ label: mode, types: [mode] });
  for (const n of [12, 2, 3, 4, 6]) {
    configs.push({
      label: `ngram-simple,draft-simple n=${n}${n === 12 ? " (default)" : ""}`,
      types: ["ngram-simple", "draft-simple"],
      draftMax,
      ngramSize: n,
    });
  }
  return configs;
}
