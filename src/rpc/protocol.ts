// The messages between hsd and its child process that runs models on RPC devices (./host.ts, ./remote-model.ts).
// Each request and each answer is one frame of native/channel.h. A request starts with its operation's byte; control
// requests carry JSON after it, an evaluation a binary layout (the hot path: one per target pass). An answer starts
// with a status byte: OK (then JSON or the evaluation's binary layout) or FAILED (then the error's message, UTF-8).

import type { FlashAttention, SamplingTransform } from "../native/types.js";
import type { RawModelInfo } from "../native/load.js";

export const Op = {
  load: 1,
  createContext: 2,
  setSampling: 3,
  evaluate: 4,
  truncate: 5,
  disposeContext: 6,
  disposeModel: 7,
} as const;

export const OK = 0;
export const FAILED = 1;

/** The control requests and what each answers. */
export interface ControlMessages {
  [Op.load]: { request: { path: string; gpuLayers: number; servers: string[] }; answer: LoadAnswer };
  [Op.createContext]: {
    request: {
      modelId: number;
      contextSize: number;
      batchSize: number;
      threads: number;
      flashAttention?: FlashAttention;
    };
    answer: { contextId: number; contextSize: number; batchSize: number };
  };
  [Op.setSampling]: { request: { contextId: number; transform: SamplingTransform }; answer: null };
  [Op.truncate]: { request: { contextId: number; position: number }; answer: null };
  [Op.disposeContext]: { request: { contextId: number }; answer: null };
  [Op.disposeModel]: { request: { modelId: number }; answer: null };
}
export type ControlOp = keyof ControlMessages;

export interface LoadAnswer {
  modelId: number;
  info: RawModelInfo;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeControl<K extends ControlOp>(op: K, request: ControlMessages[K]["request"]): Uint8Array {
  const json = encoder.encode(JSON.stringify(request));
  const bytes = new Uint8Array(1 + json.length);
  bytes[0] = op;
  bytes.set(json, 1);
  return bytes;
}

export function decodeControl(bytes: Uint8Array): { op: number; request: unknown } {
  return { op: bytes[0]!, request: JSON.parse(decoder.decode(bytes.subarray(1))) };
}

// Evaluation request, int32 little-endian words: op (in the first byte), contextId, position, firstOutput,
// wantProbs (0/1), n, then the n tokens.
const EVAL_HEADER = 6;

export interface EvaluateRequest {
  contextId: number;
  position: number;
  firstOutput: number;
  wantProbs: boolean;
  tokens: Int32Array;
}

export function encodeEvaluate(r: EvaluateRequest): Uint8Array {
  const words = new Int32Array(EVAL_HEADER + r.tokens.length);
  words[0] = Op.evaluate;
  words[1] = r.contextId;
  words[2] = r.position;
  words[3] = r.firstOutput;
  words[4] = r.wantProbs ? 1 : 0;
  words[5] = r.tokens.length;
  words.set(r.tokens, EVAL_HEADER);
  return new Uint8Array(words.buffer);
}

export function decodeEvaluate(bytes: Uint8Array): EvaluateRequest {
  const words = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  const n = words[5]!;
  return {
    contextId: words[1]!,
    position: words[2]!,
    firstOutput: words[3]!,
    wantProbs: words[4] === 1,
    tokens: words.subarray(EVAL_HEADER, EVAL_HEADER + n),
  };
}

// Evaluation answer, int32 words: status (first byte), the context's position after the pass, rows; then rows
// argmax ids; then, when asked, rows x vocabulary float32 probabilities.
const ANSWER_HEADER = 3;

/** An answer buffer the child fills in place: the native evaluation writes straight into its views. */
export function evaluateAnswer(
  rows: number,
  vocabSize: number,
  wantProbs: boolean,
): { bytes: Uint8Array; setPosition: (p: number) => void; argmax: Int32Array; probs: Float32Array | null } {
  const buffer = new ArrayBuffer(4 * (ANSWER_HEADER + rows + (wantProbs ? rows * vocabSize : 0)));
  const header = new Int32Array(buffer, 0, ANSWER_HEADER);
  header[0] = OK;
  header[2] = rows;
  return {
    bytes: new Uint8Array(buffer),
    setPosition: (p) => void (header[1] = p),
    argmax: new Int32Array(buffer, 4 * ANSWER_HEADER, rows),
    probs: wantProbs ? new Float32Array(buffer, 4 * (ANSWER_HEADER + rows), rows * vocabSize) : null,
  };
}

export function readEvaluateAnswer(
  buffer: ArrayBuffer,
  vocabSize: number,
): { position: number; argmax: Int32Array; probs: Float32Array | null } {
  const header = new Int32Array(buffer, 0, ANSWER_HEADER);
  const rows = header[2]!;
  const hasProbs = buffer.byteLength > 4 * (ANSWER_HEADER + rows);
  return {
    position: header[1]!,
    argmax: new Int32Array(buffer, 4 * ANSWER_HEADER, rows),
    probs: hasProbs ? new Float32Array(buffer, 4 * (ANSWER_HEADER + rows), rows * vocabSize) : null,
  };
}

export function okAnswer(value: unknown): Uint8Array {
  const json = encoder.encode(JSON.stringify(value));
  const bytes = new Uint8Array(1 + json.length);
  bytes[0] = OK;
  bytes.set(json, 1);
  return bytes;
}

export function failedAnswer(message: string): Uint8Array {
  const text = encoder.encode(message);
  const bytes = new Uint8Array(1 + text.length);
  bytes[0] = FAILED;
  bytes.set(text, 1);
  return bytes;
}

/** An answer's status and, for a failure, its message (null when it succeeded). */
export function answerFailure(buffer: ArrayBuffer): string | null {
  const bytes = new Uint8Array(buffer);
  return bytes[0] === FAILED ? decoder.decode(bytes.subarray(1)) : null;
}

export function readControlAnswer<T>(buffer: ArrayBuffer): T {
  return JSON.parse(decoder.decode(new Uint8Array(buffer, 1))) as T;
}
