#!/usr/bin/env node
// hsd: hierarchical speculative decoding from the command line.
//   hsd run "Once upon a time"         stream text from the bundled family, hierarchy chosen automatically
//   hsd plan --models DIR              what would be used, and why (measured costs, acceptance, prediction)
//   hsd calibrate --models DIR         measure now and cache
//   hsd serve                          an OpenAI-compatible HTTP server on 127.0.0.1:8080
//   hsd chat                           an interactive chat with the model's chat template

import { Command, InvalidArgumentError } from "commander";
import { readFile } from "node:fs/promises";
import { Hsd, type Hierarchy, type PlanRequest } from "../api/hsd.js";
import type { NgramMode } from "../api/plan.js";
import { AbortedError, InvalidOptionError } from "../errors.js";
import { toSnakeCaseJson } from "./json.js";
import { buildNgramTable } from "../api/ngram.js";
import { parseRpcEndpoints } from "../rpc/endpoints.js";
import { DEFAULT_CALIBRATION_TOKENS, DEFAULT_MAX_THRESHOLD, DEFAULT_MAX_TOKENS } from "../defaults.js";
import type { SamplingSettings } from "../api/sampling.js";
import { formatPlan, formatRunSummary, progressReporter } from "./format.js";
import { serve } from "./serve.js";
import { chat } from "./chat.js";
import { ChatFormat } from "../chat/template.js";
import { DEFAULT_BODY_LIMIT, DEFAULT_HOST, DEFAULT_MAX_QUEUE, DEFAULT_PORT } from "../server/server.js";

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
  ngram: NgramMode;
  ngramMin?: number;
  ngramMax?: number;
  ngramTable?: string;
  rpc?: string;
  rpcLevels?: string;
  rpcTimeout?: number;
}

function withCommon(command: Command, { json = true } = {}): Command {
  command
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
    .option(
      "--ngram <mode>",
      "model-free drafting by context lookup: auto (the planner routes each step by the lookup's match), on, off",
      (v: string) => {
        if (v !== "auto" && v !== "on" && v !== "off")
          throw new InvalidArgumentError("--ngram must be auto, on or off");
        return v;
      },
      "auto",
    )
    .option(
      "--ngram-table <file>",
      "a static n-gram table (hsd ngram build) to use; default: the one stored for the target's tokenizer",
    )
    .option(
      "--ngram-min <n>",
      "the lookup proposes after a match of at least n tokens (default 1)",
      int("--ngram-min", 1),
    )
    .option("--ngram-max <n>", "matches are measured up to n tokens (default 8)", int("--ngram-max", 1))
    .option(
      "--rpc <servers>",
      "run the target on llama.cpp rpc-servers, HOST:PORT[,HOST:PORT…]; the drafts stay local (needs npm run build:llama -- --rpc-only)",
    )
    .option("--rpc-levels <which>", "with --rpc: target (default), all, or comma-separated model files to run there")
    .option(
      "--rpc-timeout <ms>",
      "with --rpc: how long one remote pass may take before the servers count as not answering (default 30000)",
      int("--rpc-timeout", 100),
    );
  return json ? command.option("--json", "print one JSON object instead of text for people") : command;
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

interface HierarchyOptions {
  hierarchy: string;
  thresholds?: string[];
}

/** --hierarchy and --thresholds (run, serve and chat). */
function withHierarchy(command: Command): Command {
  return command
    .option("--hierarchy <files>", "auto, or comma-separated model files smallest first ending with the target", "auto")
    .option(
      "--thresholds <list>",
      "with --hierarchy FILES: one block length per draft model, e.g. 4,3 (default: the latency model's best)",
      list,
    );
}

/** The hierarchy the flags ask for, as the API takes it. */
function hierarchyFrom(o: HierarchyOptions): "auto" | Hierarchy {
  if (o.hierarchy === "auto") {
    if (o.thresholds !== undefined)
      throw new InvalidOptionError(
        "--thresholds needs --hierarchy FILES (with --hierarchy auto the optimiser picks them)",
      );
    return "auto";
  }
  const files = list(o.hierarchy);
  if (o.thresholds === undefined) return { files }; // the latency model's best thresholds for this chain
  const thresholds = o.thresholds.map((t) => int("--thresholds", 1)(t));
  if (thresholds.length !== files.length - 1) {
    throw new InvalidOptionError(
      `--hierarchy names ${files.length} models, so --thresholds needs ${files.length - 1} numbers, got ${thresholds.length}`,
    );
  }
  return { files, thresholds };
}

async function open(o: CommonOptions): Promise<Hsd> {
  if (o.rpc !== undefined) parseRpcEndpoints(o.rpc, "--rpc"); // its errors name the flag; Hsd.open parses again
  return Hsd.open({
    models: o.models,
    target: o.target,
    threads: o.threads,
    gpuLayers: o.gpuLayers,
    contextSize: o.contextSize,
    flashAttention: o.flashAttention,
    ngram: o.ngram,
    lookup: { minMatch: o.ngramMin, maxMatch: o.ngramMax },
    ngramTable: o.ngramTable,
    rpc: o.rpc,
    rpcLevels:
      o.rpcLevels === undefined || o.rpcLevels === "target" || o.rpcLevels === "all" ? o.rpcLevels : list(o.rpcLevels),
    rpcTimeoutMs: o.rpcTimeout,
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

withHierarchy(
  withCommon(program.command("run").description("generate text (streams; --json prints one object at the end)")),
)
  .argument("[prompt]", 'the prompt ("-": read it from stdin)')
  .option("--prompt-file <file>", "read the prompt from this file")
  .option("--max-tokens <n>", "tokens to generate at most", int("--max-tokens", 1), DEFAULT_MAX_TOKENS)
  .option(
    "--no-adapt",
    "with --hierarchy auto: plan once from a full calibration and keep that plan (benchmarks); by default the plan is re-chosen while generating, from estimates that learn from every pass",
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
        adapt: boolean;
        promptFile?: string;
      },
    ) => {
      const prompt = await readPrompt(argument, o.promptFile);
      if (prompt.trim().length === 0)
        throw new InvalidOptionError('the prompt is empty: give the text to continue, e.g. hsd run "Once upon a time"');
      const hierarchy = hierarchyFrom(o);
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
          ...(hierarchy === "auto" ? { adapt: o.adapt } : {}),
          plan,
          stop: o.stop,
          signal,
        });
        if (!o.json) for await (const chunk of run) print(chunk.text);
        const result = await run.result;
        if (stdoutGone.signal.aborted) return;
        if (o.json) {
          const { text, tokens, stopReason, seed, hierarchy: used, policy, stats, plan: planned, online } = result;
          printJson({ text, tokens, stopReason, seed, hierarchy: used, policy, stats, plan: planned, online });
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

withCommon(
  program
    .command("ngram")
    .argument("<action>", "build")
    .description(
      "build a static n-gram table for the target's tokenizer (a model-free level the planner may use): from a text file, or from the target's own samples",
    ),
)
  .option("--text <file>", "count n-grams in this text (tokenized with the target's tokenizer)")
  .option(
    "--samples <n>",
    "count n-grams in n tokens the target writes after the calibration prompts",
    int("--samples", 1),
  )
  .option("--order <n>", "longest n-gram counted (contexts of up to n-1 tokens)", int("--order", 2), 4)
  .option("--min-count <n>", "keep a context seen at least this often", int("--min-count", 1), 2)
  .option("--out <file>", "where to write it (default: the cache folder, where hsd run finds it)")
  .action(
    async (
      action: string,
      o: CommonOptions & { text?: string; samples?: number; order: number; minCount: number; out?: string },
    ) => {
      if (action !== "build") throw new InvalidOptionError(`hsd ngram ${action}: the only action is "build"`);
      if ((o.text === undefined) === (o.samples === undefined)) {
        throw new InvalidOptionError("hsd ngram build needs exactly one of --text FILE or --samples N");
      }
      const hsd = await open({ ...o, ngram: "off" });
      try {
        const { sampling: settings, prompts } = await planRequest(o);
        const r = await buildNgramTable(hsd, {
          text: o.text,
          samples: o.samples,
          prompts,
          sampling: settings,
          order: o.order,
          minCount: o.minCount,
          out: o.out,
          onProgress: process.stderr.isTTY
            ? (done, total) => process.stderr.write(`\rcounting: ${done}/${total} tokens`)
            : undefined,
        });
        if (process.stderr.isTTY) process.stderr.write("\n");
        if (o.json) printJson(r);
        else
          process.stdout.write(`wrote ${r.path}: ${r.contexts} contexts from ${r.tokens} tokens (order ${r.order})\n`);
      } finally {
        await hsd.dispose();
      }
    },
  );

withHierarchy(
  withCommon(
    program
      .command("serve")
      .description(
        "an OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (streamed or not), /v1/models, /health",
      ),
    { json: false },
  ),
)
  .option(
    "--host <address>",
    "address to listen on (anything but 127.0.0.1, e.g. 0.0.0.0, opens the server to the network)",
    DEFAULT_HOST,
  )
  .option("--port <n>", "port (0 = any free port; the log line says which)", int("--port", 0), DEFAULT_PORT)
  .option("--api-key <key>", "require 'Authorization: Bearer KEY' on /v1/* (default: $HSD_API_KEY; none if unset)")
  .option(
    "--max-queue <n>",
    "requests that may wait behind the running one; more get 503",
    int("--max-queue", 0),
    DEFAULT_MAX_QUEUE,
  )
  .option("--body-limit <bytes>", "largest request body", int("--body-limit", 1024), DEFAULT_BODY_LIMIT)
  .option(
    "--max-tokens <n>",
    "tokens per request that does not set max_tokens (default: until the end of generation or of the context)",
    int("--max-tokens", 1),
  )
  .action(
    async (
      o: CommonOptions &
        HierarchyOptions & {
          host: string;
          port: number;
          apiKey?: string;
          maxQueue: number;
          bodyLimit: number;
          maxTokens?: number;
        },
    ) => {
      if (o.port > 65535) throw new InvalidOptionError(`--port must be at most 65535, got ${o.port}`);
      const hierarchy = hierarchyFrom(o);
      const hsd = await open(o);
      try {
        const { sampling: settings, ...plan } = await planRequest(o, progressReporter());
        await serve(hsd, {
          host: o.host,
          port: o.port,
          apiKey: o.apiKey ?? process.env.HSD_API_KEY,
          maxQueue: o.maxQueue,
          bodyLimit: o.bodyLimit,
          maxTokens: o.maxTokens,
          sampling: settings,
          hierarchy,
          plan,
          log: (line) => process.stderr.write(`[hsd] ${line}\n`),
        });
      } finally {
        await hsd.dispose();
      }
    },
  );

withHierarchy(
  withCommon(
    program
      .command("chat")
      .description(
        "an interactive chat in the terminal with the model's own chat template (streams; Ctrl-C stops an answer)",
      ),
    { json: false },
  ),
)
  .option("--system <text>", "a system message that starts the conversation")
  .option("--max-tokens <n>", "tokens per answer at most", int("--max-tokens", 1), DEFAULT_MAX_TOKENS)
  .action(async (o: CommonOptions & HierarchyOptions & { system?: string; maxTokens: number }) => {
    const hierarchy = hierarchyFrom(o);
    const hsd = await open(o);
    try {
      const format = ChatFormat.of(hsd); // before planning: a model without a template fails at once
      const { sampling: settings, ...plan } = await planRequest(o, progressReporter());
      // A pinned chain without thresholds: plan before the first prompt rather than during the first answer
      // (generate() reuses this plan). "auto" plans while generating, from a quick prior at worst (about a second).
      if (hierarchy !== "auto" && hierarchy.thresholds === undefined) await hsd.plan({ ...plan, sampling: settings });
      await chat(hsd, {
        format,
        system: o.system,
        request: { maxTokens: o.maxTokens, sampling: settings, hierarchy, plan },
      });
    } finally {
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
