// The two statistics the calibration and the benchmarks summarise timings with.

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of an empty list");
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Mean of the middle 60% (20% cut at each end). The latency formula wants E[c(n)], but on a shared machine one
 * descheduled pass among a dozen (tens of ms) would move the plain mean of a sub-millisecond pass by 2x.
 */
export function trimmedMean(values: readonly number[]): number {
  if (values.length === 0) throw new Error("trimmed mean of an empty list");
  const s = [...values].sort((a, b) => a - b);
  const cut = Math.floor(s.length * 0.2);
  const kept = s.length - 2 * cut > 0 ? s.slice(cut, s.length - cut) : s;
  return kept.reduce((a, b) => a + b, 0) / kept.length;
}
