// What hsd needs to know about a GGUF file before loading it: size, kind, its vocabulary (so that models can be
// grouped by "can verify each other", src/gguf/vocabulary.ts) and an exact fingerprint of it (n-gram tables).

import { createHash } from "node:crypto";
import { basename } from "node:path";
import { GGML_TYPE_NAMES, readGgufHeader, tensorBytes, type GgufHeader, type GgufValue } from "./reader.js";
import { GgufFormatError } from "../errors.js";
import { checkHyperparameters } from "./hparams.js";
import { SPECIAL_TOKEN_KEYS, vocabularyInfo, type VocabularyInfo } from "./vocabulary.js";

export interface ModelInfo {
  path: string;
  file: string;
  name: string;
  architecture: string;
  parameterCount: number;
  fileSize: number;
  /** The tensor type holding most of the weights' bytes (F16, Q4_K, …). */
  quantisation: string;
  vocabSize: number;
  /** sha256 over the token texts, token types and special-token ids: equal means identical vocabularies. */
  vocabFingerprint: string;
  /** Token texts, types, merges and special ids: what the compatibility rule compares (compareVocabularies). */
  vocabulary: VocabularyInfo;
  contextLength: number | null;
}

/**
 * What hsd needs to know about a GGUF file, after checking its header for anything that could abort llama.cpp
 * (hparams.ts); throws GgufFormatError.
 */
export async function readModelInfo(path: string): Promise<ModelInfo> {
  const header = await readGgufHeader(path);
  checkHyperparameters(header);
  const meta = header.metadata;
  const architecture = String(meta.get("general.architecture") ?? "unknown");
  const tokens = meta.get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || tokens.length === 0) {
    throw new GgufFormatError(path, "no vocabulary in its metadata (tokenizer.ggml.tokens is missing)");
  }
  const contextLength = meta.get(`${architecture}.context_length`);
  return {
    path,
    file: basename(path),
    name: String(meta.get("general.name") ?? basename(path)),
    architecture,
    parameterCount: header.parameterCount,
    fileSize: header.fileSize,
    quantisation: dominantType(header),
    vocabSize: tokens.length,
    vocabFingerprint: vocabFingerprint(meta),
    vocabulary: vocabularyInfo(meta),
    contextLength: typeof contextLength === "number" ? contextLength : null,
  };
}

export function vocabFingerprint(meta: Map<string, GgufValue>): string {
  const hash = createHash("sha256");
  const field = (value: unknown) => {
    const text =
      typeof value === "string" ? value : JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    hash.update(`${Buffer.byteLength(text ?? "")}:`);
    hash.update(text ?? "");
  };
  field(meta.get("tokenizer.ggml.model") ?? null);
  const tokens = meta.get("tokenizer.ggml.tokens") as GgufValue[];
  const types = meta.get("tokenizer.ggml.token_type");
  field(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    field(tokens[i]);
    field(Array.isArray(types) ? (types[i] ?? null) : null);
  }
  for (const key of SPECIAL_TOKEN_KEYS) field(meta.get(`tokenizer.ggml.${key}_token_id`) ?? null);
  return hash.digest("hex");
}

/** The type holding most of the weights' bytes (elements where a type's size is unknown here). */
function dominantType(header: GgufHeader): string {
  const bytesByType = new Map<number, number>();
  for (const t of header.tensors) {
    const bytes = tensorBytes(t) ?? t.shape.reduce((a, b) => a * b, 1);
    bytesByType.set(t.type, (bytesByType.get(t.type) ?? 0) + bytes);
  }
  let best = -1;
  let most = -1;
  for (const [type, n] of bytesByType) if (n > most) [best, most] = [type, n];
  return GGML_TYPE_NAMES[best] ?? `type ${best}`;
}
