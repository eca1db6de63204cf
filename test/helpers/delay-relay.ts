// A delay relay: a TCP proxy on 127.0.0.1 that holds each chunk D ms in each direction before passing it on, to
// emulate a network round trip of 2·D ms in front of an rpc-server (this kernel has no netem). It runs as a
// process of its own: hsd's own process blocks in synchronous passes, and a relay sharing its event loop would
// stall with it. Sub-millisecond delays are kept by spinning (setImmediate) for the last 2 ms of a wait, since
// timers are millisecond-grained: that costs CPU only while a chunk is in flight, when the sender waits anyway.
//
//   startDelayRelay({ target: "127.0.0.1:50052", delayMs: 1 }) -> { endpoint, port, pid, stop() }
//   node --import tsx test/helpers/delay-relay.ts <targetHost:port> <delayMs>   (prints "listening <port>")
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";

const SPIN_MS = 2;

/** Passes `from`'s data to `to`, each chunk delayMs after it arrived, in order; ends `to` after the last one. */
function pipeDelayed(from: net.Socket, to: net.Socket, delayMs: number): void {
  const queue: { at: number; chunk: Buffer }[] = [];
  let ended = false;
  let scheduled = false;
  const pump = () => {
    scheduled = false;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now) to.write(queue.shift()!.chunk);
    if (queue.length > 0) {
      scheduled = true;
      const wait = queue[0]!.at - now;
      if (wait > SPIN_MS) setTimeout(pump, wait - SPIN_MS);
      else setImmediate(pump);
    } else if (ended) {
      to.end();
    }
  };
  from.on("data", (chunk: Buffer) => {
    queue.push({ at: performance.now() + delayMs, chunk });
    if (!scheduled) pump();
  });
  from.on("end", () => {
    ended = true;
    if (!scheduled) pump();
  });
}

/** The relay server itself (in the relay process). */
export function relay(target: { host: string; port: number }, delayMs: number): net.Server {
  return net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    pipeDelayed(client, upstream, delayMs);
    pipeDelayed(upstream, client, delayMs);
    // A reset on one side resets the other (after the delay, as a real network would show it).
    client.on("error", () => setTimeout(() => upstream.destroy(), delayMs));
    upstream.on("error", () => setTimeout(() => client.destroy(), delayMs));
    client.on("close", () => setTimeout(() => upstream.destroy(), delayMs));
    upstream.on("close", () => setTimeout(() => client.destroy(), delayMs));
  });
}

export interface DelayRelay {
  /** "127.0.0.1:<port>": what to give hsd instead of the server's address. */
  endpoint: string;
  port: number;
  pid: number;
  delayMs: number;
  stop(): Promise<void>;
}

/** Starts a relay process in front of `target` ("host:port"), holding each chunk delayMs each way. */
export async function startDelayRelay(options: { target: string; delayMs: number }): Promise<DelayRelay> {
  const script = fileURLToPath(import.meta.url);
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", script, options.target, String(options.delayMs)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`the delay relay exited (${code}) before listening: ${out}`)));
  });
  return {
    endpoint: `127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    delayMs: options.delayMs,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL");
      await exited;
    },
  };
}

// As a process: relay <targetHost:port> <delayMs>.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [host, port] = process.argv[2]!.split(":");
  const server = relay({ host: host!, port: Number(port) }, Number(process.argv[3]));
  server.listen(0, "127.0.0.1", () => console.log(`listening ${(server.address() as net.AddressInfo).port}`));
}
