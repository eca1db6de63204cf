// Reads a GGUF file's header — metadata and tensor table — without touching the weights, so a
// folder of multi-gigabyte models can be scanned in milliseconds. It makes the checks ggml's own
// reader (gguf_init_from_file) makes — tensor types, shapes, names and data offsets — and checks
// that the file is long enough to hold every tensor it declares: a truncated download or a corrupt
// table is caught here with a message that names the file, before llama.cpp sees it.

import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { GgufFormatError } from "../errors.js";

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  shape: number[];
  type: number;
  offset: bigint;
}

/** GGUF metadata value types (gguf.h's enum gguf_type). */
export const GGUF_TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export interface GgufHeader {
  path: string;
  version: number;
  fileSize: number;
  metadata: Map<string, GgufValue>;
  /** Each key's GGUF value type (for arrays: GGUF_TYPE.array; the items' type is in `arrayTypes`). */
  types: Map<string, number>;
  arrayTypes: Map<string, number>;
  tensors: GgufTensorInfo[];
  /** Sum of the elements of every tensor. */
  parameterCount: number;
  /** Bytes the tensor data needs, by the ggml type sizes. */
  dataBytes: number;
  dataOffset: number;
}

/** Bytes of one tensor's data by its ggml type, or null when the type is not one this reader knows. */
export function tensorBytes(t: Pick<GgufTensorInfo, "shape" | "type">): number | null {
  const sizes = GGML_TYPE_SIZES[t.type];
  if (!sizes) return null;
  return Math.ceil(t.shape.reduce((a, b) => a * b, 1) / sizes[0]) * sizes[1];
}

/** [elements per block, bytes per block] of the ggml tensor types (ggml.h's enum ggml_type). */
const GGML_TYPE_SIZES: Record<number, [number, number]> = {
  0: [1, 4],
  1: [1, 2],
  2: [32, 18],
  3: [32, 20],
  6: [32, 22],
  7: [32, 24],
  8: [32, 34],
  9: [32, 36],
  10: [256, 84],
  11: [256, 110],
  12: [256, 144],
  13: [256, 176],
  14: [256, 210],
  15: [256, 292],
  16: [256, 66],
  17: [256, 74],
  18: [256, 98],
  19: [256, 50],
  20: [32, 18],
  21: [256, 110],
  22: [256, 82],
  23: [256, 136],
  24: [1, 1],
  25: [1, 2],
  26: [1, 4],
  27: [1, 8],
  28: [1, 8],
  29: [256, 56],
  30: [1, 2],
  34: [256, 54],
  35: [256, 66],
  39: [32, 17],
  40: [64, 36],
  41: [128, 18],
  42: [64, 18],
};

export const GGML_TYPE_NAMES: Record<number, string> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  8: "Q8_0",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
  30: "BF16",
  34: "TQ1_0",
  35: "TQ2_0",
  39: "MXFP4",
  40: "NVFP4",
  41: "Q1_0",
  42: "Q2_0",
};

/** ggml's limits on tensors (ggml.h): dimensions, and name length including the terminating zero. */
const GGML_MAX_DIMS = 4;
const GGML_MAX_NAME = 64;

/** Sanity bounds: a corrupt length field must not make us allocate gigabytes. */
const MAX_STRING_BYTES = 1 << 24;
const MAX_ARRAY_ITEMS = 1 << 26;

class Cursor {
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;
  position = 0;

  constructor(
    private readonly file: FileHandle,
    private readonly path: string,
    readonly fileSize: number,
  ) {}

  private async need(bytes: number): Promise<void> {
    const end = this.position + bytes;
    if (end > this.fileSize)
      throw new GgufFormatError(this.path, `truncated header (needs byte ${end}, the file has ${this.fileSize})`);
    if (this.position >= this.bufferStart && end <= this.bufferStart + this.buffer.length) return;
    const size = Math.min(Math.max(bytes, 1 << 20), this.fileSize - this.position);
    const chunk = Buffer.alloc(size);
    const { bytesRead } = await this.file.read(chunk, 0, size, this.position);
    if (bytesRead < bytes) throw new GgufFormatError(this.path, "unexpected end of file while reading the header");
    this.buffer = chunk;
    this.bufferStart = this.position;
  }

  private at(): number {
    return this.position - this.bufferStart;
  }

  async u8(): Promise<number> {
    await this.need(1);
    const v = this.buffer.readUInt8(this.at());
    this.position += 1;
    return v;
  }
  async i8(): Promise<number> {
    await this.need(1);
    const v = this.buffer.readInt8(this.at());
    this.position += 1;
    return v;
  }
  async u16(): Promise<number> {
    await this.need(2);
    const v = this.buffer.readUInt16LE(this.at());
    this.position += 2;
    return v;
  }
  async i16(): Promise<number> {
    await this.need(2);
    const v = this.buffer.readInt16LE(this.at());
    this.position += 2;
    return v;
  }
  async u32(): Promise<number> {
    await this.need(4);
    const v = this.buffer.readUInt32LE(this.at());
    this.position += 4;
    return v;
  }
  async i32(): Promise<number> {
    await this.need(4);
    const v = this.buffer.readInt32LE(this.at());
    this.position += 4;
    return v;
  }
  async f32(): Promise<number> {
    await this.need(4);
    const v = this.buffer.readFloatLE(this.at());
    this.position += 4;
    return v;
  }
  async f64(): Promise<number> {
    await this.need(8);
    const v = this.buffer.readDoubleLE(this.at());
    this.position += 8;
    return v;
  }
  async u64(): Promise<bigint> {
    await this.need(8);
    const v = this.buffer.readBigUInt64LE(this.at());
    this.position += 8;
    return v;
  }
  async i64(): Promise<bigint> {
    await this.need(8);
    const v = this.buffer.readBigInt64LE(this.at());
    this.position += 8;
    return v;
  }

  async count(what: string, max: number): Promise<number> {
    const n = await this.u64();
    if (n > BigInt(max)) throw new GgufFormatError(this.path, `implausible ${what} (${n}): the file is corrupt`);
    return Number(n);
  }

  async string(): Promise<string> {
    const length = await this.count("string length", MAX_STRING_BYTES);
    await this.need(length);
    const v = this.buffer.toString("utf8", this.at(), this.at() + length);
    this.position += length;
    return v;
  }
}

async function readValue(cursor: Cursor, type: number, path: string): Promise<GgufValue> {
  switch (type) {
    case 0:
      return cursor.u8();
    case 1:
      return cursor.i8();
    case 2:
      return cursor.u16();
    case 3:
      return cursor.i16();
    case 4:
      return cursor.u32();
    case 5:
      return cursor.i32();
    case 6:
      return cursor.f32();
    case 7:
      return (await cursor.u8()) !== 0;
    case 8:
      return cursor.string();
    case 9: {
      const itemType = await cursor.u32();
      const n = await cursor.count("array length", MAX_ARRAY_ITEMS);
      const items: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) items[i] = await readValue(cursor, itemType, path);
      return items;
    }
    case 10:
      return cursor.u64();
    case 11:
      return cursor.i64();
    case 12:
      return cursor.f64();
    default:
      throw new GgufFormatError(
        path,
        `unknown metadata value type ${type}: the file is corrupt or from a newer GGUF version`,
      );
  }
}

/** Reads and validates the header of a GGUF file. Throws GgufFormatError (naming the path) on any defect. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  let file: FileHandle;
  try {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever.
    file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new GgufFormatError(path, code === "ENOENT" ? "no such file" : `cannot open (${code ?? String(error)})`);
  }
  try {
    const stats = await file.stat();
    if (!stats.isFile()) throw new GgufFormatError(path, `not a regular file (${fileKind(stats)})`);
    const { size } = stats;
    const cursor = new Cursor(file, path, size);
    if (size < 24) throw new GgufFormatError(path, `not a GGUF file (only ${size} bytes)`);
    const magic = Buffer.alloc(4);
    await file.read(magic, 0, 4, 0);
    if (magic.toString("latin1") !== "GGUF")
      throw new GgufFormatError(path, "not a GGUF file (the first 4 bytes are not 'GGUF')");
    cursor.position = 4;
    const version = await cursor.u32();
    if (version < 2 || version > 3) throw new GgufFormatError(path, `unsupported GGUF version ${version}`);
    const tensorCount = await cursor.count("tensor count", 1 << 20);
    const kvCount = await cursor.count("metadata count", 1 << 20);

    const metadata = new Map<string, GgufValue>();
    const types = new Map<string, number>();
    const arrayTypes = new Map<string, number>();
    for (let i = 0; i < kvCount; i++) {
      const key = await cursor.string();
      if (key.length === 0) throw new GgufFormatError(path, `metadata key ${i} is empty: the file is corrupt`);
      if (metadata.has(key)) throw new GgufFormatError(path, `metadata key ${key} appears twice: the file is corrupt`);
      const type = await cursor.u32();
      if (type === GGUF_TYPE.array) {
        const at = cursor.position;
        arrayTypes.set(key, await cursor.u32());
        cursor.position = at;
      }
      types.set(key, type);
      metadata.set(key, await readValue(cursor, type, path));
    }
    const alignmentValue = metadata.get("general.alignment");
    if (alignmentValue !== undefined && types.get("general.alignment") !== GGUF_TYPE.u32)
      throw new GgufFormatError(path, "general.alignment must be a u32: the file is corrupt");
    const alignment = Number(alignmentValue ?? 32);
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0)
      throw new GgufFormatError(path, `general.alignment ${alignment} is not a power of 2: the file is corrupt`);

    // The tensor table, checked as gguf_init_from_file checks it; every tensor's data follows the previous one's
    // (padded to the alignment), so the expected offset is a running sum.
    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    let parameterCount = 0;
    let dataBytes = 0;
    let dataEnd = 0n; // padded: where the next tensor must start
    let lastEnd = 0n; // where the last tensor's bytes end
    for (let i = 0; i < tensorCount; i++) {
      const name = await cursor.string();
      const corrupt = (what: string) => new GgufFormatError(path, `tensor ${name} ${what}: the file is corrupt`);
      if (Buffer.byteLength(name) >= GGML_MAX_NAME) throw corrupt(`has a name longer than ${GGML_MAX_NAME - 1} bytes`);
      if (names.has(name)) throw corrupt("appears twice");
      names.add(name);
      const dims = await cursor.u32();
      if (dims > GGML_MAX_DIMS) throw corrupt(`has ${dims} dimensions (ggml has at most ${GGML_MAX_DIMS})`);
      const shape: bigint[] = [];
      for (let d = 0; d < dims; d++) shape.push(await cursor.u64());
      // ggml reads the sizes as int64: a value with the top bit set is negative.
      if (shape.some((n) => n >= 2n ** 63n)) throw corrupt(`has a negative dimension`);
      const elements = shape.reduce((a, b) => a * b, 1n);
      if (elements >= 2n ** 63n) throw corrupt(`has more than 2^63 elements`);
      const type = await cursor.u32();
      const sizes = GGML_TYPE_SIZES[type];
      if (!sizes) throw corrupt(`has tensor type ${type}, which is not a ggml type this version of llama.cpp loads`);
      if ((shape[0] ?? 1n) % BigInt(sizes[0]) !== 0n)
        throw corrupt(
          `has ${shape[0]} elements per row, not a multiple of the ${GGML_TYPE_NAMES[type]} block size ${sizes[0]}`,
        );
      const offset = await cursor.u64();
      if (offset !== dataEnd)
        throw corrupt(`starts at data offset ${offset}, but the previous tensors end at ${dataEnd}`);
      const bytes = (elements / BigInt(sizes[0])) * BigInt(sizes[1]);
      lastEnd = offset + bytes;
      dataEnd = offset + ((bytes + BigInt(alignment) - 1n) / BigInt(alignment)) * BigInt(alignment);
      tensors.push({ name, shape: shape.map(Number), type, offset });
      parameterCount += Number(elements);
      dataBytes += Number(bytes);
    }
    const dataOffset = Math.ceil(cursor.position / alignment) * alignment;
    // A tokenizer-only file (no tensors) may end before the padded data offset: nothing is missing then.
    if (tensors.length > 0 && BigInt(dataOffset) + lastEnd > BigInt(size)) {
      throw new GgufFormatError(
        path,
        `truncated: its tensors need ${BigInt(dataOffset) + lastEnd} bytes but the file has ${size} (an interrupted download or copy?)`,
      );
    }
    return {
      path,
      version,
      fileSize: size,
      metadata,
      types,
      arrayTypes,
      tensors,
      parameterCount,
      dataBytes,
      dataOffset,
    };
  } finally {
    await file.close();
  }
}

function fileKind(stats: import("node:fs").Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  return "not a plain file";
}
