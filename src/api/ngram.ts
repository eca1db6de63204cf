// The static n-gram table's files: where `hsd ngram build` stores one for a tokenizer, and how Hsd.open finds it.
// A table is keyed by the tokenizer fingerprint of the target it was built with (src/gguf/model-info.ts): a table
// built for another vocabulary would propose meaningless ids, so it is refused with the reason.

import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Hsd } from "./hsd.js";
import type { SamplingSettings } from "./sampling.js";
import { BUILTIN_CALIBRATION_PROMPTS } from "../calibration/prompts.js";
import { defaultCacheDir } from "../calibration/cache.js";
import type { ModelInfo } from "../gguf/model-info.js";
import { NgramTable, NgramTableLevel } from "../levels/ngram-table.js";
import { InvalidOptionError, VocabularyMismatchError } from "../errors.js";

/** Where `hsd ngram build` stores the table of a tokenizer unless told otherwise. */
export function defaultTablePath(target: Pick<ModelInfo, "vocabFingerprint">, cacheDir = defaultCacheDir()): string {
  return join(cacheDir, `ngram-${target.vocabFingerprint.slice(0, 24)}.table`);
}

/**
 * The table Hsd.open uses: the file named (null: none), else the one stored for the target's tokenizer, if any.
 */
export async function openNgramTable(
  file: string | null | undefined,
  target: Pick<ModelInfo, "vocabFingerprint" | "file">,
  cacheDir?: string,
): Promise<{ level: NgramTableLevel; path: string; size: number; mtimeMs: number } | null> {
  if (file === null) return null;
  const path = file ?? defaultTablePath(target, cacheDir);
  let size: number;
  let mtimeMs: number;
  try {
    const s = await stat(path);
    size = s.size;
    mtimeMs = Math.floor(s.mtimeMs);
  } catch {
    if (file === undefined) return null; // no stored table: the default is "none"
    return NgramTable.load(path).then(() => null); // rethrows the load's error, which names the file
  }
  const table = await NgramTable.load(path);
  if (table.header.fingerprint !== target.vocabFingerprint) {
    throw new VocabularyMismatchError(
      `${path}: this n-gram table was built for another tokenizer than ${target.file}'s; rebuild it with \`hsd ngram build\``,
    );
  }
  return { level: new NgramTableLevel(table), path, size, mtimeMs };
}

export interface BuildRequest {
  /** A text file to count in (tokenized with the target's tokenizer). */
  text?: string;
  /** Or: this many tokens of the target's own output after the prompts. */
  samples?: number;
  prompts?: string[];
  sampling?: SamplingSettings;
  order: number;
  minCount: number;
  /** Default: the cache folder's file for the tokenizer (where Hsd.open finds it). */
  out?: string;
  onProgress?: (done: number, total: number) => void;
}

/** Builds and stores a table for the target of `hsd`: `hsd ngram build`. */
export async function buildNgramTable(
  hsd: Hsd,
  request: BuildRequest,
): Promise<{ path: string; order: number; tokens: number; contexts: number }> {
  const target = hsd.target;
  const streams: Int32Array[] = [];
  let source: string;
  if (request.text !== undefined) {
    let text: string;
    try {
      text = await readFile(request.text, "utf8");
    } catch (error) {
      throw new InvalidOptionError(
        `--text ${request.text}: cannot read it (${(error as NodeJS.ErrnoException).code ?? error})`,
      );
    }
    // Paragraph by paragraph: one tokenizer call per paragraph keeps memory flat on large files.
    const paragraphs = text.split(/\n\s*\n/).filter((p) => p.trim().length > 0);
    let done = 0;
    for (const p of paragraphs) {
      const tokens = target.native.tokenize(p, false, false);
      streams.push(tokens);
      done += tokens.length;
      request.onProgress?.(done, done);
    }
    source = `text ${request.text}`;
  } else {
    const total = request.samples!;
    const prompts = request.prompts ?? [...BUILTIN_CALIBRATION_PROMPTS];
    let done = 0;
    for (let i = 0; done < total; i++) {
      const prompt = prompts[i % prompts.length]!;
      const run = hsd.generate(prompt, {
        hierarchy: { files: [target.info.file], thresholds: [] },
        sampling: { ...request.sampling, seed: (request.sampling?.seed ?? 1) + i },
        maxTokens: Math.min(256, total - done),
      });
      const r = await run.result;
      streams.push(Int32Array.from([...target.native.tokenize(prompt, false, false), ...r.tokens]));
      done += r.tokens.length;
      request.onProgress?.(done, total);
    }
    source = `${done} tokens of ${target.info.file}'s own output`;
  }
  const table = NgramTable.build(
    streams,
    { order: request.order, vocabSize: target.native.vocabSize, fingerprint: target.info.vocabFingerprint, source },
    request.minCount,
  );
  const path = request.out ?? defaultTablePath(target.info);
  await mkdir(dirname(path), { recursive: true });
  await table.save(path);
  return { path, order: request.order, tokens: table.header.tokens, contexts: table.size };
}
