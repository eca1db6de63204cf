// The user's decoding settings. They belong to the target; every level applies the same
// transform to its own logits (docs/ALGORITHM.md §1), which is what makes draft and target comparable.

import { InvalidOptionError } from "../errors.js";
import type { SamplingTransform } from "../native/types.js";
import { GREEDY } from "../native/context.js";
import { DEFAULT_SAMPLING as DEFAULTS } from "../defaults.js";

export interface SamplingSettings {
  /** Greedy decoding: always the most probable token (the other fields are ignored). */
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** Seed of the sampler (sampling mode); the same seed and settings give the same text. */
  seed?: number;
}

/** llama.cpp's defaults for the transform (src/defaults.ts). */
export const DEFAULT_SAMPLING: Required<Omit<SamplingSettings, "seed">> = DEFAULTS;

/**
 * Temperatures are clamped to [MIN_TEMPERATURE, MAX_TEMPERATURE] before they reach the native transform, which
 * computes in float32: there 1/T stays finite (T = 1e-40 would make it infinite and every probability NaN) and T
 * itself representable (1e308 would become infinity). Nothing else changes but rounding: at 1e-30 every row is
 * already one-hot on its most probable token (any logit gap above 1e-28 gives exp(-gap/T) = 0, so sampling draws
 * the greedy token), and at 1e30 already uniform (exp(gap/T) rounds to 1 for any gap below 1e8).
 */
export const MIN_TEMPERATURE = 1e-30;
export const MAX_TEMPERATURE = 1e30;

export function toTransform(settings: SamplingSettings = {}): SamplingTransform {
  // Field by field: an explicit `undefined` (an unset CLI flag) means "the default", not "no value".
  const temperature = settings.temperature ?? DEFAULT_SAMPLING.temperature;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0)
    throw new InvalidOptionError(`temperature must be a finite number >= 0 (0 = greedy), got ${String(temperature)}`);
  if (settings.greedy !== undefined && typeof settings.greedy !== "boolean")
    throw new InvalidOptionError(`greedy must be true or false, got ${String(settings.greedy)}`);
  if (settings.seed !== undefined && !(Number.isInteger(settings.seed) && settings.seed >= 0))
    throw new InvalidOptionError(`seed must be an integer >= 0, got ${String(settings.seed)}`);
  if (settings.greedy || temperature === 0) return GREEDY;
  const topK = settings.topK ?? DEFAULT_SAMPLING.topK;
  const topP = settings.topP ?? DEFAULT_SAMPLING.topP;
  const minP = settings.minP ?? DEFAULT_SAMPLING.minP;
  if (!Number.isInteger(topK) || topK < 0)
    throw new InvalidOptionError(`top-k must be an integer >= 0 (0 = off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new InvalidOptionError(`top-p must be in (0, 1] (1 = off), got ${topP}`);
  if (!(minP >= 0 && minP < 1)) throw new InvalidOptionError(`min-p must be in [0, 1) (0 = off), got ${minP}`);
  return {
    greedy: false,
    temperature: Math.min(MAX_TEMPERATURE, Math.max(MIN_TEMPERATURE, temperature)),
    topK,
    topP,
    minP,
  };
}
