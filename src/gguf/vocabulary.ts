// Which GGUF vocabularies can verify each other's tokens (docs/ALGORITHM.md §11). Model families often differ only
// by padding: llama.cpp's converter pads a vocabulary to the model's embedding size with "[PAD<n>]" tokens, so
// Qwen2.5-0.5B/1.5B/3B carry 151,936 ids and Qwen2.5-7B and up 152,064, with identical tokens below 151,936. Such
// models are compatible: ids mean the same text wherever both have them, and the ids only one of them has are
// never produced from text. The rule (README, "Your own models"):
//
//   1. the tokenizer model (tokenizer.ggml.model) and the merge rules (tokenizer.ggml.merges) are identical;
//   2. the special-token ids (BOS, EOS, EOT, EOM, padding, unknown, separator, mask) are identical;
//   3. every id both vocabularies have carries the same text and type, or is padding in both;
//   4. every id only the larger vocabulary has is padding.
//
// "Padding": type UNUSED, or the converter's padding text "[PAD<n>]" (older converters typed it USER_DEFINED).

import type { GgufValue } from "./reader.js";

/** llama.cpp's token types (llama_token_type). */
const TOKEN_TYPE_NAMES = ["undefined", "normal", "unknown", "control", "user-defined", "unused", "byte"];
const UNUSED = 5;
const PADDING_TEXT = /^\[PAD\d+\]$/;

/** Special-token keys whose ids must agree for two models to start and stop alike. */
export const SPECIAL_TOKEN_KEYS = ["bos", "eos", "eot", "eom", "pad", "unknown", "seperator", "mask"];

/** What the compatibility rule reads from a GGUF header (kept with the model's info; see ModelInfo.vocabulary). */
export interface VocabularyInfo {
  /** tokenizer.ggml.model ("gpt2", "llama", …), null when absent. */
  model: string | null;
  tokens: readonly string[];
  /** tokenizer.ggml.token_type, null when absent. */
  types: readonly number[] | null;
  merges: readonly string[];
  /** Special-token ids by name ("bos", "eos", …), null when absent. */
  specials: Readonly<Record<string, number | null>>;
}

export function vocabularyInfo(meta: Map<string, GgufValue>): VocabularyInfo {
  const strings = (v: GgufValue | undefined) => (Array.isArray(v) ? v.map(String) : []);
  const types = meta.get("tokenizer.ggml.token_type");
  const model = meta.get("tokenizer.ggml.model");
  const specials: Record<string, number | null> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const v = meta.get(`tokenizer.ggml.${key}_token_id`);
    specials[key] = typeof v === "number" || typeof v === "bigint" ? Number(v) : null;
  }
  return {
    model: typeof model === "string" ? model : null,
    tokens: strings(meta.get("tokenizer.ggml.tokens")),
    types: Array.isArray(types) ? types.map(Number) : null,
    merges: strings(meta.get("tokenizer.ggml.merges")),
    specials,
  };
}

/** Padding: type UNUSED, or the converter's "[PAD<n>]" text. */
export function isPadding(v: Pick<VocabularyInfo, "tokens" | "types">, id: number): boolean {
  return v.types?.[id] === UNUSED || PADDING_TEXT.test(v.tokens[id] ?? "");
}

export type Compatibility =
  | {
      compatible: true;
      /** Why, for people: "same tokenizer", "same tokenizer; the target has 128 extra padding ids", … */
      note: string;
      /** Ids only the larger vocabulary has (all padding). */
      extraIds: number;
    }
  | {
      compatible: false;
      /** What differs, naming the first differing id or merge rule. */
      reason: string;
    };

/**
 * Whether a model with vocabulary `v` can take part in a hierarchy whose target has `target` (the rule above).
 * `targetName` names the target in the messages.
 */
export function compareVocabularies(v: VocabularyInfo, target: VocabularyInfo, targetName: string): Compatibility {
  const refuse = (what: string): Compatibility => ({
    compatible: false,
    reason: `its vocabulary differs from the target ${targetName}'s: ${what}`,
  });
  if (v.model !== target.model) return refuse(`tokenizer model ${v.model} vs ${target.model}`);
  const shown = (x: VocabularyInfo, id: number) =>
    `${JSON.stringify(x.tokens[id])} (${TOKEN_TYPE_NAMES[x.types?.[id] ?? 0] ?? `type ${x.types?.[id]}`})`;
  const shared = Math.min(v.tokens.length, target.tokens.length);
  let paddingTypedApart = 0;
  for (let id = 0; id < shared; id++) {
    if (v.tokens[id] === target.tokens[id] && v.types?.[id] === target.types?.[id]) continue;
    if (isPadding(v, id) && isPadding(target, id)) {
      paddingTypedApart++;
      continue;
    }
    return refuse(`id ${id} is ${shown(v, id)} here and ${shown(target, id)} in the target`);
  }
  const larger = v.tokens.length > target.tokens.length ? v : target;
  for (let id = shared; id < larger.tokens.length; id++) {
    if (!isPadding(larger, id)) {
      const whose = larger === target ? "only the target has" : "only this model has";
      return refuse(`id ${id}, ${shown(larger, id)}, is a real token ${whose} (extra ids must be padding)`);
    }
  }
  for (const key of SPECIAL_TOKEN_KEYS) {
    if (v.specials[key] !== target.specials[key])
      return refuse(`${key} token id ${v.specials[key] ?? "none"} vs ${target.specials[key] ?? "none"}`);
  }
  const mergeCount = Math.max(v.merges.length, target.merges.length);
  for (let i = 0; i < mergeCount; i++) {
    if (v.merges[i] !== target.merges[i]) {
      const rule = (m: string | undefined) => (m === undefined ? "none" : JSON.stringify(m));
      return refuse(`merge rule ${i} is ${rule(v.merges[i])} here and ${rule(target.merges[i])} in the target`);
    }
  }
  const extraIds = larger.tokens.length - shared;
  const parts = ["same tokenizer"];
  if (extraIds > 0) {
    parts.push(
      larger === target
        ? `the target has ${extraIds} extra padding ids (${shared} vs ${target.tokens.length} tokens)`
        : `this model has ${extraIds} extra padding ids (${v.tokens.length} vs ${shared} tokens), which it never proposes`,
    );
  }
  if (paddingTypedApart > 0) parts.push(`${paddingTypedApart} padding ids typed differently`);
  return { compatible: true, note: parts.join("; "), extraIds };
}
