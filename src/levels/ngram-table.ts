// A static n-gram table: a model-free level (docs/ALGORITHM.md §8) that proposes, token by token, the most frequent
// continuation of the text's last tokens in a corpus tokenized with the target's tokenizer (a text file, or the
// target's own samples: `hsd ngram build`). It backs off from the longest context it knows to shorter ones, and
// stops proposing (abstains) where the best continuation is not frequent enough — a point mass per token, like the
// context lookup, so the output stays exact.
//
// The table keeps, per context of 1 … order-1 tokens seen at least `minCount` times, only what a proposal needs:
// the most frequent next token, its count and the context's total. A context is a key in one Map per length (token
// ids packed into one number: exact for vocabularies up to 2^17 and contexts of up to 3 tokens, hashed beyond).
// On disk: a small JSON header (order, the tokenizer fingerprint it was built for, the source) then the records as
// Int32 little-endian.

import { open, readFile, writeFile, rename } from "node:fs/promises";
import type { ProposalLevel } from "./level.js";
import { HsdError, InvalidOptionError } from "../errors.js";

const MAGIC = "hsd-ngram-table 1\n";

export interface NgramTableHeader {
  order: number;
  vocabSize: number;
  /** The target tokenizer's fingerprint (src/gguf/model-info.ts): a table only serves that tokenizer. */
  fingerprint: string;
  /** What it was built from, for people. */
  source: string;
  /** Tokens counted. */
  tokens: number;
}

/** One context's best continuation. */
interface Entry {
  next: number;
  count: number;
  total: number;
}

function keyOf(sequence: ArrayLike<number>, end: number, length: number, vocabSize: number): number {
  let key = 0;
  for (let i = end - length; i < end; i++) {
    key = key * vocabSize + sequence[i]!;
    if (key > Number.MAX_SAFE_INTEGER / vocabSize) key = key % 2 ** 40; // hashed beyond exact packing (rare)
  }
  return key;
}

export class NgramTable {
  /** contexts[k - 1]: contexts of k tokens. */
  private constructor(
    readonly header: NgramTableHeader,
    private readonly contexts: Map<number, Entry>[],
  ) {}

  /**
   * Counts every n-gram of `order` tokens and shorter in the token streams, and keeps each context's best
   * continuation where the context occurred at least `minCount` times.
   */
  static build(
    streams: Iterable<ArrayLike<number>>,
    header: Omit<NgramTableHeader, "tokens">,
    minCount = 2,
  ): NgramTable {
    const { order, vocabSize } = header;
    if (!Number.isInteger(order) || order < 2 || order > 6) {
      throw new InvalidOptionError(`n-gram table: the order must be an integer in 2 … 6, got ${order}`);
    }
    const counts = Array.from({ length: order - 1 }, () => new Map<number, Map<number, number>>());
    let tokens = 0;
    for (const stream of streams) {
      tokens += stream.length;
      for (let end = 1; end < stream.length; end++) {
        const next = stream[end]!;
        for (let k = 1; k < order && k <= end; k++) {
          const key = keyOf(stream, end, k, vocabSize);
          let byNext = counts[k - 1]!.get(key);
          if (!byNext) counts[k - 1]!.set(key, (byNext = new Map()));
          byNext.set(next, (byNext.get(next) ?? 0) + 1);
        }
      }
    }
    const contexts = counts.map((byKey) => {
      const kept = new Map<number, Entry>();
      for (const [key, byNext] of byKey) {
        let total = 0;
        let best = { next: -1, count: 0 };
        for (const [next, count] of byNext) {
          total += count;
          if (count > best.count || (count === best.count && next < best.next)) best = { next, count };
        }
        if (total >= minCount) kept.set(key, { ...best, total });
      }
      return kept;
    });
    return new NgramTable({ ...header, tokens }, contexts);
  }

  /** The best continuation after sequence[0 .. end), from the longest known context; null when none is known. */
  lookup(sequence: ArrayLike<number>, end: number): Entry | null {
    for (let k = Math.min(this.header.order - 1, end); k >= 1; k--) {
      const e = this.contexts[k - 1]!.get(keyOf(sequence, end, k, this.header.vocabSize));
      if (e) return e;
    }
    return null;
  }

  get size(): number {
    return this.contexts.reduce((n, m) => n + m.size, 0);
  }

  async save(path: string): Promise<void> {
    const records: number[] = [];
    this.contexts.forEach((m, k) => {
      for (const [key, e] of m) records.push(k + 1, Math.floor(key / 2 ** 31), key % 2 ** 31, e.next, e.count, e.total);
    });
    const head = Buffer.from(MAGIC + JSON.stringify(this.header) + "\n", "utf8");
    const body = Buffer.from(Int32Array.from(records).buffer);
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, Buffer.concat([head, body]));
    await rename(temp, path);
  }

  /** Reads a table; the error names the file and says what is wrong. */
  static async load(path: string): Promise<NgramTable> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw new InvalidOptionError(
        `${path}: cannot read the n-gram table (${(error as NodeJS.ErrnoException).code ?? error})`,
      );
    }
    const corrupt = (why: string) =>
      new HsdError(`${path}: not a usable n-gram table (${why}); rebuild it with \`hsd ngram build\``);
    if (bytes.subarray(0, MAGIC.length).toString("utf8") !== MAGIC) throw corrupt("wrong header");
    const end = bytes.indexOf(10, MAGIC.length);
    if (end < 0) throw corrupt("no header line");
    let header: NgramTableHeader;
    try {
      header = JSON.parse(bytes.subarray(MAGIC.length, end).toString("utf8")) as NgramTableHeader;
    } catch {
      throw corrupt("unreadable header");
    }
    if (!Number.isInteger(header.order) || header.order < 2 || typeof header.fingerprint !== "string") {
      throw corrupt("header fields");
    }
    const body = bytes.subarray(end + 1);
    if (body.length % 24 !== 0) throw corrupt("truncated records");
    const records = new Int32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
    const contexts = Array.from({ length: header.order - 1 }, () => new Map<number, Entry>());
    for (let i = 0; i < records.length; i += 6) {
      const k = records[i]!;
      if (k < 1 || k >= header.order) throw corrupt(`record ${i / 6} has a context of ${k} tokens`);
      const key = records[i + 1]! * 2 ** 31 + records[i + 2]!;
      contexts[k - 1]!.set(key, { next: records[i + 3]!, count: records[i + 4]!, total: records[i + 5]! });
    }
    return new NgramTable(header, contexts);
  }

  /** Whether a file starts like a table (cheap check before a full load). */
  static async looksLikeTable(path: string): Promise<boolean> {
    try {
      const f = await open(path, "r");
      try {
        const b = Buffer.alloc(MAGIC.length);
        await f.read(b, 0, MAGIC.length, 0);
        return b.toString("utf8") === MAGIC;
      } finally {
        await f.close();
      }
    } catch {
      return false;
    }
  }
}

export interface TableLevelOptions {
  /** A continuation is proposed only if at least this share of the context's occurrences had it (default 0.5). */
  minConfidence?: number;
}

export class NgramTableLevel implements ProposalLevel {
  readonly kind = "proposal";
  readonly name = "ngram-table";
  readonly vocabSize: number;
  private readonly minConfidence: number;

  constructor(
    readonly table: NgramTable,
    options: TableLevelOptions = {},
  ) {
    this.vocabSize = table.header.vocabSize;
    this.minConfidence = options.minConfidence ?? 0.5;
    if (!(this.minConfidence > 0 && this.minConfidence <= 1)) {
      throw new InvalidOptionError(`n-gram table: minConfidence must be in (0, 1], got ${this.minConfidence}`);
    }
  }

  propose(sequence: Int32Array, length: number, max: number): number {
    let n = 0;
    while (n < max) {
      const e = this.table.lookup(sequence, length + n);
      if (!e || e.count < this.minConfidence * e.total) break;
      sequence[length + n] = e.next;
      n++;
    }
    return n;
  }
}
