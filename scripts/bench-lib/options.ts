// Command-line options of scripts/bench.ts. Defaults are sized for the bundled family on the 2-core dev box:
// one ggml thread, and a default run of a few minutes (see BENCHMARKS.md for the measured wall time).

import { Command, InvalidArgumentError } from "commander";

export type SamplingMode = "greedy" | "t1";
export type WorkloadName = "grounded" | "prose";

export interface BenchOptions {
  /** Models folder; null = the bundled family (models/tiny). */
  models: string | null;
  /** The prompt sets (workload.ts): input-grounded and prose. */
  workloads: WorkloadName[];
  /** Prompts of each set at most. */
  prompts: number;
  maxTokens: number;
  repetitions: number;
  sampling: SamplingMode[];
  threads: number;
  /** Layers offloaded to the GPU (0 = CPU; 999 = all), for hsd and the node-llama-cpp baseline alike. */
  gpuLayers: number;
  maxThreshold: number;
  /** Other hierarchies to run besides autoregressive, single drafts and the optimiser's pick. */
  others: number;
  /** Run node-llama-cpp's DraftSequenceTokenPredictor and InputLookupTokenPredictor baselines. */
  llama: boolean;
  /** Run llama.cpp's speculative-simple example (built from the bundled source on first use) with draft and n-gram modes. */
  llamaCpp: boolean;
  /** Run the product's default (planning while generating) on an instance of its own with an empty cache. */
  adaptive: boolean;
  out: string;
  /** Calibrate afresh (default) rather than take the planner's calibration from the cache. */
  recalibrate: boolean;
  seed: number;
}

function positiveInt(name: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`${name} must be an integer in 1 … ${max}, got "${value}"`);
    return n;
  };
}

function samplingList(value: string): SamplingMode[] {
  const modes = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (modes.length === 0) throw new InvalidArgumentError(`--sampling needs at least one of greedy, t1`);
  for (const m of modes) {
    if (m !== "greedy" && m !== "t1") throw new InvalidArgumentError(`--sampling: "${m}" is not one of greedy, t1`);
  }
  return [...new Set(modes)] as SamplingMode[];
}

function workloadList(value: string): WorkloadName[] {
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) throw new InvalidArgumentError(`--workloads needs at least one of grounded, prose`);
  for (const n of names) {
    if (n !== "grounded" && n !== "prose")
      throw new InvalidArgumentError(`--workloads: "${n}" is not one of grounded, prose`);
  }
  return [...new Set(names)] as WorkloadName[];
}

export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const program = new Command()
    .name("npm run bench --")
    .description(
      "End-to-end benchmark of hsd on input-grounded and prose prompts: autoregressive, single drafts (models and the context lookup), the optimiser's routed policy and best fixed chain, node-llama-cpp's draft and input-lookup speculation, and llama.cpp's speculative-simple with its draft and n-gram modes; predicted next to measured ms/token.",
    )
    .option("--models <folder>", "GGUF folder (default: the bundled family, models/tiny)")
    .option("--workloads <list>", "prompt sets: grounded and/or prose", workloadList, [
      "grounded",
      "prose",
    ] as WorkloadName[])
    .option("--prompts <n>", "prompts of each set at most", positiveInt("--prompts", 64), 6)
    .option("--max-tokens <n>", "tokens generated per run", positiveInt("--max-tokens", 4096), 64)
    .option(
      "--repetitions <n>",
      "rounds over all prompts and methods (medians and spread are over these)",
      positiveInt("--repetitions", 1000),
      3,
    )
    .option("--sampling <list>", "greedy and/or t1 (temperature 1, top-k 40)", samplingList, [
      "greedy",
      "t1",
    ] as SamplingMode[])
    .option("--threads <n>", "ggml threads per model", positiveInt("--threads", 256), 1)
    .option(
      "--gpu-layers <n>",
      "layers offloaded to the GPU, 999 = all (needs a GPU build: npm run build:llama -- --backend cuda)",
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0)
          throw new InvalidArgumentError(`--gpu-layers must be an integer >= 0, got "${v}"`);
        return n;
      },
      0,
    )
    .option("--max-threshold <n>", "largest threshold the planner may pick", positiveInt("--max-threshold", 64), 16)
    .option(
      "--others <n>",
      "other hierarchies to run (multi-draft chains the optimiser did not pick)",
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 10)
          throw new InvalidArgumentError(`--others must be an integer in 0 … 10, got "${v}"`);
        return n;
      },
      1,
    )
    .option("--no-llama", "skip the node-llama-cpp baselines (draft sequence and input lookup)")
    .option("--no-llama-cpp", "skip llama.cpp's speculative-simple (built from the bundled source on first use)")
    .option("--no-adaptive", "skip the product's default (planning while generating, from an empty cache)")
    .option("--out <folder>", "where bench.json, bench.md and bench.svg go", "bench-out")
    .option(
      "--use-cache",
      "take the planner's calibration from the cache when present (default: calibrate afresh, so that the planner's prediction sees the machine as the runs do)",
      false,
    )
    .option("--seed <n>", "base seed of the sampler (temperature 1)", positiveInt("--seed", 2 ** 31 - 1), 1)
    .allowExcessArguments(false);
  program.parse([...argv], { from: "user" });
  const o = program.opts();
  return {
    models: (o.models as string | undefined) ?? null,
    workloads: o.workloads as WorkloadName[],
    prompts: o.prompts as number,
    maxTokens: o.maxTokens as number,
    repetitions: o.repetitions as number,
    sampling: o.sampling as SamplingMode[],
    threads: o.threads as number,
    gpuLayers: o.gpuLayers as number,
    maxThreshold: o.maxThreshold as number,
    others: o.others as number,
    llama: o.llama as boolean,
    llamaCpp: o.llamaCpp as boolean,
    adaptive: o.adaptive as boolean,
    out: o.out as string,
    recalibrate: !(o.useCache as boolean),
    seed: o.seed as number,
  };
}

/** The decoding settings of a mode, in the API's terms: greedy, or temperature 1 with top-k 40 and no other truncation. */
export function samplingSettings(mode: SamplingMode): {
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
} {
  return mode === "greedy" ? { greedy: true } : { greedy: false, temperature: 1, topK: 40, topP: 1, minP: 0 };
}
