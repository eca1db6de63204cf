// No GGUF file can take the process down: a real bundled model's header mutated hundreds of times (seeded: the same
// files every run) — hyperparameters set to 0, huge or negative, values of the wrong type, arrays cut short, keys
// removed, other architectures and tokenizers, tensor shapes, types, offsets and names — each opened with Hsd.open
// and generated from, in child processes. Every one must load and generate, or fail with an HsdError; a child that
// dies (llama.cpp's GGML_ASSERT aborts) fails the test with the mutation that did it.
//   HSD_FUZZ_FROM / HSD_FUZZ_COUNT explore other seeds.
import { expect } from "chai";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FuzzResult } from "./helpers/gguf-fuzz-child.js";
import { bundledFamily } from "./helpers/models.js";

const CHILD = fileURLToPath(new URL("./helpers/gguf-fuzz-child.ts", import.meta.url));
const FROM = Number(process.env.HSD_FUZZ_FROM ?? 0);
const COUNT = Number(process.env.HSD_FUZZ_COUNT ?? 400);
/** Children at a time: one per core of the 2-core machine this suite is sized for. */
const PARALLEL = 2;

interface Crash {
  seed: number;
  how: string;
}

/** Runs seeds [from, to) in child processes, one after another, restarting after a crash. */
async function runSeeds(base: string, dir: string, from: number, to: number, results: FuzzResult[], crashes: Crash[]) {
  let next = from;
  while (next < to) {
    const child = spawn(process.execPath, ["--import", "tsx", CHILD, base, dir, String(next), String(to)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on("close", (c, s) => resolve([c, s])),
    );
    let started: number | null = null;
    for (const line of out.split("\n")) {
      if (line.startsWith("start ")) started = Number(line.slice(6));
      else if (line.startsWith("{")) {
        const r = JSON.parse(line) as FuzzResult;
        results.push(r);
        started = null;
        next = r.seed + 1;
      }
    }
    if (started !== null) {
      const reason = err.split("\n").find((l) => /GGML_ASSERT|GGML_ABORT|terminate|error/i.test(l)) ?? "";
      crashes.push({ seed: started, how: `${signal ?? `exit ${code}`}: ${reason.trim().slice(0, 200)}` });
      next = started + 1;
    } else if (code !== 0) {
      throw new Error(`fuzz child failed outside a mutation (exit ${code}): ${err.slice(-2000)}`);
    }
  }
}

describe("GGUF fuzz: mutated headers give a clean error or a working model, never a dead process", function () {
  this.timeout(Math.max(300_000, COUNT * 500));

  it(`${COUNT} seeded mutations of the smallest bundled model, from seed ${FROM}`, async function () {
    const base = bundledFamily().files[0]!;
    const dir = mkdtempSync(join(tmpdir(), "hsd-fuzz-"));
    const results: FuzzResult[] = [];
    const crashes: Crash[] = [];
    const started = performance.now();
    try {
      const share = Math.ceil(COUNT / PARALLEL);
      await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) =>
          runSeeds(base, dir, FROM + i * share, Math.min(FROM + COUNT, FROM + (i + 1) * share), results, crashes),
        ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const tally = new Map<string, number>();
    for (const r of results) tally.set(r.outcome, (tally.get(r.outcome) ?? 0) + 1);
    const reasons = new Map<string, number>();
    for (const r of results.filter((r) => r.outcome !== "loaded")) {
      // The kind of failure: the message without its numbers and quoted names.
      const kind = r.detail
        .replace(/^FILE: /, "")
        .replace(/"[^"]*"|'[^']*'|\d+(\.\d+)?(e[+-]?\d+)?/g, "#")
        .slice(0, 90);
      reasons.set(kind, (reasons.get(kind) ?? 0) + 1);
    }
    const top = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 12);
    console.log(
      `      ${results.length + crashes.length} mutations tried in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
        [...tally].map(([k, n]) => `${n} ${k}`).join(", ") +
        `, ${crashes.length} crashed\n      most common failures:\n        ` +
        top.map(([k, n]) => `${n} × ${k}`).join("\n        "),
    );
    expect(crashes.map((c) => `seed ${c.seed}: ${c.how}`)).to.deep.equal([]);
    const unclean = results.filter((r) => r.outcome.startsWith("NOT"));
    expect(unclean.map((r) => `seed ${r.seed} (${r.label}): ${r.outcome}: ${r.detail}`)).to.deep.equal([]);
    expect(results.length).to.equal(COUNT);
    // The mutations reach llama.cpp, not only hsd's own checks, and some files still load.
    expect(tally.get("loaded") ?? 0).to.be.greaterThan(0);
    expect(tally.get("refused by llama.cpp") ?? 0).to.be.greaterThan(0);
  });
});
