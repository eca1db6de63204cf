// Native memory stays bounded across open/dispose cycles: glibc kept what llama.cpp freed (RSS grew from ~200 MiB
// after 20 cycles to ~270 after 200, still +0.4 MiB a cycle), until Hsd.dispose handed it back (native trimMemory).
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { median } from "../src/util/stats.js";

const CHILD = fileURLToPath(new URL("./helpers/open-dispose-child.ts", import.meta.url));

describe("memory over open/dispose cycles", function () {
  this.timeout(300_000);

  it("RSS after 200 Hsd.open/dispose cycles of the bundled family is within 10% of the level after 20", function () {
    const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", CHILD, "200", "15-25,190-200"], {
      encoding: "utf8",
      timeout: 280_000,
    });
    expect(r.status, r.stderr).to.equal(0);
    const rss = JSON.parse(r.stdout) as number[];
    // A level is the median of 11 readings (after a garbage collection): single readings move by several MiB.
    const level = (from: number) => median(rss.slice(from - 1, from + 10));
    const after20 = level(15);
    const after200 = level(190);
    console.log(
      `      RSS (MiB) after cycle 1: ${rss[0]!.toFixed(1)}; around 20 (median of 15–25): ${after20.toFixed(1)}; ` +
        `50, 100, 150 (single readings): ${[50, 100, 150].map((c) => rss[c - 1]!.toFixed(1)).join(", ")}; ` +
        `around 200 (median of 190–200): ${after200.toFixed(1)}`,
    );
    expect(after200, "MiB after 200 cycles vs 1.1 x after 20").to.be.at.most(after20 * 1.1);
  });
});
