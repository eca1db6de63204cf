// Models on RPC devices, run in a child process (./host.ts) and used here through the NativeModel and
// NativeContext interfaces, so the engine, the calibration and the planner treat them like any local model.
//
// RemoteModelHost owns the child and its channel: every request has a deadline (a pass that gets no answer in time
// counts as a fault: the child is killed), and a fault (the child ended, or timed out) becomes an RpcServerError
// naming the server that failed, found by probing each one (./probe.ts) once the child's connections are gone.
// After a fault the host is lost: every later request throws the same error. RemoteModel keeps a vocabulary-only
// copy of the model in this process for the tokenizer, so tokenizing never crosses the process boundary.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { RpcServerError } from "../errors.js";
import { loadNative, type RawChannel } from "../native/load.js";
import { loadModel, type LlamaModel } from "../native/model.js";
import type { ContextOptions, EvaluateTarget, NativeContext, NativeModel, SamplingTransform } from "../native/types.js";
import type { RpcEndpoint } from "./endpoints.js";
import { checkRpcServers, findFailedServer } from "./probe.js";
import { ensureRpcBackend } from "./support.js";
import {
  Op,
  answerFailure,
  encodeControl,
  encodeEvaluate,
  readControlAnswer,
  readEvaluateAnswer,
  type ControlMessages,
  type ControlOp,
  type LoadAnswer,
} from "./protocol.js";

/** Default time limit of one remote pass (or any request but a load), ms. */
export const DEFAULT_RPC_TIMEOUT_MS = 30_000;
/** A load may take this long plus the time to send the weights at LOAD_BYTES_PER_MS (10 MB/s). */
const LOAD_BASE_MS = 60_000;
const LOAD_BYTES_PER_MS = 10_000;

export interface RemoteHostOptions {
  servers: readonly RpcEndpoint[];
  /** How long one pass (or any request but a load) may take before the servers count as not answering. */
  timeoutMs?: number;
}

/** The child's entry point: host.ts next to this file when running from source (tsx), host.js when compiled. */
function hostEntry(): { script: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const fromSource = here.endsWith(".ts");
  const script = path.join(path.dirname(here), fromSource ? "host.ts" : "host.js");
  // From source, the child needs the loader this process runs under (tsx): its --import/--require flags only
  // (others, such as --inspect, must not be repeated in the child).
  const execArgv: string[] = [];
  if (fromSource) {
    const argv = process.execArgv;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (/^--(import|require|loader|experimental-loader)=/.test(a)) execArgv.push(a);
      else if (/^--(import|require|loader|experimental-loader)$/.test(a) && i + 1 < argv.length)
        execArgv.push(a, argv[++i]!);
    }
  }
  return { script, execArgv };
}

/** The last lines of the child's log that say something (ggml's error lines), for an error message. */
function logTail(file: string): string {
  let text = "";
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return lines.slice(-3).join(" | ").slice(-400);
}

export class RemoteModelHost {
  private lost: RpcServerError | null = null;
  private closed = false;
  private readonly models = new Set<RemoteModel>();
  readonly timeoutMs: number;

  private constructor(
    private readonly child: ChildProcess,
    private readonly channel: RawChannel,
    readonly servers: readonly RpcEndpoint[],
    private readonly logPath: string,
    timeoutMs: number,
  ) {
    this.timeoutMs = timeoutMs;
  }

  /** "host:port, host:port": the servers, as the reports name them. */
  get label(): string {
    return this.servers.map((s) => s.label).join(", ");
  }

  /**
   * Checks the servers (RpcServerError naming one that cannot serve, within a few seconds) and starts the child.
   * RpcUnavailableError when this llama.cpp has no RPC backend.
   */
  static async start(options: RemoteHostOptions): Promise<RemoteModelHost> {
    const native = loadNative();
    ensureRpcBackend(native); // the child will need it too: fail here, with the build hint, rather than there
    await checkRpcServers(options.servers);
    const [mine, theirs] = native.addon.socketPair();
    const logPath = path.join(os.tmpdir(), `hsd-rpc-${process.pid}-${Date.now()}-${mine}.log`);
    const log = fs.openSync(logPath, "w");
    const { script, execArgv } = hostEntry();
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...execArgv, script], {
        // stdout/stderr to a file the parent can read synchronously after a fault; fd 3: the channel.
        stdio: ["ignore", log, log, theirs],
        // No backtrace on GGML_ABORT: ggml would fork a debugger, and that fork would hold the channel open.
        env: { ...process.env, GGML_NO_BACKTRACE: "1" },
      });
    } finally {
      fs.closeSync(log);
      fs.closeSync(theirs); // the child has its copy; ours would keep the channel open after the child ended
    }
    child.unref(); // a program that forgets dispose() can still exit; the child then sees its channel close
    child.on("error", () => {}); // a failed spawn shows as a closed channel on the first request
    return new RemoteModelHost(
      child,
      new native.addon.Channel(mine),
      options.servers,
      logPath,
      options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS,
    );
  }

  /** Loads a model onto the servers' devices (all its layers, unless gpuLayers says fewer). */
  async loadModel(file: string, options: { gpuLayers?: number } = {}): Promise<RemoteModel> {
    const vocab = await loadModel(file, { vocabOnly: true }); // checks the file too, with a clear error
    try {
      const bytes = fs.statSync(file).size;
      const answer = await this.requestAsync(
        Op.load,
        { path: file, gpuLayers: options.gpuLayers ?? 999, servers: this.servers.map((s) => s.label) },
        Math.max(LOAD_BASE_MS, this.timeoutMs) + bytes / LOAD_BYTES_PER_MS,
      );
      const model = new RemoteModel(this, vocab, answer);
      this.models.add(model);
      return model;
    } catch (error) {
      vocab.dispose();
      throw error;
    }
  }

  /** A control request, answered on this thread. */
  request<K extends ControlOp>(
    op: K,
    request: ControlMessages[K]["request"],
    timeoutMs = this.timeoutMs,
  ): ControlMessages[K]["answer"] {
    return this.checkAnswer(this.exchange(encodeControl(op, request), timeoutMs), (b) => readControlAnswer(b));
  }

  async requestAsync<K extends ControlOp>(
    op: K,
    request: ControlMessages[K]["request"],
    timeoutMs = this.timeoutMs,
  ): Promise<ControlMessages[K]["answer"]> {
    const answer = await this.exchangeAsync(encodeControl(op, request), timeoutMs);
    return this.checkAnswer(answer, (b) => readControlAnswer(b));
  }

  /** One evaluation request (protocol.ts's binary layout); the answer buffer. */
  evaluate(bytes: Uint8Array): ArrayBuffer {
    return this.checkAnswer(this.exchange(bytes, this.timeoutMs), (b) => b);
  }

  async evaluateAsync(bytes: Uint8Array): Promise<ArrayBuffer> {
    return this.checkAnswer(await this.exchangeAsync(bytes, this.timeoutMs), (b) => b);
  }

  /** Whether requests can still be made (no fault, not closed). */
  get usable(): boolean {
    return this.lost === null && !this.closed;
  }

  private checkAnswer<T>(buffer: ArrayBuffer, read: (b: ArrayBuffer) => T): T {
    const failure = answerFailure(buffer);
    if (failure !== null) throw new Error(failure); // the child's llama.cpp refused the request (bad arguments, …)
    return read(buffer);
  }

  private exchange(bytes: Uint8Array, timeoutMs: number): ArrayBuffer {
    this.checkUsable();
    try {
      return this.channel.call(bytes, timeoutMs);
    } catch (e) {
      throw this.onChannelError(e as Error & { code?: string }, timeoutMs);
    }
  }

  private async exchangeAsync(bytes: Uint8Array, timeoutMs: number): Promise<ArrayBuffer> {
    this.checkUsable();
    try {
      return await this.channel.callAsync(bytes, timeoutMs);
    } catch (e) {
      throw this.onChannelError(e as Error & { code?: string }, timeoutMs);
    }
  }

  private checkUsable(): void {
    if (this.lost) throw this.lost;
    if (this.closed) throw new RpcServerError(this.label, `the RPC models on ${this.label} were disposed`);
  }

  /** A fault: end the child, find the server to blame, and remember the error for every later request. */
  private onChannelError(e: Error & { code?: string }, timeoutMs: number): RpcServerError {
    if (this.lost) return this.lost;
    const timedOut = e.code === "HSD_CHANNEL_TIMEOUT";
    this.child.kill("SIGKILL"); // after a timeout it may still be waiting on a server; after a close, a no-op
    const failed = findFailedServer(this.servers);
    const tail = logTail(this.logPath);
    const log = tail ? ` (RPC process log: ${tail})` : "";
    let error: RpcServerError;
    if (failed) {
      const when = timedOut ? `a request got no answer within ${timeoutMs} ms` : "the connection to it broke";
      error = new RpcServerError(failed.endpoint.label, `${failed.problem}; ${when} while a model ran on it${log}`);
    } else if (timedOut) {
      error = new RpcServerError(
        this.label,
        `rpc-server ${this.label}: a request got no answer within ${timeoutMs} ms, though the server answers a new ` +
          `connection (overloaded, or a slow network: raise --rpc-timeout)${log}`,
      );
    } else {
      error = new RpcServerError(this.label, `hsd's RPC process for ${this.label} ended unexpectedly${log}`);
    }
    this.lost = error;
    this.channel.close();
    fs.rmSync(this.logPath, { force: true });
    return error;
  }

  /** @internal a model was disposed; the last one closes the host. */
  release(model: RemoteModel): void {
    this.models.delete(model);
    if (this.models.size === 0) this.close();
  }

  /** Ends the child (it exits when its channel closes) and frees the servers for other clients. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.lost) this.channel.close();
    fs.rmSync(this.logPath, { force: true });
  }
}

export class RemoteModel implements NativeModel {
  readonly path: string;
  readonly vocabSize: number;
  readonly trainContextSize: number;
  readonly parameterCount: number;
  readonly sizeBytes: number;
  readonly description: string;
  readonly bosToken: number;
  readonly eosToken: number;
  private readonly modelId: number;
  private readonly contexts = new Set<RemoteContext>();
  private disposed = false;

  /** @internal use RemoteModelHost.loadModel() */
  constructor(
    readonly host: RemoteModelHost,
    private readonly vocab: LlamaModel,
    loaded: LoadAnswer,
  ) {
    this.modelId = loaded.modelId;
    const info = loaded.info;
    this.path = vocab.path;
    this.vocabSize = info.vocabSize;
    this.trainContextSize = info.trainContextSize;
    this.parameterCount = info.parameterCount;
    this.sizeBytes = info.sizeBytes;
    this.description = info.description;
    this.bosToken = info.bosToken;
    this.eosToken = info.eosToken;
  }

  metadata(): Record<string, string> {
    return this.vocab.metadata();
  }
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array {
    return this.vocab.tokenize(text, addSpecial, parseSpecial);
  }
  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string {
    return this.vocab.detokenize(tokens, removeSpecial, unparseSpecial);
  }
  tokenPiece(token: number): Uint8Array {
    return this.vocab.tokenPiece(token);
  }
  isEndOfGeneration(token: number): boolean {
    return this.vocab.isEndOfGeneration(token);
  }

  createContext(options: ContextOptions): RemoteContext {
    if (this.disposed) throw new Error(`the model was disposed (${this.path})`);
    const answer = this.host.request(Op.createContext, { modelId: this.modelId, ...options });
    const context = new RemoteContext(this, answer.contextId, answer.contextSize, answer.batchSize);
    this.contexts.add(context);
    return context;
  }

  /** @internal */
  forget(context: RemoteContext): void {
    this.contexts.delete(context);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const c of [...this.contexts]) c.dispose();
    if (this.host.usable) this.host.request(Op.disposeModel, { modelId: this.modelId });
    this.vocab.dispose();
    this.host.release(this);
  }
}

export class RemoteContext implements NativeContext {
  private cachedPosition = 0;
  private disposed = false;

  /** @internal use RemoteModel.createContext() */
  constructor(
    readonly model: RemoteModel,
    private readonly contextId: number,
    readonly contextSize: number,
    readonly batchSize: number,
  ) {}

  get position(): number {
    return this.cachedPosition;
  }

  setSampling(transform: SamplingTransform): void {
    this.model.host.request(Op.setSampling, { contextId: this.live(), transform });
  }

  evaluateSync(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): void {
    const bytes = this.encode(tokens, position, firstOutput, target);
    this.cachedPosition = Math.min(this.cachedPosition, position); // what a failed pass leaves
    this.deliver(this.model.host.evaluate(bytes), target);
  }

  async evaluate(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): Promise<void> {
    const bytes = this.encode(tokens, position, firstOutput, target);
    this.cachedPosition = Math.min(this.cachedPosition, position);
    this.deliver(await this.model.host.evaluateAsync(bytes), target);
  }

  truncate(position: number): void {
    this.model.host.request(Op.truncate, { contextId: this.live(), position });
    this.cachedPosition = Math.min(this.cachedPosition, position);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.model.host.usable) this.model.host.request(Op.disposeContext, { contextId: this.contextId });
    this.model.forget(this);
  }

  private live(): number {
    if (this.disposed) throw new Error("the context was disposed");
    return this.contextId;
  }

  private encode(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): Uint8Array {
    // The protocol carries whole rows; a row restricted to fewer ids is a different distribution (the transform runs
    // on the restricted logits), which the child cannot be asked for yet (docs/ALGORITHM.md §11).
    if (target.vocabLimit !== undefined && target.vocabLimit < this.model.vocabSize)
      throw new Error(
        `a model over RPC cannot give rows restricted to ${target.vocabLimit} of its ${this.model.vocabSize} ids ` +
          "(a draft with more ids than a level above it): run that model locally (rpcLevels)",
      );
    // Sparse rows are gathered here from the dense rows the child sends (see deliver), so dense rows are asked for.
    const wantProbs = target.probs !== null || (target.sparse !== undefined && target.sparse !== null);
    return encodeEvaluate({ contextId: this.live(), position, firstOutput, wantProbs, tokens });
  }

  /** Copies the answer's rows where the target wants them (rowOffset on), dense or sparse as the target asks. */
  private deliver(buffer: ArrayBuffer, target: EvaluateTarget): void {
    const vocabSize = this.model.vocabSize;
    const answer = readEvaluateAnswer(buffer, vocabSize);
    target.argmax.set(answer.argmax, target.rowOffset);
    const sparse = target.sparse;
    if (sparse && answer.probs) {
      // As the addon writes them (docs/ALGORITHM.md §12): a row's non-zero entries when they fit in `capacity`
      // (counts[r] = n), else the dense row (counts[r] = -1). Any order of the entries is the same distribution.
      for (let j = 0; j < answer.argmax.length; j++) {
        const row = target.rowOffset + j;
        const dense = answer.probs.subarray(j * vocabSize, (j + 1) * vocabSize);
        const at = row * sparse.capacity;
        let n = 0;
        for (let id = 0; id < vocabSize && n >= 0; id++) {
          const p = dense[id]!;
          if (p <= 0) continue;
          if (n === sparse.capacity) n = -1;
          else {
            sparse.ids[at + n] = id;
            sparse.probs[at + n] = p;
            n++;
          }
        }
        if (n < 0) {
          if (!target.probs)
            throw new Error(`a row over RPC kept more than ${sparse.capacity} ids and has no dense buffer`);
          target.probs.set(dense, row * vocabSize);
        }
        sparse.counts[row] = n;
      }
    } else if (target.probs && answer.probs) target.probs.set(answer.probs, target.rowOffset * vocabSize);
    this.cachedPosition = answer.position;
  }
}
