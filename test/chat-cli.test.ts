// `hsd chat` as a user runs it: piped stdin, a signal, and a pseudo-terminal (util-linux `script`) for Ctrl-C typed
// at the keyboard.
import { expect } from "chai";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { withMetadata } from "../scripts/models/set-chat-template.js";
import { bundledFamily } from "./helpers/models.js";

const CLI = fileURLToPath(new URL("../ts-lib/cli/main.js", import.meta.url));

/** Resolves once `read()` matches `pattern` (fails after `ms`, showing what was read). */
async function until(read: () => string, pattern: RegExp, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pattern.test(read())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${pattern}; got:\n${read()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function exitOf(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

describe("hsd chat (spawned)", function () {
  this.timeout(120_000);
  const family = bundledFamily();
  const target = basename(family.files.at(-1)!);
  // The target alone, pinned: no calibration, and long answers that a Ctrl-C can interrupt.
  const flags = ["--threads", "1", "--greedy", "--hierarchy", target, "--thresholds", ""];
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), "hsd-chat-cli-"));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));
  const env = () => ({ ...process.env, HSD_CACHE_DIR: scratch });

  it("piped stdin: answers each line, reuses the previous turns' KV cache, /reset forgets, /exit quits", function () {
    const r = spawnSync(process.execPath, [CLI, "chat", ...flags, "--max-tokens", "12", "--system", "Be brief."], {
      input: "Hello, who are you?\nTell me about the Union.\n/reset\nHi\n/exit\nnot read\n",
      encoding: "utf8",
      env: env(),
      timeout: 60_000,
    });
    expect(r.status, r.stderr).to.equal(0);
    const turns = [...r.stderr.matchAll(/\[hsd\] (\d+) tokens.*prompt (\d+) tokens, (\d+) reused/g)].map((m) =>
      m.slice(1).map(Number),
    );
    expect(turns, r.stderr).to.have.length(3);
    const [first, second, third] = turns as [number[], number[], number[]];
    expect(first[2]).to.equal(0);
    // Turn 2 reuses turn 1's prompt and answer: more than turn 1's whole prompt.
    expect(second[2]).to.be.greaterThan(first[1]!);
    expect(r.stderr).to.match(/conversation reset/);
    // After /reset only the system message is shared with what came before.
    expect(third[2]).to.be.below(third[1]!);
    expect(r.stdout.trim().length).to.be.greaterThan(0);
  });

  it("SIGINT stops the answer, not the program", async function () {
    const child = spawn(process.execPath, [CLI, "chat", ...flags, "--max-tokens", "450"], { env: env() });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
    child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
    child.stdin.write("Tell me about the Union.\n");
    await until(() => stdout, /\S/);
    child.kill("SIGINT");
    await until(() => stderr, /\[hsd\] \d+ tokens.*\(stopped\)/);
    const stopped = Number(/\[hsd\] (\d+) tokens/.exec(stderr)![1]);
    expect(stopped).to.be.below(450);
    // Still listening: the next commands run.
    child.stdin.write("/reset\n/exit\n");
    expect(await exitOf(child), stderr).to.equal(0);
    expect(stderr).to.match(/\(stopped\)[^]*conversation reset/);
  });

  it("in a terminal: Ctrl-C stops the answer and returns to the prompt; /exit quits", async function () {
    if (spawnSync("script", ["--version"]).status !== 0) this.skip(); // util-linux's script gives the pseudo-terminal
    const command = [process.execPath, CLI, "chat", ...flags.map((f) => (f === "" ? "''" : f)), "--max-tokens", "450"];
    const child = spawn("script", ["-qfec", command.join(" "), "/dev/null"], { env: { ...env(), TERM: "dumb" } });
    let screen = "";
    child.stdout.setEncoding("utf8").on("data", (t: string) => (screen += t));
    await until(() => screen, /> $/);
    child.stdin.write("Tell me about the Union.\r");
    await until(() => screen, /Union\.\r+\n[^]{20,}/);
    child.stdin.write("\x03");
    await until(() => screen, /\(stopped\)[^]*> $/);
    expect(Number(/\[hsd\] (\d+) tokens/.exec(screen)![1])).to.be.below(450);
    child.stdin.write("/exit\r");
    expect(await exitOf(child), screen).to.equal(0);
  });

  it("a model without a chat template: a one-line error that says so", function () {
    const dir = join(scratch, "no-template");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "plain.gguf"),
      withMetadata(readFileSync(family.files[0]!), "tokenizer.chat_template", null),
    );
    const r = spawnSync(process.execPath, [CLI, "chat", "--models", dir, "--greedy"], {
      input: "Hello\n",
      encoding: "utf8",
      env: env(),
    });
    expect(r.status).to.equal(1);
    expect(r.stderr.trim().split("\n")).to.have.length(1);
    expect(r.stderr).to.match(/^hsd: plain\.gguf has no chat template/);
  });
});
