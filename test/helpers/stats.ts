// Goodness-of-fit helpers for the exactness tests.

/** Standard normal upper tail, P(Z > z) (Abramowitz–Stegun 7.1.26 through erfc; |error| < 1.5e-7). */
export function normalUpperTail(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc =
    t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) *
    Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

/** P(X > x) for X ~ chi-square with k degrees of freedom (Wilson–Hilferty; good to ~1e-3 relative in the tails used here). */
export function chiSquareUpperTail(x: number, k: number): number {
  const z = (Math.cbrt(x / k) - (1 - 2 / (9 * k))) / Math.sqrt(2 / (9 * k));
  return normalUpperTail(z);
}

export interface FitResult {
  chiSquare: number;
  degreesOfFreedom: number;
  pValue: number;
  totalVariation: number;
}

/**
 * Pearson's chi-square test of observed counts against exact probabilities. Cells with an
 * expected count under 5 are pooled into one cell, as the test's approximation requires.
 */
export function chiSquareFit(observed: Map<string, number>, expected: Map<string, number>, samples: number): FitResult {
  let chi = 0;
  let cells = 0;
  let pooledObserved = 0;
  let pooledExpected = 0;
  let tv = 0;
  const keys = new Set([...observed.keys(), ...expected.keys()]);
  for (const key of keys) {
    const o = observed.get(key) ?? 0;
    const p = expected.get(key) ?? 0;
    tv += Math.abs(o / samples - p);
    const e = p * samples;
    if (e < 5) {
      pooledObserved += o;
      pooledExpected += e;
      continue;
    }
    chi += ((o - e) * (o - e)) / e;
    cells++;
  }
  if (pooledExpected > 0) {
    chi += (pooledObserved - pooledExpected) ** 2 / pooledExpected;
    cells++;
  } else if (pooledObserved > 0) {
    chi = Infinity; // an outcome the target can never produce
  }
  const dof = Math.max(1, cells - 1);
  return { chiSquare: chi, degreesOfFreedom: dof, pValue: chiSquareUpperTail(chi, dof), totalVariation: tv / 2 };
}

/**
 * The smallest total-variation distance between the sampled law and the exact one that Pearson's test with `dof`
 * degrees of freedom and `samples` draws rejects at level `alpha` with probability `power`. Any alternative q of
 * the exact law p has chi-square distance χ²(q‖p) ≥ 4·TV(p, q)² (Cauchy–Schwarz), so its noncentrality is at least
 * λ = 4·samples·TV²; the λ that the test needs comes from the noncentral chi-square's normal approximation
 * (mean dof + λ, variance 2(dof + 2λ)).
 */
export function detectableTotalVariation(samples: number, dof: number, alpha = 1e-6, power = 0.99): number {
  const quantile = (tail: number) => {
    let lo = -40;
    let hi = 40;
    for (let i = 0; i < 200; i++) {
      const mid = (lo + hi) / 2;
      if (normalUpperTail(mid) > tail) lo = mid;
      else hi = mid;
    }
    return lo;
  };
  let lo = 0;
  let hi = 1;
  while (chiSquareUpperTail(hi, dof) > alpha) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (chiSquareUpperTail(mid, dof) > alpha) lo = mid;
    else hi = mid;
  }
  const critical = hi;
  const z = quantile(power); // P(Z > z) = power, so z < 0
  let lambda = 0;
  let step = 1;
  while ((critical - (dof + lambda)) / Math.sqrt(2 * (dof + 2 * lambda)) > z) {
    lambda += step;
    step *= 1.5;
  }
  let a = 0;
  let b = lambda;
  for (let i = 0; i < 100; i++) {
    const mid = (a + b) / 2;
    if ((critical - (dof + mid)) / Math.sqrt(2 * (dof + 2 * mid)) > z) a = mid;
    else b = mid;
  }
  return Math.sqrt(b / (4 * samples));
}
