// `hsd serve` as a separate process, and a bounded load against it: N concurrent clients × M streamed requests,
// each answered (200) or refused (503 with Retry-After), with first-token latency, ms/token and the server's RSS.
// Shared by test/server.test.ts and scripts/bench-serve.ts. Only ever pointed at 127.0.0.1.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../../ts-lib/cli/main.js", import.meta.url));

export interface ServerProcess {
  url: string;
  pid: number;
  /** Everything the server wrote to stderr so far. */
  log(): string;
  /** SIGTERM, then the exit code (null if it had to be killed). */
  stop(): Promise<number | null>;
}

/** Starts `hsd serve --host 127.0.0.1 --port 0 ARGS` and resolves once it listens; `onLog` sees stderr as it comes. */
export function spawnServer(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  onLog: (stderr: string) => void = () => {},
  startMs = 300_000,
) {
  return new Promise<ServerProcess>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "serve", "--host", "127.0.0.1", "--port", "0", ...args], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`hsd serve did not start within ${startMs} ms:\n${stderr}`));
    }, startMs);
    // Always drained: a full stderr pipe would block the server (Node writes to pipes synchronously).
    child.stderr!.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
      onLog(stderr);
      const url = /listening on (http:\/\/\S+)/.exec(stderr)?.[1];
      if (url && timer.hasRef()) {
        clearTimeout(timer);
        timer.unref();
        resolve({
          url,
          pid: child.pid!,
          log: () => stderr,
          stop: async () => {
            if (child.exitCode !== null) return child.exitCode;
            child.kill("SIGTERM");
            const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
            const code = await exited;
            clearTimeout(kill);
            return code;
          },
        });
      }
    });
    void exited.then((code) => {
      if (timer.hasRef()) {
        clearTimeout(timer);
        reject(new Error(`hsd serve exited with ${code} before listening:\n${stderr}`));
      }
    });
  });
}

export interface LoadOptions {
  url: string;
  clients: number;
  requestsPerClient: number;
  /** The JSON body of every request (to /v1/completions); `stream: true` is added. */
  body: Record<string, unknown>;
  apiKey?: string;
  /** Stop starting requests after this long (the load always ends by itself). */
  deadlineMs?: number;
}

export interface LoadResult {
  sent: number;
  /** Responses by HTTP status; network errors under 0. */
  statuses: Record<number, number>;
  /** 503s without a Retry-After header (should be none). */
  refusedWithoutRetryAfter: number;
  /** 200s whose stream did not end with [DONE] (should be none). */
  incomplete: number;
  /** Per answered request: time to the first text chunk, whole request, and the server's ms/token. */
  firstTokenMs: number[];
  requestMs: number[];
  msPerToken: number[];
  tokens: number;
  wallMs: number;
  errors: string[];
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = {
    sent: 0,
    statuses: {},
    refusedWithoutRetryAfter: 0,
    incomplete: 0,
    firstTokenMs: [],
    requestMs: [],
    msPerToken: [],
    tokens: 0,
    wallMs: 0,
    errors: [],
  };
  const started = performance.now();
  const deadline = started + (options.deadlineMs ?? 600_000);
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (options.apiKey) headers.Authorization = `Bearer ${options.apiKey}`;
  const body = JSON.stringify({ ...options.body, stream: true });

  const one = async () => {
    result.sent++;
    const t0 = performance.now();
    let status = 0;
    try {
      const response = await fetch(`${options.url}/v1/completions`, { method: "POST", headers, body });
      status = response.status;
      if (status !== 200) {
        if (status === 503 && !response.headers.get("retry-after")) result.refusedWithoutRetryAfter++;
        await response.arrayBuffer();
        return;
      }
      let first: number | null = null;
      let text = "";
      const decoder = new TextDecoder();
      for await (const part of response.body!) {
        text += decoder.decode(part as Uint8Array, { stream: true });
        if (first === null && text.includes('"text":"') && /"text":"[^"]/.test(text)) first = performance.now() - t0;
      }
      result.requestMs.push(performance.now() - t0);
      if (!text.endsWith("data: [DONE]\n\n")) result.incomplete++;
      const events = text.split("\n\n").filter((e) => e.startsWith("data: {"));
      const last = JSON.parse(events.at(-1)!.slice(6)) as { hsd?: { stats: { tokens: number; ms_per_token: number } } };
      if (last.hsd) {
        result.tokens += last.hsd.stats.tokens;
        result.msPerToken.push(last.hsd.stats.ms_per_token);
      }
      if (first !== null) result.firstTokenMs.push(first);
    } catch (error) {
      result.errors.push(error instanceof Error ? error.message : String(error));
    } finally {
      result.statuses[status] = (result.statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      for (let i = 0; i < options.requestsPerClient && performance.now() < deadline; i++) await one();
    }),
  );
  result.wallMs = performance.now() - started;
  return result;
}

/** The server's resident memory, from its /health. */
export async function serverRss(url: string): Promise<number> {
  const health = (await (await fetch(`${url}/health`)).json()) as { memory: { rss_bytes: number } };
  return health.memory.rss_bytes;
}
