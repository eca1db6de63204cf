// `hsd serve`: an OpenAI-compatible HTTP server over one model family (node:http).
//
//   GET  /health                 status, the planned hierarchies, queue, request counts, memory
//   GET  /v1/models[/ID]         the served model
//   POST /v1/completions         text completion (streamed as server-sent events, or one JSON object)
//   POST /v1/chat/completions    chat, through the model's own chat template
//
// node:http rather than a framework: four routes, one of them streamed through the raw response anyway, and
// fastify 5.12 (the obvious choice) installs cookie@2, which declares Node >= 22, while hsd supports Node 20.
//
// One generation runs at a time (each model holds one KV sequence); later requests wait in a bounded queue and are
// refused with 503 and Retry-After beyond it. Request checks and tokenization happen before the queue, so a bad
// request is answered at once even while the models are busy. A client that disconnects aborts its generation at
// the next target pass (the generation loop yields to the event loop between passes). With --hierarchy auto (the
// default) requests plan while generating (docs/ALGORITHM.md §10): the instance's estimates, one set for greedy
// and one for sampling, learn across requests; start-up runs one token of each mode so that no request waits for
// the prior. A pinned --hierarchy is resolved at start-up and kept.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { GenerationReport, GenerationRun, Hierarchy, Hsd, PlanRequest } from "../api/hsd.js";
import { plannedChain, plannerInput, type PlanReport } from "../api/plan.js";
import type { SamplingSettings } from "../api/sampling.js";
import { DEFAULT_SAMPLING } from "../defaults.js";
import { ChatFormat } from "../chat/template.js";
import type { StopReason } from "../engine/generate.js";
import { HsdError } from "../errors.js";
import { toSnakeCaseJson } from "../cli/json.js";
import { ApiError, toApiError } from "./errors.js";
import { GenerationQueue, QueueFullError } from "./queue.js";
import { parseChat, parseCompletion, type ChatParams, type CompletionParams } from "./requests.js";

export interface ServeOptions {
  host?: string;
  /** 0 picks a free port (see `url` once started). */
  port?: number;
  /** When set, /v1/* needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Requests that may wait behind the running one; more are refused with 503. */
  maxQueue?: number;
  /** Largest request body in bytes. */
  bodyLimit?: number;
  /** Sampling for requests that do not set it (the run flags). */
  sampling?: SamplingSettings;
  /** Tokens per request when the request does not say (default: until the end of generation or of the context). */
  maxTokens?: number;
  /** "auto" (the optimiser's pick) or a fixed chain, as for `hsd run`. */
  hierarchy?: "auto" | Hierarchy;
  /** How to plan (calibration prompts, T_max, …). */
  plan?: Omit<PlanRequest, "sampling">;
  /** Where start-up and per-request lines go (default: nowhere). */
  log?: (line: string) => void;
}

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8080;
export const DEFAULT_MAX_QUEUE = 16;
export const DEFAULT_BODY_LIMIT = 2 * 1024 * 1024;

type Mode = "greedy" | "sampling";

/** What one decoding mode runs with: the hierarchy fixed at start-up and the plan it came from. */
interface Served {
  hierarchy: Required<Hierarchy>;
  plan: PlanReport | null;
  /** The plan's latency model for this hierarchy (null without a plan: a chain given with its thresholds). */
  predictedMsPerToken: number | null;
  /** Planning while generating: where its estimates started and the plan they chose (null: a pinned hierarchy). */
  online: { prior: string; plan: string } | null;
}

const WARM_UP_PROMPT = "Hello";

export class HsdServer {
  private readonly http: Server;
  private readonly queue: GenerationQueue;
  private readonly log: (line: string) => void;
  /** The id clients name in `model`: the target's file name without .gguf. */
  readonly modelId: string;
  private readonly contextLimit: number;
  private readonly apiKeyDigest: Buffer | null;
  /** Whether requests plan while generating (hierarchy "auto"). */
  private readonly adaptive: boolean;
  /** Aborts every generation and wait when the server closes. */
  private readonly closing = new AbortController();
  private readonly started = Date.now();
  private readonly counts = { completed: 0, aborted: 0, refused: 0, badRequests: 0, failed: 0 };
  /** Mean duration of recent generations (ms), for Retry-After. */
  private meanGenerationMs = 1000;
  private chatFormat: ChatFormat | Error | undefined;
  url = "";

  /** Each mode's hierarchy; null until planned (requests meanwhile get 503). */
  private served: Record<Mode, Served> | null = null;

  private constructor(
    private readonly hsd: Hsd,
    private readonly options: ServeOptions,
  ) {
    this.queue = new GenerationQueue(options.maxQueue ?? DEFAULT_MAX_QUEUE);
    this.log = options.log ?? (() => {});
    this.modelId = hsd.target.info.file.replace(/\.gguf$/i, "");
    this.contextLimit = Math.min(...hsd.models.map((m) => m.context.contextSize));
    this.apiKeyDigest = options.apiKey ? digest(options.apiKey) : null;
    this.adaptive = options.hierarchy === undefined || options.hierarchy === "auto";
    this.http = createServer((req, res) => {
      // handle() answers every error itself; this only guards against a bug there taking the process down.
      this.handle(req, res).catch((error: unknown) => {
        this.log(`internal error: ${error instanceof Error ? error.stack : error}`);
        res.destroy();
      });
    });
  }

  /**
   * Binds the port (so that a port in use fails before minutes of calibration), plans, and resolves once the
   * server answers requests; until then they get 503.
   */
  static async start(hsd: Hsd, options: ServeOptions = {}): Promise<HsdServer> {
    const server = new HsdServer(hsd, options);
    await server.listen(options.host ?? DEFAULT_HOST, options.port ?? DEFAULT_PORT);
    server.log(`bound to ${server.url}; planning the hierarchy (requests get 503 until it is done)`);
    try {
      server.served = await HsdServer.plan(hsd, options);
    } catch (error) {
      await server.close();
      throw error;
    }
    return server;
  }

  /** Each mode's hierarchy, planned (or read from the calibration cache) and logged. */
  private static async plan(hsd: Hsd, options: ServeOptions): Promise<Record<Mode, Served>> {
    const log = options.log ?? (() => {});
    const defaults = options.sampling ?? {};
    // One token through the chosen hierarchy: plans (cached), resolves the thresholds, and warms the models up.
    const prepare = async (mode: Mode, sampling: SamplingSettings): Promise<Served> => {
      const run = hsd.generate(WARM_UP_PROMPT, {
        maxTokens: 1,
        sampling: { ...sampling, seed: 1 },
        hierarchy: options.hierarchy ?? "auto",
        plan: options.plan,
      });
      const { hierarchy, plan, online } = await run.result;
      const served: Served = {
        hierarchy,
        plan,
        predictedMsPerToken: online ? online.predictedMsPerToken : plan && predicted(plan, hierarchy),
        online: online && { prior: online.prior, plan: online.plan },
      };
      log(`${mode}: ${describeServed(served)}`);
      return served;
    };
    const greedy = await prepare("greedy", { greedy: true });
    // Planning while generating: both modes get their estimates now, so that no request waits for a prior. A pinned
    // --greedy server plans greedy only; its sampling requests use that hierarchy (exact all the same).
    const adaptive = options.hierarchy === undefined || options.hierarchy === "auto";
    const sampling =
      isGreedy(defaults) && !adaptive
        ? greedy
        : await prepare("sampling", isGreedy(defaults) ? { temperature: DEFAULT_SAMPLING.temperature } : defaults);
    return { greedy, sampling };
  }

  private listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (error: NodeJS.ErrnoException) => {
        const where = `${host}:${port}`;
        if (error.code === "EADDRINUSE")
          reject(new HsdError(`${where} is in use: pick another port with --port (0 = any free one)`));
        else if (error.code === "EACCES")
          reject(new HsdError(`${where}: no permission to listen there; use a port above 1023`));
        else reject(new HsdError(`cannot listen on ${where}: ${error.message}`));
      };
      this.http.once("error", fail);
      this.http.listen(port, host, () => {
        this.http.off("error", fail);
        const address = this.http.address() as AddressInfo;
        const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
        this.url = `http://${shown}:${address.port}`;
        resolve();
      });
    });
  }

  /** Stops listening, aborts the running generation and the queue, and closes every connection. */
  async close(): Promise<void> {
    this.closing.abort(new Error("the server is shutting down"));
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeIdleConnections();
    // In-flight requests end at their next target pass; give them a moment to write their last bytes.
    const grace = setTimeout(() => this.http.closeAllConnections(), 2000);
    await closed;
    clearTimeout(grace);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = (req.url ?? "/").split("?")[0]!;
    let note = "";
    try {
      if (!this.served) {
        note = "still planning";
        return sendJson(
          res,
          503,
          path === "/health"
            ? { status: "loading" }
            : new ApiError(503, "the server is starting (planning the hierarchy): retry shortly").toJSON(),
          { "Retry-After": "5" },
        );
      }
      const served = this.served;
      if (path === "/health") {
        allow(req, "GET");
        return sendJson(res, 200, this.health(served));
      }
      if (!path.startsWith("/v1/")) throw notFound(req, path);
      this.authorize(req);
      if (path === "/v1/models") {
        allow(req, "GET");
        return sendJson(res, 200, { object: "list", data: [this.modelCard()] });
      }
      if (path.startsWith("/v1/models/")) {
        allow(req, "GET");
        this.checkModel(decodeURIComponent(path.slice("/v1/models/".length)));
        return sendJson(res, 200, this.modelCard());
      }
      if (path === "/v1/completions" || path === "/v1/chat/completions") {
        allow(req, "POST");
        const body = parseJson(await readBody(req, this.options.bodyLimit ?? DEFAULT_BODY_LIMIT));
        const params = path === "/v1/completions" ? parseCompletion(body) : parseChat(body);
        note = await this.generate(req, res, params, served, started);
        return;
      }
      throw notFound(req, path);
    } catch (error) {
      const api = toApiError(error);
      if (api.status === 503) this.counts.refused++;
      else if (api.status >= 500) this.counts.failed++;
      else this.counts.badRequests++;
      note = api.status >= 500 ? api.message : `${api.code ?? api.type}: ${api.message}`;
      // The rest of an oversized body is never read: close the connection rather than parse it as the next request.
      if (api.status === 413) res.setHeader("Connection", "close");
      if (!res.headersSent) sendJson(res, api.status, api.toJSON(), api.headers);
      else if (!res.writableEnded) res.end(`data: ${JSON.stringify(api.toJSON())}\n\n`);
    } finally {
      const ms = (performance.now() - started).toFixed(1);
      const status = res.headersSent ? res.statusCode : "-"; // "-": the client left before any answer
      this.log(`${req.method} ${path} ${status} ${ms} ms${note ? ` ${note}` : ""}`);
    }
  }

  /** Runs one completion or chat request; returns a note for the log line. */
  private async generate(
    req: IncomingMessage,
    res: ServerResponse,
    params: CompletionParams | ChatParams,
    served: Record<Mode, Served>,
    started: number,
  ): Promise<string> {
    const chat = "messages" in params;
    this.checkModel(params.model);
    const prompt = chat ? this.chat().tokens(params.messages) : this.promptTokens(params.prompt);
    if (prompt.length + 1 > this.contextLimit)
      throw new ApiError(
        400,
        `the prompt is ${prompt.length} tokens but the context holds ${this.contextLimit}: shorten it (or start the server with a larger --context-size)`,
        chat ? "messages" : "prompt",
        "context_length_exceeded",
      );
    const sampling = { ...(this.options.sampling ?? {}), ...definedOnly(params.sampling) };
    const mode: Mode = isGreedy(sampling) ? "greedy" : "sampling";
    const maxTokens = Math.min(params.maxTokens ?? this.options.maxTokens ?? this.contextLimit, this.contextLimit);

    // Aborted when the client goes away (also while it waits in the queue) or the server closes.
    const controller = new AbortController();
    const onGone = () => {
      if (!res.writableFinished) controller.abort(new Error("the client disconnected"));
    };
    const onClosing = () => controller.abort(this.closing.signal.reason);
    res.on("close", onGone);
    // A client that half-closes its socket (undici does, when a fetch is aborted after its body was sent) only
    // shows as the socket's "end": Node keeps the connection open for the response, so "close" would come too late.
    req.socket.on("end", onGone);
    this.closing.signal.addEventListener("abort", onClosing, { once: true });
    let release: (() => void) | null = null;
    try {
      try {
        release = await this.queue.acquire(controller.signal);
      } catch (error) {
        if (error instanceof QueueFullError) {
          const state = this.queue.state;
          const retryAfter = Math.max(1, Math.ceil((this.meanGenerationMs * (state.waiting + 1)) / 1000));
          throw new ApiError(
            503,
            `the server is busy: one generation running and ${state.waiting} waiting (the queue holds ${state.maxWaiting}); retry after ${retryAfter} s`,
            null,
            "server_busy",
            { "Retry-After": String(retryAfter) },
          );
        }
        this.counts.aborted++;
        return "client left while queued";
      }
      const queueMs = performance.now() - started;
      const run = this.hsd.generate(prompt, {
        maxTokens,
        sampling,
        // "auto" plans while generating (the instance's estimates learn across requests); a pinned one is kept.
        hierarchy: this.adaptive ? "auto" : served[mode].hierarchy,
        stop: params.stop,
        signal: controller.signal,
      });
      // hsd's statistics for this response: the `hsd` field.
      const extension = (result: GenerationReport) =>
        toSnakeCaseJson({
          hierarchy: result.hierarchy,
          mode,
          stopReason: result.stopReason,
          seed: result.seed,
          queueMs,
          predictedMsPerToken: result.online?.predictedMsPerToken ?? served[mode].predictedMsPerToken,
          stats: result.stats,
        });
      const reply = new Reply(chat, this.modelId, prompt.length, extension);
      const echo = !chat && params.echo && typeof params.prompt === "string" ? params.prompt : "";
      const result = params.stream ? await reply.stream(res, run, echo, params.includeUsage) : await run.result;
      if (!params.stream) {
        if (result.stopReason === "aborted" && this.closing.signal.aborted)
          throw new ApiError(503, "the server is shutting down", null, "server_shutting_down");
        if (result.stopReason !== "aborted") sendJson(res, 200, reply.whole(result, echo));
      }
      this.meanGenerationMs = 0.8 * this.meanGenerationMs + 0.2 * result.stats.wallMs;
      if (result.stopReason === "aborted") {
        this.counts.aborted++;
        return `aborted after ${result.tokens.length} tokens (${controller.signal.reason?.message ?? "aborted"})`;
      }
      this.counts.completed++;
      return `${result.tokens.length} tokens, ${result.stats.msPerToken.toFixed(3)} ms/token, ${result.stopReason}`;
    } finally {
      release?.();
      res.off("close", onGone);
      req.socket.off("end", onGone);
      this.closing.signal.removeEventListener("abort", onClosing);
    }
  }

  /** A completion prompt as token ids: text is tokenized as `hsd run` does (so both give the same output). */
  private promptTokens(prompt: string | number[]): Int32Array | number[] {
    if (typeof prompt === "string") return this.hsd.tokenize(prompt);
    const vocabSize = this.hsd.target.native.vocabSize;
    const bad = prompt.findIndex((t) => t < 0 || t >= vocabSize);
    if (bad >= 0)
      throw new ApiError(
        400,
        `prompt[${bad}] is ${prompt[bad]}: token ids are in [0, ${vocabSize})`,
        "prompt",
        "invalid_value",
      );
    return prompt;
  }

  /** The target's chat format, read once; the error again for every chat request when the model has none. */
  private chat(): ChatFormat {
    if (this.chatFormat === undefined) {
      try {
        this.chatFormat = ChatFormat.of(this.hsd);
      } catch (error) {
        this.chatFormat = error as Error;
      }
    }
    if (this.chatFormat instanceof Error) throw this.chatFormat;
    return this.chatFormat;
  }

  private checkModel(model: string | null): void {
    if (model === null) return; // like llama-server: a request without `model` gets the one served
    if (model === this.modelId || model === this.hsd.target.info.file) return;
    throw new ApiError(
      404,
      `the model "${model}" is not served here: this server serves "${this.modelId}" (GET /v1/models)`,
      "model",
      "model_not_found",
    );
  }

  private authorize(req: IncomingMessage): void {
    if (!this.apiKeyDigest) return;
    const header = req.headers.authorization ?? "";
    const given = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
    // Compared as digests: equal lengths for timingSafeEqual, and no early exit on the first wrong character.
    if (given !== undefined && timingSafeEqual(digest(given), this.apiKeyDigest)) return;
    throw new ApiError(
      401,
      given === undefined
        ? "this server needs an API key: send the header Authorization: Bearer <key>"
        : "the API key is not the one this server was started with (--api-key)",
      null,
      "invalid_api_key",
      { "WWW-Authenticate": "Bearer" },
    );
  }

  private modelCard() {
    return {
      id: this.modelId,
      object: "model",
      created: Math.floor(this.started / 1000),
      owned_by: "hsd",
      hsd: toSnakeCaseJson({ files: this.hsd.models.map((m) => m.info.file), contextSize: this.contextLimit }),
    };
  }

  private health(served: Record<Mode, Served>) {
    const memory = process.memoryUsage();
    const plans = Object.fromEntries(
      Object.entries(served).map(([mode, s]) => [
        mode,
        {
          hierarchy: s.hierarchy,
          predictedMsPerToken: s.predictedMsPerToken,
          online: s.online,
          plan: s.plan && {
            best: s.plan.best,
            bestSingle: s.plan.bestSingle,
            autoregressive: s.plan.autoregressive,
            acceptance: s.plan.acceptance,
            calibration: s.plan.calibration,
          },
        },
      ]),
    );
    return toSnakeCaseJson({
      status: "ok",
      model: this.modelId,
      files: this.hsd.models.map((m) => m.info.file),
      contextSize: this.contextLimit,
      device: this.hsd.device,
      threads: this.hsd.threads,
      plans,
      queue: this.queue.state,
      requests: this.counts,
      memory: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
      uptimeS: (Date.now() - this.started) / 1000,
    });
  }
}

/** The OpenAI shapes of one response: chunks of a stream, or the whole object. */
class Reply {
  private readonly id: string;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly chat: boolean,
    private readonly model: string,
    private readonly promptTokens: number,
    private readonly extension: (result: GenerationReport) => unknown,
  ) {
    this.id = `${chat ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
  }

  /** Writes the server-sent events as OpenAI streams them (ending with [DONE]); resolves with the report. */
  async stream(
    res: ServerResponse,
    run: GenerationRun,
    echo: string,
    includeUsage: boolean,
  ): Promise<GenerationReport> {
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
    });
    const send = (value: unknown) => {
      if (!res.destroyed) res.write(`data: ${JSON.stringify(value)}\n\n`);
    };
    if (this.chat) send(this.chunk("", null, true));
    if (echo) send(this.chunk(echo, null));
    for await (const piece of run) if (piece.text.length > 0) send(this.chunk(piece.text, null));
    const result = await run.result;
    send({ ...this.chunk("", finishReason(result.stopReason)), hsd: this.extension(result) });
    // As OpenAI does: usage in one more chunk with no choices, when stream_options.include_usage asks for it.
    if (includeUsage) send({ ...this.chunk("", null), choices: [], usage: this.usage(result) });
    if (!res.destroyed) res.end("data: [DONE]\n\n");
    return result;
  }

  /** The non-streamed response object. */
  whole(result: GenerationReport, echo: string) {
    const text = echo + result.text;
    const choice = this.chat ? { message: { role: "assistant", content: text } } : { text };
    return {
      id: this.id,
      object: this.chat ? "chat.completion" : "text_completion",
      created: this.created,
      model: this.model,
      choices: [{ index: 0, ...choice, logprobs: null, finish_reason: finishReason(result.stopReason) }],
      usage: this.usage(result),
      hsd: this.extension(result),
    };
  }

  /** One chunk: text (or a chat delta); the last carries finish_reason and, for a chat, an empty delta. */
  private chunk(text: string, finish: string | null, role = false) {
    const delta = finish ? {} : { ...(role ? { role: "assistant" } : {}), content: text };
    const choice = this.chat ? { delta } : { text };
    return {
      id: this.id,
      object: this.chat ? "chat.completion.chunk" : "text_completion",
      created: this.created,
      model: this.model,
      choices: [{ index: 0, ...choice, logprobs: null, finish_reason: finish }],
    };
  }

  private usage(result: GenerationReport) {
    return {
      prompt_tokens: this.promptTokens,
      completion_tokens: result.tokens.length,
      total_tokens: this.promptTokens + result.tokens.length,
    };
  }
}

function describeServed(s: Served): string {
  const chain = s.hierarchy.files
    .map((f, i) => (i < s.hierarchy.thresholds.length ? `${f} [T=${s.hierarchy.thresholds[i]}]` : f))
    .join(" -> ");
  if (s.online)
    return `planning while generating from ${{ learned: "what earlier runs learned", calibrated: "a full calibration", quick: "a quick calibration" }[s.online.prior] ?? s.online.prior}; now ${s.online.plan}, predicted ${s.predictedMsPerToken!.toFixed(3)} ms/token`;
  if (!s.plan || s.predictedMsPerToken === null) return `${chain} (given)`;
  const speedup = s.plan.autoregressive.predictedMsPerToken / s.predictedMsPerToken;
  return `${chain}, predicted ${s.predictedMsPerToken.toFixed(3)} ms/token (${speedup.toFixed(2)}x vs autoregressive; calibration ${s.plan.calibration.fromCache ? "from cache" : "measured now"})`;
}

/** The latency model's ms/token for `hierarchy`, from the plan's measured costs and acceptance. */
function predicted(plan: PlanReport, hierarchy: Required<Hierarchy>): number {
  const chain = hierarchy.files.map((f) => plan.candidates.findIndex((c) => c.name === f));
  const input = plannerInput(plan.candidates, plan.acceptance, plan.maxThreshold);
  return plannedChain(input, chain, hierarchy.thresholds).predictedMsPerToken;
}

function isGreedy(s: SamplingSettings): boolean {
  return s.greedy === true || (s.temperature !== undefined && s.temperature <= 0);
}

/** A request's sampling fields without the unset ones, so that they do not hide the server's defaults. */
function definedOnly(s: SamplingSettings): SamplingSettings {
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as SamplingSettings;
}

function finishReason(reason: StopReason): "stop" | "length" {
  return reason === "max-tokens" || reason === "context-full" ? "length" : "stop";
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

function allow(req: IncomingMessage, method: string): void {
  if (req.method !== method)
    throw new ApiError(405, `${req.method} is not allowed on ${req.url}: use ${method}`, null, "method_not_allowed", {
      Allow: method,
    });
}

function notFound(req: IncomingMessage, path: string): ApiError {
  return new ApiError(
    404,
    `no endpoint ${req.method} ${path}: this server has GET /health, GET /v1/models, POST /v1/completions and POST /v1/chat/completions`,
    null,
    "not_found",
  );
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new ApiError(413, `the request body is over the limit of ${limit} bytes (--body-limit)`, null, "body_too_large");
  if (Number(req.headers["content-length"] ?? 0) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new ApiError(400, "the request body is empty: send a JSON object", null, "invalid_json");
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (error) {
    throw new ApiError(400, `the request body is not valid JSON (${(error as Error).message})`, null, "invalid_json");
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...headers, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}
