// HOOK (planned, not built): `--synthetic-acceptance`, for the GPU machine.
//
// Purpose: measure the latency model on GPU-sized pass costs without trained families. The models are
// random-weight GGUFs of real sizes (e.g. 0.1B … 7B llama shapes, f16), so every forward pass is real and costs
// what it costs on the device; but a random-weight family agrees on almost nothing, so acceptance would be ~0.
// The mode therefore draws each verdict from given rates instead of comparing distributions:
//   verify(i, d): accept draft j with probability rates[i-1] (or rates by position), independent of the tokens;
//   on rejection emit the verifier's own token (any token: output exactness is not the point of this mode).
// What it then measures is exactly the formula's world (i.i.d. acceptance, real c_i(n), real catch-up, real
// overheads), so predicted vs measured isolates the cost model and the engine overheads on the GPU.
//
// Status: a colleague is building the pieces as a separate GPU script — scripts/gpu/bench-synthetic.ts over
// src/engine/synthetic-acceptance.ts (a level wrapper that draws verdicts at given rates). What is left here is
// to wire `--synthetic-acceptance` to it (or to fold its runner into this benchmark's runner/analysis/report).
//
// What it needs from outside the benchmark (not in this file's ownership):
//  - a verdict hook in the engine (src/engine/hsd.ts): e.g. `DecoderOptions.verdict?: (level, position) => boolean`
//    consulted instead of `accepts()` (greedy and sampling alike), with the replacement taken as the verifier's
//    argmax; tests must show that the hook is off by default;
//  - a script to write random-weight GGUFs of given shapes with the family's vocabulary
//    (build/dev-models/make.py does this for tiny shapes), and `Hsd.open({gpuLayers: 999})`;
//  - calibration of costs as usual (src/calibration), with acceptance taken from the given rates.
// The runner, analysis, report and plot of this benchmark are reused unchanged: methods are built from a
// PlanReport whose acceptance matrix is the given rates.

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
        `--synthetic-acceptance ${spec.rates.join(",")}: this mode is planned for the GPU machine and not built yet ` +
            "(random-weight GGUFs of GPU sizes, verdicts drawn at given rates); meanwhile see scripts/gpu/bench-synthetic.ts and scripts/bench-lib/synthetic.ts.",
    );
}
