// A synthetic, seeded planner instance for the micro-benchmarks: step-shaped pass costs like the measured GPU
// costs in docs/gpu/README.md (a one-token pass, then a plateau) and made-up acceptance rates. It measures the
// planner's own speed, not any model.

import type { PlannerInput } from "../../src/planner/index.js";
import { makeRng } from "../../src/util/rng.js";

export function plannerInstance(nModels: number, maxThreshold: number, seed: number): PlannerInput {
  const rng = makeRng(seed);
  const candidates: PlannerInput["candidates"] = [];
  let single = 0.3;
  for (let m = 0; m < nModels; m++) {
    single *= 1.8 + 0.8 * rng();
    const plateau = single * (1.3 + 0.3 * rng());
    const samples = [{ n: 1, ms: single }];
    for (let n = 2; n <= maxThreshold + 2; n++) samples.push({ n, ms: plateau + 0.01 * single * n });
    candidates.push({ kind: "model", name: `m${m}`, costs: { hot: samples } });
  }
  const acceptance = Array.from({ length: nModels }, (_, lo) =>
    Array.from({ length: nModels }, (_, hi) => (hi > lo ? 0.55 + 0.4 * rng() * ((lo + 1) / (hi + 1)) ** 0.3 : 0)),
  );
  return { candidates, acceptance, maxThreshold };
}
