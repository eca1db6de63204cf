// What plans measured while they ran (docs/ALGORITHM.md §10, "Measured guard"): wall time and tokens per plan
// label. The latency model chooses plans from estimated costs and acceptance; where it is wrong (a pass that costs
// more in the run than calibration said, a cost it does not model), the measurement is what counts. The adaptive
// decoder compares plans by their measured ms/token once they have run long enough, corrects the predictions of
// plans not measured yet by how far measured plans were from theirs, and falls back to the target alone when that
// measured faster.

/** Tokens a plan must have emitted before its measured ms/token stands for it. */
export const MIN_MEASURED_TOKENS = 32;
/** Tokens of history a plan's measurement keeps (older steps fade, as the machine and the text change). */
const WINDOW_TOKENS = 256;

interface Tally {
  ms: number;
  tokens: number;
  /** The plan's predicted ms/token times its tokens, summed like `ms`: measured over predicted is ms / predictedMs. */
  predictedMs: number;
}

export class PlanTimes {
  private readonly byLabel = new Map<string, Tally>();

  /** One step of plan `label`: `ms` of wall time for `tokens` tokens, when the plan was predicted at `predicted`. */
  add(label: string, ms: number, tokens: number, predicted: number): void {
    if (tokens < 1 || !(ms >= 0)) return;
    let t = this.byLabel.get(label);
    if (!t) this.byLabel.set(label, (t = { ms: 0, tokens: 0, predictedMs: 0 }));
    t.ms += ms;
    t.tokens += tokens;
    if (Number.isFinite(predicted)) t.predictedMs += predicted * tokens;
    if (t.tokens > WINDOW_TOKENS) {
      const keep = WINDOW_TOKENS / t.tokens;
      t.ms *= keep;
      t.tokens *= keep;
      t.predictedMs *= keep;
    }
  }

  /** Measured ms/token of a plan, or null before it emitted MIN_MEASURED_TOKENS tokens. */
  msPerToken(label: string): number | null {
    const t = this.byLabel.get(label);
    return t && t.tokens >= MIN_MEASURED_TOKENS ? t.ms / t.tokens : null;
  }

  /**
   * How measured times compare with predicted ones: the median over measured plans of measured / predicted (1 when
   * none is measured). A plan not measured yet is judged at its prediction times this.
   */
  bias(): number {
    const ratios: number[] = [];
    for (const t of this.byLabel.values())
      if (t.tokens >= MIN_MEASURED_TOKENS && t.predictedMs > 0) ratios.push(t.ms / t.predictedMs);
    if (ratios.length === 0) return 1;
    ratios.sort((a, b) => a - b);
    const mid = ratios.length >> 1;
    return ratios.length % 2 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
  }

  /** A plan's expected ms/token: measured when it can be, else its prediction corrected by the bias. */
  expected(label: string, predicted: number): number {
    return this.msPerToken(label) ?? predicted * this.bias();
  }
}
