/**
 * A new user's first run (`npm run bench:first-run -- [--repetitions N] [--max-tokens N] [--models DIR]`): the
 * whole-process time of `hsd run --max-tokens 32 PROMPT` from an empty cache (planning while generating from a
 * quick prior), of the same command pinned to the target alone (`--hierarchy TARGET`: no planning at all), and of
 * the second run on the cache the first one filled (what it learned) — interleaved, each repetition with a fresh
 * cache folder. Prints a markdown table (medians and ranges) and what the second run's --json says it started from.
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { scanModelFolder } from "../src/models/scan.js";
import { BUNDLED_MODELS_DIR } from "../src/api/hsd.js";
import { median } from "../src/util/stats.js";

const program = new Command()
  .option("--repetitions <n>", "fresh-cache repetitions", (v) => Number(v), 5)
  .option("--max-tokens <n>", "tokens per run", (v) => Number(v), 32)
  .option("--models <dir>", "GGUF folder (default: the bundled family)")
  .option("--prompt <text>", "the prompt", "The history of the railroad in America begins with")
  .parse();
const o = program.opts<{ repetitions: number; maxTokens: number; models?: string; prompt: string }>();

const bin = fileURLToPath(new URL("../bin/hsd.js", import.meta.url));
const folder = o.models ?? BUNDLED_MODELS_DIR;
const scan = await scanModelFolder(folder, {});
const target = basename(scan.models[scan.models.length - 1]!.path);
const common = ["run", "--max-tokens", String(o.maxTokens), ...(o.models ? ["--models", o.models] : [])];

function timed(args: string[], cache: string): { seconds: number; stdout: string } {
  const started = performance.now();
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, HSD_CACHE_DIR: cache },
  });
  const seconds = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`hsd ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

const times = { first: [] as number[], pinned: [] as number[], second: [] as number[] };
const priors: string[] = [];
const loads: number[] = [];
for (let rep = 0; rep < o.repetitions; rep++) {
  const cache = mkdtempSync(join(tmpdir(), "hsd-first-run-"));
  try {
    loads.push(loadavg()[0]!);
    // Alternate which goes first, so that a drift of the machine's speed does not favour one.
    const pinned = () => times.pinned.push(timed([...common, "--hierarchy", target, o.prompt], cache).seconds);
    if (rep % 2 === 1) pinned();
    times.first.push(timed([...common, o.prompt], cache).seconds);
    if (rep % 2 === 0) pinned();
    const second = timed([...common, "--json", o.prompt], cache);
    times.second.push(second.seconds);
    priors.push((JSON.parse(second.stdout) as { online: { prior: string } }).online.prior);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
  process.stderr.write(`\rrepetition ${rep + 1}/${o.repetitions}`);
}
process.stderr.write("\n");

const row = (what: string, xs: number[]) =>
  `| ${what} | ${median(xs).toFixed(2)} | ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} |`;
const gap = times.first.map((t, i) => t - times.pinned[i]!);
const lines = [
  `Whole-process seconds of \`hsd run --max-tokens ${o.maxTokens} "${o.prompt}"\` on ${folder === BUNDLED_MODELS_DIR ? "the bundled family" : folder}, ${o.repetitions} repetitions with a fresh cache each, interleaved; load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}.`,
  "",
  "| run | median s | min–max s |",
  "|---|---:|---:|",
  row("first run, empty cache (planning while generating from a quick prior)", times.first),
  row(`pinned to the target alone (\`--hierarchy ${target}\`)`, times.pinned),
  row("second run (starts from what the first learned)", times.second),
  row("first run minus pinned, per repetition", gap),
  "",
  `The second run's --json online.prior: ${[...new Set(priors)].map((p) => `"${p}" (${priors.filter((x) => x === p).length} of ${priors.length})`).join(", ")}.`,
];
process.stdout.write(lines.join("\n") + "\n");
