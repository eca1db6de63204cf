// The child process of test/memory.test.ts: opens and disposes the bundled family N times and prints the resident set
// size (MiB) after each cycle as JSON. A fresh process, so nothing else the test suite loaded counts. In the cycles
// of the windows given (e.g. "15-25,190-200"), garbage is collected before the reading (--expose-gc), so that the JS
// heap's own swings are not what is measured; collecting every cycle would double the run time.
//   node --expose-gc --import tsx test/helpers/open-dispose-child.ts CYCLES [WINDOWS]

import { Hsd } from "../../src/api/hsd.js";

const cycles = Number(process.argv[2] ?? 200);
const windows = (process.argv[3] ?? "")
  .split(",")
  .filter((w) => w.length > 0)
  .map((w) => w.split("-").map(Number) as [number, number]);
const rss: number[] = [];
for (let cycle = 1; cycle <= cycles; cycle++) {
  const hsd = await Hsd.open({ threads: 1 });
  await hsd.dispose();
  if (windows.some(([from, to]) => cycle >= from && cycle <= to)) globalThis.gc?.();
  rss.push(process.memoryUsage().rss / 2 ** 20);
}
process.stdout.write(JSON.stringify(rss) + "\n");
