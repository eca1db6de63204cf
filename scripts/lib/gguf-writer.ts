// A small GGUF writer (format: ggml's docs/gguf.md, version 3): typed metadata, a tensor table and tensor data in
// F32, F16 or Q8_0, streamed to disk so that multi-gigabyte random-weight models are written without holding them
// in memory. Used for test material (small random-weight models that carry a real tokenizer) and for the
// real-shaped timing models of scripts/make-real-shapes.ts. Reads nothing but what src/gguf/reader.ts returns.

import { closeSync, openSync, renameSync, writeSync } from "node:fs";
import type { GgufValue } from "../../src/gguf/reader.js";

/** A metadata value with its GGUF type (the reader returns values without their types). */
export type TypedValue =
  | { type: "u32" | "i32" | "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; of: "string"; value: readonly string[] }
  | { type: "array"; of: "i32" | "f32" | "u32"; value: readonly number[] };

export const u32 = (value: number): TypedValue => ({ type: "u32", value });
export const f32 = (value: number): TypedValue => ({ type: "f32", value });
export const str = (value: string): TypedValue => ({ type: "string", value });

/** ggml tensor types this writer produces (ggml.h's enum ggml_type). */
export type TensorType = "F32" | "F16" | "Q8_0";
const TYPE_ID: Record<TensorType, number> = { F32: 0, F16: 1, Q8_0: 8 };

/** Where a tensor's values come from. */
export type TensorData =
  | { kind: "values"; values: Float32Array }
  | { kind: "constant"; value: number }
  /** Draws from N(0, std²) (through a pool of pre-drawn values: writing costs what the disk takes). */
  | { kind: "random"; std: number };

export interface TensorSpec {
  name: string;
  /** ggml order: ne0 (the row length, the input dimension of a weight matrix) first. */
  shape: readonly number[];
  type: TensorType;
  data: TensorData;
}

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;
const ALIGNMENT = 32;
const QK8_0 = 32;

/** Bytes of a tensor's data. */
export function tensorDataBytes(t: Pick<TensorSpec, "shape" | "type">): number {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.type === "F32") return n * 4;
  if (t.type === "F16") return n * 2;
  if (t.shape[0]! % QK8_0 !== 0) throw new Error(`Q8_0 needs rows of a multiple of ${QK8_0} values, got ${t.shape}`);
  return (n / QK8_0) * 34;
}

/**
 * Writes a GGUF file (to `path`.tmp, renamed when complete). `seed` seeds the random tensors. Returns the bytes
 * written.
 */
export function writeGguf(
  path: string,
  metadata: ReadonlyArray<readonly [string, TypedValue]>,
  tensors: readonly TensorSpec[],
  seed = 1,
): number {
  const header = new ByteWriter();
  header.raw(Buffer.from("GGUF", "latin1"));
  header.u32(3);
  header.u64(tensors.length);
  header.u64(metadata.length);
  for (const [key, value] of metadata) {
    header.string(key);
    header.value(value);
  }
  let offset = 0;
  for (const t of tensors) {
    header.string(t.name);
    header.u32(t.shape.length);
    for (const d of t.shape) header.u64(d);
    header.u32(TYPE_ID[t.type]);
    header.u64(offset);
    offset = align(offset + tensorDataBytes(t));
  }
  header.raw(Buffer.alloc(align(header.length) - header.length));

  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  let written = 0;
  const put = (b: Buffer) => {
    let at = 0;
    while (at < b.length) at += writeSync(fd, b, at, b.length - at);
    written += b.length;
  };
  try {
    put(header.take());
    const pools = new Pools(seed);
    for (const t of tensors) {
      const bytes = tensorDataBytes(t);
      for (const chunk of tensorChunks(t, bytes, pools)) put(chunk);
      put(Buffer.alloc(align(bytes) - bytes));
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return written;
}

function align(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}

/** A tensor's bytes in chunks of at most a few MiB. */
function* tensorChunks(t: TensorSpec, bytes: number, pools: Pools): Generator<Buffer> {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.kind === "values") {
    if (t.data.values.length !== n) throw new Error(`${t.name}: ${t.data.values.length} values for shape ${t.shape}`);
    yield encode(t.data.values, t.type);
    return;
  }
  if (t.data.kind === "constant") {
    const chunkValues = Math.min(n, 1 << 20);
    const chunk = encode(new Float32Array(chunkValues).fill(t.data.value), t.type);
    for (let done = 0; done < n; done += chunkValues) {
      yield chunk.subarray(0, (Math.min(chunkValues, n - done) / chunkValues) * chunk.length);
    }
    return;
  }
  // Random: slices of a pool of encoded N(0, std²) values, each from a random whole-unit offset.
  const pool = pools.get(t.type, t.data.std);
  const unit = t.type === "Q8_0" ? 34 : t.type === "F16" ? 2 : 4;
  let left = bytes;
  while (left > 0) {
    const start = Math.floor(pools.rng() * (pool.length / unit / 2)) * unit;
    const take = Math.min(left, pool.length - start);
    yield pool.subarray(start, start + take);
    left -= take;
  }
}

/** Pre-drawn random tensor bytes per (type, std), and the generator behind them. */
class Pools {
  private readonly pools = new Map<string, Buffer>();
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }

  /** Uniform in [0, 1) (xorshift32: the pool is noise, its quality hardly matters). */
  rng = (): number => {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 4294967296;
  };

  get(type: TensorType, std: number): Buffer {
    const key = `${type}:${std}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const values = new Float32Array(1 << 22); // 4 Mi values: 8 MiB of F16
      for (let i = 0; i < values.length; i += 2) {
        // Box–Muller: two normals from two uniforms.
        const r = Math.sqrt(-2 * Math.log(1 - this.rng())) * std;
        const a = 2 * Math.PI * this.rng();
        values[i] = r * Math.cos(a);
        values[i + 1] = r * Math.sin(a);
      }
      pool = encode(values, type);
      this.pools.set(key, pool);
    }
    return pool;
  }
}

/** Values in a ggml type's byte layout. Q8_0: blocks of a F16 scale d = max|x| / 127 and 32 int8 x / d. */
export function encode(values: Float32Array, type: TensorType): Buffer {
  if (type === "F32") return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  if (type === "F16") {
    const out = Buffer.alloc(values.length * 2);
    for (let i = 0; i < values.length; i++) out.writeUInt16LE(toHalf(values[i]!), i * 2);
    return out;
  }
  if (values.length % QK8_0 !== 0) throw new Error(`Q8_0 needs a multiple of ${QK8_0} values`);
  const out = Buffer.alloc((values.length / QK8_0) * 34);
  for (let b = 0; b < values.length / QK8_0; b++) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(values[b * QK8_0 + j]!));
    const d = amax / 127;
    const inv = d > 0 ? 1 / d : 0;
    out.writeUInt16LE(toHalf(d), b * 34);
    for (let j = 0; j < QK8_0; j++) out.writeInt8(Math.round(values[b * QK8_0 + j]! * inv), b * 34 + 2 + j);
  }
  return out;
}

const f32Buffer = new Float32Array(1);
const u32View = new Uint32Array(f32Buffer.buffer);

/** IEEE half-precision bits of x, rounded to nearest even (subnormals included, overflow to infinity). */
export function toHalf(x: number): number {
  f32Buffer[0] = x;
  const bits = u32View[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // a carry into the exponent is still right
  return sign | half;
}

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;

  raw(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.raw(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.raw(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.raw(b);
  }
  scalar(type: "u32" | "i32" | "f32", v: number): void {
    const b = Buffer.alloc(4);
    if (type === "u32") b.writeUInt32LE(v);
    else if (type === "i32") b.writeInt32LE(v);
    else b.writeFloatLE(v);
    this.raw(b);
  }
  value(v: TypedValue): void {
    this.u32(VALUE_TYPE[v.type]);
    if (v.type === "string") return this.string(v.value);
    if (v.type === "bool") return this.raw(Buffer.from([v.value ? 1 : 0]));
    if (v.type !== "array") return this.scalar(v.type, v.value);
    this.u32(VALUE_TYPE[v.of]);
    this.u64(v.value.length);
    if (v.of === "string") for (const s of v.value as readonly string[]) this.string(s);
    else {
      const b = Buffer.alloc(4 * v.value.length);
      v.value.forEach((x, i) => {
        if (v.of === "u32") b.writeUInt32LE(x as number, 4 * i);
        else if (v.of === "i32") b.writeInt32LE(x as number, 4 * i);
        else b.writeFloatLE(x as number, 4 * i);
      });
      this.raw(b);
    }
  }
  take(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/**
 * The `tokenizer.*` metadata of a GGUF header, typed for writing. The reader drops types, so they come from the
 * keys llama.cpp defines (llama-arch.cpp's LLM_KV_TOKENIZER_*): token lists and merges are strings, token types
 * i32, scores f32, ids u32, add_* flags bool. An unknown key is refused rather than guessed.
 */
export function tokenizerMetadata(meta: Map<string, GgufValue>): [string, TypedValue][] {
  const out: [string, TypedValue][] = [];
  for (const [key, value] of meta) {
    if (!key.startsWith("tokenizer.")) continue;
    const name = key.slice("tokenizer.".length);
    if (typeof value === "string") out.push([key, str(value)]);
    else if (typeof value === "boolean") out.push([key, { type: "bool", value }]);
    else if (name.endsWith("_token_id") && (typeof value === "number" || typeof value === "bigint"))
      out.push([key, u32(Number(value))]);
    else if (Array.isArray(value) && (name === "ggml.tokens" || name === "ggml.merges"))
      out.push([key, { type: "array", of: "string", value: value.map(String) }]);
    else if (Array.isArray(value) && name === "ggml.token_type")
      out.push([key, { type: "array", of: "i32", value: value.map(Number) }]);
    else if (Array.isArray(value) && name === "ggml.scores")
      out.push([key, { type: "array", of: "f32", value: value.map(Number) }]);
    else throw new Error(`tokenizerMetadata: ${key} has no known GGUF type here; add it to the writer`);
  }
  return out;
}
