// Responsive: an AbortSignal from a timer, Ctrl-C, a closed pipe and a loop left early all take effect within one
// target pass, on the default (synchronous) evaluation path too, and leave the instance usable.
import { expect } from "chai";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hsd, type Hierarchy } from "../src/api/hsd.js";
import { AbortedError, HsdError } from "../src/errors.js";
import { bundledFamily } from "./helpers/models.js";

const CLI = fileURLToPath(new URL("../ts-lib/cli/main.js", import.meta.url));
const PROMPT = "Once upon a time";

describe("responsive: abort, Ctrl-C and early exit", function () {
  this.timeout(120_000);
  const family = bundledFamily();
  const small = basename(family.files[0]!);
  const target = basename(family.files[family.files.length - 1]!);
  const chain: Hierarchy = { files: [small, target], thresholds: [3] };
  let hsd: Hsd;
  let cache: string;

  before(async () => {
    cache = mkdtempSync(join(tmpdir(), "hsd-responsive-"));
    hsd = await Hsd.open({ models: family.dir, threads: 1, contextSize: 4096 });
  });
  after(async () => {
    await hsd?.dispose();
    rmSync(cache, { recursive: true, force: true });
  });

  for (const evaluation of ["sync", "async"] as const) {
    it(`an AbortSignal fired by a timer stops a long generation within one target pass (${evaluation} evaluation)`, async function () {
      const instance = evaluation === "sync" ? hsd : await Hsd.open({ models: family.dir, threads: 1, evaluation });
      try {
        const controller = new AbortController();
        let chunks = 0;
        let chunksAtAbort = -1;
        let abortedAt = 0;
        setTimeout(() => {
          chunksAtAbort = chunks;
          abortedAt = performance.now();
          controller.abort();
        }, 300);
        const run = instance.generate(PROMPT, {
          hierarchy: chain,
          sampling: { greedy: true },
          maxTokens: 100_000,
          signal: controller.signal,
        });
        for await (const _ of run) chunks++;
        const latency = performance.now() - abortedAt;
        const result = await run.result;
        expect(result.stopReason).to.equal("aborted");
        expect(chunksAtAbort, "the timer fired during the generation").to.be.greaterThan(0);
        expect(result.tokens.length).to.be.greaterThan(0);
        // One chunk per target pass: at most the pass that was running when the timer fired, and the text tail.
        expect(chunks - chunksAtAbort, "chunks after the abort").to.be.at.most(2);
        expect(latency, "ms from the abort to the end").to.be.below(1000);
      } finally {
        if (instance !== hsd) await instance.dispose();
      }
    });
  }

  it("break out of the loop, or a throw in its body, ends the generation and the next generate works", async function () {
    for (const leave of ["break", "throw"] as const) {
      const run = hsd.generate(PROMPT, { hierarchy: chain, sampling: { greedy: true }, maxTokens: 200 });
      try {
        for await (const _ of run) {
          if (leave === "break") break;
          throw new Error("consumer failed");
        }
      } catch (error) {
        expect((error as Error).message).to.equal("consumer failed");
      }
      const left = await run.result.then(
        () => null,
        (e: Error) => e,
      );
      expect(left, leave).to.be.instanceOf(HsdError);
      expect(left!.message).to.match(/left early/);
      const next = await hsd.generate(PROMPT, { hierarchy: chain, sampling: { greedy: true }, maxTokens: 4 }).result;
      expect(next.tokens.length, `a generation after ${leave}`).to.be.within(1, 4);
    }
  });

  it("an abort during the first calibration stops it within a pass with AbortedError, and caches nothing", async function () {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const cold = await Hsd.open({ models: family.dir, threads: 1 });
    const previous = process.env.HSD_CACHE_DIR;
    process.env.HSD_CACHE_DIR = join(cache, "api");
    try {
      const started = performance.now();
      const error = await cold.plan({ recalibrate: true, signal: controller.signal }).then(
        () => null,
        (e: Error) => e,
      );
      expect(error).to.be.instanceOf(AbortedError);
      expect(performance.now() - started, "ms until the plan rejected").to.be.below(1300);
      expect(existsSync(join(cache, "api")) ? readdirSync(join(cache, "api")) : []).to.deep.equal([]);
    } finally {
      process.env.HSD_CACHE_DIR = previous;
      await cold.dispose();
    }
  });

  describe("the CLI", () => {
    const pinned = ["--threads", "1", "--hierarchy", `${small},${target}`, "--thresholds", "3"];

    it("Ctrl-C during a run stops within 1 s, prints the partial text and the summary, exit code 130", async function () {
      const child = start(["run", ...pinned, "--greedy", "--context-size", "4096", "--max-tokens", "100000", PROMPT]);
      await child.waitFor(() => child.stdout.length > 40);
      const sent = performance.now();
      child.process.kill("SIGINT");
      const code = await child.exit;
      expect(performance.now() - sent, "ms from SIGINT to exit").to.be.below(1000);
      expect(code, child.stderr).to.equal(130);
      expect(child.stdout.trim().length).to.be.greaterThan(40);
      expect(child.stderr).to.match(/\[hsd\] \d+ tokens .*\(aborted\)/);
    });

    it("Ctrl-C during the first calibration stops within 1 s with a message, exit code 130", async function () {
      const child = start(["calibrate", "--threads", "1", "--greedy"], join(cache, "cli"));
      await child.waitFor(() => child.elapsed() > 3000);
      const sent = performance.now();
      child.process.kill("SIGINT");
      const code = await child.exit;
      expect(performance.now() - sent, "ms from SIGINT to exit").to.be.below(1000);
      expect(code, child.stderr).to.equal(130);
      expect(child.stderr).to.match(/calibration was interrupted; nothing of it was cached/);
    });

    it("a reader that goes away (hsd run … | head -c 5) ends the run quietly with exit code 0", async function () {
      const child = start(["run", ...pinned, "--greedy", "--context-size", "4096", "--max-tokens", "100000", PROMPT]);
      await child.waitFor(() => child.stdout.length > 5);
      child.process.stdout.destroy();
      const code = await child.exit;
      expect(code, child.stderr).to.equal(0);
      expect(child.stderr).to.not.match(/Error|EPIPE|at /);
    });

    it("hsd run - reads the prompt from stdin, --prompt-file from a file", async function () {
      const viaArgument = await start(["run", ...pinned, "--greedy", "--json", "--max-tokens", "6", PROMPT]).json();
      const stdin = start(["run", ...pinned, "--greedy", "--json", "--max-tokens", "6", "-"]);
      stdin.process.stdin.end(`${PROMPT}\n`);
      expect((await stdin.json()).tokens).to.deep.equal(viaArgument.tokens);
      const file = join(cache, "prompt.txt");
      writeFileSync(file, `${PROMPT}\n`);
      const fromFile = await start([
        "run",
        ...pinned,
        "--greedy",
        "--json",
        "--max-tokens",
        "6",
        "--prompt-file",
        file,
      ]);
      expect((await fromFile.json()).tokens).to.deep.equal(viaArgument.tokens);
    });

    it("warns on stderr about more threads than CPUs, and GPU layers without a GPU build", async function () {
      const cpus = (await import("node:os")).availableParallelism();
      const gpu = (await import("../src/native/index.js")).nativeDevices().some((d) => d.type !== "cpu");
      // The warnings come from opening the models; a prompt longer than the context then ends the run before any pass
      // (a pass with more threads than CPUs can take minutes on a busy machine: what the warning is about).
      const args = ["run", "--threads", String(cpus + 1), "--gpu-layers", "4"];
      const child = start([
        ...args,
        "--hierarchy",
        target,
        "The state of the Union is strong, and so are we. ".repeat(60),
      ]);
      expect(await child.exit, child.stderr).to.equal(1);
      expect(child.stderr).to.match(new RegExp(`hsd: warning: threads ${cpus + 1} .*more than the ${cpus} CPUs`));
      if (!gpu)
        expect(child.stderr).to.match(/hsd: warning: gpuLayers 4 .*no GPU device, so the models run on the CPU/);
      expect(child.stderr).to.match(/hsd: the prompt is \d+ tokens but the context holds \d+/);
    });

    it("a 1 MB prompt from a file is refused with the context's size, not an argv limit or a crash", async function () {
      const file = join(cache, "big.txt");
      writeFileSync(file, "word ".repeat(200_000));
      const child = start(["run", ...pinned, "--prompt-file", file]);
      expect(await child.exit).to.equal(1);
      expect(child.stderr).to.match(/^hsd: the prompt is \d+ tokens but the context holds \d+/);
    });
  });

  /** CLI processes of the current test: killed after it, so a failed test leaves none running. */
  const running = new Set<ReturnType<typeof spawn>>();
  afterEach(() => {
    for (const p of running) p.kill("SIGKILL");
    running.clear();
  });

  /** A spawned CLI with its output collected. */
  function start(args: string[], cacheDir = cache) {
    const started = performance.now();
    const proc = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, HSD_CACHE_DIR: cacheDir },
      stdio: ["pipe", "pipe", "pipe"],
    });
    running.add(proc);
    proc.on("close", () => running.delete(proc));
    const self = {
      process: proc,
      stdout: "",
      stderr: "",
      elapsed: () => performance.now() - started,
      exit: new Promise<number | null>((resolve) => proc.on("close", (code) => resolve(code))),
      /** Polls until `ready` holds (or the process ends, or 60 s pass). */
      async waitFor(ready: () => boolean): Promise<void> {
        let ended = false;
        void self.exit.then(() => (ended = true));
        while (!ready()) {
          if (ended) throw new Error(`the CLI ended early (stderr: ${self.stderr})`);
          if (self.elapsed() > 60_000) throw new Error("timed out waiting for the CLI");
          await new Promise((r) => setTimeout(r, 20));
        }
      },
      async json() {
        const code = await self.exit;
        expect(code, self.stderr).to.equal(0);
        return JSON.parse(self.stdout);
      },
    };
    proc.stdout.on("data", (d: Buffer) => (self.stdout += d.toString()));
    proc.stderr.on("data", (d: Buffer) => (self.stderr += d.toString()));
    proc.stdout.on("error", () => undefined);
    if (!args.includes("-")) proc.stdin.end();
    return self;
  }
});
