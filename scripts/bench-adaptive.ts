/**
 * The adaptive default against pinned plans, one process per mode (`npx tsx scripts/bench-adaptive.ts --mode
 * adaptive|ar|policy [--t1] [--prompts 4] [--repetitions 3] [--max-tokens 128]`): the bundled family, 1 thread, the
 * first grounded benchmark prompts, a fresh cache folder (the adaptive default starts from a quick prior, as a first
 * run does). Prints each generation's whole time per token (prompt included, as `run.stats.msPerToken`) and the
 * mean; compare modes by running them alternately. `ar` pins the target alone, `policy` plans once from a full
 * calibration (`adapt: false`), `adaptive` is the default.
 */

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Hsd } from "../src/api/hsd.js";

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "adaptive" },
    t1: { type: "boolean", default: false },
    prompts: { type: "string", default: "4" },
    repetitions: { type: "string", default: "3" },
    "max-tokens": { type: "string", default: "128" },
  },
});
const mode = values.mode!;
if (mode !== "adaptive" && mode !== "ar" && mode !== "policy")
  throw new Error(`--mode must be adaptive, ar or policy, got ${mode}`);
const count = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
};
const promptCount = count("prompts", values.prompts);
const repetitions = count("repetitions", values.repetitions);
const maxTokens = count("max-tokens", values["max-tokens"]);

const workload = JSON.parse(await readFile(new URL("./bench-lib/workload-prompts.json", import.meta.url), "utf8")) as {
  grounded: { bench: { prompt: string }[] };
};
const prompts = workload.grounded.bench.slice(0, promptCount).map((p) => p.prompt);
const cacheDir = await mkdtemp(join(tmpdir(), "hsd-bench-adaptive-"));
const hsd = await Hsd.open({ threads: 1, cacheDir });
const times: number[] = [];
try {
  for (let rep = 0; rep < repetitions; rep++) {
    for (const prompt of prompts) {
      const run = hsd.generate(prompt, {
        maxTokens,
        sampling: values.t1 ? { temperature: 1, topK: 40, seed: 1 } : { greedy: true },
        ...(mode === "ar"
          ? { hierarchy: { files: [hsd.target.info.file] } }
          : mode === "policy"
            ? { adapt: false }
            : {}),
      });
      for await (const _ of run);
      const r = await run.result;
      times.push(r.stats.msPerToken);
      console.log(
        `${mode} ${rep} ${r.stats.msPerToken.toFixed(3)} ms/token${r.online ? ` plan ${r.online.plan} (${r.online.replans} re-plans)` : ""}`,
      );
    }
  }
} finally {
  await hsd.dispose();
  await rm(cacheDir, { recursive: true, force: true });
}
console.log(
  `${mode}${values.t1 ? " t1" : ""}: mean ${(times.reduce((a, b) => a + b, 0) / times.length).toFixed(3)} ms/token over ${times.length} generations`,
);
