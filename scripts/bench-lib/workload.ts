// The benchmark's prompt sets. Each has prompts for the runs and other prompts of the same kind that the planner
// calibrates on (as a user calibrates with `--prompts FILE` on text like theirs), so that no plan is fitted to the
// runs' own text.
//  - grounded: a passage, then a continuation that leans on it (restart, quotation, list, code-like text, summary,
//    repetition), made from the bundled family's held-out text by scripts/make-workload.ts;
//  - prose: openings in the register of the family's training text (speeches, essays, news).

import { readFileSync } from "node:fs";
import { BUILTIN_CALIBRATION_PROMPTS } from "../../src/calibration/prompts.js";
import { BENCH_PROMPTS } from "./prompts.js";
import type { WorkloadName } from "./options.js";

export interface Workload {
  name: WorkloadName;
  /** What the runs generate from. */
  prompts: string[];
  /** What the planner calibrates on (disjoint from `prompts`). */
  calibration: string[];
}

interface PromptFile {
  grounded: { bench: { kind: string; prompt: string }[]; calibration: { kind: string; prompt: string }[] };
}

export function workload(name: WorkloadName, count: number): Workload {
  if (name === "prose") {
    return { name, prompts: BENCH_PROMPTS.slice(0, count), calibration: [...BUILTIN_CALIBRATION_PROMPTS] };
  }
  const file = JSON.parse(readFileSync(new URL("./workload-prompts.json", import.meta.url), "utf8")) as PromptFile;
  return {
    name,
    prompts: file.grounded.bench.slice(0, count).map((p) => p.prompt),
    calibration: file.grounded.calibration.map((p) => p.prompt),
  };
}
