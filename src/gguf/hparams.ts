// Hyperparameters that llama.cpp does not check with an error it can report but asserts on (GGML_ASSERT, which
// aborts the whole process) — when the model loads, when a context builds its compute graph, or at the first
// decode. Each is checked here, from the header, before llama.cpp sees the file, so that no GGUF file can take the
// process down: a file that fails is refused with a GgufFormatError that names the key, and a folder scan lists it
// under "Not used". What llama.cpp itself rejects cleanly (a missing key, a key of the wrong type, a tensor of the
// wrong shape) is left to it.
//
// The checks follow llama.cpp at the commit node-llama-cpp 3.21.1 ships (src/llama-model.cpp load_hparams,
// src/llama-vocab.cpp, src/models/*.cpp graph builders, ggml-cpu ops); test/gguf-fuzz.test.ts mutates a real file's
// header hundreds of times and requires a clean error or a working model every time.

import { GgufFormatError } from "../errors.js";
import type { GgufHeader, GgufValue } from "./reader.js";

/** llama-hparams.h */
const LLAMA_MAX_LAYERS = 512;
const LLAMA_MAX_EXPERTS = 1024;
/** llama-model.cpp LLAMA_ROPE_SCALING_TYPES: any other name is an assertion failure. */
const ROPE_SCALING_TYPES = ["none", "linear", "yarn", "longrope"];
/** ggml types a matrix multiplication or row lookup takes as weights: not the integer types or F64 (24–28). */
const INTEGER_OR_F64_TYPES = new Set([24, 25, 26, 27, 28]);
const F32 = 0;

/**
 * Architectures whose graph builder asserts that the key and value head sizes are equal and that RoPE covers the
 * whole head (n_embd_head_k == n_embd_head_v == n_rot), and those that assert only the first or only the second
 * (src/models/*.cpp at that commit). A file of another architecture may legitimately have other head sizes.
 */
const HEAD_K_EQ_V_EQ_ROT = new Set(
  (
    "apertus arcee arctic baichuan chameleon codeshell cogvlm cohere2moe dbrx deci deepseek dots1 dream ernie4_5 " +
    "ernie4_5-moe exaone falcon granite granite_swa graniteswitch grok grovemoe hunyuan-moe hunyuan_vl hy_v3 " +
    "internlm2 jais2 llada llada-moe llama llama4 maincoder mellum minimax-01 minimax-m2 mistral3 nemotron olmo " +
    "olmo2 olmoe orion paddleocr pangu-embedded plamo pockettts qwen2 qwen2moe qwen2vl qwen3 qwen3moe qwen3vl " +
    "qwen3vlmoe rnd1 seed_oss smallthinker smollm3 starcoder2 xverse"
  ).split(" "),
);
const HEAD_K_EQ_V = new Set(
  (
    "afmoe bailingmoe2 bert bitnet bloom chatglm cohere2 command-r deepseek4 dflash eagle3 eurobert glm4 glm4moe " +
    "gpt2 gptneox granitehybrid jais laguna minimax-m3 modern-bert mpt muse-glimmer nanbeige nemotron_h " +
    "nemotron_h_moe neo-bert openelm phi2 phi3 qwen qwen35 qwen35moe qwen3next qwen4exp refact stablelm starcoder t5"
  ).split(" "),
);
const HEAD_K_EQ_ROT = new Set(["exaone-moe", "exaone4", "talkie"]);

/** Throws GgufFormatError naming the first hyperparameter llama.cpp would abort on. */
export function checkHyperparameters(header: GgufHeader): void {
  const meta = header.metadata;
  const fail = (reason: string): never => {
    throw new GgufFormatError(header.path, `${reason}; llama.cpp would abort on it (a corrupt or unsupported file)`);
  };
  const architecture = meta.get("general.architecture");
  if (typeof architecture !== "string") return; // llama.cpp refuses a file without one cleanly
  const key = (name: string) => `${architecture}.${name}`;
  /** A numeric value, or undefined when absent or not a number (a wrong type is llama.cpp's clean error). */
  const num = (name: string): number | undefined => asNumber(meta.get(key(name)));
  /** A scalar or per-layer value: its values (llama.cpp's get_key_or_arr). */
  const perLayer = (name: string): number[] | undefined => {
    const v = meta.get(key(name));
    if (Array.isArray(v)) return v.map(asNumber).filter((x): x is number => x !== undefined);
    const n = asNumber(v);
    return n === undefined ? undefined : [n];
  };

  const layers = num("block_count");
  if (layers !== undefined && !(Number.isInteger(layers) && layers >= 1 && layers <= LLAMA_MAX_LAYERS))
    fail(`${key("block_count")} is ${layers}, but llama.cpp supports 1 to ${LLAMA_MAX_LAYERS} layers`);
  const nextn = num("nextn_predict_layers");
  if (nextn !== undefined && layers !== undefined && nextn > layers)
    fail(`${key("nextn_predict_layers")} is ${nextn}, more than the ${layers} layers`);

  for (const name of ["context_length", "embedding_length"]) {
    const v = num(name);
    // llama.cpp hands these back as int32: a larger value comes back negative.
    if (v !== undefined && !(Number.isInteger(v) && v >= 1 && v < 2 ** 31))
      fail(`${key(name)} is ${v}, but it must be an integer from 1 to 2^31 - 1`);
  }

  checkExperts(architecture, num, perLayer, fail);

  const ropeScaling = meta.get(key("rope.scaling.type"));
  if (typeof ropeScaling === "string" && !ROPE_SCALING_TYPES.includes(ropeScaling))
    fail(`${key("rope.scaling.type")} is "${ropeScaling}", not one of ${ROPE_SCALING_TYPES.join(", ")}`);

  // Normalisation epsilons: ggml's norm kernels assert eps >= 0 (NaN fails that too).
  for (const [name, value] of meta) {
    if (!name.startsWith(`${architecture}.`) || !name.endsWith("epsilon")) continue;
    const v = asNumber(value);
    if (v !== undefined && !(Number.isFinite(v) && v >= 0))
      fail(`${name} is ${v}, but it must be a finite number >= 0`);
  }

  // Attention heads: grouped-query attention needs the query heads to be a multiple of the key/value heads (ggml's
  // matrix multiplication asserts it), and many graph builders assert equal head sizes and full-head RoPE.
  const heads = perLayer("attention.head_count") ?? [];
  const kvHeads = perLayer("attention.head_count_kv") ?? heads;
  heads.forEach((h, i) => {
    const kv = kvHeads.length === 1 ? kvHeads[0]! : kvHeads[i];
    if (kv !== undefined && h > 0 && kv > 0 && h % kv !== 0)
      fail(`${key("attention.head_count")} ${h} is not a multiple of ${key("attention.head_count_kv")} ${kv}`);
  });
  const embedding = num("embedding_length");
  const firstHeads = heads[0] ?? 0;
  if (embedding !== undefined && firstHeads > 0) {
    const derived = Math.floor(embedding / firstHeads);
    const headK = num("attention.key_length") ?? derived;
    const headV = num("attention.value_length") ?? derived;
    const rot = num("rope.dimension_count") ?? headK;
    const kEqV = HEAD_K_EQ_V_EQ_ROT.has(architecture) || HEAD_K_EQ_V.has(architecture);
    const kEqRot = HEAD_K_EQ_V_EQ_ROT.has(architecture) || HEAD_K_EQ_ROT.has(architecture);
    if (kEqV && headK !== headV)
      fail(
        `the key head size ${headK} differs from the value head size ${headV}, which ${architecture} requires equal`,
      );
    if (kEqRot && rot !== headK)
      fail(`${key("rope.dimension_count")} is ${rot}, but ${architecture} requires it to equal the head size ${headK}`);
  }

  checkVocabulary(header, fail);
  checkTensorTypes(header, fail);
}

function checkExperts(
  architecture: string,
  num: (name: string) => number | undefined,
  perLayer: (name: string) => number[] | undefined,
  fail: (reason: string) => never,
): void {
  let experts = num("expert_count") ?? 0;
  let used = Math.max(0, ...(perLayer("expert_used_count") ?? [0]));
  // llama.cpp treats one expert as none for these two (load_hparams).
  if ((architecture === "hunyuan_vl" || architecture === "hunyuan-dense") && experts <= 1) [experts, used] = [0, 0];
  const groups = num("expert_group_count") ?? 0;
  const groupsUsed = num("expert_group_used_count") ?? 0;
  const k = (name: string) => `${architecture}.${name}`;
  if (experts > LLAMA_MAX_EXPERTS) fail(`${k("expert_count")} is ${experts}, above llama.cpp's ${LLAMA_MAX_EXPERTS}`);
  if (used > experts) fail(`${k("expert_used_count")} ${used} is more than ${k("expert_count")} ${experts}`);
  if (experts > 0) {
    if (used === 0) fail(`${k("expert_count")} is ${experts} but ${k("expert_used_count")} is 0`);
    if (groups >= experts) fail(`${k("expert_group_count")} ${groups} is not below ${k("expert_count")} ${experts}`);
    if (groups > 1 && (experts % groups !== 0 || groupsUsed <= 0 || groupsUsed >= groups))
      fail(`${k("expert_group_count")} ${groups} and ${k("expert_group_used_count")} ${groupsUsed} do not fit`);
  } else if (used !== 0 || groups !== 0) {
    fail(`the file has no experts but ${k("expert_used_count")} or ${k("expert_group_count")} is set`);
  }
}

function checkVocabulary(header: GgufHeader, fail: (reason: string) => never): void {
  const meta = header.metadata;
  const model = meta.get("tokenizer.ggml.model");
  if (model === "none" || model === "no_vocab")
    fail(`tokenizer.ggml.model is "${model}": the model has no tokenizer, and one is needed to read a prompt`);
  const tokens = meta.get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens)) return;
  // llama.cpp maps token texts to ids and asserts that no two tokens share a text (empty ones are renamed first).
  const seen = new Set<string>();
  tokens.forEach((t, i) => {
    const text = String(t) === "" ? `[EMPTY_${i}]` : String(t);
    if (seen.has(text)) fail(`tokenizer.ggml.tokens has the token ${JSON.stringify(text).slice(0, 40)} twice`);
    seen.add(text);
  });
  // SentencePiece tokenization falls back to byte tokens for text its pieces do not cover, and llama.cpp looks them
  // up with std::map::at: a missing one throws where nothing catches it (the process terminates).
  if (model === "llama") {
    const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
    for (let b = 0; b < 256; b++)
      if (!seen.has(hex(b)) && !(b < 128 && seen.has(String.fromCharCode(b))))
        fail(`tokenizer.ggml.model is "llama" (SentencePiece) but the byte token ${hex(b)} is missing`);
  }
  // Tokenizing with special tokens adds a BOS when the file asks for it; llama.cpp asserts the BOS exists.
  const bos = asNumber(meta.get("tokenizer.ggml.bos_token_id"));
  if (meta.get("tokenizer.ggml.add_bos_token") === true && bos !== undefined && bos >= tokens.length)
    fail(
      `tokenizer.ggml.add_bos_token is set but the BOS token ${bos} is outside the ${tokens.length}-token vocabulary`,
    );
}

/**
 * Weights that ggml's CPU kernels cannot compute with. One-dimensional tensors (norm weights, biases) are used in
 * element-wise operations, which take an F32 operand only (binary-ops.cpp aborts otherwise; llama.cpp's own
 * converter always writes them as F32); matrices go through matrix multiplications or row lookups, which have no
 * kernels for the integer types or F64.
 */
function checkTensorTypes(header: GgufHeader, fail: (reason: string) => never): void {
  for (const t of header.tensors) {
    const oneDimensional = t.shape.slice(1).every((n) => n === 1);
    if (oneDimensional && t.type !== F32) fail(`the 1-D tensor ${t.name} is not F32 (type ${t.type})`);
    if (!oneDimensional && INTEGER_OR_F64_TYPES.has(t.type))
      fail(`the tensor ${t.name} has type ${t.type}, which llama.cpp cannot use as weights`);
  }
}

function asNumber(v: GgufValue | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}
