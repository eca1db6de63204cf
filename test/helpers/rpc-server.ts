// rpc-server processes for tests and benchmarks: llama.cpp's ggml-rpc-server on 127.0.0.1 only, on a free port,
// stopped by PID. The server comes from `npm run build:llama -- --rpc-only` (or --rpc); `ensureRpcBuild` runs that
// build when it is missing, so the RPC tests run (never skip) in a fresh checkout, as in CI.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { loadNative } from "../../src/native/load.js";
import { rpcServerPath } from "../../src/rpc/support.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The ggml-rpc-server executable, building it first (a few minutes) when it is not there. */
export function ensureRpcBuild(): string {
  const existing = rpcServerPath();
  if (existing) return existing;
  const jobs = String(Math.max(1, os.availableParallelism()));
  const r = spawnSync(process.execPath, [path.join(ROOT, "scripts", "build-llama.mjs"), "--rpc-only", "-j", jobs], {
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 30 * 60_000,
  });
  const built = rpcServerPath();
  if (r.status !== 0 || !built) throw new Error(`npm run build:llama -- --rpc-only failed (status ${r.status})`);
  return built;
}

/** A port nothing listens on right now (the kernel's pick on 127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export class RpcServerProcess {
  private exited: Promise<void>;
  output = "";

  constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const keep = (d: Buffer) => void (this.output = (this.output + d.toString()).slice(-4000));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Ends the server by its PID (SIGKILL: a server dying mid-generation is what the fault tests want). */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.running) process.kill(this.pid, signal);
    await this.exited;
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the server: a host that stops answering without closing anything. */
  pause(): void {
    process.kill(this.pid, "SIGSTOP");
  }
  resume(): void {
    process.kill(this.pid, "SIGCONT");
  }
}

/** Starts ggml-rpc-server on 127.0.0.1 (a free port; retried if another process takes it first) with `threads`. */
export async function startRpcServer(options: { threads?: number } = {}): Promise<RpcServerProcess> {
  const server = ensureRpcBuild();
  const addon = loadNative().addon;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawn(server, ["-H", "127.0.0.1", "-p", String(port), "-t", String(options.threads ?? 1)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const proc = new RpcServerProcess(child, port);
    const deadline = Date.now() + 20_000;
    while (proc.running && Date.now() < deadline) {
      const p = await addon.probeRpcServer("127.0.0.1", port, 1000);
      if (p.state === "ok") return proc;
      await new Promise((r) => setTimeout(r, 50));
    }
    await proc.kill();
    if (Date.now() >= deadline) throw new Error(`ggml-rpc-server did not start on port ${port}: ${proc.output}`);
  }
  throw new Error("ggml-rpc-server could not bind a free port in 5 attempts");
}
