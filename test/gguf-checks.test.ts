// Files that would abort llama.cpp, or hang the scan, are refused with a reason — in a folder they are listed as not
// used next to the models that work.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Hsd } from "../src/api/hsd.js";
import { GgufFormatError } from "../src/errors.js";
import { parseGguf, writeGguf, type GgufFile } from "./helpers/gguf-edit.js";
import { bundledFamily } from "./helpers/models.js";

describe("GGUF files llama.cpp would abort on, or that are not files", function () {
  this.timeout(120_000);
  const family = bundledFamily();
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "hsd-gguf-checks-"));
    copyFileSync(family.files[0]!, join(dir, "small.gguf"));
    copyFileSync(family.files.at(-1)!, join(dir, "target.gguf"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of the second-smallest bundled model with one change. */
  function variant(name: string, change: (file: GgufFile) => void): string {
    const file = parseGguf(readFileSync(family.files[1]!));
    change(file);
    const path = join(dir, name);
    writeFileSync(path, writeGguf(file));
    return path;
  }
  const setKey = (key: string, value: number) => (file: GgufFile) => {
    file.kvs.find((kv) => kv.key === key)!.value = value;
  };

  it("block_count 0 and 1000 next to a good target: listed as not used, with the reason; the rest is opened", async function () {
    variant("zero-layers.gguf", setKey("llama.block_count", 0));
    variant("many-layers.gguf", setKey("llama.block_count", 1000));
    variant("negative-eps.gguf", setKey("llama.attention.layer_norm_rms_epsilon", -1));
    const hsd = await Hsd.open({ models: dir, threads: 1 });
    try {
      expect(hsd.models.map((m) => m.info.file)).to.deep.equal(["small.gguf", "target.gguf"]);
      const reasons = Object.fromEntries(hsd.rejected.map((r) => [basename(r.path), r.reason]));
      expect(reasons["zero-layers.gguf"]).to.match(/llama\.block_count is 0, but llama\.cpp supports 1 to 512 layers/);
      expect(reasons["many-layers.gguf"]).to.match(/llama\.block_count is 1000/);
      expect(reasons["negative-eps.gguf"]).to.match(
        /layer_norm_rms_epsilon is -1, but it must be a finite number >= 0/,
      );
    } finally {
      await hsd.dispose();
    }
  });

  it("a draft llama.cpp itself refuses is listed as not used too; named, it is a GgufFormatError", async function () {
    const bad = variant("wrong-shape.gguf", setKey("llama.feed_forward_length", 100));
    const hsd = await Hsd.open({ models: dir, threads: 1 });
    try {
      const rejected = hsd.rejected.find((r) => basename(r.path) === "wrong-shape.gguf");
      expect(rejected?.reason).to.match(/^llama\.cpp could not load it: .*wrong shape/);
      expect(hsd.models).to.have.length(2);
    } finally {
      await hsd.dispose();
    }
    const error = await Hsd.open({ files: [bad, join(dir, "target.gguf")] }).then(
      () => null,
      (e: Error) => e,
    );
    expect(error).to.be.instanceOf(GgufFormatError);
    expect(error!.message).to.contain(bad);
  });

  it("a FIFO named x.gguf is listed as not a regular file instead of hanging the scan", async function () {
    const made = spawnSync("mkfifo", [join(dir, "x.gguf")]);
    if (made.status !== 0) this.skip();
    const hsd = await Hsd.open({ models: dir, threads: 1 });
    try {
      const reasons = Object.fromEntries(hsd.rejected.map((r) => [basename(r.path), r.reason]));
      expect(reasons["x.gguf"]).to.equal("not a regular file (a FIFO)");
    } finally {
      await hsd.dispose();
    }
  });
});
