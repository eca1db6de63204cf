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

export function toTransform(settings: SamplingSettings = {}): SamplingTransform {
  // Field by field: an explicit `undefined` (an unset CLI flag) means "the default", not "no value".
  const temperature = settings.temperature ?? DEFAULT_SAMPLING.temperature;
  if (settings.greedy || temperature <= 0) return GREEDY;
  const topK = settings.topK ?? DEFAULT_SAMPLING.topK;
  const topP = settings.topP ?? DEFAULT_SAMPLING.topP;
  const minP = settings.minP ?? DEFAULT_SAMPLING.minP;
  if (!Number.isFinite(temperature))
    throw new InvalidOptionError(`temperature must be a finite number, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0)
    throw new InvalidOptionError(`top-k must be an integer >= 0 (0 = off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new InvalidOptionError(`top-p must be in (0, 1] (1 = off), got ${topP}`);
  if (!(minP >= 0 && minP < 1)) throw new InvalidOptionError(`min-p must be in [0, 1) (0 = off), got ${minP}`);
  return { greedy: false, temperature, topK, topP, minP };
}
