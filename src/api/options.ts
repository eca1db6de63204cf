// The API's options checked up front, so that a wrong type or an impossible value is an InvalidOptionError naming
// the option — not a TypeError from deep inside, a native RangeError, or a generation that silently does nothing.

import { InvalidOptionError, PromptTooLongError } from "../errors.js";

type Shape = Record<string, unknown>;

/** Largest context llama.cpp takes (n_ctx is a uint32 that it hands back as int32). */
const MAX_CONTEXT_SIZE = 2 ** 31 - 1;
/** The smallest context worth opening: the CLI's --context-size floor too. */
export const MIN_CONTEXT_SIZE = 16;

function fail(option: string, expected: string, value: unknown): never {
  const shown = typeof value === "string" ? JSON.stringify(value) : Array.isArray(value) ? "an array" : String(value);
  throw new InvalidOptionError(`${option} must be ${expected}, got ${shown}`);
}

function isObject(value: unknown): value is Shape {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function checkInteger(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    fail(option, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value);
}

function checkString(option: string, value: unknown): void {
  if (value !== undefined && (typeof value !== "string" || value.length === 0))
    fail(option, "a non-empty string", value);
}

function checkOneOf(option: string, value: unknown, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value as string)) fail(option, `one of ${allowed.join(", ")}`, value);
}

function checkStrings(option: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value) || value.some((s) => typeof s !== "string" || s.length === 0))
    fail(option, "an array of non-empty strings", value);
}

/** Hsd.open's options: types and ranges. */
export function checkOpenOptions(options: unknown): void {
  if (options === undefined) return;
  if (!isObject(options)) fail("Hsd.open options", "an object", options);
  checkString("models", options.models);
  checkStrings("files", options.files);
  checkString("target", options.target);
  checkInteger("threads", options.threads, 1);
  checkInteger("gpuLayers", options.gpuLayers, 0);
  checkInteger("contextSize", options.contextSize, MIN_CONTEXT_SIZE, MAX_CONTEXT_SIZE);
  checkOneOf("evaluation", options.evaluation, ["sync", "async"]);
  checkOneOf("flashAttention", options.flashAttention, ["auto", "on", "off"]);
  if (options.onWarning !== undefined && typeof options.onWarning !== "function")
    fail("onWarning", "a function", options.onWarning);
  checkOneOf("ngram", options.ngram, ["auto", "on", "off"]);
  if (options.lookup !== undefined) {
    if (!isObject(options.lookup)) fail("lookup", "an object { minMatch?, maxMatch? }", options.lookup);
    checkInteger("lookup.minMatch", options.lookup.minMatch, 1);
    checkInteger("lookup.maxMatch", options.lookup.maxMatch, 1);
  }
  checkString("cacheDir", options.cacheDir);
  if (options.ngramTable !== null) checkString("ngramTable", options.ngramTable);
  // The addresses themselves and the model names are checked where they are parsed (rpcPlacement in hsd.ts).
  if (typeof options.rpc !== "string") checkStrings("rpc", options.rpc);
  if (options.rpcLevels !== "target" && options.rpcLevels !== "all") checkStrings("rpcLevels", options.rpcLevels);
  checkInteger("rpcTimeoutMs", options.rpcTimeoutMs, 100);
}

/** Hsd.plan's and Hsd.calibrate's request (also a generate request's `plan`). */
export function checkPlanRequest(request: unknown, name = "the plan request"): void {
  if (request === undefined) return;
  if (!isObject(request)) fail(name, "an object", request);
  if (request.sampling !== undefined && !isObject(request.sampling)) fail("sampling", "an object", request.sampling);
  checkStrings("prompts", request.prompts);
  checkInteger("continuationTokens", request.continuationTokens, 1);
  checkInteger("maxThreshold", request.maxThreshold, 1);
  if (request.signal !== undefined && !(request.signal instanceof AbortSignal))
    fail("signal", "an AbortSignal", request.signal);
}

/** Hsd.generate's request: types and ranges (sampling values are checked by toTransform). */
export function checkGenerateRequest(request: unknown): void {
  if (request === undefined) return;
  if (!isObject(request)) fail("the generate request", "an object", request);
  checkInteger("maxTokens", request.maxTokens, 1);
  checkStrings("stop", request.stop);
  if (request.sampling !== undefined && !isObject(request.sampling)) fail("sampling", "an object", request.sampling);
  if (request.signal !== undefined && !(request.signal instanceof AbortSignal))
    fail("signal", "an AbortSignal", request.signal);
  checkPlanRequest(request.plan, "plan");
  for (const flag of ["adapt", "learn"] as const)
    if (request[flag] !== undefined && typeof request[flag] !== "boolean") fail(flag, "true or false", request[flag]);
  const h = request.hierarchy;
  if (h === undefined || h === "auto") return;
  if (!isObject(h)) fail("hierarchy", '"auto" or { files, thresholds? }', h);
  checkStrings("hierarchy.files", h.files);
  if (h.files === undefined) fail("hierarchy.files", "an array of model files", h.files);
  if (h.thresholds !== undefined) {
    if (!Array.isArray(h.thresholds)) fail("hierarchy.thresholds", "an array of integers >= 1", h.thresholds);
    h.thresholds.forEach((t, i) => checkInteger(`hierarchy.thresholds[${i}]`, t, 1));
  }
}

/**
 * A pass of the target scores the committed text's last token and every drafted one: up to the sum of the thresholds
 * plus one tokens past the prompt (HsdDecoder.maxDraftBlock + 1). It must fit the smallest context after the prompt
 * and one batch; otherwise the generation could not make a single pass (and the decoder's rows would be sized for
 * an impossible block).
 */
export function checkThresholdsFit(
  thresholds: readonly number[],
  promptTokens: number,
  contextSize: number,
  batchSize: number,
): void {
  if (promptTokens + 1 > contextSize) throw new PromptTooLongError(promptTokens, contextSize);
  const block = thresholds.reduce((a, b) => a + b, 0) + 1;
  const room = Math.min(contextSize - promptTokens, batchSize);
  if (block <= room) return;
  const limit =
    room === batchSize
      ? `one pass takes at most ${batchSize} tokens`
      : `the context holds ${contextSize} tokens and the prompt takes ${promptTokens}`;
  const fix =
    room - 1 >= thresholds.length
      ? `use thresholds that add up to at most ${room - 1}`
      : "shorten the prompt or use fewer draft models";
  throw new InvalidOptionError(
    `thresholds ${thresholds.join(",")}: a target pass can score ${block} tokens (their sum + 1), but ${limit}; ${fix}` +
      (room === batchSize ? "" : " (or a larger context size: --context-size)"),
  );
}
