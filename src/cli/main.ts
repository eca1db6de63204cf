#!/usr/bin/env node
// hsd: hierarchical speculative decoding from the command line.
//   hsd run "Once upon a time"         stream text from the bundled family, hierarchy chosen automatically
//   hsd plan --models DIR              what would be used, and why (measured costs, acceptance, prediction)
//   hsd calibrate --models DIR         measure now and cache

import { Command, InvalidArgumentError } from "commander";
import { readFile } from "node:fs/promises";
import { Hsd, type Hierarchy, type PlanRequest } from "../api/hsd.js";
import { AbortedError, InvalidOptionError } from "../errors.js";
import { toSnakeCaseJson } from "./json.js";
import { DEFAULT_CALIBRATION_TOKENS, DEFAULT_MAX_THRESHOLD, DEFAULT_MAX_TOKENS } from "../defaults.js";
import type { SamplingSettings } from "../api/sampling.js";
import { formatPlan, formatRunSummary, progressReporter } from "./format.js";

const int = (name: string, min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
  return n;
};
const num = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};
const nonNegative = (name: string, hint: string) => (value: string) => {
  const n = num(name)(value);
  if (n < 0) throw new InvalidArgumentError(`${name} must be a number >= 0 (${hint})`);
  return n;
};
const list = (value: string) =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

interface CommonOptions extends Omit<SamplingSettings, "seed"> {
  models?: string;
  target?: string;
  threads?: number;
  gpuLayers?: number;
  contextSize?: number;
  flashAttention?: "auto" | "on" | "off";
  json?: boolean;
  seed?: number;
  maxThreshold: number;
  prompts?: string;
  calibrationTokens?: number;
  recalibrate?: boolean;
}

function withCommon(command: Command): Command {
  return command
    .option("--models <dir>", "folder of GGUF models sharing a tokenizer (default: the bundled family)")
    .option("--target <file>", "the target model (default: the largest compatible model)")
    .option(
      "--threads <n>",
      "ggml threads per model (default: physical cores; 1 when all models are under 100M parameters)",
      int("--threads", 1),
    )
    .option("--gpu-layers <n>", "layers to offload to the GPU (999 = all)", int("--gpu-layers", 0))
    .option("--context-size <n>", "KV cache size per model", int("--context-size", 16))
    .option(
      "--flash-attention <mode>",
      "flash attention: auto, on or off (default: off on the CPU, auto with --gpu-layers)",
      (v: string) => {
        if (v !== "auto" && v !== "on" && v !== "off")
          throw new InvalidArgumentError("--flash-attention must be auto, on or off");
        return v;
      },
    )
    .option("--greedy", "greedy decoding (the target's argmax at every step)")
    .option("--temperature <x>", "sampling temperature (0 = greedy)", nonNegative("--temperature", "0 = greedy"))
    .option("--top-k <n>", "keep the k most probable tokens (0 = off)", int("--top-k", 0))
    .option("--top-p <x>", "nucleus sampling mass (1 = off)", num("--top-p"))
    .option("--min-p <x>", "drop tokens below min-p times the top probability (0 = off)", num("--min-p"))
    .option("--seed <n>", "sampler seed", int("--seed", 0))
    .option(
      "--max-threshold <n>",
      "largest block length the optimiser may choose",
      int("--max-threshold", 1),
      DEFAULT_MAX_THRESHOLD,
    )
    .option("--prompts <file>", "calibration prompts, one per line (default: built-in English prompts)")
    .option(
      "--calibration-tokens <n>",
      `tokens the target writes after each calibration prompt to measure acceptance (default ${DEFAULT_CALIBRATION_TOKENS})`,
      int("--calibration-tokens", 1),
    )
    .option("--recalibrate", "measure again instead of using the calibration cache")
    .option("--json", "print one JSON object instead of text for people");
}

/** The sampling flags (unset ones stay undefined: toTransform applies the defaults). */
function sampling(o: CommonOptions): SamplingSettings {
  return { greedy: o.greedy, temperature: o.temperature, topK: o.topK, topP: o.topP, minP: o.minP, seed: o.seed };
}

/** The planning request every command makes from the same flags. */
async function planRequest(
  o: CommonOptions,
  onProgress?: PlanRequest["onProgress"],
  signal?: AbortSignal,
): Promise<PlanRequest> {
  return {
    sampling: sampling(o),
    prompts: await calibrationPrompts(o),
    continuationTokens: o.calibrationTokens,
    maxThreshold: o.maxThreshold,
    recalibrate: o.recalibrate,
    onProgress,
    signal,
  };
}

async function open(o: CommonOptions): Promise<Hsd> {
  return Hsd.open({
    models: o.models,
    target: o.target,
    threads: o.threads,
    gpuLayers: o.gpuLayers,
    contextSize: o.contextSize,
    flashAttention: o.flashAttention,
    onWarning: (message) => process.stderr.write(`hsd: warning: ${message}\n`),
  });
}

/**
 * Ctrl-C: the first one stops the work at the next pass (a run still prints what it generated and its summary; a
 * calibration is dropped), exit code 130; a second one exits at once. Returns the function that removes the handler.
 */
function stopOnInterrupt(controller: AbortController): () => void {
  let interrupts = 0;
  const handler = () => {
    if (++interrupts > 1) process.exit(130);
    process.stderr.write("\nhsd: stopping at the next pass (Ctrl-C again to quit at once)\n");
    controller.abort();
  };
  process.on("SIGINT", handler);
  return () => process.off("SIGINT", handler);
}

/**
 * Aborted when stdout's reader has gone (`hsd run … | head -c 5`): nothing more is written, a run stops at the next
 * target pass and the command ends quietly with exit code 0, as a well-behaved filter does.
 */
const stdoutGone = new AbortController();
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE" && !stdoutGone.signal.aborted) {
    process.stderr.write(`hsd: cannot write to stdout (${error.code ?? error.message})\n`);
    process.exitCode = 1;
  }
  stdoutGone.abort();
});

function print(text: string): void {
  if (!stdoutGone.signal.aborted) process.stdout.write(text);
}

/** The prompt: the argument, stdin for "-", or --prompt-file's contents (one trailing newline dropped). */
async function readPrompt(argument: string | undefined, file: string | undefined): Promise<string> {
  if (argument !== undefined && file !== undefined)
    throw new InvalidOptionError("give the prompt once: as an argument, as - (stdin) or with --prompt-file FILE");
  let text: string;
  if (file !== undefined) {
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      throw new InvalidOptionError(
        `--prompt-file ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? error})`,
      );
    }
  } else if (argument === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString("utf8");
  } else if (argument === undefined) {
    throw new InvalidOptionError(
      'no prompt: give the text to continue (hsd run "Once upon a time"), - to read it from stdin, or --prompt-file FILE',
    );
  } else {
    return argument;
  }
  // What echo, a heredoc or an editor put at the end of the text is not part of the prompt.
  return text.replace(/\r?\n$/, "");
}

async function calibrationPrompts(o: CommonOptions): Promise<string[] | undefined> {
  if (!o.prompts) return undefined;
  let text: string;
  try {
    text = await readFile(o.prompts, "utf8");
  } catch (error) {
    throw new InvalidOptionError(
      `--prompts ${o.prompts}: cannot read it (${(error as NodeJS.ErrnoException).code ?? error})`,
    );
  }
  const prompts = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (prompts.length === 0) throw new InvalidOptionError(`--prompts ${o.prompts}: the file has no non-empty line`);
  return prompts;
}

/** One JSON object on stdout, in the CLI's snake_case (cli/json.ts). */
function printJson(value: unknown): void {
  print(JSON.stringify(toSnakeCaseJson(value)) + "\n");
}

const program = new Command()
  .name("hsd")
  .description("Hierarchical speculative decoding over llama.cpp: faster generation, exactly the target model's output")
  .showHelpAfterError(false)
  .configureOutput({ outputError: (message, write) => write(`hsd: ${message.replace(/^error: /, "").trim()}\n`) });

withCommon(program.command("run").description("generate text (streams; --json prints one object at the end)"))
  .argument("[prompt]", 'the prompt ("-": read it from stdin)')
  .option("--prompt-file <file>", "read the prompt from this file")
  .option("--max-tokens <n>", "tokens to generate at most", int("--max-tokens", 1), DEFAULT_MAX_TOKENS)
  .option("--hierarchy <files>", "auto, or comma-separated model files smallest first ending with the target", "auto")
  .option(
    "--thresholds <list>",
    "with --hierarchy FILES: one block length per draft model, e.g. 4,3 (default: the latency model's best)",
    list,
  )
  .option(
    "--stop <text>",
    "stop before this text (repeatable)",
    (value: string, previous: string[]) => [...previous, value],
    [] as string[],
  )
  .action(
    async (
      argument: string | undefined,
      o: CommonOptions & {
        maxTokens: number;
        hierarchy: string;
        thresholds?: string[];
        stop?: string[];
        promptFile?: string;
      },
    ) => {
      const prompt = await readPrompt(argument, o.promptFile);
      if (prompt.trim().length === 0)
        throw new InvalidOptionError('the prompt is empty: give the text to continue, e.g. hsd run "Once upon a time"');
      let hierarchy: "auto" | Hierarchy = "auto";
      if (o.hierarchy !== "auto") {
        const files = list(o.hierarchy);
        if (o.thresholds === undefined) {
          hierarchy = { files }; // the latency model's best thresholds for this chain
        } else {
          const thresholds = o.thresholds.map((t) => int("--thresholds", 1)(t));
          if (thresholds.length !== files.length - 1) {
            throw new InvalidOptionError(
              `--hierarchy names ${files.length} models, so --thresholds needs ${files.length - 1} numbers, got ${thresholds.length}`,
            );
          }
          hierarchy = { files, thresholds };
        }
      } else if (o.thresholds !== undefined) {
        throw new InvalidOptionError(
          "--thresholds needs --hierarchy FILES (with --hierarchy auto the optimiser picks them)",
        );
      }
      const hsd = await open(o);
      const controller = new AbortController();
      const removeHandler = stopOnInterrupt(controller);
      const onStdoutGone = () => controller.abort();
      stdoutGone.signal.addEventListener("abort", onStdoutGone);
      const progress = progressReporter();
      try {
        const { sampling: settings, signal, ...plan } = await planRequest(o, progress, controller.signal);
        const run = hsd.generate(prompt, {
          maxTokens: o.maxTokens,
          sampling: settings,
          hierarchy,
          plan,
          stop: o.stop,
          signal,
        });
        if (!o.json) for await (const chunk of run) print(chunk.text);
        const result = await run.result;
        if (stdoutGone.signal.aborted) return;
        if (o.json) {
          const { text, tokens, stopReason, seed, hierarchy: used, stats, plan: planned } = result;
          printJson({ text, tokens, stopReason, seed, hierarchy: used, stats, plan: planned });
        } else {
          print("\n");
          process.stderr.write(formatRunSummary(result) + "\n");
        }
        if (result.stopReason === "aborted") process.exitCode = 130;
      } finally {
        progress.stop();
        removeHandler();
        stdoutGone.signal.removeEventListener("abort", onStdoutGone);
        await hsd.dispose();
      }
    },
  );

withCommon(
  program
    .command("plan")
    .description("show the candidates, the measured costs and acceptance, and the hierarchy the optimiser picks"),
).action(async (o: CommonOptions) => {
  const hsd = await open(o);
  const controller = new AbortController();
  const removeHandler = stopOnInterrupt(controller);
  const progress = o.json ? undefined : progressReporter();
  try {
    const plan = await hsd.plan(await planRequest(o, progress, controller.signal));
    const rejected = hsd.rejected.map((r) => ({ file: r.path, reason: r.reason }));
    if (o.json) printJson({ ...plan, rejected });
    else print(formatPlan(plan, rejected) + "\n");
  } finally {
    progress?.stop();
    removeHandler();
    await hsd.dispose();
  }
});

withCommon(
  program.command("calibrate").description("measure pass costs and acceptance on this machine and cache them"),
).action(async (o: CommonOptions) => {
  const hsd = await open(o);
  const controller = new AbortController();
  const removeHandler = stopOnInterrupt(controller);
  const progress = progressReporter();
  try {
    const calibration = await hsd.calibrate(await planRequest(o, progress, controller.signal));
    if (o.json) printJson(calibration);
    else {
      print(
        `calibrated ${calibration.models.length} models on ${calibration.device}, ${calibration.threads} thread(s), ${calibration.transform.greedy ? "greedy" : "sampling"}\n`,
      );
      for (const m of calibration.models)
        print(`  ${m.file}: c(1) = ${m.costs.hot[0]!.ms.toFixed(3)} ms${m.fromCache ? " (cached)" : ""}\n`);
    }
  } finally {
    progress.stop();
    removeHandler();
    await hsd.dispose();
  }
});

program.parseAsync(process.argv).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`hsd: ${message.split("\n")[0]}\n`);
  if (process.env.HSD_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  // Ctrl-C during a calibration: the shell's convention for "ended by SIGINT".
  process.exitCode = error instanceof AbortedError ? 130 : 1;
});
