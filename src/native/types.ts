// The contract between the C++ addon (native/) and the TypeScript layer.
// C++ holds no policy: it loads models, runs llama_decode, turns logits into sampling
// distributions, and rolls KV caches back. Every decision lives in TypeScript.

/**
 * How logits become the distribution that every level samples from (the target's settings).
 * Order (native/sampling_transform.h): argmax of the raw logits (always; ties -> lowest id); unless greedy:
 * logits / temperature -> softmax -> top-k -> top-p (mass measured over the top-k survivors) -> min-p ->
 * renormalise; dropped tokens get exactly 0. "Most probable" orders by (probability desc, token id asc).
 * A new context starts greedy.
 */
export interface SamplingTransform {
  /** true: only the argmax of the raw logits is produced (ties go to the lowest token id). */
  greedy: boolean;
  /** > 0. Logits are divided by it before the softmax. Ignored when greedy. */
  temperature: number;
  /** 0 = off; otherwise keep the k most probable tokens. */
  topK: number;
  /** 1 = off; keep the smallest most-probable set whose mass reaches topP. */
  topP: number;
  /** 0 = off; drop tokens whose probability is below minP * (max probability). */
  minP: number;
}

export interface ModelLoadOptions {
  /** Layers to offload to the GPU (0 = CPU only; a large number = all). */
  gpuLayers?: number;
  /** Load the vocabulary only (no weights): tokenizer work without the weights' memory. */
  vocabOnly?: boolean;
}

export type FlashAttention = "auto" | "on" | "off";

export interface ContextOptions {
  /** Context length in tokens (KV cache size). */
  contextSize: number;
  /** Largest number of tokens in one evaluate() call. */
  batchSize: number;
  /** ggml threads for decoding. */
  threads: number;
  /**
   * Flash attention: "auto" (llama.cpp decides; the default), "on" or "off". On this project's 2-core CPU,
   * "auto" (= on) made one-token passes cheaper and multi-token verification passes much dearer.
   */
  flashAttention?: FlashAttention;
}

export interface NativeModel {
  readonly path: string;
  readonly vocabSize: number;
  readonly trainContextSize: number;
  readonly parameterCount: number;
  readonly sizeBytes: number;
  readonly description: string;
  readonly bosToken: number; // -1 when none
  readonly eosToken: number; // -1 when none
  /** All GGUF metadata key/value pairs, values as strings (llama_model_meta_*). */
  metadata(): Record<string, string>;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
  /** The text piece of one token, as bytes (a token may hold part of a UTF-8 character). */
  tokenPiece(token: number): Uint8Array;
  /** End of generation (EOS, EOT, …) per llama_vocab_is_eog. */
  isEndOfGeneration(token: number): boolean;
  createContext(options: ContextOptions): NativeContext;
  dispose(): void;
}

/** Result rows of one evaluate(): one row per requested output position. */
export interface EvaluateTarget {
  /**
   * Distributions, row-major [row][vocab]; row r of this pass is written at rowOffset + r.
   * null in greedy mode (only argmax is produced).
   */
  probs: Float32Array | null;
  /** argmax (of raw logits) per row, written at rowOffset + r. Always filled. */
  argmax: Int32Array;
  rowOffset: number;
  /**
   * Rows over ids [0, vocabLimit) only (default: the whole vocabulary): the transform (and the argmax) runs on the
   * first vocabLimit logits, so the row is the distribution restricted to those ids, and probs rows are vocabLimit
   * floats apart. A draft below a verifier with a smaller vocabulary uses it (docs/ALGORITHM.md §11).
   */
  vocabLimit?: number;
  /**
   * Sparse rows (sampling only; docs/ALGORITHM.md §12): row r's non-zero entries go to ids / probs at
   * [r * capacity, …) and their count to counts[r] when they fit in `capacity`; otherwise the row is written dense
   * into `probs` and counts[r] = -1. `probs` may be null when top-k keeps at most `capacity` entries (every row then
   * fits), and only then.
   */
  sparse?: { capacity: number; ids: Int32Array; probs: Float32Array; counts: Int32Array } | null;
}

export interface NativeContext {
  readonly contextSize: number;
  readonly batchSize: number;
  /** Tokens currently in the KV cache (sequence 0), i.e. the next free position. */
  readonly position: number;
  setSampling(transform: SamplingTransform): void;
  /**
   * Truncate the KV cache to `position` tokens, then decode `tokens` at positions position.. in
   * one llama_decode, producing outputs for tokens[firstOutput ..]. The row for token j is the
   * distribution of the NEXT token after it. Resolves when done; runs off the JS thread.
   */
  evaluate(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): Promise<void>;
  /** The same, on the calling thread (micro-benchmarks, tests). */
  evaluateSync(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): void;
  /** Drop every cached token at index >= position. */
  truncate(position: number): void;
  dispose(): void;
}
