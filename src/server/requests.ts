// The request bodies of /v1/completions and /v1/chat/completions, checked field by field. Each mistake is a 400 that
// names the field and says what it takes; fields hsd cannot honour (penalties, logprobs, tools, n > 1) are refused
// rather than silently ignored, and fields it has no use for (user, metadata, …) are ignored as OpenAI's clients
// send them. `null` means "not given", as in the OpenAI API.

import type { SamplingSettings } from "../api/sampling.js";
import type { ChatMessage } from "../chat/template.js";
import { ApiError } from "./errors.js";

export interface GenerationParams {
  model: string | null;
  /** null: until the end of generation or of the context. */
  maxTokens: number | null;
  /** The request's own sampling fields only; the server's defaults fill the rest. */
  sampling: SamplingSettings;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionParams extends GenerationParams {
  /** Text, or token ids of the model's vocabulary. */
  prompt: string | number[];
  echo: boolean;
}

export interface ChatParams extends GenerationParams {
  messages: ChatMessage[];
}

type Body = Record<string, unknown>;

const MAX_STOP_STRINGS = 16;

export function parseCompletion(body: unknown): CompletionParams {
  const b = object(body);
  const prompt = b.prompt ?? null;
  let parsed: string | number[];
  if (typeof prompt === "string") parsed = prompt;
  else if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((t) => Number.isInteger(t))) parsed = prompt;
  else if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === "string") parsed = prompt[0];
  else if (Array.isArray(prompt) && prompt.length > 1)
    throw invalid("prompt", "one prompt per request: a string or one array of token ids, not a batch");
  else throw invalid("prompt", `must be a string or an array of token ids, got ${describe(prompt)}`);
  if (typeof parsed === "string" && parsed.length === 0) throw invalid("prompt", "is empty");
  const suffix = b.suffix ?? null;
  if (suffix !== null && suffix !== "") throw unsupported("suffix", "insertion (suffix) is not supported");
  unsupportedUnless(b, "best_of", (v) => v === 1, "best_of other than 1 is not supported");
  unsupportedUnless(b, "logprobs", (v) => v === 0 || v === false, "logprobs are not supported");
  return { ...common(b), prompt: parsed, echo: boolean(b, "echo") ?? false };
}

export function parseChat(body: unknown): ChatParams {
  const b = object(body);
  const messages = b.messages;
  if (!Array.isArray(messages) || messages.length === 0)
    throw invalid("messages", `must be a non-empty array of {role, content}, got ${describe(messages)}`);
  unsupportedUnless(b, "logprobs", (v) => v === false, "logprobs are not supported");
  unsupportedUnless(b, "top_logprobs", (v) => v === 0, "logprobs are not supported");
  unsupportedUnless(
    b,
    "tools",
    (v) => Array.isArray(v) && v.length === 0,
    "tools (function calling) are not supported",
  );
  unsupportedUnless(b, "functions", (v) => Array.isArray(v) && v.length === 0, "functions are not supported");
  unsupportedUnless(
    b,
    "response_format",
    (v) => typeof v === "object" && v !== null && (v as Body).type === "text",
    'only response_format {"type": "text"} is supported',
  );
  return { ...common(b, "max_completion_tokens"), messages: messages.map(message) };
}

function message(m: unknown, i: number): ChatMessage {
  const param = `messages[${i}]`;
  if (typeof m !== "object" || m === null || Array.isArray(m))
    throw invalid(param, `must be an object {role, content}, got ${describe(m)}`);
  const { role, content } = m as Body;
  if (typeof role !== "string" || role.length === 0)
    throw invalid(`${param}.role`, `must be a string such as "system", "user" or "assistant", got ${describe(role)}`);
  // OpenAI's newer name for the system role; chat templates know "system".
  const templateRole = role === "developer" ? "system" : role;
  if (typeof content === "string") return { role: templateRole, content };
  if (content === null || content === undefined) return { role: templateRole, content: "" };
  if (Array.isArray(content)) {
    const parts = content.map((part, j) => {
      const p = part as Body;
      if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string")
        throw invalid(`${param}.content[${j}]`, 'only text parts ({"type": "text", "text": …}) are supported');
      return p.text;
    });
    return { role: templateRole, content: parts.join("") };
  }
  throw invalid(`${param}.content`, `must be a string or an array of text parts, got ${describe(content)}`);
}

/** The fields both endpoints share. */
function common(b: Body, maxTokensAlias?: string): GenerationParams {
  const model = b.model ?? null;
  if (model !== null && typeof model !== "string") throw invalid("model", `must be a string, got ${describe(model)}`);
  const n = b.n ?? 1;
  if (n !== 1) throw unsupported("n", "only one choice per request (n = 1) is supported");
  for (const penalty of ["presence_penalty", "frequency_penalty"]) {
    unsupportedUnless(b, penalty, (v) => v === 0, `${penalty} is not supported (only 0)`);
  }
  unsupportedUnless(
    b,
    "logit_bias",
    (v) => typeof v === "object" && v !== null && Object.keys(v).length === 0,
    "logit_bias is not supported",
  );
  const maxTokensField = maxTokensAlias && b[maxTokensAlias] != null ? maxTokensAlias : "max_tokens";
  const temperature = number(b, "temperature", (x) => x >= 0, "a number >= 0 (0 = greedy)");
  const sampling: SamplingSettings = {
    temperature: temperature ?? undefined,
    greedy: temperature === null ? undefined : temperature === 0,
    topP: number(b, "top_p", (x) => x > 0 && x <= 1, "a number in (0, 1] (1 = off)") ?? undefined,
    topK: integer(b, "top_k", 0, "an integer >= 0 (0 = off)") ?? undefined,
    minP: number(b, "min_p", (x) => x >= 0 && x < 1, "a number in [0, 1) (0 = off)") ?? undefined,
    seed: integer(b, "seed", Number.MIN_SAFE_INTEGER, "an integer") ?? undefined,
  };
  const streamOptions = b.stream_options ?? null;
  if (streamOptions !== null && (typeof streamOptions !== "object" || Array.isArray(streamOptions)))
    throw invalid(
      "stream_options",
      `must be an object such as {"include_usage": true}, got ${describe(streamOptions)}`,
    );
  return {
    model,
    maxTokens: integer(b, maxTokensField, 1, "an integer >= 1"),
    sampling,
    stop: stop(b.stop ?? null),
    stream: boolean(b, "stream") ?? false,
    includeUsage:
      streamOptions === null ? false : (boolean(streamOptions as Body, "include_usage", "stream_options.") ?? false),
  };
}

function stop(value: unknown): string[] {
  if (value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string" || s.length === 0))
    throw invalid("stop", `must be a non-empty string or an array of them, got ${describe(value)}`);
  if (list.length > MAX_STOP_STRINGS) throw invalid("stop", `takes at most ${MAX_STOP_STRINGS} strings`);
  return list as string[];
}

function object(body: unknown): Body {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ApiError(400, `the request body must be a JSON object, got ${describe(body)}`);
  return body as Body;
}

function number(b: Body, name: string, ok: (x: number) => boolean, what: string): number | null {
  const v = b[name] ?? null;
  if (v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v) || !ok(v))
    throw invalid(name, `must be ${what}, got ${describe(v)}`);
  return v;
}

function integer(b: Body, name: string, min: number, what: string): number | null {
  return number(b, name, (x) => Number.isSafeInteger(x) && x >= min, what);
}

function boolean(b: Body, name: string, prefix = ""): boolean | null {
  const v = b[name] ?? null;
  if (v === null) return null;
  if (typeof v !== "boolean") throw invalid(prefix + name, `must be true or false, got ${describe(v)}`);
  return v;
}

/** Refuses a field that is present (not null) with a value hsd cannot honour. */
function unsupportedUnless(b: Body, name: string, ok: (v: unknown) => boolean, message: string): void {
  const v = b[name] ?? null;
  if (v !== null && !ok(v)) throw unsupported(name, message);
}

function invalid(param: string, problem: string): ApiError {
  return new ApiError(400, `${param} ${problem}`, param, "invalid_value");
}

function unsupported(param: string, message: string): ApiError {
  return new ApiError(400, `${message} by hsd`, param, "unsupported_parameter");
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const json = JSON.stringify(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}
