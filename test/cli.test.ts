// The CLI driven as a user drives it: a spawned process, its exit code, stdout and stderr.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundledFamily } from "./helpers/models.js";

const CLI = fileURLToPath(new URL("../ts-lib/cli/main.js", import.meta.url));

function hsd(args: string[], cacheDir: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    env: { ...process.env, HSD_CACHE_DIR: cacheDir },
    timeout: 300_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of a GGUF file whose vocabulary differs in one token text (same length, still valid GGUF). */
function withAlteredVocabulary(source: string, destination: string): void {
  const bytes = readFileSync(source);
  // The token " the" is stored GPT-2 byte-level as "Ġthe" (C4 A0 74 68 65), after its u64 length 5.
  const needle = Buffer.from([5, 0, 0, 0, 0, 0, 0, 0, 0xc4, 0xa0, 0x74, 0x68, 0x65]);
  const at = bytes.indexOf(needle);
  if (at < 0) throw new Error(`token "Ġthe" not found in ${source}`);
  bytes[at + 12] = 0x45; // "ĠthE"
  writeFileSync(destination, bytes);
}

describe("hsd CLI (spawned process)", function () {
  this.timeout(600_000);
  const family = bundledFamily();
  let cache: string;
  before(() => {
    cache = mkdtempSync(join(tmpdir(), "hsd-cli-cache-"));
  });
  after(() => rmSync(cache, { recursive: true, force: true }));

  it("calibrate shows progress and fills the cache; plan --json then reads it", function () {
    const c = hsd(["calibrate", "--threads", "1", "--greedy", "--max-threshold", "8"], cache);
    expect(c.code, c.stderr).to.equal(0);
    expect(c.stderr).to.match(/calibrating costs/);
    expect(c.stdout).to.match(/calibrated \d+ models/);
    const p = hsd(["plan", "--json", "--threads", "1", "--greedy", "--max-threshold", "8"], cache);
    expect(p.code, p.stderr).to.equal(0);
    const plan = JSON.parse(p.stdout);
    expect(plan.calibration.from_cache).to.equal(true);
    expect(plan.best.chain).to.be.an("array").that.is.not.empty;
    expect(plan.best.chain[plan.best.chain.length - 1]).to.equal(basename(family.files[family.files.length - 1]!));
    expect(plan.best.thresholds).to.have.length(plan.best.chain.length - 1);
    expect(plan.best.predicted_ms_per_token).to.be.a("number").greaterThan(0);
    expect(plan.autoregressive.predicted_ms_per_token).to.be.a("number").greaterThan(0);
    expect(plan).to.have.property("best_single");
    // The context lookup (a model-free level) comes first; then the models.
    expect(plan.candidates[0].name).to.equal("ngram-lookup");
    expect(plan.candidates[0].kind).to.equal("proposal");
    for (const c of plan.candidates.slice(1)) {
      expect(c.kind, c.file).to.equal("model");
      expect(c.costs.autoregressive_ms, c.file).to.be.a("number").greaterThan(0);
      expect(c.costs.reshape, c.file).to.be.an("array").with.length(c.costs.hot.length);
      for (const r of c.costs.reshape) expect(r.ms, `${c.file} size-change extra at n = ${r.n}`).to.be.at.least(0);
    }
    expect(plan.best.predicted_ms_per_token).to.be.at.most(plan.autoregressive.predicted_ms_per_token);
    if (plan.best_single)
      expect(plan.best.predicted_ms_per_token).to.be.at.most(plan.best_single.predicted_ms_per_token + 1e-9);
  });

  it("plan prints a table for people", function () {
    const p = hsd(["plan", "--threads", "1", "--greedy", "--max-threshold", "8"], cache);
    expect(p.code, p.stderr).to.equal(0);
    expect(p.stdout)
      .to.match(/Chosen:/)
      .and.match(/Autoregressive:/);
  });

  it("run --json prints text, token ids, hierarchy and stats, planned with the run's own calibration flags", function () {
    const prompts = join(cache, "prompts.txt");
    writeFileSync(prompts, "The state of the Union is\nIt is the duty of every citizen to\n");
    const r = hsd(
      [
        "run",
        "--json",
        "--no-adapt",
        "--threads",
        "1",
        "--greedy",
        "--max-threshold",
        "8",
        "--prompts",
        prompts,
        "--max-tokens",
        "16",
        "Once upon a time",
      ],
      cache,
    );
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(out.text).to.be.a("string").that.is.not.empty;
    expect(out.tokens).to.be.an("array");
    expect(out.tokens.length).to.be.within(1, 16);
    expect(out.hierarchy.files).to.be.an("array").that.is.not.empty;
    expect(out.hierarchy.thresholds).to.have.length(out.hierarchy.files.length - 1);
    // snake_case throughout the CLI's JSON (the API is camelCase).
    expect(out.stop_reason).to.be.a("string");
    expect(out.stats.ms_per_token).to.be.a("number");
    expect(out.stats.target_passes).to.be.a("number");
    // A routed policy reports every level of its chains; a fixed chain its own.
    if (out.policy) expect(out.stats.routing.states).to.have.length(out.policy.states.length);
    else expect(out.stats.levels).to.have.length(out.hierarchy.files.length);
    expect(out.stats.levels[0].acceptance_by_position).to.be.an("array");
    const camel = (v: unknown): string[] =>
      v && typeof v === "object"
        ? Object.entries(v).flatMap(([k, x]) => [...(/[A-Z]/.test(k) ? [k] : []), ...camel(x)])
        : [];
    expect(camel(out), "camelCase keys in the CLI's JSON").to.deep.equal([]);
    // The plan the run used is the one its flags asked for (not a second one with the defaults).
    expect(out.plan.calibration.prompts).to.equal(2);
    for (const t of out.plan.best.thresholds) expect(t).to.be.at.most(8);
  });

  it("run --hierarchy FILES without --thresholds runs that chain at the latency model's best thresholds", function () {
    const files = [basename(family.files[0]!), basename(family.files[family.files.length - 1]!)];
    const args = ["--threads", "1", "--greedy", "--max-threshold", "8"];
    const r = hsd(["run", "--json", ...args, "--hierarchy", files.join(","), "--max-tokens", "8", "Once"], cache);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(out.hierarchy.files).to.deep.equal(files);
    expect(out.hierarchy.thresholds).to.have.length(1);
    expect(out.hierarchy.thresholds[0]).to.be.within(1, 8);
    // They are the plan's best for this chain: no other T predicts faster (recomputed from the plan's own numbers).
    const plan = JSON.parse(hsd(["plan", "--json", ...args], cache).stdout);
    expect(plan.calibration.from_cache).to.equal(true);
    const single = plan.best_single;
    if (single && single.chain.join() === files.join())
      expect(out.hierarchy.thresholds).to.deep.equal(single.thresholds);
  });

  it("run --json on a repetitive prompt reports the model-free level it used (--ngram on, hierarchy auto)", function () {
    const prompt = "one two three four, one two three four, one two three four, one two three four, one two";
    const args = ["--threads", "1", "--greedy", "--max-threshold", "8", "--ngram", "on", "--max-tokens", "24"];
    const r = hsd(["run", "--json", ...args, prompt], cache);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout);
    const lookup = out.stats.levels.find((l: { name: string }) => l.name === "ngram-lookup");
    expect(lookup, JSON.stringify(out.stats.levels)).to.not.equal(undefined);
    expect(lookup.kind).to.equal("proposal");
    expect(lookup.drafted).to.be.greaterThan(0);
    expect(lookup.accepted).to.be.greaterThan(0);
    // Planned while generating (the default): the plan at the end runs the lookup.
    expect(out.plan).to.equal(null);
    expect(out.online.adapt).to.equal(true);
    expect(out.online.plan).to.contain("ngram-lookup");
    // The same greedy text as the target alone.
    const alone = hsd(
      ["run", "--json", ...args, "--hierarchy", basename(family.files[family.files.length - 1]!), prompt],
      cache,
    );
    expect(JSON.parse(alone.stdout).tokens).to.deep.equal(out.tokens);
  });

  it("run plans while generating: from an empty cache it starts at once from a quick calibration, and the next run from what it learned", function () {
    const empty = mkdtempSync(join(tmpdir(), "hsd-cli-first-run-"));
    try {
      const args = ["run", "--json", "--threads", "1", "--max-tokens", "24", "The history of the railroad begins with"];
      const first = hsd(args, empty);
      expect(first.code, first.stderr).to.equal(0);
      const a = JSON.parse(first.stdout);
      expect(a.plan, "no full calibration").to.equal(null);
      expect(a.online.adapt).to.equal(true);
      expect(a.online.prior).to.equal("quick");
      expect(a.online.prior_ms).to.be.greaterThan(0);
      expect(a.online.observations).to.be.greaterThan(24);
      expect(a.online.predicted_ms_per_token).to.be.a("number").greaterThan(0);
      expect(readdirSync(empty).some((f) => f.startsWith("learned-"))).to.equal(true);
      const second = hsd(args, empty);
      expect(second.code, second.stderr).to.equal(0);
      const b = JSON.parse(second.stdout);
      expect(b.online.prior).to.equal("learned");
      // It starts with the plan the first run ended with.
      expect(b.online.switches.length > 0 ? b.online.switches[0].from : b.online.plan).to.equal(a.online.plan);
      // Text for people says so too.
      const people = hsd(
        args.filter((x) => x !== "--json"),
        empty,
      );
      expect(people.stderr).to.match(/planned while generating from what earlier runs learned/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("run streams text to stdout and a summary to stderr", function () {
    const r = hsd(
      [
        "run",
        "--threads",
        "1",
        "--seed",
        "7",
        "--max-tokens",
        "12",
        "--hierarchy",
        `${basename(family.files[0]!)},${basename(family.files[family.files.length - 1]!)}`,
        "--thresholds",
        "3",
        "The state of the Union is",
      ],
      cache,
    );
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim().length).to.be.greaterThan(0);
    expect(r.stderr).to.match(/\[hsd\] \d+ tokens/);
  });

  it("a folder with a non-GGUF file, a truncated GGUF and another vocabulary plans with the good models and lists the bad", function () {
    const dir = mkdtempSync(join(tmpdir(), "hsd-mixed-"));
    try {
      const [small, , , big] = family.files;
      copyFileSync(small!, join(dir, "good-small.gguf"));
      copyFileSync(big!, join(dir, "good-target.gguf"));
      writeFileSync(join(dir, "notes.txt"), "not a model");
      writeFileSync(join(dir, "fake.gguf"), "this is not a gguf file at all");
      const whole = readFileSync(family.files[1]!);
      writeFileSync(join(dir, "truncated.gguf"), whole.subarray(0, Math.floor(whole.length / 2)));
      withAlteredVocabulary(family.files[2]!, join(dir, "other-vocab.gguf"));
      const p = hsd(["plan", "--json", "--models", dir, "--threads", "1", "--greedy", "--max-threshold", "4"], cache);
      expect(p.code, p.stderr).to.equal(0);
      const plan = JSON.parse(p.stdout);
      expect(
        plan.candidates.filter((c: { kind: string }) => c.kind === "model").map((c: { file: string }) => c.file),
      ).to.deep.equal(["good-small.gguf", "good-target.gguf"]);
      const reasons = Object.fromEntries(
        plan.rejected.map((r: { file: string; reason: string }) => [basename(r.file), r.reason]),
      );
      expect(reasons["notes.txt"]).to.match(/not a \.gguf/);
      expect(reasons["fake.gguf"]).to.match(/not a GGUF/);
      expect(reasons["truncated.gguf"]).to.match(/truncated/);
      expect(reasons["other-vocab.gguf"]).to.match(/vocabulary differs/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [name, args, pattern] of [
    ["an unknown option", ["run", "--frobnicate", "x"], /unknown option '--frobnicate'/],
    ["a missing folder", ["plan", "--models", "/nonexistent/models"], /\/nonexistent\/models/],
    ["an empty prompt", ["run", ""], /prompt is empty/],
    ["a bad number", ["run", "--max-tokens", "zero", "hi"], /--max-tokens/],
    ["a bad calibration length", ["plan", "--calibration-tokens", "0"], /--calibration-tokens/],
    [
      "thresholds that do not fit the hierarchy",
      ["run", "--hierarchy", "a.gguf,b.gguf", "--thresholds", "1,2", "hi"],
      /--thresholds needs 1/,
    ],
    ["thresholds without a hierarchy", ["run", "--thresholds", "3", "hi"], /--thresholds needs --hierarchy FILES/],
  ] as const) {
    it(`${name} exits non-zero with a one-line reason`, function () {
      const r = hsd([...args], cache);
      expect(r.code).to.not.equal(0);
      expect(r.stdout).to.equal("");
      const lines = r.stderr.trim().split("\n");
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0])
        .to.match(/^hsd: /)
        .and.match(pattern);
    });
  }
});
