// Which llama.cpp build the loader picks (src/native/backends.ts), with fake packages and plugin loads: the CUDA and
// Vulkan paths cannot run on this CPU-only machine, so their order and fallbacks are checked here; the real loader
// on this machine is checked at the end (the CUDA and Vulkan plugins fail to load, so the CPU is used).
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { packageRoot, selectBackend, type PluginResult, type SelectOptions } from "../src/native/index.js";

const V = "3.21.1";
let root: string;

/** Fake installed packages: name -> version; every plugin file exists. */
function options(
  installed: Record<string, string>,
  plugins: Record<string, PluginResult>,
  extra: Partial<SelectOptions> = {},
) {
  const opened: string[] = [];
  const tried: string[] = [];
  const o: SelectOptions = {
    platform: "linux",
    arch: "x64",
    expectedVersion: V,
    resolve: (name) => (installed[name] ? { dir: path.join(root, name), version: installed[name]! } : null),
    openLibraries: (dir) => void opened.push(dir),
    loadPlugin: (file) => {
      tried.push(path.relative(root, file));
      return (
        plugins[path.relative(root, file)] ?? { loaded: false, name: "", gpuDevices: 0, error: `cannot load ${file}` }
      );
    },
    ...extra,
  };
  return { o, opened, tried };
}

const CPU = "@node-llama-cpp/linux-x64";
const CUDA = "@node-llama-cpp/linux-x64-cuda";
const CUDA_EXT = "@node-llama-cpp/linux-x64-cuda-ext";
const VULKAN = "@node-llama-cpp/linux-x64-vulkan";
const CUDA_PLUGIN = `${CUDA}/bins/linux-x64-cuda/libggml-cuda.so`;
const CUDA_FALLBACK = `${CUDA_EXT}/bins/linux-x64-cuda/fallback/libggml-cuda.so`;
const VULKAN_PLUGIN = `${VULKAN}/bins/linux-x64-vulkan/libggml-vulkan.so`;
const ALL = { [CPU]: V, [CUDA]: V, [CUDA_EXT]: V, [VULKAN]: V };
const gpu = (name: string): PluginResult => ({ loaded: true, name, gpuDevices: 1, error: "" });

describe("backend selection (fake packages)", function () {
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "hsd-backends-"));
    for (const f of [CUDA_PLUGIN, CUDA_FALLBACK, VULKAN_PLUGIN]) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      fs.writeFileSync(path.join(root, f), "");
    }
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("takes CUDA when its plugin loads and finds a GPU; the core libraries from the CPU package", function () {
    const { o, opened, tried } = options(ALL, { [CUDA_PLUGIN]: gpu("CUDA") });
    const s = selectBackend(o);
    expect(s.backend).to.equal("cuda");
    expect(opened).to.deep.equal([path.join(root, CPU, "bins/linux-x64")]);
    expect(s.libDir).to.equal(opened[0]);
    expect(tried).to.deep.equal([CUDA_PLUGIN]);
    expect(s.source).to.equal(`${CPU} + ${CUDA}`);
    expect(s.gpuNotes).to.deep.equal([]);
  });

  it("falls back to the -ext CUDA plugin, then Vulkan, then the CPU, saying why", function () {
    expect(selectBackend(options(ALL, { [CUDA_FALLBACK]: gpu("CUDA") }).o).backend).to.equal("cuda");
    const v = options(ALL, { [VULKAN_PLUGIN]: gpu("Vulkan") });
    expect(selectBackend(v.o).backend).to.equal("vulkan");
    expect(v.tried).to.deep.equal([CUDA_PLUGIN, CUDA_FALLBACK, VULKAN_PLUGIN]);
    const none = options(ALL, { [VULKAN_PLUGIN]: { loaded: true, name: "Vulkan", gpuDevices: 0, error: "" } });
    const s = selectBackend(none.o);
    expect(s.backend).to.equal("cpu");
    expect(s.gpuNotes).to.have.length(3);
    expect(s.gpuNotes[0]).to.match(/^cuda: cannot load .*libggml-cuda\.so/);
    expect(s.gpuNotes[2]).to.match(/^vulkan: .* loaded but found no GPU/);
  });

  it("HSD_BACKEND=cpu tries no GPU plugin; a forced GPU backend that fails or is missing is an error", function () {
    const cpu = options(ALL, { [CUDA_PLUGIN]: gpu("CUDA") }, { forced: "cpu" });
    expect(selectBackend(cpu.o).backend).to.equal("cpu");
    expect(cpu.tried).to.deep.equal([]);
    expect(() => selectBackend(options(ALL, {}, { forced: "cuda" }).o)).to.throw(
      /HSD_BACKEND=cuda: .*Unset HSD_BACKEND/,
    );
    expect(() => selectBackend(options({ [CPU]: V }, {}, { forced: "vulkan" }).o)).to.throw(
      /linux-x64-vulkan is not installed \(npm install @node-llama-cpp\/linux-x64-vulkan@3\.21\.1/,
    );
    expect(() => selectBackend(options(ALL, {}, { forced: "gpu" }).o)).to.throw(/HSD_BACKEND must be/);
    expect(() => selectBackend(options(ALL, {}, { forced: "metal" }).o)).to.throw(/no prebuilt metal/);
  });

  it("a CUDA-only install takes its core libraries from the CUDA package, and still runs on the CPU", function () {
    const c = options({ [CUDA]: V }, {});
    const s = selectBackend(c.o);
    expect(s.backend).to.equal("cpu");
    expect(c.opened).to.deep.equal([path.join(root, CUDA, "bins/linux-x64-cuda")]);
  });

  it("nothing installed, or another version: an error with the command", function () {
    expect(() => selectBackend(options({}, {}).o)).to.throw(
      /no llama.cpp libraries installed for linux-x64.*--omit=optional.*npm install @node-llama-cpp\/linux-x64@3\.21\.1/,
    );
    expect(() => selectBackend(options({ [CPU]: "3.20.0" }, {}).o)).to.throw(
      /linux-x64 is version 3\.20\.0, but hsd's addon was compiled against the headers of 3\.21\.1/,
    );
    const mixed = options({ ...ALL, [CUDA]: "3.20.0" }, { [CUDA_PLUGIN]: gpu("CUDA") });
    expect(selectBackend(mixed.o).backend).to.equal("cpu"); // the mismatched plugin is skipped, not loaded
    expect(mixed.tried).to.not.include(CUDA_PLUGIN);
  });

  it("macOS arm64 uses the Metal package as it is; unknown platforms say how to build", function () {
    const m = options({ "@node-llama-cpp/mac-arm64-metal": V }, {}, { platform: "darwin", arch: "arm64" });
    const s = selectBackend(m.o);
    expect(s.backend).to.equal("metal");
    expect(m.tried).to.deep.equal([]);
    expect(() => selectBackend(options({}, {}, { platform: "freebsd", arch: "x64" }).o)).to.throw(/build:llama/);
  });
});

describe("the real loader on this machine", function () {
  this.timeout(60_000);
  // A fresh process each: the choice is made once per process.
  function load(env: Record<string, string>, code: string) {
    const lib = path.join(packageRoot, "ts-lib", "native", "index.js");
    return spawnSync(
      process.execPath,
      ["--input-type=module", "-e", `const n = await import(${JSON.stringify(lib)});\n${code}`],
      {
        encoding: "utf8",
        env: { ...process.env, ...env },
      },
    );
  }

  it("loads the CPU build when no GPU plugin loads, and warns once when gpuLayers > 0 asks for a GPU", function () {
    const probe = load({}, "console.log(JSON.stringify(n.loadNative().devices.map((d) => d.type)))");
    expect(probe.status, probe.stderr).to.equal(0);
    if (JSON.parse(probe.stdout).some((t: string) => t === "gpu" || t === "igpu")) this.skip(); // a GPU machine
    const models = path.join(packageRoot, "models", "tiny");
    const file = path.join(
      models,
      fs.readdirSync(models).find((f) => f.endsWith(".gguf"))!,
    );
    const r = load(
      {},
      `for (let i = 0; i < 2; i++) (await n.loadModel(${JSON.stringify(file)}, { gpuLayers: 99 })).dispose();
       console.log(n.nativeBackend());`,
    );
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal("cpu");
    expect(r.stderr.match(/HsdWarning: gpuLayers 99: no GPU backend is loaded/g)).to.have.length(1);
  });

  it("HSD_BACKEND=cpu and a bad HSD_BACKEND", function () {
    if (fs.existsSync(path.join(packageRoot, "build", "native-config.json"))) this.skip(); // a local build wins
    const cpu = load({ HSD_BACKEND: "cpu" }, "console.log(n.loadNative().config.source)");
    expect(cpu.status, cpu.stderr).to.equal(0);
    expect(cpu.stdout.trim()).to.match(/^@node-llama-cpp\/\S+$/);
    const bad = load({ HSD_BACKEND: "gpu" }, "n.loadNative()");
    expect(bad.status).to.not.equal(0);
    expect(bad.stderr).to.match(/HSD_BACKEND must be auto, cpu, cuda, vulkan, metal; got "gpu"/);
  });

  it("HSD_CPU_VARIANT loads the CPU variant it names, and a name the folder lacks is an error listing those it has", function () {
    const models = path.join(packageRoot, "models", "tiny");
    const file = path.join(
      models,
      fs.readdirSync(models).find((f) => f.endsWith(".gguf"))!,
    );
    const open = `(await n.loadModel(${JSON.stringify(file)})).dispose(); console.log(n.llamaBuildDescription());`;
    const chosen = load({}, open);
    expect(chosen.status, chosen.stderr).to.equal(0);
    const libDir = JSON.parse(load({}, "console.log(JSON.stringify(n.loadNative().config.libDir))").stdout) as string;
    const variants = fs.readdirSync(libDir).flatMap((f) => /^libggml-cpu-([\w-]+)\.so$/.exec(f)?.[1] ?? []);
    const bad = load({ HSD_CPU_VARIANT: "no-such-cpu" }, "n.loadNative()");
    expect(bad.status).to.not.equal(0);
    expect(bad.stderr).to.contain(`HSD_CPU_VARIANT=no-such-cpu: ${libDir} has no such CPU backend variant`);
    if (variants.length < 2) return; // one CPU backend (a --single-cpu build): nothing to choose between
    for (const f of variants) expect(bad.stderr).to.contain(f);
    // A variant other than the one ggml picks by itself (whose name the default run printed): the baseline x64 one,
    // which every x86-64 CPU runs, where there is one.
    const others = variants.filter((v) => !chosen.stdout.includes(`libggml-cpu-${v}.so`));
    const other = others.includes("x64") ? "x64" : others[0]!;
    const forced = load({ HSD_CPU_VARIANT: other }, open);
    expect(forced.status, forced.stderr).to.equal(0);
    expect(forced.stdout.trim()).to.match(new RegExp(`; CPU backend libggml-cpu-${other}\\.so$`));
  });
});
