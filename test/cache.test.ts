// The calibration cache is never a reason to fail: entries of the wrong shape are reported (naming the file) and
// measured again, and a cache that cannot be written is reported while the run goes on with what it measured.
import { expect } from "chai";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { calibrate, type CalibrationModel, type CalibrationOptions } from "../src/calibration/calibrate.js";
import { CalibrationCache } from "../src/calibration/cache.js";
import { readModelInfo } from "../src/gguf/model-info.js";
import { GREEDY, loadModel } from "../src/native/index.js";
import { bundledFamily } from "./helpers/models.js";

describe("calibration cache faults", function () {
  this.timeout(120_000);
  let models: CalibrationModel[] = [];
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "hsd-cache-test-"));
    const files = bundledFamily().files.slice(0, 2);
    models = await Promise.all(files.map(async (f) => ({ info: await readModelInfo(f), native: await loadModel(f) })));
  });
  after(() => {
    for (const m of models) m.native.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A small, quick calibration of the two smallest models into `cache`, collecting warnings. */
  async function quick(cache: CalibrationCache, extra: Partial<CalibrationOptions> = {}) {
    return calibrate(models, {
      transform: GREEDY,
      threads: 1,
      device: "test",
      maxThreshold: 2,
      prompts: ["The state of the Union is"],
      continuationTokens: 4,
      costRounds: 1,
      cache,
      ...extra,
    });
  }

  it("entries of the wrong shape, or not JSON, are named in a warning and measured again", async function () {
    const warnings: string[] = [];
    const cacheDir = join(dir, "shapes");
    const first = await quick(new CalibrationCache(cacheDir, (m) => warnings.push(m)));
    expect(warnings).to.deep.equal([]);
    const entries = readdirSync(cacheDir).sort();
    expect(entries.map((e) => e.split("-")[0])).to.deep.equal(["acceptance", "costs"]);
    // What the issue saw: valid JSON of the wrong shape ("reading '0'", "acceptance.map is not a function").
    for (const [i, bad] of [`{"hot": 1}`, "[[1, 2]]", "not json {", `[{"hot": [], "cold": []}, 3]`].entries()) {
      for (const e of entries) writeFileSync(join(cacheDir, e), i % 2 === 0 ? bad : `{"acceptance": ${bad}}`);
      warnings.length = 0;
      const again = await quick(new CalibrationCache(cacheDir, (m) => warnings.push(m)));
      expect(again.models.every((m) => !m.fromCache) && !again.acceptanceFromCache, bad).to.equal(true);
      expect(again.acceptance).to.have.length(first.acceptance.length);
      expect(warnings, bad).to.have.length(2);
      for (const w of warnings) expect(w).to.match(/not a valid .* entry.*measuring again.*--recalibrate/);
      for (const e of entries)
        expect(
          warnings.filter((w) => w.includes(join(cacheDir, e))),
          e,
        ).to.have.length(1);
    }
    // The entries written by the last calibration are good again: no warning, read from the cache.
    warnings.length = 0;
    const cached = await quick(new CalibrationCache(cacheDir, (m) => warnings.push(m)));
    expect(warnings).to.deep.equal([]);
    expect(cached.acceptanceFromCache).to.equal(true);
  });

  it("a cache location that cannot be written (a file, or a folder below one) is a warning, not a lost run", async function () {
    const file = join(dir, "a-file");
    writeFileSync(file, "not a folder");
    for (const location of [file, join(file, "below")]) {
      const warnings: string[] = [];
      const result = await quick(new CalibrationCache(location, (m) => warnings.push(m)));
      expect(result.models).to.have.length(2);
      expect(result.models[0]!.costs.hot.length).to.be.greaterThan(0);
      expect(warnings, location).to.have.length(1);
      expect(warnings[0])
        .to.contain(location)
        .and.match(/cannot write there \(E[A-Z]+\).*HSD_CACHE_DIR/);
    }
    expect(readdirSync(dir).filter((e) => e.endsWith(".tmp"))).to.deep.equal([]);
  });
});
