// One child process of the GGUF fuzz test (test/gguf-fuzz.test.ts): for each seed in [from, to), writes mutation
// `seed` of the base file, opens it with Hsd.open and generates two tokens from it. Prints "start <seed>" before each
// and one JSON line after; if something aborted the process, the parent sees a "start" without its result.
//   node --import tsx test/helpers/gguf-fuzz-child.ts BASE.gguf TMPDIR FROM TO

import { readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Hsd } from "../../src/api/hsd.js";
import { GgufFormatError, HsdError } from "../../src/errors.js";
import { parseGguf, writeGguf } from "./gguf-edit.js";
import { mutateGguf } from "./gguf-fuzz.js";

export interface FuzzResult {
  seed: number;
  label: string;
  /** "loaded" (and generated), "refused by hsd" (its header checks), "refused by llama.cpp", or the error's class. */
  outcome: string;
  detail: string;
}

const [base, dir, from, to] = process.argv.slice(2);
const original = parseGguf(readFileSync(base!));
const say = (line: string) => writeSync(1, line + "\n"); // synchronous: nothing may be lost to an abort

for (let seed = Number(from); seed < Number(to); seed++) {
  const { file, label } = mutateGguf(original, seed);
  const path = join(dir!, `fuzz-${seed}.gguf`);
  writeFileSync(path, writeGguf(file));
  say(`start ${seed}`);
  let outcome = "loaded";
  let detail = "";
  try {
    const hsd = await Hsd.open({ files: [path], threads: 1 });
    try {
      const run = hsd.generate("Once upon a time", {
        hierarchy: { files: [hsd.target.info.file], thresholds: [] },
        sampling: { greedy: true },
        maxTokens: 2,
      });
      await run.result;
    } finally {
      await hsd.dispose();
    }
  } catch (error) {
    detail = error instanceof Error ? error.message.split(path).join("FILE").slice(0, 300) : String(error);
    outcome =
      error instanceof GgufFormatError
        ? /llama\.cpp could not load it/.test(detail)
          ? "refused by llama.cpp"
          : "refused by hsd"
        : error instanceof HsdError
          ? `refused: ${error.name}`
          : `NOT AN HsdError: ${error instanceof Error ? error.name : typeof error}`;
  }
  rmSync(path, { force: true });
  say(JSON.stringify({ seed, label, outcome, detail } satisfies FuzzResult));
}
