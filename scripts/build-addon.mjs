#!/usr/bin/env node
// Builds the N-API addon build/Release/hsd_native.node WITHOUT compiling llama.cpp.
//
//   node scripts/build-addon.mjs                      link against the prebuilt @node-llama-cpp/<platform> libs
//   node scripts/build-addon.mjs --prebuilt linux-x64-vulkan   another installed prebuilt package
//   node scripts/build-addon.mjs --lib-dir DIR --backend cuda  libs built by scripts/build-llama.mjs
//   options: -j N (compile jobs), --quiet, --headers SRC (take the headers from a llama.cpp source tree),
//            --direct (compile with $CXX directly instead of node-gyp; also the fallback when node-gyp is missing,
//            e.g. on a machine with node but no npm)
//
// Steps: (1) extract llama.cpp's public headers (include/, ggml/include/) from the source bundle that ships with
// node-llama-cpp, into build/llama-headers/ (skipped when present): the headers must match the prebuilt libs, and
// node-llama-cpp pins both to the same llama.cpp release; (2) find the shared libs; (3) write
// build/native-build.json, which binding.gyp reads; (4) node-gyp configure + build (never `rebuild`/`clean`: those
// delete the whole build/ folder, which holds other people's scratch too); (5) load the new addon in a child
// process as a smoke test; (6) write build/native-config.json {libDir, backend, ...} for src/native/load.ts.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { packageDir as packageDirFrom } from "./lib/package-dir.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const buildDir = path.join(root, "build");
const require = createRequire(path.join(root, "package.json"));

function log(...args) {
  if (!opts.quiet) console.log("[build-addon]", ...args);
}
function fail(msg) {
  console.error(`[build-addon] error: ${msg}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { jobs: Math.max(1, os.availableParallelism?.() ?? os.cpus().length), quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--lib-dir") o.libDir = path.resolve(val());
    else if (a === "--backend") o.backend = val();
    else if (a === "--prebuilt") o.prebuilt = val();
    else if (a === "-j" || a === "--jobs") o.jobs = Number(val());
    else if (/^-j\d+$/.test(a)) o.jobs = Number(a.slice(2));
    else if (a === "--quiet") o.quiet = true;
    else if (a === "--headers") o.headers = path.resolve(val());
    else if (a === "--direct") o.direct = true;
    else fail(`unknown argument ${a}`);
  }
  if (!Number.isInteger(o.jobs) || o.jobs < 1) fail("-j needs a positive integer");
  if (o.libDir && !o.backend) fail("--lib-dir needs --backend");
  return o;
}
const opts = parseArgs(process.argv.slice(2));

function run(cmd, args, options = {}) {
  log("$", [cmd, ...args].join(" "));
  const r = spawnSync(cmd, args, { stdio: opts.quiet ? ["ignore", "ignore", "inherit"] : "inherit", ...options });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(" ")} exited with ${r.status}`);
  return r;
}

// ---------- 1. headers ----------
function packageDir(name) {
  return packageDirFrom(root, name);
}

function bundlePath() {
  const dir = packageDir("node-llama-cpp");
  if (!dir) fail("node-llama-cpp is not installed (its llama/gitRelease.bundle holds the llama.cpp headers)");
  return path.join(dir, "llama", "gitRelease.bundle");
}

function ensureHeaders() {
  if (opts.headers) {
    if (
      !fs.existsSync(path.join(opts.headers, "include", "llama.h")) ||
      !fs.existsSync(path.join(opts.headers, "ggml", "include", "gguf.h"))
    )
      fail(`--headers ${opts.headers}: no include/llama.h and ggml/include/gguf.h there`);
    log(`headers from ${opts.headers}`);
    return opts.headers;
  }
  const dest = path.join(buildDir, "llama-headers");
  const stamp = path.join(dest, "commit.txt");
  if (
    fs.existsSync(path.join(dest, "include", "llama.h")) &&
    fs.existsSync(path.join(dest, "ggml", "include", "gguf.h")) &&
    fs.existsSync(stamp)
  ) {
    log(`headers present in ${path.relative(root, dest)} (llama.cpp ${fs.readFileSync(stamp, "utf8").trim()})`);
    return dest;
  }
  const bundle = bundlePath();
  if (!fs.existsSync(bundle)) fail(`llama.cpp source bundle not found at ${bundle} (is node-llama-cpp installed?)`);
  const tmp = path.join(buildDir, `llama-headers.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(buildDir, { recursive: true });
  run("git", ["clone", "--quiet", "--no-checkout", bundle, tmp]);
  run("git", ["-C", tmp, "checkout", "--quiet", "HEAD", "--", "include", "ggml/include"]);
  const commit = spawnSync("git", ["-C", tmp, "rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim();
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(path.join(dest, "ggml"), { recursive: true });
  fs.renameSync(path.join(tmp, "include"), path.join(dest, "include"));
  fs.renameSync(path.join(tmp, "ggml", "include"), path.join(dest, "ggml", "include"));
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.writeFileSync(stamp, commit + "\n");
  log(`extracted llama.cpp headers (${commit}) into ${path.relative(root, dest)}`);
  return dest;
}

// ---------- 2. libraries ----------
// The @node-llama-cpp prebuilt package for this machine. Only linux-x64 is tested here; the other names follow
// node-llama-cpp's package naming (mac-arm64-metal, mac-x64, linux-arm64, linux-armv7l, win-x64, win-arm64).
function defaultPrebuiltName(platform = process.platform, arch = process.arch) {
  if (platform === "linux" && ["x64", "arm64"].includes(arch)) return `linux-${arch}`;
  if (platform === "linux" && arch === "arm") return "linux-armv7l";
  if (platform === "darwin" && arch === "arm64") return "mac-arm64-metal";
  if (platform === "darwin" && arch === "x64") return "mac-x64";
  if (platform === "win32" && ["x64", "arm64"].includes(arch)) return `win-${arch}`;
  return null;
}

function backendOfPrebuilt(name) {
  for (const b of ["cuda", "vulkan", "metal"]) if (name.includes(b)) return b;
  return "cpu";
}

async function prebuiltBinsDir(name) {
  const pkg = `@node-llama-cpp/${name}`;
  let binsDir;
  try {
    const mod = await import(pathToFileURL(require.resolve(pkg)).href);
    binsDir = mod.getBinsDir().binsDir;
  } catch {
    const guess = path.join(root, "node_modules", "@node-llama-cpp", name, "bins");
    if (fs.existsSync(guess)) binsDir = guess;
  }
  if (!binsDir) fail(`prebuilt package ${pkg} is not installed (it is an optional dependency of node-llama-cpp)`);
  // bins/<name>/ holds the libs; search one level down so renamed folders still work.
  const candidates = [path.join(binsDir, name), binsDir, ...fs.readdirSync(binsDir).map((d) => path.join(binsDir, d))];
  const dir = candidates.find((d) => fs.existsSync(d) && fs.statSync(d).isDirectory() && findLibs(d, true));
  if (!dir) fail(`no libllama shared library found under ${binsDir}`);
  return dir;
}

// Link inputs for one lib dir: libllama*, libggml* (the backend registry) and libggml-base (gguf, ggml core).
// Names vary: libllama.v0.4.0.so / libllama.cuda.v0.4.0.so (node-llama-cpp), libllama.so (plain cmake build).
function findLibs(dir, probe = false) {
  const files = fs.readdirSync(dir);
  const ext = process.platform === "darwin" ? "dylib" : process.platform === "win32" ? "lib" : "so";
  const esc = ext.replace(".", "\\.");
  const pick = (re) => files.filter((f) => re.test(f)).sort((a, b) => a.length - b.length)[0];
  const libs = {
    llama: pick(new RegExp(`^(lib)?llama(\\.[\\w.]+)?\\.${esc}$`)),
    ggml: pick(new RegExp(`^(lib)?ggml(\\.[\\w.]+)?\\.${esc}$`)),
    ggmlBase: pick(new RegExp(`^(lib)?ggml-base(\\.[\\w.]+)?\\.${esc}$`)),
  };
  if (probe) return libs.llama ? libs : null;
  for (const [k, v] of Object.entries(libs)) if (!v) fail(`no ${k} library (*.${ext}) in ${dir}`);
  return libs;
}

function linkArgs(dir, libs) {
  const names = [libs.llama, libs.ggml, libs.ggmlBase];
  if (process.platform === "linux")
    return { libraries: names.map((n) => `-l:${n}`), ldflags: [`-L${dir}`, `-Wl,-rpath,${dir}`] };
  if (process.platform === "darwin")
    return { libraries: names.map((n) => path.join(dir, n)), ldflags: [`-Wl,-rpath,${dir}`] };
  // Windows (untested): link the import libraries; the DLLs must be on PATH or next to the .node file.
  return { libraries: names.map((n) => path.join(dir, n)), ldflags: [] };
}

// ---------- 4. node-gyp ----------
function nodeGypScript() {
  const cands = [];
  if (process.env.npm_config_node_gyp) cands.push(process.env.npm_config_node_gyp);
  try {
    cands.push(require.resolve("node-gyp/bin/node-gyp.js"));
  } catch {}
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  cands.push(path.join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  cands.push(
    path.join(path.dirname(process.execPath), "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
  );
  const r = spawnSync("npm", ["config", "get", "node-gyp"], { encoding: "utf8", shell: process.platform === "win32" });
  if (r.status === 0 && r.stdout.trim() && r.stdout.trim() !== "undefined") cands.push(r.stdout.trim());
  return cands.find((c) => fs.existsSync(c)) ?? null;
}

// node-gyp downloads the Node headers unless told where they are; this machine has no internet but the headers
// ship with the Node installation (<prefix>/include/node).
function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  const h = path.join(prefix, "include", "node", "node_version.h");
  if (!fs.existsSync(h)) return null;
  const src = fs.readFileSync(h, "utf8");
  const v = ["MAJOR", "MINOR", "PATCH"]
    .map((k) => src.match(new RegExp(`#define NODE_${k}_VERSION (\\d+)`))?.[1])
    .join(".");
  return `v${v}` === process.version ? prefix : null;
}

function llamaCommit(headers) {
  const stamp = path.join(headers, "commit.txt");
  if (fs.existsSync(stamp)) return fs.readFileSync(stamp, "utf8").trim();
  const r = spawnSync("git", ["-C", headers, "rev-parse", "HEAD"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

// The same compile as binding.gyp, without node-gyp (and so without python or npm): one compiler call per source,
// then one link. Linux and macOS only. Needs the Node-API headers: <node prefix>/include/node, or
// HSD_NODE_API_INCLUDE pointing at a folder with node_api.h.
function directBuild(inputs, addon) {
  if (process.platform === "win32") fail("--direct is not supported on Windows: install node-gyp");
  const gypSpec = JSON.parse(fs.readFileSync(path.join(root, "binding.gyp"), "utf8").replace(/^\s*#.*$/gm, ""));
  const target = gypSpec.targets[0];
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  const napiInc = process.env.HSD_NODE_API_INCLUDE ?? path.join(prefix, "include", "node");
  if (!fs.existsSync(path.join(napiInc, "node_api.h")))
    fail(`Node-API headers not found in ${napiInc} (set HSD_NODE_API_INCLUDE to a folder with node_api.h)`);
  const addonApi = packageDir("node-addon-api");
  if (!addonApi) fail("node-addon-api is not installed");
  const cxx = process.env.CXX || "c++";
  const objDir = path.join(buildDir, "Release", "obj.direct");
  fs.mkdirSync(objDir, { recursive: true });
  const cflags = [
    "-std=c++17",
    "-O3",
    "-fPIC",
    "-fexceptions",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    ...target.defines.map((d) => `-D${d}`),
    "-DBUILDING_NODE_EXTENSION",
    `-I${napiInc}`,
    `-I${addonApi}`,
    ...inputs.includeDirs.map((d) => `-I${d}`),
  ];
  const objs = target.sources.map((src) => {
    const obj = path.join(objDir, path.basename(src).replace(/\.cc$/, ".o"));
    run(cxx, [...cflags, "-c", path.join(root, src), "-o", obj]);
    return obj;
  });
  const shared = process.platform === "darwin" ? ["-bundle", "-undefined", "dynamic_lookup"] : ["-shared"];
  run(cxx, [...shared, "-o", addon, ...objs, ...inputs.ldflags, ...inputs.libraries]);
}

async function main() {
  const t0 = Date.now();
  const headers = ensureHeaders();

  let libDir, backend, source;
  if (opts.libDir) {
    libDir = opts.libDir;
    backend = opts.backend;
    source = "build-llama";
  } else {
    const name = opts.prebuilt ?? process.env.HSD_PREBUILT ?? defaultPrebuiltName();
    if (!name) fail(`no prebuilt llama.cpp for ${process.platform}-${process.arch}: run npm run build:llama`);
    libDir = await prebuiltBinsDir(name);
    backend = opts.backend ?? backendOfPrebuilt(name);
    source = `@node-llama-cpp/${name}`;
  }
  const libs = findLibs(libDir);
  log(`linking against ${source}: ${libDir} [${Object.values(libs).join(", ")}] backend=${backend}`);

  const buildInputs = {
    includeDirs: [path.join(headers, "include"), path.join(headers, "ggml", "include")],
    libDir,
    ...linkArgs(libDir, libs),
  };
  fs.mkdirSync(buildDir, { recursive: true });
  fs.writeFileSync(path.join(buildDir, "native-build.json"), JSON.stringify(buildInputs, null, 2) + "\n");

  const addon = path.join(buildDir, "Release", "hsd_native.node");
  const gyp = opts.direct ? null : nodeGypScript();
  // Remove the old module first: make would otherwise keep one written by the other build path. (Unlinking is
  // safe for processes that have it loaded.)
  fs.rmSync(addon, { force: true });
  if (gyp) {
    const nd = nodeDir();
    const common = [...(nd ? [`--nodedir=${nd}`] : []), ...(opts.quiet ? ["--silent"] : ["--loglevel=warn"])];
    run(process.execPath, [gyp, "configure", ...common], { cwd: root });
    run(process.execPath, [gyp, "build", `--jobs=${opts.jobs}`, ...common], { cwd: root });
  } else {
    if (!opts.direct) log("node-gyp not found: compiling directly with the C++ compiler");
    directBuild(buildInputs, addon);
  }
  if (!fs.existsSync(addon)) fail(`the build finished but ${addon} is missing`);

  // Smoke test in a child process: linking/rpath problems show up here, not in the user's first run.
  const probe = spawnSync(
    process.execPath,
    [
      "-e",
      `const a=require(${JSON.stringify(addon)});const d=a.loadBackends(${JSON.stringify(libDir)});console.log(JSON.stringify(d.map(x=>x.name)))`,
    ],
    { encoding: "utf8" },
  );
  if (probe.status !== 0) fail(`the built addon does not load:\n${probe.stderr || probe.stdout}`);
  log(`addon loads; ggml devices: ${probe.stdout.trim()}`);

  const config = {
    libDir,
    backend,
    source,
    addon: path.relative(root, addon),
    llamaCommit: llamaCommit(headers),
    builtAt: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(buildDir, "native-config.json"), JSON.stringify(config, null, 2) + "\n");
  log(`wrote build/native-config.json (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

await main();
