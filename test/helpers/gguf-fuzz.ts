// Seeded mutations of a real GGUF header for the fuzz test (test/gguf-fuzz.test.ts): hyperparameters set to 0, huge
// or negative values, values of the wrong type, arrays cut short or given another item type, keys removed, strings
// swapped for other architectures and tokenizers, tensor dimensions, types, offsets and names changed. Mutation i of
// seed s is always the same file.

import { Rng } from "../../src/util/rng.js";
import { tensorBytes } from "../../src/gguf/reader.js";
import { cloneGguf, relayout, T, type GgufFile, type Scalar } from "./gguf-edit.js";

export interface Mutation {
  file: GgufFile;
  /** What was changed, e.g. "llama.block_count = 0". */
  label: string;
}

const INTEGERS: (number | bigint)[] = [
  0,
  1,
  2,
  3,
  7,
  255,
  511,
  512,
  513,
  1000,
  4095,
  4096,
  65535,
  65536,
  2 ** 31 - 1,
  2 ** 32 - 1,
  -1,
  -2,
  -(2 ** 31),
  2n ** 63n,
  2n ** 64n - 1n,
];
const FLOATS = [0, -0, -1, 1e-30, 1e30, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5, 3.4e38];
const ARCHITECTURES = ["", "unknown-arch", "gpt2", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "mamba", "bert", "t5"];
const TOKENIZERS = ["", "llama", "bert", "t5", "rwkv", "none", "no_vocab", "ugm", "plamo2", "unknown-tokenizer"];
const PRE_TOKENIZERS = ["", "default", "llama3", "qwen2", "unknown-pre"];
const TENSOR_TYPES = [0, 1, 2, 8, 4, 5, 12, 30, 31, 36, 40, 1000, 2 ** 31];
const TYPE_NAMES = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]));

export function mutateGguf(base: GgufFile, seed: number): Mutation {
  const rng = new Rng(seed);
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rng.next() * xs.length)]!;
  const file = cloneGguf(base);
  const labels: string[] = [];
  // Mostly one change; sometimes two, so that one check can't hide behind another.
  const changes = rng.next() < 0.2 ? 2 : 1;
  for (let c = 0; c < changes; c++) labels.push(mutateOnce(file, rng, pick));
  return { file, label: labels.join("; ") };
}

function mutateOnce(file: GgufFile, rng: Rng, pick: <X>(xs: readonly X[]) => X): string {
  const arch = String(file.kvs.find((kv) => kv.key === "general.architecture")?.value ?? "llama");
  const scalars = file.kvs.filter((kv) => kv.type !== T.array && kv.type !== T.string);
  // Hyperparameters are where llama.cpp asserts: weight them above the rest.
  const hparams = scalars.filter((kv) => kv.key.startsWith(`${arch}.`) || kv.key.includes("token_id"));
  const strings = file.kvs.filter((kv) => kv.type === T.string);
  const arrays = file.kvs.filter((kv) => kv.type === T.array);
  const kind = pick([
    "value",
    "value",
    "value",
    "value",
    "type",
    "type",
    "array",
    "remove",
    "string",
    "per-layer",
    "tensor-dim",
    "tensor-reshape",
    "tensor-reshape",
    "tensor-ndims",
    "tensor-type",
    "tensor-retype",
    "tensor-offset",
    "tensor-remove",
    "tensor-rename",
    "version",
  ] as const);
  switch (kind) {
    case "value": {
      const kv = rng.next() < 0.8 ? pick(hparams) : pick(scalars);
      kv.value = kv.type === T.f32 || kv.type === T.f64 ? pick(FLOATS) : toScalar(kv.type, pick(INTEGERS));
      return `${kv.key} = ${String(kv.value)}`;
    }
    case "type": {
      const kv = rng.next() < 0.8 ? pick(hparams) : pick(scalars);
      const old = kv.value as Scalar;
      const type = pick([T.u8, T.i8, T.u16, T.i16, T.u32, T.i32, T.f32, T.bool, T.string, T.u64, T.i64, T.f64]);
      kv.type = type;
      kv.value = type === T.string ? pick(["", "abc", String(old)]) : toScalar(type, old);
      return `${kv.key} as ${TYPE_NAMES[type]} ${String(kv.value)}`;
    }
    case "array": {
      const kv = pick(arrays);
      const items = kv.value as Scalar[];
      const how = pick(["cut", "cut", "empty", "one", "item-type", "extend"] as const);
      if (how === "cut") kv.value = items.slice(0, Math.floor(rng.next() * items.length));
      else if (how === "empty") kv.value = [];
      else if (how === "one") kv.value = items.slice(0, 1);
      else if (how === "extend") kv.value = [...items, ...items.slice(0, 1 + Math.floor(rng.next() * 8))];
      else {
        const itemType = pick([T.u8, T.i32, T.u32, T.f32, T.string, T.u64]);
        kv.value = items.map((x) => (itemType === T.string ? String(x) : toScalar(itemType, x)));
        kv.itemType = itemType;
      }
      return `${kv.key}: array ${how} (${(kv.value as Scalar[]).length} items of ${TYPE_NAMES[kv.itemType!]})`;
    }
    case "remove": {
      const kv = rng.next() < 0.7 ? pick([...hparams, ...strings]) : pick(file.kvs);
      file.kvs.splice(file.kvs.indexOf(kv), 1);
      return `${kv.key} removed`;
    }
    case "string": {
      const kv = pick(strings);
      kv.value =
        kv.key === "general.architecture"
          ? pick(ARCHITECTURES)
          : kv.key === "tokenizer.ggml.model"
            ? pick(TOKENIZERS)
            : kv.key === "tokenizer.ggml.pre"
              ? pick(PRE_TOKENIZERS)
              : pick(["", "x".repeat(1000)]);
      // An architecture swap renames the hyperparameter keys too, so the other architecture reads them.
      if (kv.key === "general.architecture" && rng.next() < 0.7)
        for (const other of file.kvs)
          if (other.key.startsWith(`${arch}.`)) other.key = `${kv.value}.${other.key.slice(arch.length + 1)}`;
      return `${kv.key} = "${String(kv.value).slice(0, 20)}"`;
    }
    case "per-layer": {
      // A per-layer array where llama.cpp accepts "a value or one per layer".
      const kv = pick(hparams.filter((h) => /head_count|feed_forward_length|expert/.test(h.key)).concat(hparams));
      const layers = Number(file.kvs.find((x) => x.key === `${arch}.block_count`)?.value ?? 1);
      const length = pick([0, 1, layers - 1, layers, layers + 1, 600]);
      const item = pick([0, 1, Number(kv.value), 2 ** 32 - 1]);
      kv.itemType = T.u32;
      kv.type = T.array;
      kv.value = Array.from({ length: Math.max(0, length) }, () => item);
      return `${kv.key} = [${item} x ${length}]`;
    }
    case "tensor-dim": {
      const t = pick(file.tensors);
      const d = Math.floor(rng.next() * t.dims.length);
      const old = t.dims[d]!;
      t.dims[d] = pick([0n, 1n, 2n, old * 2n, old / 2n, old + 1n, 2n ** 32n, 2n ** 40n, 2n ** 63n, 2n ** 64n - 1n]);
      return `${t.name} dim ${d} = ${t.dims[d]}`;
    }
    case "tensor-reshape": {
      // A consistent file with another shape: what llama.cpp's own shape checks (and kernels) then see.
      const t = pick(file.tensors);
      const d = Math.floor(rng.next() * t.dims.length);
      const old = t.dims[d]!;
      t.dims[d] = pick([0n, 1n, 2n, 32n, old * 2n, old / 2n, old + 32n]);
      if (rng.next() < 0.3) t.dims.push(pick([1n, 2n]));
      relayout(file, tensorBytes);
      return `${t.name} reshaped to [${t.dims.join(", ")}], data laid out again`;
    }
    case "tensor-retype": {
      const t = pick(file.tensors);
      t.type = pick([0, 1, 2, 8, 12, 14, 24, 26, 28, 30, 39]);
      relayout(file, tensorBytes);
      return `${t.name} retyped ${t.type}, data laid out again`;
    }
    case "tensor-ndims": {
      const t = pick(file.tensors);
      if (rng.next() < 0.5 && t.dims.length > 0) t.dims.pop();
      else t.dims.push(pick([1n, 2n, 0n]));
      return `${t.name} dims = [${t.dims.join(", ")}]`;
    }
    case "tensor-type": {
      const t = pick(file.tensors);
      t.type = pick(TENSOR_TYPES);
      return `${t.name} type = ${t.type}`;
    }
    case "tensor-offset": {
      const t = pick(file.tensors);
      t.offset = pick([t.offset + 1n, t.offset + 32n, 0n, BigInt(file.data.length), 2n ** 40n, 2n ** 64n - 32n]);
      return `${t.name} offset = ${t.offset}`;
    }
    case "tensor-remove": {
      const t = pick(file.tensors);
      file.tensors.splice(file.tensors.indexOf(t), 1);
      return `${t.name} removed`;
    }
    case "tensor-rename": {
      const t = pick(file.tensors);
      const old = t.name;
      t.name = rng.next() < 0.5 ? pick(file.tensors).name : `${t.name}.x`;
      return `${old} renamed ${t.name}`;
    }
    case "version": {
      file.version = pick([0, 1, 4, 2 ** 32 - 1]);
      return `version = ${file.version}`;
    }
  }
}

/** v as a value of the given GGUF type (wrapping as a C cast would; huge values stay huge). */
function toScalar(type: number, v: Scalar): Scalar {
  if (type === T.bool) return Boolean(v);
  if (type === T.string) return String(v);
  if (type === T.u64 || type === T.i64) {
    if (typeof v === "bigint") return v;
    const n = Number(v);
    return Number.isFinite(n) ? BigInt(Math.trunc(n)) : 0n;
  }
  const n = Number(v);
  if (type === T.f32 || type === T.f64) return n;
  return Number.isFinite(n) ? n : 0;
}
