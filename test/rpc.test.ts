// The target over llama.cpp's RPC backend, the drafts local: rpc-server processes started here on 127.0.0.1 (free
// ports, stopped by PID), greedy identity against the local target (directly and through a delay relay), faults
// (refused, silent, other protocol, killed and stopped mid-generation, one of two servers) as RpcServerErrors naming
// the server in bounded time, with this process alive. Needs ggml-rpc-server: built here when missing (about two
// minutes on two cores; CI builds it first, .ci/run).
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Hsd, type Hierarchy } from "../src/api/hsd.js";
import { InvalidOptionError, RpcServerError } from "../src/errors.js";
import { parseRpcEndpoints } from "../src/rpc/endpoints.js";
import { checkRpcServers } from "../src/rpc/probe.js";
import { bundledFamily } from "./helpers/models.js";
import { startDelayRelay } from "./helpers/delay-relay.js";
import { ensureRpcBuild, freePort, startRpcServer, type RpcServerProcess } from "./helpers/rpc-server.js";
import { TIE_GAP, topTwoGap } from "./helpers/ties.js";

const CLI = fileURLToPath(new URL("../ts-lib/cli/main.js", import.meta.url));
const PROMPTS = ["Once upon a time", "The state of the Union is", "In the beginning"];
const TOKENS = 24;

/** A TCP server on 127.0.0.1 that does `onConnection` with each client: a fake rpc-server. */
async function fakeServer(onConnection: (socket: net.Socket) => void): Promise<{ endpoint: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    endpoint: `127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** Answers ggml-rpc's HELLO (command 14) with protocol version major.minor.patch. */
function helloAnswer(major: number, minor: number, patch: number): Buffer {
  const answer = Buffer.alloc(8 + 28);
  answer.writeBigUInt64LE(28n, 0);
  answer[8] = major;
  answer[9] = minor;
  answer[10] = patch;
  return answer;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("RPC: the target on rpc-servers, the drafts local", function () {
  this.timeout(300_000);
  const family = bundledFamily();
  const files = family.files;
  const target = files[files.length - 1]!;
  const names = files.map((f) => basename(f));
  const servers: RpcServerProcess[] = [];
  let server: RpcServerProcess;
  let local: Hsd;
  let cache: string;
  const previousCache = process.env.HSD_CACHE_DIR;

  const start = async () => {
    const s = await startRpcServer();
    servers.push(s);
    return s;
  };

  before(async function () {
    this.timeout(30 * 60_000); // a fresh checkout builds ggml-rpc-server first
    ensureRpcBuild();
    cache = mkdtempSync(join(tmpdir(), "hsd-rpc-cache-"));
    process.env.HSD_CACHE_DIR = cache;
    server = await start();
    local = await Hsd.open({ files, ngram: "off" });
  });

  after(async () => {
    await local?.dispose();
    for (const s of servers) {
      if (s.running) s.resume();
      await s.kill();
    }
    if (previousCache === undefined) delete process.env.HSD_CACHE_DIR;
    else process.env.HSD_CACHE_DIR = previousCache;
    rmSync(cache, { recursive: true, force: true });
  });

  /** The local target's greedy tokens for each prompt. */
  async function reference(): Promise<Map<string, number[]>> {
    const ref = new Map<string, number[]>();
    for (const prompt of PROMPTS) {
      const r = await local.generate(prompt, {
        hierarchy: { files: [target], thresholds: [] },
        sampling: { greedy: true },
        maxTokens: TOKENS,
      }).result;
      ref.set(prompt, r.tokens);
    }
    return ref;
  }

  /** Generations over RPC must give the reference tokens; a divergence is allowed only at an argmax tie. */
  async function expectTargetTokens(hsd: Hsd, hierarchies: Hierarchy[], ref: Map<string, number[]>) {
    const mismatches: string[] = [];
    let ties = 0;
    for (const hierarchy of hierarchies)
      for (const prompt of PROMPTS) {
        const r = await hsd.generate(prompt, { hierarchy, sampling: { greedy: true }, maxTokens: TOKENS }).result;
        const want = ref.get(prompt)!;
        const at = r.tokens.findIndex((t, i) => t !== want[i]);
        if (at < 0 && r.tokens.length === want.length) continue;
        const gap = await topTwoGap(local.target.native, prompt, want.slice(0, at));
        if (gap < TIE_GAP) ties++;
        else mismatches.push(`${hierarchy.files.join(">")} "${prompt}" at ${at}: ${r.tokens[at]} vs ${want[at]}`);
      }
    expect(mismatches, mismatches.join("\n")).to.deep.equal([]);
    expect(ties, "argmax ties must stay rare").to.be.at.most(1);
  }

  describe("addresses and probes", function () {
    it("bad addresses are InvalidOptionErrors naming the option", async function () {
      for (const bad of ["", "localhost", "host:0", "host:70000", "a b:1", "h:1,h:1"])
        expect(() => parseRpcEndpoints(bad, "--rpc"), bad).to.throw(InvalidOptionError, /--rpc/);
      expect(parseRpcEndpoints(" 10.0.0.2:50052, gpu-box:7 ", "--rpc").map((e) => e.label)).to.deep.equal([
        "10.0.0.2:50052",
        "gpu-box:7",
      ]);
      const e = await rejection(Hsd.open({ files, rpc: "nonsense" }));
      expect(e).to.be.instanceOf(InvalidOptionError);
      expect(e.message).to.match(/rpc: "nonsense" is not HOST:PORT/);
      const levels = await rejection(Hsd.open({ files, rpc: server.endpoint, rpcLevels: ["nope.gguf"] }));
      expect(levels.message).to.match(/rpcLevels: nope\.gguf is not one of the models/);
    });

    it("a port nobody listens on, a silent server, one that hangs up, another protocol version: each named, in seconds", async function () {
      const refusedPort = await freePort();
      const silent = await fakeServer(() => {});
      const hangsUp = await fakeServer((s) => s.destroy());
      const older = await fakeServer((s) => s.once("data", () => s.write(helloAnswer(5, 1, 0))));
      const newer = await fakeServer((s) => s.once("data", () => s.write(helloAnswer(6, 9, 0))));
      try {
        const cases: [string, RegExp][] = [
          [`127.0.0.1:${refusedPort}`, /connection refused/],
          [silent.endpoint, /did not answer the RPC handshake within \d+ ms.*one client at a time/],
          [hangsUp.endpoint, /closed the connection during the RPC handshake/],
          [older.endpoint, /speaks RPC protocol 5\.1\.0, but hsd's llama\.cpp speaks 6\.0\.0/],
          [newer.endpoint, /speaks RPC protocol 6\.9\.0/],
        ];
        for (const [endpoint, words] of cases) {
          const started = performance.now();
          const e = await rejection(Hsd.open({ files, rpc: [server.endpoint, endpoint], ngram: "off" }));
          expect(e, endpoint).to.be.instanceOf(RpcServerError);
          expect((e as RpcServerError).endpoint).to.equal(endpoint);
          expect(e.message).to.contain(endpoint).and.match(words);
          expect(performance.now() - started, endpoint).to.be.below(10_000);
        }
        // The good server was probed and released every time: it still serves.
        await checkRpcServers(parseRpcEndpoints(server.endpoint, "rpc"));
      } finally {
        silent.close();
        hangsUp.close();
        older.close();
        newer.close();
      }
    });

    it("the delay relay holds each chunk D ms each way (a round trip costs 2·D)", async function () {
      const echo = await fakeServer((s) => s.on("data", (d) => s.write(d)));
      const relay = await startDelayRelay({ target: echo.endpoint, delayMs: 20 });
      try {
        const socket = net.connect(relay.port, "127.0.0.1");
        socket.setNoDelay(true);
        await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
        const rtts: number[] = [];
        for (let i = 0; i < 5; i++) {
          const sent = performance.now();
          socket.write("ping");
          await new Promise((resolve) => socket.once("data", resolve));
          rtts.push(performance.now() - sent);
        }
        socket.destroy();
        const best = Math.min(...rtts);
        expect(best).to.be.within(39, 80);
      } finally {
        await relay.stop();
        echo.close();
      }
    });
  });

  it("greedy: the target over RPC gives the local target's tokens, drafts local (sync and async passes)", async function () {
    const ref = await reference();
    const hierarchies: Hierarchy[] = [
      { files: [names[3]!], thresholds: [] },
      { files: [names[0]!, names[3]!], thresholds: [3] },
      { files: [names[0]!, names[2]!, names[3]!], thresholds: [3, 2] },
    ];
    for (const evaluation of ["sync", "async"] as const) {
      const hsd = await Hsd.open({ files, rpc: server.endpoint, ngram: "off", evaluation });
      try {
        expect(hsd.rpc).to.deep.equal({ servers: [server.endpoint], files: [names[3]] });
        expect(hsd.device).to.contain(`over RPC (${names[3]}): ${server.endpoint}`);
        await expectTargetTokens(hsd, evaluation === "sync" ? hierarchies : hierarchies.slice(1, 2), ref);
      } finally {
        await hsd.dispose();
      }
    }
  });

  it("sampling rows over RPC: sparse rows gathered from the child's dense rows hold what the local addon writes (docs/ALGORITHM.md §12)", async function () {
    const hsd = await Hsd.open({ files: [target], rpc: server.endpoint, ngram: "off" });
    try {
      const remote = hsd.target.native;
      const here = local.target.native;
      const V = here.vocabSize;
      const tokens = here.tokenize(PROMPTS[0]!, true, false).subarray(0, 6);
      const rows = tokens.length;
      const cases = [
        // llama.cpp's defaults: every row fits (top-k 40 <= capacity), no dense buffer needed.
        { s: { greedy: false, temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 }, capacity: 40, dense: false },
        // top-p alone with a small capacity: rows that keep more ids than 4 are written dense (count -1).
        { s: { greedy: false, temperature: 1.5, topK: 0, topP: 0.99, minP: 0 }, capacity: 4, dense: true },
      ];
      for (const { s, capacity, dense } of cases) {
        const written = [remote, here].map((model) => {
          const ctx = model.createContext({ contextSize: 64, batchSize: 16, threads: 1 });
          try {
            ctx.setSampling(s);
            const sparse = {
              capacity,
              ids: new Int32Array(rows * capacity),
              probs: new Float32Array(rows * capacity),
              counts: new Int32Array(rows),
            };
            const probs = dense ? new Float32Array(rows * V) : null;
            ctx.evaluateSync(tokens, 0, 0, { probs, argmax: new Int32Array(rows), rowOffset: 0, sparse });
            return Array.from({ length: rows }, (_, r) => {
              const n = sparse.counts[r]!;
              if (n < 0)
                return {
                  n,
                  row: new Map(Array.from(probs!.subarray(r * V, (r + 1) * V).entries()).filter(([, p]) => p > 0)),
                };
              const at = r * capacity;
              return {
                n,
                row: new Map(Array.from({ length: n }, (_, i) => [sparse.ids[at + i]!, sparse.probs[at + i]!])),
              };
            });
          } finally {
            ctx.dispose();
          }
        });
        const [overRpc, onHere] = written as [(typeof written)[0], (typeof written)[0]];
        if (dense)
          expect(
            overRpc.some((r) => r.n < 0),
            "some rows fell back to dense",
          ).to.equal(true);
        for (let r = 0; r < rows; r++) {
          expect(overRpc[r]!.n, `row ${r} count`).to.equal(onHere[r]!.n);
          expect(
            [...overRpc[r]!.row.keys()].sort((a, b) => a - b),
            `row ${r} ids`,
          ).to.deep.equal([...onHere[r]!.row.keys()].sort((a, b) => a - b));
          for (const [id, p] of overRpc[r]!.row)
            expect(p, `row ${r} id ${id}`).to.be.closeTo(onHere[r]!.row.get(id)!, 1e-5);
        }
      }
    } finally {
      await hsd.dispose();
    }
  });

  it("greedy through a delay relay (1 ms each way), and with every level remote; the adaptive plan calibrates remote costs and learns per server address", async function () {
    const ref = await reference();
    const relay = await startDelayRelay({ target: server.endpoint, delayMs: 1 });
    try {
      const hsd = await Hsd.open({ files, rpc: relay.endpoint, ngram: "off" });
      try {
        await expectTargetTokens(hsd, [{ files: [names[1]!, names[3]!], thresholds: [4] }], ref);
        // Planning while generating: a quick calibration measures the passes through the relay first.
        const r = await hsd.generate(PROMPTS[0]!, { sampling: { greedy: true }, maxTokens: TOKENS }).result;
        expect(r.tokens).to.deep.equal(ref.get(PROMPTS[0]!));
        expect(r.online?.prior).to.equal("quick");
      } finally {
        await hsd.dispose();
      }
      // What that generation learned is kept under the device string, which names the servers: the same relay
      // starts from it in a new instance; the server reached without the relay (another network) does not.
      const again = await Hsd.open({ files, rpc: relay.endpoint, ngram: "off" });
      try {
        const r = await again.generate(PROMPTS[1]!, { sampling: { greedy: true }, maxTokens: TOKENS }).result;
        expect(r.online?.prior).to.equal("learned");
      } finally {
        await again.dispose();
      }
      const direct = await Hsd.open({ files, rpc: server.endpoint, ngram: "off" });
      try {
        const r = await direct.generate(PROMPTS[1]!, { sampling: { greedy: true }, maxTokens: TOKENS }).result;
        expect(r.online).to.exist;
        expect(r.online!.prior).to.not.equal("learned");
        expect(r.tokens).to.deep.equal(ref.get(PROMPTS[1]!));
      } finally {
        await direct.dispose();
      }
    } finally {
      await relay.stop();
    }
    const all = await Hsd.open({ files, rpc: server.endpoint, rpcLevels: "all", ngram: "off" });
    try {
      expect(all.rpc?.files).to.deep.equal(names);
      await expectTargetTokens(all, [{ files: [names[0]!, names[2]!, names[3]!], thresholds: [2, 2] }], ref);
    } finally {
      await all.dispose();
    }
  });

  it("a server killed mid-generation: an RpcServerError naming it within seconds; this process goes on", async function () {
    const victim = await start();
    const hsd = await Hsd.open({ files, rpc: victim.endpoint, ngram: "off" });
    const run = hsd.generate(PROMPTS[0]!, {
      hierarchy: { files: [names[0]!, names[3]!], thresholds: [3] },
      sampling: { greedy: true },
      maxTokens: 2000,
    });
    let chunks = 0;
    let killedAt = 0;
    const e = await rejection(
      (async () => {
        for await (const _ of run) {
          if (++chunks === 3) {
            await victim.kill();
            killedAt = performance.now();
          }
        }
      })(),
    );
    const ms = performance.now() - killedAt;
    expect(killedAt, "the generation ended before the server was killed").to.be.greaterThan(0);
    expect(e).to.be.instanceOf(RpcServerError);
    expect((e as RpcServerError).endpoint).to.equal(victim.endpoint);
    expect(e.message)
      .to.match(/connection refused/)
      .and.match(/broke while a model ran on it/);
    expect(ms).to.be.below(10_000);
    // The instance reports the same fault again, disposes cleanly, and local work goes on.
    const again = await rejection(
      hsd.generate(PROMPTS[1]!, { hierarchy: { files: [names[3]!], thresholds: [] } }).result,
    );
    expect(again.message).to.equal(e.message);
    await hsd.dispose();
    const r = await local.generate(PROMPTS[0]!, { hierarchy: { files: [target], thresholds: [] }, maxTokens: 4 })
      .result;
    expect(r.tokens).to.have.length(4);
  });

  it("a server that stops answering mid-generation (SIGSTOP): an RpcServerError naming it after rpcTimeoutMs", async function () {
    const stopped = await start();
    const hsd = await Hsd.open({ files, rpc: stopped.endpoint, ngram: "off", rpcTimeoutMs: 1500 });
    let pausedAt = 0;
    try {
      const run = hsd.generate(PROMPTS[0]!, {
        hierarchy: { files: [names[0]!, names[3]!], thresholds: [3] },
        sampling: { greedy: true },
        maxTokens: 2000,
      });
      let chunks = 0;
      const e = await rejection(
        (async () => {
          for await (const _ of run) {
            if (++chunks === 3) {
              stopped.pause();
              pausedAt = performance.now();
            }
          }
        })(),
      );
      const ms = performance.now() - pausedAt;
      expect(e).to.be.instanceOf(RpcServerError);
      expect((e as RpcServerError).endpoint).to.equal(stopped.endpoint);
      expect(e.message)
        .to.match(/did not answer the RPC handshake/)
        .and.match(/no answer within 1500 ms/);
      expect(ms).to.be.within(1400, 1500 + 3000 + 5000);
    } finally {
      await hsd.dispose();
      stopped.resume();
      await stopped.kill();
    }
  });

  it("two servers share the target's layers; killing the second names the second", async function () {
    const [a, b] = [await start(), await start()];
    const ref = await reference();
    const hsd = await Hsd.open({ files, rpc: [a.endpoint, b.endpoint], ngram: "off" });
    try {
      await expectTargetTokens(hsd, [{ files: [names[0]!, names[3]!], thresholds: [3] }], ref);
      await b.kill();
      const e = await rejection(
        hsd.generate(PROMPTS[0]!, { hierarchy: { files: [names[3]!], thresholds: [] } }).result,
      );
      expect(e).to.be.instanceOf(RpcServerError);
      expect((e as RpcServerError).endpoint).to.equal(b.endpoint);
    } finally {
      await hsd.dispose();
      await a.kill();
    }
  });

  it("CLI: hsd run --rpc prints the local target's text; a bad --rpc exits 1 naming it", async function () {
    const run = (args: string[]) =>
      spawnSync(process.execPath, [CLI, "run", "--greedy", "--max-tokens", "12", ...args, PROMPTS[0]!], {
        encoding: "utf8",
        env: { ...process.env, HSD_CACHE_DIR: cache },
        timeout: 120_000,
      });
    const pinned = ["--hierarchy", `${names[0]},${names[3]}`, "--thresholds", "3", "--ngram", "off"];
    const here = run(pinned);
    const remote = run([...pinned, "--rpc", server.endpoint]);
    expect(here.status, here.stderr).to.equal(0);
    expect(remote.status, remote.stderr).to.equal(0);
    expect(remote.stdout).to.equal(here.stdout);
    const port = await freePort();
    const refused = run([...pinned, "--rpc", `127.0.0.1:${port}`]);
    expect(refused.status).to.equal(1);
    expect(refused.stderr).to.match(new RegExp(`hsd: rpc-server 127\\.0\\.0\\.1:${port}: connection refused`));
    const bad = run([...pinned, "--rpc", "gpu-box"]);
    expect(bad.status).to.equal(1);
    expect(bad.stderr).to.match(/hsd: --rpc: "gpu-box" is not HOST:PORT/);
  });
});
