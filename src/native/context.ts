// NativeContext over the addon: one llama_context (KV cache of sequence 0) on a model.
import type { RawContextHandle } from "./load.js";
import type { EvaluateTarget, NativeContext, SamplingTransform } from "./types.js";

/** The transform a new context starts with: greedy (argmax only). */
export const GREEDY: SamplingTransform = Object.freeze({ greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 });

export class LlamaContext implements NativeContext {
  readonly contextSize: number;
  readonly batchSize: number;
  readonly vocabSize: number;
  /** @internal */
  readonly handle: RawContextHandle;

  /** @internal use model.createContext() */
  constructor(handle: RawContextHandle) {
    this.handle = handle;
    const info = handle.info();
    this.contextSize = info.contextSize;
    this.batchSize = info.batchSize;
    this.vocabSize = info.vocabSize;
  }

  get position(): number {
    return this.handle.position();
  }

  get disposed(): boolean {
    return this.handle.isDisposed();
  }

  setSampling(transform: SamplingTransform): void {
    this.handle.setSampling(transform);
  }

  /**
   * Runs on a libuv worker thread. One evaluate() per context at a time: a second one rejects until the first
   * settles. Every error (bad arguments included) arrives as a rejection.
   */
  evaluate(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): Promise<void> {
    try {
      return this.handle.evaluate(tokens, position, firstOutput, target);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  evaluateSync(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): void {
    this.handle.evaluateSync(tokens, position, firstOutput, target);
  }

  truncate(position: number): void {
    this.handle.truncate(position);
  }

  /**
   * The truncate + llama_decode + transform of evaluateSync, repeated in C++ and timed there: milliseconds per
   * repetition. The baseline for measuring the cost of the N-API layer (scripts/bench-native.ts).
   */
  timeDecodeLoop(tokens: Int32Array, position: number, firstOutput: number, repetitions: number): Float64Array {
    return this.handle.timeDecodeLoop(tokens, position, firstOutput, repetitions);
  }

  /** Frees the context; an evaluate() in flight rejects with an Error saying the context was disposed. */
  dispose(): void {
    this.handle.dispose();
  }
}
