/**
 * Micro-benchmarks of the planner: the exact latency formula and the optimiser (6 candidates, T <= 16).
 * Run: npx tsx scripts/bench-planner.ts [--time ms-per-task]
 *
 * The instance is synthetic (seeded): step-shaped pass costs like the GPU figures in hsd-notes §5 and made-up
 * acceptance rates. It measures the planner's own speed, not any model.
 */

import { Bench } from "tinybench";
import {
    chooseHierarchy,
    countChains,
    dynamicProgramme,
    exhaustiveSearch,
    expectedLatency,
} from "../src/planner/index.js";
import { plannerInstance } from "./bench-lib/planner-instance.js";

const timeArg = process.argv.indexOf("--time");
const time = timeArg > 0 ? Number(process.argv[timeArg + 1]) : 300;
if (!(time > 0)) throw new Error("bench-planner: --time must be a positive number of ms");


const six = plannerInstance(6, 16, 1);
const four = plannerInstance(4, 8, 2);
const costs = six.models.map((m) => m.cost);
const chain = {
    costs: [costs[0]!, costs[2]!, costs[4]!, costs[5]!],
    thresholds: [3, 6, 12],
    acceptance: [six.acceptance[0]![2]!, six.acceptance[2]![4]!, six.acceptance[4]![5]!],
};

const bench = new Bench({ time });
bench
    .add("expectedLatency K=1 (T=6)", () => {
        expectedLatency({ costs: [costs[0]!, costs[5]!], thresholds: [6], acceptance: [six.acceptance[0]![5]!] });
    })
    .add("expectedLatency K=3 (T=3,6,12)", () => {
        expectedLatency(chain);
    })
    .add("dynamicProgramme 6 cand., T<=16, beam 1", () => {
        dynamicProgramme(six, { beamWidth: 1 });
    })
    .add("dynamicProgramme 6 cand., T<=16, beam 4", () => {
        dynamicProgramme(six);
    })
    .add("chooseHierarchy 6 cand., T<=16 (auto)", () => {
        chooseHierarchy(six);
    })
    .add(`exhaustiveSearch 4 cand., T<=8 (${countChains(four)} chains)`, () => {
        exhaustiveSearch(four);
    });

await bench.run();
console.table(bench.table());

const describe = (p: { names: string[]; thresholds: number[] }): string =>
    p.thresholds.length === 0 ? `${p.names[0]} alone` : `${p.names.join(" > ")} T=${p.thresholds.join(",")}`;
const dp = chooseHierarchy(six);
console.log(
    `6 candidates, T<=16: ${countChains(six)} chains on the full grid; DP scored ${dp.evaluated} states and picked ` +
        `${describe(dp)}: ${dp.predictedMsPerToken.toFixed(3)} ms/token, ` +
        `${dp.speedupVsAutoregressive.toFixed(3)}x vs autoregressive (${dp.autoregressiveMsPerToken.toFixed(3)} ms); ` +
        `best single draft ${describe(dp.bestSingleDraft!)}: ` +
        `${dp.bestSingleDraft!.speedupVsAutoregressive.toFixed(3)}x`,
);
const ex4 = exhaustiveSearch(four);
const dp4 = dynamicProgramme(four);
console.log(
    `4 candidates, T<=8: exhaustive ${describe(ex4)} ${ex4.predictedMsPerToken.toFixed(4)} ms/token; ` +
        `DP ${describe(dp4)} ${dp4.predictedMsPerToken.toFixed(4)} ms/token`,
);
