// Sets `tokenizer.chat_template` in GGUF files in place, leaving everything else as it is: the other metadata
// entries, the tensor table and the tensor data are copied byte for byte (only the padding before the data
// changes), so the models compute exactly what they did and their vocabulary fingerprint is unchanged.
//
//   npx tsx scripts/models/set-chat-template.ts [--template scripts/models/chat_template.jinja] models/tiny/*.gguf
//
// The bundled family got its template this way; export_gguf.py writes the same template when it rebuilds them.

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { readGgufHeader } from "../../src/gguf/reader.js";
import { CHAT_TEMPLATE_KEY } from "../../src/chat/template.js";

const GGUF_BOOL = 7;
const GGUF_STRING = 8;
const GGUF_ARRAY = 9;
/** Byte size of the fixed-size GGUF value types (gguf.h's enum gguf_type), by type id. */
const FIXED_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const DEFAULT_ALIGNMENT = 32;

/** A cursor over the header: just enough of GGUF v2/v3 to find where each entry starts and ends. */
class Cursor {
  at = 0;
  constructor(private readonly bytes: Buffer) {}
  u32(): number {
    const v = this.bytes.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }
  u64(): number {
    const v = Number(this.bytes.readBigUInt64LE(this.at));
    this.at += 8;
    return v;
  }
  string(): string {
    const length = this.u64();
    const text = this.bytes.toString("utf8", this.at, this.at + length);
    this.at += length;
    return text;
  }
  skipValue(type: number): void {
    if (type === GGUF_STRING) {
      const length = this.u64(); // read before `at` is: `this.at += this.u64()` would drop the length's 8 bytes
      this.at += length;
    } else if (type === GGUF_ARRAY) {
      const elementType = this.u32();
      const count = this.u64();
      for (let i = 0; i < count; i++) this.skipValue(elementType);
    } else if (FIXED_SIZE[type] !== undefined) this.at += FIXED_SIZE[type]!;
    else throw new Error(`unknown GGUF value type ${type} at byte ${this.at}`);
  }
}

/** One metadata entry: key, value type, value (strings and booleans are all this needs). */
function entry(key: string, value: string | boolean): Buffer {
  const k = Buffer.from(key, "utf8");
  const v = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from([value ? 1 : 0]);
  const head = Buffer.alloc(8 + k.length + 4 + (typeof value === "string" ? 8 : 0));
  let at = head.writeBigUInt64LE(BigInt(k.length), 0);
  at += k.copy(head, at);
  at = head.writeUInt32LE(typeof value === "string" ? GGUF_STRING : GGUF_BOOL, at);
  if (typeof value === "string") head.writeBigUInt64LE(BigInt(v.length), at);
  return Buffer.concat([head, v]);
}

/**
 * The file's bytes with `key` set to `value` (replaced if present, else appended to the metadata), or removed
 * when `value` is null. The tests use it to make variants of the bundled models (no template, add_bos on).
 */
export function withMetadata(bytes: Buffer, key: string, value: string | boolean | null): Buffer {
  if (bytes.toString("latin1", 0, 4) !== "GGUF") throw new Error("not a GGUF file");
  const c = new Cursor(bytes);
  c.at = 4;
  const version = c.u32();
  if (version < 2) throw new Error(`GGUF version ${version} is not supported (2 or 3)`);
  const tensorCount = c.u64();
  const kvCount = c.u64();
  const entries: Buffer[] = [];
  let alignment = DEFAULT_ALIGNMENT;
  for (let i = 0; i < kvCount; i++) {
    const start = c.at;
    const name = c.string();
    const type = c.u32();
    const valueAt = c.at;
    c.skipValue(type);
    if (name === "general.alignment") alignment = bytes.readUInt32LE(valueAt);
    if (name !== key) entries.push(bytes.subarray(start, c.at));
  }
  if (value !== null) entries.push(entry(key, value));
  const tensorsStart = c.at;
  for (let i = 0; i < tensorCount; i++) {
    c.string();
    const dims = c.u32();
    c.at += 8 * dims + 4 + 8; // dims, type, offset (relative to the data section: unchanged)
  }
  const tensorTable = bytes.subarray(tensorsStart, c.at);
  const oldDataStart = Math.ceil(c.at / alignment) * alignment;

  const counts = Buffer.alloc(24);
  bytes.copy(counts, 0, 0, 8); // magic, version
  counts.writeBigUInt64LE(BigInt(tensorCount), 8);
  counts.writeBigUInt64LE(BigInt(entries.length), 16);
  const header = Buffer.concat([counts, ...entries, tensorTable]);
  const padding = Buffer.alloc(Math.ceil(header.length / alignment) * alignment - header.length);
  return Buffer.concat([header, padding, bytes.subarray(oldDataStart)]);
}

const json = (value: unknown) => JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf("--template");
  const templatePath =
    at >= 0 ? args.splice(at, 2)[1] : fileURLToPath(new URL("./chat_template.jinja", import.meta.url));
  if (!templatePath || args.length === 0)
    throw new Error("usage: set-chat-template.ts [--template FILE] FILE.gguf ...");
  const template = readFileSync(templatePath, "utf8");
  for (const file of args) {
    const before = await readGgufHeader(file);
    const bytes = readFileSync(file);
    const patched = withMetadata(bytes, CHAT_TEMPLATE_KEY, template);
    writeFileSync(`${file}.tmp`, patched);
    // The result must read back with the same tensors, the same data bytes and the template.
    const after = await readGgufHeader(`${file}.tmp`);
    const sameData = bytes.subarray(before.dataOffset).equals(patched.subarray(after.dataOffset));
    if (!sameData || json(after.tensors) !== json(before.tensors))
      throw new Error(`${file}: the patched file's tensors differ; not replaced`);
    if (after.metadata.get(CHAT_TEMPLATE_KEY) !== template) throw new Error(`${file}: the template did not read back`);
    renameSync(`${file}.tmp`, file);
    console.log(`${file}: ${CHAT_TEMPLATE_KEY} set (${template.length} characters), tensor data unchanged`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(`set-chat-template: ${error instanceof Error ? error.message : error}`);
    process.exitCode = 1;
  });
}
