// Every default hsd applies, in one place: the API, the CLI (its --help text), the calibration and the planner read
// them from here.

/** Thresholds (block lengths) the optimiser searches: 1 … this. */
export const DEFAULT_MAX_THRESHOLD = 16;

/** Tokens a generation writes at most when the request does not say. */
export const DEFAULT_MAX_TOKENS = 128;

/** Tokens the target writes after each calibration prompt; acceptance is averaged over them. */
export const DEFAULT_CALIBRATION_TOKENS = 48;

/** Each model's context holds its training context, capped here (KV-cache memory). */
export const MAX_DEFAULT_CONTEXT_SIZE = 4096;

/** Tokens of one llama_decode call (and of one physical batch: one compute graph per pass). */
export const BATCH_SIZE = 512;

/**
 * Below this size a model runs on one thread by default: such passes take well under a millisecond and ggml's
 * thread synchronisation costs more than it saves (on this project's 2-core machine, 2 threads made the bundled
 * family several times slower than 1).
 */
export const SMALL_MODEL_PARAMETERS = 100e6;

/** Calibration: rounds of pass-cost timing per (model, n), and the time after which it stops (at least 4 rounds). */
export const CALIBRATION_COST_ROUNDS = 16;
export const CALIBRATION_COST_BUDGET_MS = 45_000;

/** llama.cpp's sampling defaults (its `common_params_sampling`): what `hsd run` samples with unless told. */
export const DEFAULT_SAMPLING = Object.freeze({
  greedy: false,
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
});
