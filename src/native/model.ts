// NativeModel over the addon: loading (async, off the JS thread), vocabulary, metadata, contexts.
import { LlamaContext } from "./context.js";
import { loadNative, type LoadedNative, type RawModelHandle } from "./load.js";
import type { ContextOptions, FlashAttention, ModelLoadOptions, NativeModel } from "./types.js";
import { BATCH_SIZE, MAX_DEFAULT_CONTEXT_SIZE } from "../defaults.js";

function checkInt(name: string, v: unknown, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    throw new RangeError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/** The context size hsd uses by default: the model's training context, capped (KV-cache memory). */
export function defaultContextSize(model: Pick<NativeModel, "trainContextSize">): number {
  return Math.min(model.trainContextSize || MAX_DEFAULT_CONTEXT_SIZE, MAX_DEFAULT_CONTEXT_SIZE);
}

/**
 * The options of every context hsd decodes with (the engine's, and the calibration's, which must time passes the
 * engine will make: the batch size changes llama.cpp's per-pass work).
 */
export function contextOptions(
  model: Pick<NativeModel, "trainContextSize">,
  options: { contextSize?: number; threads: number; flashAttention?: FlashAttention },
): ContextOptions {
  const contextSize = options.contextSize ?? defaultContextSize(model);
  return {
    contextSize,
    batchSize: Math.min(BATCH_SIZE, contextSize),
    threads: options.threads,
    flashAttention: options.flashAttention,
  };
}

export class LlamaModel implements NativeModel {
  readonly path: string;
  readonly vocabSize: number;
  readonly trainContextSize: number;
  readonly parameterCount: number;
  readonly sizeBytes: number;
  readonly description: string;
  readonly bosToken: number;
  readonly eosToken: number;
  readonly vocabOnly: boolean;
  /** @internal */
  readonly handle: RawModelHandle;

  /** @internal use loadModel() */
  constructor(handle: RawModelHandle, path: string) {
    this.handle = handle;
    const info = handle.info();
    this.path = path;
    this.vocabSize = info.vocabSize;
    this.trainContextSize = info.trainContextSize;
    this.parameterCount = info.parameterCount;
    this.sizeBytes = info.sizeBytes;
    this.description = info.description;
    this.bosToken = info.bosToken;
    this.eosToken = info.eosToken;
    this.vocabOnly = info.vocabOnly;
  }

  get disposed(): boolean {
    return this.handle.isDisposed();
  }

  metadata(): Record<string, string> {
    return this.handle.metadata();
  }

  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array {
    return this.handle.tokenize(text, addSpecial, parseSpecial);
  }

  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string {
    return this.handle.detokenize(tokens, removeSpecial, unparseSpecial);
  }

  /** Special tokens are rendered as their text (e.g. "<|endoftext|>"). */
  tokenPiece(token: number): Uint8Array {
    return this.handle.tokenPiece(token);
  }

  isEndOfGeneration(token: number): boolean {
    return this.handle.isEndOfGeneration(token);
  }

  createContext(options: ContextOptions): LlamaContext {
    if (typeof options !== "object" || options === null)
      throw new TypeError("createContext(options): options must be an object");
    const contextSize = checkInt("contextSize", options.contextSize, 1);
    const batchSize = checkInt("batchSize", options.batchSize, 1);
    const threads = checkInt("threads", options.threads, 1);
    const fa = options.flashAttention ?? "auto";
    if (fa !== "auto" && fa !== "on" && fa !== "off")
      throw new TypeError(`createContext: flashAttention must be "auto", "on" or "off", got ${String(fa)}`);
    const flashAttention = fa === "auto" ? -1 : fa === "on" ? 1 : 0;
    return new LlamaContext(this.handle.createContext({ contextSize, batchSize, threads, flashAttention }));
  }

  /**
   * Frees the model and disposes every context created on it. An evaluate() still running on one of them
   * rejects with an Error saying the model was disposed; the memory is freed when that decode has finished.
   */
  dispose(): void {
    this.handle.dispose();
  }
}

let warnedNoGpu = false;

/**
 * gpuLayers > 0 with no GPU device: llama.cpp would quietly run on the CPU. Say so once per process, with the reason
 * each GPU backend was not used, as a process warning (stderr by default; a program can listen for "warning").
 */
function warnIfNoGpu(native: LoadedNative, gpuLayers: number): void {
  if (gpuLayers === 0 || warnedNoGpu) return;
  if (native.devices.some((d) => d.type === "gpu" || d.type === "igpu")) return;
  warnedNoGpu = true;
  const why = native.gpuNotes.length > 0 ? ` (${native.gpuNotes.join("; ")})` : "";
  process.emitWarning(
    `gpuLayers ${gpuLayers}: no GPU backend is loaded${why}, so the model runs on the CPU (llama.cpp from ` +
      `${native.config.source ?? native.config.libDir}). CUDA needs the NVIDIA driver (libcuda.so.1) and the CUDA ` +
      "runtime (libcudart, libcublas) on the library path; Vulkan needs libvulkan.so.1. HSD_LLAMA_LOG=1 prints " +
      "llama.cpp's log.",
    { type: "HsdWarning", code: "HSD_NO_GPU" },
  );
}

/**
 * Loads a GGUF model. Rejects (never crashes) on a missing, non-GGUF, truncated or otherwise unloadable file,
 * with an Error naming the path. gpuLayers: 0 (default) = CPU only, n = offload n layers, a large number = all.
 */
export async function loadModel(path: string, options: ModelLoadOptions = {}): Promise<LlamaModel> {
  if (typeof path !== "string" || path === "") throw new TypeError("loadModel(path): path must be a non-empty string");
  const gpuLayers = options.gpuLayers === undefined ? 0 : checkInt("gpuLayers", options.gpuLayers, 0);
  const vocabOnly = options.vocabOnly ?? false;
  if (typeof vocabOnly !== "boolean") throw new TypeError("vocabOnly must be a boolean");
  const native = loadNative();
  warnIfNoGpu(native, gpuLayers);
  const handle = await native.addon.loadModel(path, { gpuLayers, vocabOnly });
  return new LlamaModel(handle, path);
}
