// `hsd serve` under load, on 127.0.0.1 only: `npx tsx scripts/bench-serve.ts [--clients 8] [--requests 150]
// [--max-tokens 32] [--max-queue 16] [-- SERVER FLAGS…]` (default server flags: --greedy).
//
// Starts the server (by default the bundled family, greedy, the optimiser's hierarchy from the calibration cache),
// then measures (0) the same request through the API in this process, without HTTP, with the server's hierarchy
// (the server idles meanwhile); (1) one client, 50 requests in a row; (2) N clients × M requests at once:
// requests/s, first-token latency (request sent -> first text chunk, queueing included) p50/p99, the server's
// ms/token per request, refusals, and the server's RSS before and after. Every request is a streamed
// /v1/completions, greedy. Bounded in count and time; prints a markdown table and writes bench-out/serve.json.

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { BUNDLED_MODELS_DIR, Hsd, type Hierarchy } from "../src/api/hsd.js";
import { runLoad, serverRss, spawnServer, type LoadResult } from "./bench-lib/serve-load.js";
import { median, quantile } from "./bench-lib/stats.js";

const argv = process.argv.slice(2);
const split = argv.indexOf("--");
const serverFlags = [...(split >= 0 ? argv.slice(split + 1) : ["--greedy"])];
const own = split >= 0 ? argv.slice(0, split) : argv;
const flag = (name: string, fallback: number) => {
  const at = own.indexOf(name);
  const value = at >= 0 ? Number(own[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} needs a positive integer`);
  return value;
};
const clients = flag("--clients", 8);
const requests = flag("--requests", 150);
const maxTokens = flag("--max-tokens", 32);
const maxQueue = flag("--max-queue", 16);
const modelsAt = serverFlags.indexOf("--models");
const modelsDir = modelsAt >= 0 ? serverFlags[modelsAt + 1]! : BUNDLED_MODELS_DIR;
serverFlags.push("--max-queue", String(maxQueue));

const body = { prompt: "The state of the Union is", max_tokens: maxTokens, temperature: 0 };
const started = new Date();
const server = await spawnServer(serverFlags);
try {
  const health = (await (await fetch(`${server.url}/health`)).json()) as {
    files: string[];
    threads: number;
    plans: { greedy: { hierarchy: Required<Hierarchy> } };
  };
  const hierarchy = health.plans.greedy.hierarchy;
  const direct = await directMsPerToken(hierarchy, health.files, health.threads);
  const baseline = await runLoad({ url: server.url, clients: 1, requestsPerClient: 50, body, deadlineMs: 120_000 });
  const rssBefore = await serverRss(server.url);
  const load = await runLoad({ url: server.url, clients, requestsPerClient: requests, body, deadlineMs: 480_000 });
  const rssAfter = await serverRss(server.url);

  const row = (name: string, r: LoadResult) => {
    const answered = r.statuses[200] ?? 0;
    const refused = r.statuses[503] ?? 0;
    const other = r.sent - answered - refused;
    return `| ${name} | ${r.sent} | ${answered} / ${refused} / ${other} | ${((answered * 1000) / r.wallMs).toFixed(1)} | ${ms(quantile(r.firstTokenMs, 0.5))} / ${ms(quantile(r.firstTokenMs, 0.99))} | ${ms(median(r.requestMs))} | ${median(r.msPerToken).toFixed(3)} |`;
  };
  const lines = [
    `Server: \`hsd serve ${serverFlags.join(" ")}\`; greedy hierarchy ${/greedy: (.*)/.exec(server.log())?.[1] ?? "?"}`,
    `Requests: streamed /v1/completions, ${JSON.stringify(body)}; ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), ${started.toISOString().slice(0, 16)}Z`,
    "",
    "| load | requests | 200 / 503 / other | answered/s | first token p50 / p99 | request p50 | server ms/token (median) |",
    "|---|---:|---:|---:|---:|---:|---:|",
    row("1 client, in a row", baseline),
    row(`${clients} clients × ${requests}`, load),
    "",
    `The same request through the API in one process, no HTTP (\`Hsd.generate\`, 50 in a row, same hierarchy): ${median(direct).toFixed(3)} ms/token (median).`,
    `Server RSS: ${mib(rssBefore)} before the ${load.sent} loaded requests, ${mib(rssAfter)} after. 503s without Retry-After: ${load.refusedWithoutRetryAfter + baseline.refusedWithoutRetryAfter}; streams without [DONE]: ${load.incomplete + baseline.incomplete}; network errors: ${load.errors.length + baseline.errors.length}.`,
  ];
  console.log(lines.join("\n"));
  mkdirSync("bench-out", { recursive: true });
  writeFileSync(
    "bench-out/serve.json",
    JSON.stringify({
      started,
      serverFlags,
      body,
      clients,
      requests,
      hierarchy,
      direct,
      baseline,
      load,
      rssBefore,
      rssAfter,
    }),
  );
} finally {
  await server.stop();
}

/** ms/token of 50 greedy generations of the request through the API, in this process. */
async function directMsPerToken(hierarchy: Required<Hierarchy>, files: string[], threads: number): Promise<number[]> {
  const hsd = await Hsd.open({ files: files.map((f) => join(modelsDir, f)), threads });
  try {
    const out: number[] = [];
    for (let i = 0; i < 50; i++) {
      const run = hsd.generate(body.prompt, { maxTokens, sampling: { greedy: true }, hierarchy });
      out.push((await run.result).stats.msPerToken);
    }
    return out;
  } finally {
    await hsd.dispose();
  }
}

function ms(x: number): string {
  return `${x.toFixed(1)} ms`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
