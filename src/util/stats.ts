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

/**
 * A line through (x, y) points robust to outliers (Theil–Sen): the slope is the median of the pairwise slopes, the
 * intercept the median of y − slope·x. A third of the points can be wild (a descheduled pass) without moving it
 * much, where least squares would follow them.
 */
export function theilSen(points: readonly { x: number; y: number }[]): { intercept: number; slope: number } {
  if (points.length === 0) throw new Error("a line through no points");
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++)
    for (let j = i + 1; j < points.length; j++)
      if (points[j]!.x !== points[i]!.x) slopes.push((points[j]!.y - points[i]!.y) / (points[j]!.x - points[i]!.x));
  const slope = slopes.length > 0 ? median(slopes) : 0;
  return { slope, intercept: median(points.map((p) => p.y - slope * p.x)) };
}
