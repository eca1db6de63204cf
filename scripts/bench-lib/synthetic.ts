// `--synthetic-acceptance RATES`: reserved; the flag stops with a message pointing at the GPU script.
//
// Purpose: measure the latency model on GPU-sized pass costs without trained families. The models are
// random-weight GGUFs of real sizes, so every forward pass is real and costs what it costs on the device; a
// random-weight family agrees on almost nothing, so each verdict is drawn from given rates instead (output
// exactness is not the point of this mode). Predicted vs measured then isolates the cost model and the engine's
// overheads on the GPU.
//
// Where it is implemented: scripts/gpu/bench-synthetic.ts (its own runner and report) over
// src/engine/synthetic-acceptance.ts (a level wrapper that draws verdicts at given rates) and
// scripts/gpu/make-random-gguf.py (the models). Wiring this flag to it, or folding that runner into this
// benchmark's runner/analysis/report, is what is left.

export interface SyntheticAcceptanceSpec {
  /** Rates for adjacent pairs of the chain, smallest first, e.g. [0.7, 0.8] for a 3-model chain. */
  rates: number[];
}

export function parseSyntheticAcceptance(text: string): SyntheticAcceptanceSpec {
  const rates = text.split(",").map((s) => Number(s.trim()));
  if (rates.length === 0 || rates.some((r) => !(r >= 0 && r <= 1))) {
    throw new Error(`--synthetic-acceptance: "${text}" must be a comma-separated list of rates in [0, 1]`);
  }
  return { rates };
}

export function runSyntheticAcceptance(spec: SyntheticAcceptanceSpec): never {
  throw new Error(
    `--synthetic-acceptance ${spec.rates.join(",")}: not wired into this benchmark; the mode (random-weight GGUFs of ` +
      "GPU sizes, verdicts drawn at given rates) runs as scripts/gpu/bench-synthetic.ts (see scripts/bench-lib/synthetic.ts).",
  );
}
