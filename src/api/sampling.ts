// The user's decoding settings. They belong to the target; every level applies the same
// transform to its own logits (hsd-notes §1), which is what makes draft and target comparable.

import { InvalidOptionError } from "../errors.js";
import type { SamplingTransform } from "../native/types.js";

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

/** llama.cpp's defaults for the transform. */
export const DEFAULT_SAMPLING: Required<Omit<SamplingSettings, "seed">> = {
  greedy: false,
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
};

export function toTransform(settings: SamplingSettings = {}): SamplingTransform {
  const s = { ...DEFAULT_SAMPLING, ...settings };
  if (s.temperature <= 0) return { greedy: true, temperature: 1, topK: 0, topP: 1, minP: 0 };
  if (!Number.isFinite(s.temperature)) throw new InvalidOptionError(`temperature must be a finite number, got ${s.temperature}`);
  if (!Number.isInteger(s.topK) || s.topK < 0) throw new InvalidOptionError(`top-k must be an integer >= 0 (0 = off), got ${s.topK}`);
  if (!(s.topP > 0 && s.topP <= 1)) throw new InvalidOptionError(`top-p must be in (0, 1] (1 = off), got ${s.topP}`);
  if (!(s.minP >= 0 && s.minP < 1)) throw new InvalidOptionError(`min-p must be in [0, 1) (0 = off), got ${s.minP}`);
  return { greedy: s.greedy, temperature: s.temperature, topK: s.topK, topP: s.topP, minP: s.minP };
}
