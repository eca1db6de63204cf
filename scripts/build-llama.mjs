#!/usr/bin/env node
// Builds llama.cpp from the source bundled with node-llama-cpp, for one backend, then points the addon at it.
//
//   npm run build:llama -- --backend cuda|vulkan|metal|cpu [--cuda-arch 90] [-j N] [--single-cpu] [--plain-cmake]
//                          [--configure-only] [--rpc]
//   npm run build:llama -- --rpc-only [-j N]
//
//   --backend      GPU backend to build (the CPU backend is always built too)        default: cpu
//   --cuda-arch    CMAKE_CUDA_ARCHITECTURES (also read from the env var of that name) default: native
//   --single-cpu   one CPU backend with ggml's default instruction set (x86: AVX2/FMA/F16C) instead of all the CPU
//                  variants ggml picks from at load time: a much faster build. (GGML_NATIVE=ON would be the
//                  natural choice but ggml refuses it together with GGML_BACKEND_DL.)
//   -j N           parallel compile jobs                                           default: all CPUs
//   --plain-cmake  call cmake directly instead of through cmake-js
//   --configure-only  stop after cmake's configure step (checks the toolchain and options in seconds)
//   --bundle PATH  the llama.cpp git bundle (default: node-llama-cpp's llama/gitRelease.bundle; env HSD_LLAMA_BUNDLE)
//   --direct       build the addon without node-gyp (passed on to build-addon.mjs)
//   --rpc          also llama.cpp's RPC backend (GGML_RPC: the plugin libggml-rpc next to the other backends) and its
//                  server, ggml-rpc-server (see "RPC" below)
//   --rpc-only     only the RPC backend and ggml-rpc-server, for the llama.cpp already in use (the installed prebuilt
//                  packages, which have no RPC, or an earlier build of this script): no GPU or CPU backend is
//                  compiled, so it takes minutes, not the better part of an hour on a small machine
//
// Output: build/llama-<backend>/lib (libllama, libggml, libggml-base and the backend plugins), then
// build/local/hsd_native.node compiled against this tree's headers and build/native-config.json pointing at both
// (the addon loads the libraries at run time; that file makes it take these instead of the installed packages).
// Only the library targets are built (no common/, tools, examples, tests, server), as shared libraries with
// dynamically loaded backends (GGML_BACKEND_DL), so the same addon code loads CPU, CUDA, Vulkan or Metal. Sonames
// carry no version (libggml-base.so, as in the prebuilt packages), so that a plugin built here and one built there
// name the same libggml-base and a process holds one copy of it.
//
// RPC (--rpc, --rpc-only): ggml-rpc-server is a tool of llama.cpp's tools/ tree, which needs common/ configured; it
// is built in a second build folder (build/llama-rpc-build) with no compute backend of its own (GGML_CPU off) and
// only the targets ggml-rpc and ggml-rpc-server, then put in build/llama-rpc/: bin/ggml-rpc-server, lib/ its
// libggml, libggml-base and the RPC plugin, and links to the compute backends of the llama.cpp in use (the server
// loads them from there at start: CPU variants, and the GPU plugin of a --backend cuda|vulkan build). The RPC plugin
// hsd's processes load is the one of the --rpc build's library folder, or with --rpc-only lib/libggml-rpc of
// build/llama-rpc (it depends on libggml-base only, so it loads next to the prebuilt libraries of the same commit).
// build/rpc-config.json says where the plugin and the server are (src/rpc/support.ts reads it).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { llamaBundle } from "./lib/llama-bundle.mjs";
import { packageDir as packageDirFrom, installedCpuLibDir } from "./lib/package-dir.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const buildDir = path.join(root, "build");
const require = createRequire(path.join(root, "package.json"));
const BACKENDS = ["cpu", "cuda", "vulkan", "metal"];

const log = (...a) => console.log("[build-llama]", ...a);
function fail(msg) {
  console.error(`[build-llama] error: ${msg}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = {
    backend: "cpu",
    jobs: Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
    cudaArch: process.env.CMAKE_CUDA_ARCHITECTURES || "",
    singleCpu: false,
    plainCmake: false,
    configureOnly: false,
    bundle: process.env.HSD_LLAMA_BUNDLE || "",
    direct: false,
    rpc: false,
    rpcOnly: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--backend") o.backend = val();
    else if (a.startsWith("--backend=")) o.backend = a.slice(10);
    else if (a === "--cuda-arch") o.cudaArch = val();
    else if (a.startsWith("--cuda-arch=")) o.cudaArch = a.slice(12);
    else if (a === "-j" || a === "--jobs") o.jobs = Number(val());
    else if (/^-j\d+$/.test(a)) o.jobs = Number(a.slice(2));
    else if (a === "--single-cpu") o.singleCpu = true;
    else if (a === "--plain-cmake") o.plainCmake = true;
    else if (a === "--configure-only") o.configureOnly = true;
    else if (a === "--bundle") o.bundle = path.resolve(val());
    else if (a === "--direct") o.direct = true;
    else if (a === "--rpc") o.rpc = true;
    else if (a === "--rpc-only") o.rpcOnly = true;
    else fail(`unknown argument ${a} (see the header of scripts/build-llama.mjs)`);
  }
  if (!BACKENDS.includes(o.backend)) fail(`--backend must be one of ${BACKENDS.join(", ")}, got ${o.backend}`);
  if (!Number.isInteger(o.jobs) || o.jobs < 1) fail("-j needs a positive integer");
  if (o.backend === "metal" && process.platform !== "darwin") fail("the metal backend builds on macOS only");
  if ((o.rpc || o.rpcOnly) && process.platform === "win32") fail("--rpc and --rpc-only are not supported on Windows");
  if (o.rpcOnly && o.configureOnly) fail("--rpc-only and --configure-only do not go together");
  return o;
}
const opts = parseArgs(process.argv.slice(2));

function run(cmd, args, options = {}) {
  log("$", [cmd, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" "));
  const r = spawnSync(cmd, args, { stdio: "inherit", ...options });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} exited with ${r.status}`);
}

function have(cmd, args = ["--version"]) {
  const r = spawnSync(cmd, args, { stdio: "ignore" });
  return !r.error && r.status === 0;
}

function packageDir(name) {
  return packageDirFrom(root, name);
}

// The folder holding include/node/node.h of this Node (cmake-js's "nodedir"), or null.
function localNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  return fs.existsSync(path.join(prefix, "include", "node", "node.h")) ? prefix : null;
}

// 1. Source: the full llama.cpp tree of the bundle (the release the prebuilt libs and headers come from).
function ensureSource() {
  const src = path.join(buildDir, "llama.cpp-src");
  if (fs.existsSync(path.join(src, "CMakeLists.txt")) && fs.existsSync(path.join(src, "ggml", "CMakeLists.txt"))) {
    log(`source present in ${path.relative(root, src)}`);
    return src;
  }
  let bundle = opts.bundle;
  if (!bundle) {
    try {
      bundle = llamaBundle(root, log); // node-llama-cpp's, or fetched with npm pack in a consumer's project
    } catch (e) {
      fail(`${e.message}; or pass --bundle PATH`);
    }
  }
  if (!fs.existsSync(bundle)) fail(`llama.cpp source bundle not found: ${bundle}`);
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(buildDir, { recursive: true });
  run("git", ["-c", "advice.detachedHead=false", "clone", "--quiet", bundle, src]);
  return src;
}

function cmakeDefines(prefix) {
  const libDir = path.join(prefix, "lib");
  const d = {
    CMAKE_BUILD_TYPE: "Release",
    BUILD_SHARED_LIBS: "ON",
    GGML_BACKEND_DL: "ON", // backends are plugins loaded at run time from libDir
    GGML_BACKEND_DIR: libDir, // and installed there
    GGML_NATIVE: "OFF", // ggml refuses GGML_NATIVE with GGML_BACKEND_DL
    GGML_CPU_ALL_VARIANTS: opts.singleCpu ? "OFF" : "ON", // portable: ggml picks the best CPU variant at load time
    GGML_OPENMP: "OFF", // like the prebuilt libs: ggml's own thread pool
    LLAMA_BUILD_COMMON: "OFF",
    LLAMA_BUILD_TESTS: "OFF",
    LLAMA_BUILD_TOOLS: "OFF",
    LLAMA_BUILD_EXAMPLES: "OFF",
    LLAMA_BUILD_SERVER: "OFF",
    LLAMA_BUILD_APP: "OFF",
    LLAMA_OPENSSL: "OFF",
    LLAMA_ALL_WARNINGS: "OFF",
    GGML_BUILD_TESTS: "OFF",
    GGML_BUILD_EXAMPLES: "OFF",
    GGML_RPC: opts.rpc ? "ON" : "OFF",
    CMAKE_PLATFORM_NO_VERSIONED_SONAME: "ON",
    CMAKE_INSTALL_PREFIX: prefix,
    CMAKE_INSTALL_LIBDIR: "lib",
    CMAKE_INSTALL_RPATH: process.platform === "darwin" ? "@loader_path" : "$ORIGIN",
  };
  if (process.platform === "darwin") d.GGML_METAL = opts.backend === "metal" ? "ON" : "OFF";
  if (opts.backend === "metal") d.GGML_METAL_EMBED_LIBRARY = "ON";
  if (opts.backend === "vulkan") d.GGML_VULKAN = "ON";
  if (opts.backend === "cuda") {
    d.GGML_CUDA = "ON";
    d.CMAKE_CUDA_ARCHITECTURES = opts.cudaArch || "native";
  }
  return d;
}

function preflight() {
  if (!have("cmake")) fail("cmake is not installed (needed to build llama.cpp)");
  if (!have("git")) fail("git is not installed (needed to unpack the llama.cpp source bundle)");
  if (opts.rpcOnly) return;
  if (opts.backend === "cuda") {
    // nvcc is often installed but not on PATH; cmake reads CUDACXX.
    if (!process.env.CUDACXX && !have("nvcc") && fs.existsSync("/usr/local/cuda/bin/nvcc"))
      process.env.CUDACXX = "/usr/local/cuda/bin/nvcc";
    const nvcc = process.env.CUDACXX || "nvcc";
    if (!have(nvcc)) fail(`the CUDA compiler (${nvcc}) was not found: install the CUDA toolkit or set CUDACXX`);
    log(`CUDA compiler: ${nvcc}`);
    if (!opts.cudaArch && !have("nvidia-smi", ["-L"]))
      fail(
        "no GPU visible for CMAKE_CUDA_ARCHITECTURES=native: pass --cuda-arch (e.g. 90 for H100/H200) or set CMAKE_CUDA_ARCHITECTURES",
      );
  }
  if (opts.backend === "vulkan" && !have("glslc"))
    fail("glslc (Vulkan SDK / shaderc) was not found: it compiles ggml's Vulkan shaders");
}

// The whole llama.cpp (libraries and backends) into build/llama-<backend>, and the addon against it. Returns the
// library folder (null with --configure-only).
function buildLlama(src) {
  const t0 = Date.now();
  const prefix = path.join(buildDir, `llama-${opts.backend}`);
  const work = path.join(buildDir, `llama-${opts.backend}-build`);
  const defines = cmakeDefines(prefix);
  log(
    `backend=${opts.backend} jobs=${opts.jobs} ${opts.singleCpu ? "one CPU variant" : "all CPU variants"}` +
      (opts.backend === "cuda" ? ` CMAKE_CUDA_ARCHITECTURES=${defines.CMAKE_CUDA_ARCHITECTURES}` : ""),
  );

  // cmake-js (a devDependency) drives the configure + build: it picks the generator (Ninja when present) and
  // finds cmake. It is a thin wrapper here; install is plain `cmake --install` (cmake-js has no install step).
  // cmake-js insists on Node's headers (llama.cpp does not use them) and downloads them from nodejs.org unless
  // npm_config_nodedir names a local copy: we point it at the headers installed with Node. Without a local copy
  // (and no internet, as on the GPU machines) plain cmake is used instead.
  const cmakeJs = !opts.plainCmake && packageDir("cmake-js");
  const nodedir = localNodeDir();
  if (cmakeJs && nodedir) {
    const bin = path.join(cmakeJs, "bin", "cmake-js");
    const cd = Object.entries(defines).map(([k, v]) => `--CD${k}=${v}`);
    const step = opts.configureOnly ? ["configure"] : ["build", "--parallel", String(opts.jobs)];
    run(process.execPath, [bin, ...step, "--directory", src, "--out", work, "--config", "Release", ...cd], {
      env: { ...process.env, npm_config_nodedir: nodedir },
    });
  } else {
    if (!opts.plainCmake)
      log(
        cmakeJs
          ? "no local Node headers for cmake-js: using cmake directly"
          : "cmake-js not installed: using cmake directly",
      );
    const gen = have("ninja") ? ["-G", "Ninja"] : [];
    run("cmake", ["-S", src, "-B", work, ...gen, ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`)]);
    if (!opts.configureOnly) run("cmake", ["--build", work, "--config", "Release", "--parallel", String(opts.jobs)]);
  }
  if (opts.configureOnly) {
    log(
      `configured in ${path.relative(root, work)} (${((Date.now() - t0) / 1000).toFixed(0)} s); --configure-only: stopping here`,
    );
    return null;
  }
  fs.rmSync(prefix, { recursive: true, force: true });
  run("cmake", ["--install", work, "--config", "Release", "--prefix", prefix]);

  const libDir = path.join(prefix, "lib");
  const libs = fs.readdirSync(libDir).filter((f) => /\.(so|dylib|dll)(\.|$)/.test(f));
  log(`installed ${libs.length} libraries in ${path.relative(root, libDir)}: ${libs.join(", ")}`);
  const buildS = ((Date.now() - t0) / 1000).toFixed(0);

  // The addon is compiled against the headers of the very tree the libs came from.
  run(process.execPath, [
    path.join(root, "scripts", "build-addon.mjs"),
    "--lib-dir",
    libDir,
    "--backend",
    opts.backend,
    "--headers",
    src,
    "-j",
    String(opts.jobs),
    ...(opts.direct ? ["--direct"] : []),
  ]);
  log(
    `done: llama.cpp built in ${buildS} s, total ${((Date.now() - t0) / 1000).toFixed(0)} s; build/native-config.json now points at ${path.relative(root, libDir)}`,
  );
  log("to go back to the installed @node-llama-cpp packages: delete build/native-config.json");
  return libDir;
}

// The folder of the compute backends hsd uses when no whole build is given: an earlier build of this script
// (build/native-config.json), else the installed prebuilt CPU package.
function librariesInUse() {
  const config = path.join(buildDir, "native-config.json");
  if (fs.existsSync(config)) {
    const libDir = JSON.parse(fs.readFileSync(config, "utf8")).libDir;
    if (typeof libDir === "string" && fs.existsSync(libDir)) return libDir;
  }
  const bins = installedCpuLibDir(root);
  if (bins) return bins;
  fail("no llama.cpp in use to add RPC to: install the @node-llama-cpp packages (npm install) or build one (--rpc)");
}

function sourceCommit(src) {
  const r = spawnSync("git", ["-C", src, "rev-parse", "HEAD"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "";
}

// ggml-rpc-server and the RPC plugin into build/llama-rpc (see the header); build/rpc-config.json. `backendsDir`:
// the library folder whose compute backends the server is to use; `pluginDir`: where hsd's RPC plugin is (a --rpc
// build's library folder), or null to use the one built here.
function buildRpc(src, backendsDir, pluginDir) {
  const t0 = Date.now();
  const out = path.join(buildDir, "llama-rpc");
  const work = path.join(buildDir, "llama-rpc-build");
  const lib = path.join(out, "lib");
  const origin = process.platform === "darwin" ? "@loader_path" : "$ORIGIN";
  const defines = {
    CMAKE_BUILD_TYPE: "Release",
    BUILD_SHARED_LIBS: "ON",
    GGML_BACKEND_DL: "ON",
    GGML_BACKEND_DIR: lib, // where the server looks for backends first
    GGML_NATIVE: "OFF",
    GGML_CPU: "OFF", // the server takes the compute backends of the llama.cpp in use (linked into lib/)
    GGML_METAL: "OFF",
    GGML_RPC: "ON",
    GGML_OPENMP: "OFF",
    LLAMA_BUILD_COMMON: "ON", // tools/ (where the server is) is only configured with common/
    LLAMA_BUILD_TOOLS: "ON",
    LLAMA_TOOLS_INSTALL: "OFF",
    LLAMA_BUILD_TESTS: "OFF",
    LLAMA_BUILD_EXAMPLES: "OFF",
    LLAMA_BUILD_SERVER: "OFF",
    LLAMA_BUILD_APP: "OFF",
    LLAMA_OPENSSL: "OFF",
    LLAMA_ALL_WARNINGS: "OFF",
    GGML_BUILD_TESTS: "OFF",
    GGML_BUILD_EXAMPLES: "OFF",
    CMAKE_PLATFORM_NO_VERSIONED_SONAME: "ON",
    CMAKE_BUILD_WITH_INSTALL_RPATH: "ON", // the binaries are copied out of the build tree, not installed
    CMAKE_INSTALL_RPATH: `${origin};${origin}/../lib`,
  };
  const gen = have("ninja") ? ["-G", "Ninja"] : [];
  log(`RPC: ggml-rpc-server and the RPC backend, jobs=${opts.jobs}${gen.length ? " (ninja)" : ""}`);
  run("cmake", ["-S", src, "-B", work, ...gen, ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`)]);
  run("cmake", [
    "--build",
    work,
    "--config",
    "Release",
    "--parallel",
    String(opts.jobs),
    "--target",
    "ggml-rpc",
    "ggml-rpc-server",
  ]);

  const ext = process.platform === "darwin" ? ".dylib" : ".so";
  const built = path.join(work, "bin");
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, "bin"), { recursive: true });
  fs.mkdirSync(lib, { recursive: true });
  fs.copyFileSync(path.join(built, "ggml-rpc-server"), path.join(out, "bin", "ggml-rpc-server"));
  fs.chmodSync(path.join(out, "bin", "ggml-rpc-server"), 0o755);
  for (const name of ["ggml", "ggml-base", "ggml-rpc"]) {
    const file = `lib${name}${ext}`;
    if (!fs.existsSync(path.join(built, file))) fail(`the RPC build did not make ${file} in ${built}`);
    fs.copyFileSync(path.join(built, file), path.join(lib, file));
  }
  // The compute backends of the llama.cpp in use, as links: every plugin there but the RPC one.
  const plugins = fs
    .readdirSync(backendsDir)
    .filter((f) => f.startsWith("libggml-") && f.endsWith(ext) && !/^libggml-(base|rpc)[.-]/.test(f));
  for (const f of plugins) fs.symlinkSync(path.join(backendsDir, f), path.join(lib, f));
  if (plugins.length === 0) fail(`no ggml backend plugins in ${backendsDir} for the server to use`);

  // Smoke test: the server loads its backends and prints its usage.
  const server = path.join(out, "bin", "ggml-rpc-server");
  const r = spawnSync(server, ["--help"], { encoding: "utf8" });
  if (r.status !== 0 || !/loaded CPU backend/.test(r.stderr ?? ""))
    fail(`the built ggml-rpc-server does not start or finds no CPU backend:\n${r.stderr || r.stdout}`);

  const config = {
    mode: pluginDir ? "full" : "plugin",
    plugin: path.join(pluginDir ?? lib, `libggml-rpc${ext}`),
    server,
    llamaCommit: sourceCommit(src),
    backendsFrom: backendsDir,
    builtAt: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(buildDir, "rpc-config.json"), JSON.stringify(config, null, 2) + "\n");
  log(
    `RPC done in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${path.relative(root, server)} (compute backends from ` +
      `${backendsDir}: ${plugins.length} plugins), build/rpc-config.json`,
  );
}

function main() {
  preflight();
  const src = ensureSource();
  if (opts.rpcOnly) return buildRpc(src, librariesInUse(), null);
  const libDir = buildLlama(src);
  if (libDir && opts.rpc) buildRpc(src, libDir, libDir);
}

main();
