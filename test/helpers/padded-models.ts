// Test material for vocabularies that differ only by padding (docs/ALGORITHM.md §11), written at test time from
// llama.cpp's own tokenizer files (extracted from node-llama-cpp's bundle; nothing of them is committed): small
// random-weight qwen2 models carrying the real Qwen2 tokenizer, padded as the converter pads, as Qwen2.5-0.5B
// (151,936 ids) and Qwen2.5-7B (152,064 ids) are.
//
// The weights are chosen so that the tests see what they must: the token embedding E and the output projection W
// are shared by every model on the ids they share (so the models agree often and drafts get accepted), and the
// transformer blocks are random and small next to E (so the models differ a little). A few padding rows of W point
// along the embedding of one token, so that right after that token the target puts much of its mass on padding:
// after "Hello", on 152000 (only the larger vocabulary has it: a draft can never propose it, only the residual and
// the bonus token can emit it) and on 151700 (both have it); after " Hello", on 151940.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  bundledVocabulary,
  padVocabulary,
  readTokenizer,
  withTokenText,
  writeRandomModel,
} from "../../scripts/lib/random-model.js";
import type { ModelShape } from "../../scripts/lib/random-model.js";
import type { TypedValue } from "../../scripts/lib/gguf-writer.js";
import { Rng } from "../../src/util/rng.js";

export const SMALL = 151936;
export const LARGE = 152064;
/** Padding rows of W aligned with a token's embedding (its text), and how long they are (see the header). */
export const FAVOURED_PADDING: { id: number; after: string; length: number }[] = [
  { id: 152000, after: "Hello", length: 2.6 },
  { id: 151700, after: "Hello", length: 2.4 },
  { id: 151940, after: "\u0120Hello", length: 2.6 },
];
/** Where the test edits one token's text (a refusal case). */
export const EDITED_ID = 1000;

const EMBEDDING = 32;
const shape = (layers: number): ModelShape => ({
  architecture: "qwen2",
  embedding: EMBEDDING,
  layers,
  heads: 2,
  kvHeads: 1,
  feedForward: 64,
  tied: false,
  ropeBase: 1e6,
  contextLength: 4096,
});

/** N(0, std²) values, `rows` rows of EMBEDDING, from a seeded stream. */
function normalRows(rows: number, std: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(rows * EMBEDDING);
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.next())) * std;
    const a = 2 * Math.PI * rng.next();
    out[i] = r * Math.cos(a);
    out[i + 1] = r * Math.sin(a);
  }
  return out;
}

export interface PaddedFiles {
  /** Folder with the 151,936-id draft and the 152,064-id target. */
  pair: string;
  draft: string;
  target: string;
  /** Folder with a 152,064-id draft (which favours padding ids it must not propose) under a 151,936-id target. */
  wideDraftPair: string;
  /** Refusal cases: the draft with one shared id's text changed, a draft with another tokenizer, another EOS. */
  editedText: string;
  otherTokenizer: string;
  otherEos: string;
}

/** Writes every file into `dir` (about 110 MB; several seconds). `vocabDir` caches the extracted tokenizers. */
export async function writePaddedModels(dir: string, vocabDir: string): Promise<PaddedFiles> {
  const qwen = await readTokenizer(bundledVocabulary("qwen2", vocabDir));
  const texts = qwen.get("tokenizer.ggml.tokens")!.value as readonly string[];
  const embedding = normalRows(LARGE, 0.5, 1);
  const output = normalRows(LARGE, 0.5, 2);
  for (const f of FAVOURED_PADDING) {
    const t = texts.indexOf(f.after);
    if (t < 0) throw new Error(`writePaddedModels: no token ${JSON.stringify(f.after)} in the Qwen2 vocabulary`);
    const e = embedding.subarray(t * EMBEDDING, (t + 1) * EMBEDDING);
    const norm = Math.hypot(...e);
    for (let d = 0; d < EMBEDDING; d++) output[f.id * EMBEDDING + d] = (f.length * e[d]!) / norm;
  }
  const values = (vocab: number) =>
    new Map([
      ["token_embd.weight", embedding.subarray(0, vocab * EMBEDDING)],
      ["output.weight", output.subarray(0, vocab * EMBEDDING)],
    ]);
  const write = (folder: string, file: string, tokenizer: Map<string, TypedValue>, layers: number, seed: number) => {
    mkdirSync(join(dir, folder), { recursive: true });
    const path = join(dir, folder, file);
    const vocab = (tokenizer.get("tokenizer.ggml.tokens")!.value as readonly string[]).length;
    writeRandomModel(path, {
      shape: shape(layers),
      tokenizer,
      type: layers === 1 ? "Q8_0" : "F16",
      name: file.replace(/\.gguf$/, ""),
      seed,
      std: 0.03,
      values: values(vocab),
    });
    return path;
  };
  const small = padVocabulary(qwen, SMALL);
  const large = padVocabulary(qwen, LARGE);
  const draft = write("pair", "qwen-draft-151936.gguf", small, 1, 11);
  const target = write("pair", "qwen-target-152064.gguf", large, 3, 12);
  write("wide", "qwen-draft-152064.gguf", large, 1, 13);
  write("wide", "qwen-target-151936.gguf", small, 3, 14);
  const editedText = write("refused", "qwen-draft-edited.gguf", withTokenText(small, EDITED_ID, "<edited>"), 1, 11);
  const llama = await readTokenizer(bundledVocabulary("llama-bpe", vocabDir));
  const otherTokenizer = write("refused", "llama-bpe-draft.gguf", llama, 1, 15);
  const eos = new Map(small).set("tokenizer.ggml.eos_token_id", { type: "u32", value: 151645 });
  const otherEos = write("refused", "qwen-draft-other-eos.gguf", eos, 1, 16);
  return {
    pair: join(dir, "pair"),
    draft,
    target,
    wideDraftPair: join(dir, "wide"),
    editedText,
    otherTokenizer,
    otherEos,
  };
}
