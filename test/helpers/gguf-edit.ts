// A GGUF file taken apart into typed fields and put back together, for tests that need corrupt or unusual files:
// every metadata value keeps its GGUF type, so a test can change a value, its type, an array's length or a tensor's
// shape and write a file that differs only there. (src/gguf/reader.ts reads values without their types.)

import { GGUF_TYPE } from "../../src/gguf/reader.js";

/** GGUF metadata value types (gguf.h's enum gguf_type). */
export const T = GGUF_TYPE;

export type Scalar = number | bigint | boolean | string;

export interface GgufKv {
  key: string;
  type: number;
  /** For arrays, the item type. */
  itemType?: number;
  value: Scalar | Scalar[];
}

export interface GgufTensor {
  name: string;
  dims: bigint[];
  type: number;
  offset: bigint;
}

export interface GgufFile {
  version: number;
  kvs: GgufKv[];
  tensors: GgufTensor[];
  /** The tensor data, from the (aligned) start of the data section to the end of the file. */
  data: Buffer;
}

export function parseGguf(bytes: Buffer): GgufFile {
  let at = 0;
  const u32 = () => ((at += 4), bytes.readUInt32LE(at - 4));
  const u64 = () => ((at += 8), bytes.readBigUInt64LE(at - 8));
  const str = () => {
    const n = Number(u64());
    at += n;
    return bytes.toString("utf8", at - n, at);
  };
  const scalar = (type: number): Scalar => {
    switch (type) {
      case T.u8:
        return bytes.readUInt8((at += 1) - 1);
      case T.i8:
        return bytes.readInt8((at += 1) - 1);
      case T.u16:
        return bytes.readUInt16LE((at += 2) - 2);
      case T.i16:
        return bytes.readInt16LE((at += 2) - 2);
      case T.u32:
        return u32();
      case T.i32:
        return bytes.readInt32LE((at += 4) - 4);
      case T.f32:
        return bytes.readFloatLE((at += 4) - 4);
      case T.bool:
        return bytes.readUInt8((at += 1) - 1) !== 0;
      case T.string:
        return str();
      case T.u64:
        return u64();
      case T.i64:
        return bytes.readBigInt64LE((at += 8) - 8);
      case T.f64:
        return bytes.readDoubleLE((at += 8) - 8);
      default:
        throw new Error(`gguf-edit: value type ${type} not handled`);
    }
  };
  if (bytes.toString("latin1", 0, 4) !== "GGUF") throw new Error("gguf-edit: not a GGUF file");
  at = 4;
  const version = u32();
  const tensorCount = Number(u64());
  const kvCount = Number(u64());
  const kvs: GgufKv[] = [];
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    const type = u32();
    if (type === T.array) {
      const itemType = u32();
      const n = Number(u64());
      const value: Scalar[] = [];
      for (let j = 0; j < n; j++) value.push(scalar(itemType));
      kvs.push({ key, type, itemType, value });
    } else {
      kvs.push({ key, type, value: scalar(type) });
    }
  }
  const tensors: GgufTensor[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = str();
    const nDims = u32();
    const dims: bigint[] = [];
    for (let d = 0; d < nDims; d++) dims.push(u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const alignment = alignmentOf(kvs);
  const dataStart = Math.ceil(at / alignment) * alignment;
  return { version, kvs, tensors, data: bytes.subarray(dataStart) };
}

function alignmentOf(kvs: GgufKv[]): number {
  const a = kvs.find((kv) => kv.key === "general.alignment")?.value;
  return typeof a === "number" && a > 0 ? a : 32;
}

export function writeGguf(file: GgufFile): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    parts.push(b);
  };
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, v));
    parts.push(b);
  };
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    u64(BigInt(b.length));
    parts.push(b);
  };
  const scalar = (type: number, v: Scalar) => {
    const b = Buffer.alloc(8);
    switch (type) {
      case T.u8:
        return parts.push(b.subarray(0, (b.writeUInt8(Number(v) & 0xff), 1)));
      case T.i8:
        return parts.push(b.subarray(0, (b.writeInt8(((Number(v) + 128) & 0xff) - 128), 1)));
      case T.u16:
        return parts.push(b.subarray(0, (b.writeUInt16LE(Number(v) & 0xffff), 2)));
      case T.i16:
        return parts.push(b.subarray(0, (b.writeInt16LE(((Number(v) + 32768) & 0xffff) - 32768), 2)));
      case T.u32:
        return parts.push(
          b.subarray(0, (b.writeUInt32LE(Number(BigInt.asUintN(32, BigInt(Math.trunc(Number(v)))))), 4)),
        );
      case T.i32:
        return parts.push(b.subarray(0, (b.writeInt32LE(Number(BigInt.asIntN(32, BigInt(Math.trunc(Number(v)))))), 4)));
      case T.f32:
        return parts.push(b.subarray(0, (b.writeFloatLE(Number(v)), 4)));
      case T.bool:
        return parts.push(b.subarray(0, (b.writeUInt8(v ? 1 : 0), 1)));
      case T.string:
        return str(String(v));
      case T.u64:
        return u64(BigInt.asUintN(64, typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)))));
      case T.i64:
        return u64(BigInt.asUintN(64, typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)))));
      case T.f64:
        return parts.push((b.writeDoubleLE(Number(v)), b));
      default:
        throw new Error(`gguf-edit: value type ${type} not handled`);
    }
  };
  parts.push(Buffer.from("GGUF", "latin1"));
  u32(file.version);
  u64(BigInt(file.tensors.length));
  u64(BigInt(file.kvs.length));
  for (const kv of file.kvs) {
    str(kv.key);
    u32(kv.type);
    if (kv.type === T.array) {
      const items = kv.value as Scalar[];
      u32(kv.itemType!);
      u64(BigInt(items.length));
      for (const item of items) scalar(kv.itemType!, item);
    } else {
      scalar(kv.type, kv.value as Scalar);
    }
  }
  for (const t of file.tensors) {
    str(t.name);
    u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(t.type);
    u64(t.offset);
  }
  const header = Buffer.concat(parts);
  const alignment = alignmentOf(file.kvs);
  const padded = Math.ceil(header.length / alignment) * alignment;
  return Buffer.concat([header, Buffer.alloc(padded - header.length), file.data]);
}

export function cloneGguf(file: GgufFile): GgufFile {
  return {
    version: file.version,
    kvs: file.kvs.map((kv) => ({ ...kv, value: Array.isArray(kv.value) ? [...kv.value] : kv.value })),
    tensors: file.tensors.map((t) => ({ ...t, dims: [...t.dims] })),
    data: file.data,
  };
}

/**
 * Lays the tensors' data out again after their shapes or types changed, as a writer would: each tensor at the next
 * aligned offset, its old bytes copied (cut or zero-padded to its new size). Tensors of a type unknown here keep
 * their old size.
 */
export function relayout(file: GgufFile, bytesOf: (t: { shape: number[]; type: number }) => number | null): void {
  const alignment = alignmentOf(file.kvs);
  const pieces: Buffer[] = [];
  let offset = 0n;
  const old = file.tensors.map((t, i) => {
    const end = i + 1 < file.tensors.length ? file.tensors[i + 1]!.offset : BigInt(file.data.length);
    return file.data.subarray(Number(t.offset), Number(end));
  });
  file.tensors.forEach((t, i) => {
    const size = bytesOf({ shape: t.dims.map(Number), type: t.type }) ?? old[i]!.length;
    const padded = Math.ceil(size / alignment) * alignment;
    const piece = Buffer.alloc(padded);
    old[i]!.copy(piece, 0, 0, Math.min(size, old[i]!.length));
    pieces.push(piece);
    t.offset = offset;
    offset += BigInt(padded);
  });
  file.data = Buffer.concat(pieces);
}
