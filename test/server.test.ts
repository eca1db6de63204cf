// `hsd serve` driven by the official `openai` client and by plain fetch, against a spawned server on 127.0.0.1
// (a free port), as editors, chat UIs and scripts drive llama-server.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { runLoad, serverRss, spawnServer, type ServerProcess } from "../scripts/bench-lib/serve-load.js";
import { bundledFamily } from "./helpers/models.js";

const CLI = fileURLToPath(new URL("../ts-lib/cli/main.js", import.meta.url));
const KEY = "test-key-16";
const PROMPT = "The state of the Union is";

interface Health {
  status: string;
  plans: Record<string, { hierarchy: { files: string[]; thresholds: number[] }; plan: unknown }>;
  queue: { running: number; waiting: number; max_waiting: number };
  requests: { completed: number; aborted: number; refused: number; bad_requests: number; failed: number };
  memory: { rss_bytes: number };
}

interface HsdExtension {
  hierarchy: { files: string[]; thresholds: number[] };
  stop_reason: string;
  stats: { tokens: number; target_passes: number; ms_per_token: number; levels: { acceptance_rate: number }[] };
}

describe("hsd serve (spawned, driven by the openai client)", function () {
  this.timeout(300_000);
  const family = bundledFamily();
  const chain = [basename(family.files[0]!), basename(family.files.at(-1)!)];
  // A pinned hierarchy: no calibration at start-up (the plan-at-start-up test below calibrates once).
  const pinned = ["--threads", "1", "--hierarchy", chain.join(","), "--thresholds", "3"];
  let cache: string;
  let server: ServerProcess;
  let client: OpenAI;
  const health = async (): Promise<Health> => (await fetch(`${server.url}/health`)).json() as Promise<Health>;
  const post = (path: string, body: string | object, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${KEY}`, ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  before(async () => {
    cache = mkdtempSync(join(tmpdir(), "hsd-serve-cache-"));
    server = await spawnServer([...pinned, "--api-key", KEY, "--max-queue", "2", "--body-limit", "65536"], {
      ...process.env,
      HSD_CACHE_DIR: cache,
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  after(async () => {
    if (server) expect(await server.stop(), "exit code after SIGTERM").to.equal(0);
    rmSync(cache, { recursive: true, force: true });
  });

  it("binds to 127.0.0.1; /health (no key) shows the hierarchy and the queue; /v1/models lists the target", async function () {
    expect(new URL(server.url).hostname).to.equal("127.0.0.1");
    const h = await health();
    expect(h.status).to.equal("ok");
    expect(h.plans.greedy!.hierarchy).to.deep.equal({ files: chain, thresholds: [3] });
    expect(h.queue).to.deep.equal({ running: 0, waiting: 0, max_waiting: 2 });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).to.deep.equal(["hsd-tiny-5M"]);
    expect((await client.models.retrieve("hsd-tiny-5M")).id).to.equal("hsd-tiny-5M");
  });

  it("a second server on the same port fails at once (before planning) with a one-line reason", function () {
    const port = new URL(server.url).port;
    const r = spawnSync(process.execPath, [CLI, "serve", "--port", port, ...pinned], { encoding: "utf8" });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(
      new RegExp(`^hsd: 127\\.0\\.0\\.1:${port} is in use: pick another port with --port`, "m"),
    );
  });

  it("the same greedy request through the server and through `hsd run --greedy` gives the same text", async function () {
    const run = spawnSync(
      process.execPath,
      [CLI, "run", "--json", "--greedy", ...pinned, "--max-tokens", "24", PROMPT],
      { encoding: "utf8", env: { ...process.env, HSD_CACHE_DIR: cache } },
    );
    expect(run.status, run.stderr).to.equal(0);
    const cli = JSON.parse(run.stdout) as { text: string; tokens: number[] };
    const completion = await client.completions.create({
      model: "hsd-tiny-5M",
      prompt: PROMPT,
      max_tokens: 24,
      temperature: 0,
    });
    expect(completion.choices[0]!.text).to.equal(cli.text);
    expect(completion.choices[0]!.finish_reason).to.equal("length");
    expect(completion.usage).to.deep.include({ completion_tokens: cli.tokens.length });
    expect(completion.usage!.prompt_tokens).to.be.greaterThan(0);
    const hsd = (completion as unknown as { hsd: HsdExtension }).hsd;
    expect(hsd.hierarchy).to.deep.equal({ files: chain, thresholds: [3] });
    expect(hsd.stats.tokens).to.equal(cli.tokens.length);
    expect(hsd.stats.ms_per_token).to.be.greaterThan(0);
    expect(hsd.stats.levels[0]!.acceptance_rate).to.be.within(0, 1);
  });

  it("completions streamed: the chunks add up to the non-streamed text, finish_reason comes last, the stream ends with [DONE]", async function () {
    const request = { model: "hsd-tiny-5M", prompt: PROMPT, max_tokens: 20, temperature: 0 };
    const whole = (await client.completions.create(request)).choices[0]!.text;
    const stream = await client.completions.create({ ...request, stream: true });
    let text = "";
    const reasons: (string | null)[] = [];
    for await (const chunk of stream) {
      text += chunk.choices[0]!.text;
      reasons.push(chunk.choices[0]!.finish_reason);
    }
    expect(text).to.equal(whole);
    expect(reasons.at(-1)).to.equal("length");
    expect(reasons.slice(0, -1).every((r) => r === null)).to.equal(true);
    const raw = await (await post("/v1/completions", { ...request, stream: true })).text();
    expect(raw.startsWith("data: {")).to.equal(true);
    expect(raw.endsWith("\n\ndata: [DONE]\n\n")).to.equal(true);
  });

  it("chat completions through the bundled family's template, streamed (with usage) and not, agree", async function () {
    const request = {
      model: "hsd-tiny-5M",
      messages: [
        { role: "system" as const, content: "You are a helpful assistant." },
        { role: "user" as const, content: "Tell me about the Union." },
      ],
      max_tokens: 16,
      temperature: 0,
    };
    const whole = await client.chat.completions.create(request);
    expect(whole.object).to.equal("chat.completion");
    expect(whole.choices[0]!.message.role).to.equal("assistant");
    const answer = whole.choices[0]!.message.content!;
    expect(answer.length).to.be.greaterThan(0);
    const stream = await client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).to.equal(answer);
    expect(finish).to.equal(whole.choices[0]!.finish_reason);
    expect(usage).to.deep.equal(whole.usage);
  });

  it("a stop sequence ends the text before it, with finish_reason stop", async function () {
    const request = { model: "hsd-tiny-5M", prompt: PROMPT, max_tokens: 24, temperature: 0 };
    const whole = (await client.completions.create(request)).choices[0]!.text;
    const words = whole.trim().split(/\s+/);
    const stop = ` ${words[Math.floor(words.length / 2)]!}`;
    const cut = await client.completions.create({ ...request, stop });
    expect(cut.choices[0]!.text).to.equal(whole.slice(0, whole.indexOf(stop)));
    expect(cut.choices[0]!.finish_reason).to.equal("stop");
  });

  it("a client that aborts mid-stream stops its generation; one that leaves the queue is dropped; a full queue answers 503 with Retry-After", async function () {
    const before = (await health()).requests;
    const long = { model: "hsd-tiny-5M", prompt: PROMPT, max_tokens: 450, temperature: 0 };
    const controller = new AbortController();
    const stream = await client.completions.create({ ...long, stream: true }, { signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next(); // the generation is running
    // Two wait in the queue (its size), the third is refused at once; one of the waiters then gives up.
    const leaver = new AbortController();
    const waiting = [
      post("/v1/completions", { ...long, max_tokens: 2 }, {}),
      fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { Authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ ...long, max_tokens: 2 }),
        signal: leaver.signal,
      }).catch((error: Error) => error),
    ];
    while ((await health()).queue.waiting < 2) await new Promise((r) => setTimeout(r, 20));
    const refused = await post("/v1/completions", { ...long, max_tokens: 2 });
    expect(refused.status).to.equal(503);
    expect(Number(refused.headers.get("retry-after"))).to.be.at.least(1);
    expect(((await refused.json()) as { error: { code: string } }).error.code).to.equal("server_busy");
    leaver.abort();
    controller.abort();
    const [first, second] = await Promise.all(waiting);
    expect((first as Response).status).to.equal(200);
    expect(second).to.be.instanceOf(Error);
    let after = (await health()).requests;
    for (let i = 0; i < 100 && after.aborted < before.aborted + 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = (await health()).requests;
    }
    expect(after.aborted - before.aborted, server.log()).to.equal(2);
    expect(after.refused - before.refused).to.equal(1);
    expect((await health()).queue).to.deep.include({ running: 0, waiting: 0 });
    const aborted = /POST \/v1\/completions 200 [\d.]+ ms aborted after (\d+) tokens/.exec(server.log());
    expect(aborted, server.log()).to.not.equal(null);
    expect(Number(aborted![1])).to.be.below(long.max_tokens);
  });

  it("bad requests each get a 4xx with an OpenAI-style error naming the problem, and the server lives", async function () {
    const longPrompt = "the state of the union is strong ".repeat(120);
    const cases: [string, () => Promise<Response>, number, RegExp][] = [
      ["invalid JSON", () => post("/v1/completions", "{not json"), 400, /not valid JSON/],
      ["an empty body", () => post("/v1/completions", ""), 400, /empty/],
      ["a JSON array", () => post("/v1/completions", "[1,2]"), 400, /JSON object/],
      ["max_tokens a string", () => post("/v1/completions", { prompt: "x", max_tokens: "ten" }), 400, /max_tokens/],
      ["negative max_tokens", () => post("/v1/completions", { prompt: "x", max_tokens: -5 }), 400, /max_tokens/],
      ["temperature a string", () => post("/v1/completions", { prompt: "x", temperature: "hot" }), 400, /temperature/],
      ["top_p above 1", () => post("/v1/completions", { prompt: "x", top_p: 2 }), 400, /top_p/],
      ["stop a number", () => post("/v1/completions", { prompt: "x", stop: 5 }), 400, /stop/],
      ["no prompt", () => post("/v1/completions", { max_tokens: 3 }), 400, /prompt/],
      ["a token id outside the vocabulary", () => post("/v1/completions", { prompt: [1, 99999] }), 400, /prompt\[1\]/],
      ["messages a string", () => post("/v1/chat/completions", { messages: "hi" }), 400, /messages/],
      ["a message without role", () => post("/v1/chat/completions", { messages: [{ content: "hi" }] }), 400, /role/],
      [
        "an image part",
        () => post("/v1/chat/completions", { messages: [{ role: "user", content: [{ type: "image_url" }] }] }),
        400,
        /text parts/,
      ],
      ["n = 2", () => post("/v1/completions", { prompt: "x", n: 2 }), 400, /n = 1/],
      [
        "presence_penalty",
        () => post("/v1/completions", { prompt: "x", presence_penalty: 1 }),
        400,
        /presence_penalty/,
      ],
      ["an unknown model", () => post("/v1/completions", { model: "gpt-4o", prompt: "x" }), 404, /gpt-4o.*hsd-tiny-5M/],
      ["a prompt over the context", () => post("/v1/completions", { prompt: longPrompt }), 400, /context holds 512/],
      ["a body over --body-limit", () => post("/v1/completions", { prompt: "x".repeat(70_000) }), 413, /65536 bytes/],
      [
        "a wrong API key",
        () => post("/v1/completions", { prompt: "x" }, { Authorization: "Bearer nope" }),
        401,
        /API key/,
      ],
      ["no API key", () => fetch(`${server.url}/v1/models`), 401, /API key/],
      ["an unknown path", () => post("/v1/embeddings", { input: "x" }), 404, /no endpoint/],
      ["a wrong method", () => fetch(`${server.url}/health`, { method: "DELETE" }), 405, /use GET/],
    ];
    const before = (await health()).requests;
    for (const [name, send, status, pattern] of cases) {
      const response = await send();
      expect(response.status, name).to.equal(status);
      const body = (await response.json()) as { error: { message: string; type: string } };
      expect(body.error.message, name).to.match(pattern);
      expect(body.error.type, name).to.equal(status === 401 ? "authentication_error" : "invalid_request_error");
    }
    // The openai client turns them into its typed errors.
    const bad = await client.completions.create({ model: "hsd-tiny-5M", prompt: "x", max_tokens: -1 }).catch((e) => e);
    expect(bad).to.be.instanceOf(OpenAI.BadRequestError);
    const missing = await client.completions.create({ model: "nope", prompt: "x" }).catch((e) => e);
    expect(missing).to.be.instanceOf(OpenAI.NotFoundError);
    const wrongKey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "nope", maxRetries: 0 });
    expect(await wrongKey.models.list().catch((e) => e)).to.be.instanceOf(OpenAI.AuthenticationError);
    // Still alive and answering.
    const h = await health();
    expect(h.requests.bad_requests - before.bad_requests).to.be.at.least(cases.length);
    expect(h.requests.failed).to.equal(0);
    const ok = await client.completions.create({ model: "hsd-tiny-5M", prompt: PROMPT, max_tokens: 4, temperature: 0 });
    expect(ok.choices[0]!.text.length).to.be.greaterThan(0);
  });

  it("load: 8 clients x 130 requests, each answered or refused with 503 + Retry-After, nothing lost, RSS flat", async function () {
    const body = { model: "hsd-tiny-5M", prompt: PROMPT, max_tokens: 4, temperature: 0 };
    await runLoad({ url: server.url, clients: 4, requestsPerClient: 50, body, apiKey: KEY }); // warm-up
    const rssBefore = await serverRss(server.url);
    const load = await runLoad({
      url: server.url,
      clients: 8,
      requestsPerClient: 130,
      body,
      apiKey: KEY,
      deadlineMs: 150_000,
    });
    const rssAfter = await serverRss(server.url);
    const answered = load.statuses[200] ?? 0;
    const refused = load.statuses[503] ?? 0;
    expect(load.errors, load.errors.join("; ")).to.deep.equal([]);
    expect(load.sent).to.equal(8 * 130);
    expect(answered + refused, JSON.stringify(load.statuses)).to.equal(load.sent);
    expect(load.refusedWithoutRetryAfter).to.equal(0);
    expect(load.incomplete).to.equal(0);
    expect(answered).to.be.greaterThan(load.sent / 10);
    // RSS flat: V8's young generation grows by up to a few tens of MiB under this allocation rate and then stays
    // (measured: 111 -> 141 MiB over 6,000 requests, flat after 4,000; BENCHMARKS.md), while anything kept per
    // request would show: a leak of 40 KiB per request fails this, and a sampling-mode row buffer is ~10x that.
    expect(rssAfter - rssBefore, `RSS ${rssBefore} -> ${rssAfter}`).to.be.below(40 * 2 ** 20);
    const h = await health();
    expect(h.queue).to.deep.include({ running: 0, waiting: 0 });
    expect(h.requests.failed).to.equal(0);
  });
});

describe("hsd serve plans at start-up", function () {
  this.timeout(300_000);
  it("binds, answers 503 while it gets its estimates, logs the plan and shows it in /health; requests then wait for no calibration", async function () {
    const cache = mkdtempSync(join(tmpdir(), "hsd-serve-plan-"));
    const prompts = join(cache, "prompts.txt");
    writeFileSync(prompts, `${PROMPT}\n`);
    // While it plans, the port is bound and answers 503.
    let whilePlanning: Promise<Response> | null = null;
    const onLog = (log: string) => {
      const bound = /bound to (http:\/\/\S+);/.exec(log)?.[1];
      if (bound && !whilePlanning) whilePlanning = fetch(`${bound}/health`);
    };
    // --greedy: the server's default mode; the small calibration keeps this test short.
    const server = await spawnServer(
      ["--threads", "1", "--greedy", "--max-threshold", "2", "--calibration-tokens", "8", "--prompts", prompts],
      { ...process.env, HSD_CACHE_DIR: cache },
      onLog,
    );
    try {
      const early = await whilePlanning!;
      expect(early.status).to.equal(503);
      expect(await early.json()).to.deep.equal({ status: "loading" });
      // An empty cache: a quick calibration per mode (greedy and sampling), then planning while generating.
      const calibrations = server.log().match(/calibrating costs/g)?.length ?? 0;
      expect(calibrations).to.be.within(1, 2);
      expect(server.log()).to.match(
        /greedy: planning while generating from a quick calibration; now .* predicted [\d.]+ ms\/token/,
      );
      const h = (await (await fetch(`${server.url}/health`)).json()) as Health & {
        plans: Record<
          "greedy" | "sampling",
          { online: { prior: string; plan: string }; predicted_ms_per_token: number }
        >;
      };
      for (const mode of ["greedy", "sampling"] as const) {
        expect(h.plans[mode].online.prior, mode).to.equal("quick");
        expect(h.plans[mode].online.plan, mode).to.contain("hsd-tiny-5M.gguf");
        expect(h.plans[mode].predicted_ms_per_token, mode).to.be.greaterThan(0);
      }
      const response = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ prompt: PROMPT, max_tokens: 4, temperature: 0.7, seed: 3 }),
      });
      const body = (await response.json()) as { hsd: HsdExtension & { mode: string } };
      expect(response.status).to.equal(200);
      expect(body.hsd.mode).to.equal("sampling");
      // A sampling request on a --greedy server: its estimates were made at start-up, no new calibration.
      expect(server.log().match(/calibrating costs/g)).to.have.length(calibrations);
    } finally {
      expect(await server.stop()).to.equal(0);
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
