// Random-weight models that carry a REAL tokenizer, for tests and timing without downloads.
//
//  - Tokenizers: llama.cpp's source (bundled with node-llama-cpp as llama/gitRelease.bundle) holds tokenizer-only
//    GGUFs, models/ggml-vocab-<name>.gguf (qwen2, llama-bpe, llama-spm, phi-3, …); `bundledVocabulary` extracts
//    one with git into a folder (nothing of them is committed here).
//  - Padding: `padVocabulary` pads a token list the way llama.cpp's converter does for BPE vocabularies
//    (conversion/base.py, get_vocab_base: every id the tokenizer lacks below the model's vocab_size becomes the text
//    "[PAD<id>]" of type UNUSED), after dropping the padding the vocab file already has — so Qwen2.5-0.5B's 151,936
//    and Qwen2.5-7B's 152,064 ids are both made from the same 151,665 real tokens.
//  - Weights: the tensors llama.cpp requires for the qwen2 and llama architectures (src/models/qwen2.cpp,
//    llama.cpp: token_embd, output_norm, optional output, and per block attn_norm, attn_q/k/v (+ biases for
//    qwen2), attn_output, ffn_norm, ffn_gate/up/down), random N(0, std²) in F16 or Q8_0, norms 1.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { GgufValue } from "../../src/gguf/reader.js";
import { readGgufHeader } from "../../src/gguf/reader.js";
import { isPadding } from "../../src/gguf/vocabulary.js";
import {
  f32,
  str,
  tokenizerMetadata,
  u32,
  writeGguf,
  type TensorSpec,
  type TensorType,
  type TypedValue,
} from "./gguf-writer.js";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const UNUSED = 5;

/**
 * `dir`/ggml-vocab-`name`.gguf, extracted from node-llama-cpp's llama.cpp bundle with git on first use (a bare
 * clone of the bundle is kept in `dir`/.bundle for the next file).
 */
export function bundledVocabulary(name: string, dir: string): string {
  const file = join(dir, `ggml-vocab-${name}.gguf`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const bundle = join(ROOT, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: is node-llama-cpp installed (npm ci)?`);
  const clone = join(dir, ".bundle");
  if (!existsSync(join(clone, "HEAD"))) {
    const tmp = mkdtempSync(join(dir, ".bundle-"));
    execFileSync("git", ["clone", "--quiet", "--bare", bundle, tmp], { stdio: ["ignore", "ignore", "inherit"] });
    renameSync(tmp, clone);
  }
  const bytes = execFileSync("git", ["--git-dir", clone, "show", `HEAD:models/ggml-vocab-${name}.gguf`], {
    maxBuffer: 1 << 30,
  });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
  return file;
}

/** The tokenizer metadata of a GGUF (typed for writing). */
export async function readTokenizer(path: string): Promise<Map<string, TypedValue>> {
  const header = await readGgufHeader(path);
  return new Map(tokenizerMetadata(header.metadata as Map<string, GgufValue>));
}

/**
 * The tokenizer padded to `size` ids as the converter pads (see the header): trailing padding already there is
 * dropped first, then ids from the real count up to `size` become "[PAD<id>]", type UNUSED (score -1000 where
 * the vocabulary has scores). Refuses to cut real tokens.
 */
export function padVocabulary(tokenizer: Map<string, TypedValue>, size: number): Map<string, TypedValue> {
  const tokens = list<string>(tokenizer, "tokenizer.ggml.tokens");
  const types = list<number>(tokenizer, "tokenizer.ggml.token_type");
  const scores = tokenizer.has("tokenizer.ggml.scores") ? list<number>(tokenizer, "tokenizer.ggml.scores") : null;
  let real = tokens.length;
  while (real > 0 && isPadding({ tokens, types }, real - 1)) real--;
  if (size < real) throw new Error(`padVocabulary: ${size} ids would cut real tokens (the vocabulary has ${real})`);
  const out = new Map(tokenizer);
  const ids = Array.from({ length: size }, (_, i) => i);
  out.set("tokenizer.ggml.tokens", {
    type: "array",
    of: "string",
    value: ids.map((i) => (i < real ? tokens[i]! : `[PAD${i}]`)),
  });
  out.set("tokenizer.ggml.token_type", {
    type: "array",
    of: "i32",
    value: ids.map((i) => (i < real ? types[i]! : UNUSED)),
  });
  if (scores)
    out.set("tokenizer.ggml.scores", {
      type: "array",
      of: "f32",
      value: ids.map((i) => (i < real ? scores[i]! : -1000)),
    });
  return out;
}

/** A copy of the tokenizer with one token's text replaced (a refusal case: a different text at a shared id). */
export function withTokenText(tokenizer: Map<string, TypedValue>, id: number, text: string): Map<string, TypedValue> {
  const tokens = [...list<string>(tokenizer, "tokenizer.ggml.tokens")];
  tokens[id] = text;
  return new Map(tokenizer).set("tokenizer.ggml.tokens", { type: "array", of: "string", value: tokens });
}

function list<T>(tokenizer: Map<string, TypedValue>, key: string): readonly T[] {
  const v = tokenizer.get(key);
  if (!v || v.type !== "array") throw new Error(`the tokenizer has no ${key}`);
  return v.value as unknown as readonly T[];
}

export function vocabularySize(tokenizer: Map<string, TypedValue>): number {
  return list<string>(tokenizer, "tokenizer.ggml.tokens").length;
}

export interface ModelShape {
  architecture: "qwen2" | "llama";
  embedding: number;
  layers: number;
  heads: number;
  kvHeads: number;
  feedForward: number;
  /** The output projection is the token embedding (no output.weight tensor). */
  tied: boolean;
  ropeBase: number;
  contextLength: number;
}

/** Real shapes (the models' config.json). */
export const REAL_SHAPES = {
  "qwen2.5-0.5b": {
    architecture: "qwen2",
    embedding: 896,
    layers: 24,
    heads: 14,
    kvHeads: 2,
    feedForward: 4864,
    tied: true,
    ropeBase: 1e6,
    contextLength: 32768,
  },
  "qwen2.5-1.5b": {
    architecture: "qwen2",
    embedding: 1536,
    layers: 28,
    heads: 12,
    kvHeads: 2,
    feedForward: 8960,
    tied: true,
    ropeBase: 1e6,
    contextLength: 32768,
  },
  "llama-3.2-1b": {
    architecture: "llama",
    embedding: 2048,
    layers: 16,
    heads: 32,
    kvHeads: 8,
    feedForward: 8192,
    tied: true,
    ropeBase: 5e5,
    contextLength: 131072,
  },
} satisfies Record<string, ModelShape>;

export interface RandomModelOptions {
  shape: ModelShape;
  tokenizer: Map<string, TypedValue>;
  /** Type of the weight matrices and the embedding (norms and biases are F32). */
  type: Extract<TensorType, "F16" | "Q8_0">;
  name: string;
  seed?: number;
  /** Standard deviation of the random weight matrices (default 0.02, as an untrained model starts). */
  std?: number;
  /** Standard deviation of the token embedding (and the output projection), default `std`. */
  embeddingStd?: number;
  /** Explicit values for some tensors, by name (e.g. an output projection that favours chosen ids). */
  values?: ReadonlyMap<string, Float32Array>;
}

/** Writes a random-weight model; returns its parameter count and bytes. */
export function writeRandomModel(path: string, o: RandomModelOptions): { parameters: number; bytes: number } {
  const s = o.shape;
  const V = vocabularySize(o.tokenizer);
  const a = s.architecture;
  const headDim = s.embedding / s.heads;
  if (!Number.isInteger(headDim) || s.heads % s.kvHeads !== 0)
    throw new Error(`writeRandomModel: ${s.heads} heads and ${s.kvHeads} kv heads do not divide ${s.embedding}`);
  const kv = s.kvHeads * headDim;
  const metadata: [string, TypedValue][] = [
    ["general.architecture", str(a)],
    ["general.name", str(o.name)],
    ["general.description", str("random weights (hsd scripts/lib/random-model.ts): for tests and timing only")],
    ["general.file_type", u32(o.type === "F16" ? 1 : 7)],
    [`${a}.context_length`, u32(s.contextLength)],
    [`${a}.embedding_length`, u32(s.embedding)],
    [`${a}.block_count`, u32(s.layers)],
    [`${a}.feed_forward_length`, u32(s.feedForward)],
    [`${a}.attention.head_count`, u32(s.heads)],
    [`${a}.attention.head_count_kv`, u32(s.kvHeads)],
    [`${a}.rope.freq_base`, f32(s.ropeBase)],
    [`${a}.rope.dimension_count`, u32(headDim)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(1e-6)],
    [`${a}.vocab_size`, u32(V)],
    ...o.tokenizer,
  ];
  const std = o.std ?? 0.02;
  const matrix = (name: string, cols: number, rows: number, sd = std): TensorSpec => ({
    name,
    shape: [cols, rows],
    type: o.type,
    data: o.values?.has(name) ? { kind: "values", values: o.values.get(name)! } : { kind: "random", std: sd },
  });
  const vector = (name: string, n: number, value: number): TensorSpec => ({
    name,
    shape: [n],
    type: "F32",
    data: o.values?.has(name) ? { kind: "values", values: o.values.get(name)! } : { kind: "constant", value },
  });
  const tensors: TensorSpec[] = [matrix("token_embd.weight", s.embedding, V, o.embeddingStd)];
  for (let i = 0; i < s.layers; i++) {
    const b = `blk.${i}.`;
    tensors.push(
      vector(`${b}attn_norm.weight`, s.embedding, 1),
      matrix(`${b}attn_q.weight`, s.embedding, s.embedding),
      matrix(`${b}attn_k.weight`, s.embedding, kv),
      matrix(`${b}attn_v.weight`, s.embedding, kv),
      ...(a === "qwen2"
        ? [
            vector(`${b}attn_q.bias`, s.embedding, 0),
            vector(`${b}attn_k.bias`, kv, 0),
            vector(`${b}attn_v.bias`, kv, 0),
          ]
        : []),
      matrix(`${b}attn_output.weight`, s.embedding, s.embedding),
      vector(`${b}ffn_norm.weight`, s.embedding, 1),
      matrix(`${b}ffn_gate.weight`, s.embedding, s.feedForward),
      matrix(`${b}ffn_up.weight`, s.embedding, s.feedForward),
      matrix(`${b}ffn_down.weight`, s.feedForward, s.embedding),
    );
  }
  tensors.push(vector("output_norm.weight", s.embedding, 1));
  if (!s.tied) tensors.push(matrix("output.weight", s.embedding, V, o.embeddingStd));
  const bytes = writeGguf(path, metadata, tensors, o.seed ?? 1);
  const parameters = tensors.reduce((n, t) => n + t.shape.reduce((x, y) => x * y, 1), 0);
  return { parameters, bytes };
}
