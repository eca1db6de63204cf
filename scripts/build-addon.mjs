#!/usr/bin/env node
// Builds the N-API addon hsd_native.node. llama.cpp is not compiled and not linked: the addon loads llama.cpp's
// shared libraries at run time (native/llama_api.h), so one build serves every Node >= 20 (N-API 8) and every
// installed llama.cpp build (CPU, CUDA, Vulkan, Metal packages of node-llama-cpp, or scripts/build-llama.mjs).
//
//   node scripts/build-addon.mjs                      -> prebuilds/<platform>-<arch>/hsd_native.node (+ .json)
//       what `npm pack` / `npm publish` ship (the `prepare` script runs it), and what `npx hsd-build-addon` builds in
//       a consumer's project on a platform without a prebuilt addon
//   node scripts/build-addon.mjs --lib-dir DIR --backend B [--headers SRC]
//       -> build/local/hsd_native.node and build/native-config.json {libDir, backend, addon}: an explicit local
//       llama.cpp build (scripts/build-llama.mjs calls this), which wins over the installed packages at run time
//   options: -j N (compile jobs), --quiet, --headers SRC (take the headers from a llama.cpp source tree),
//            --direct (compile with $CXX directly instead of node-gyp; also the fallback when node-gyp is missing,
//            e.g. on a machine with node but no npm)
//
// Steps: (1) extract llama.cpp's public headers (include/, ggml/include/) from node-llama-cpp's source bundle (the
// commit its prebuilt libraries were built from; scripts/lib/llama-bundle.mjs) into build/llama-headers/ (skipped
// when present); (2) write build/native-build.json, which binding.gyp reads; (3) node-gyp configure + build (never
// `rebuild`/`clean`: those delete the whole build/ folder, which holds other people's scratch too); (4) load the new
// addon in a child process with the installed CPU libraries (or --lib-dir) as a smoke test; (5) put it in place.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { llamaBundle, llamaPackagesVersion } from "./lib/llama-bundle.mjs";
import { cpuPackageName, installedCpuLibDir, packageDir as packageDirFrom } from "./lib/package-dir.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const buildDir = path.join(root, "build");
const require = createRequire(path.join(root, "package.json"));
const platformKey = `${process.platform}-${process.arch}`;

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
    else if (a === "-j" || a === "--jobs") o.jobs = Number(val());
    else if (/^-j\d+$/.test(a)) o.jobs = Number(a.slice(2));
    else if (a === "--quiet") o.quiet = true;
    else if (a === "--headers") o.headers = path.resolve(val());
    else if (a === "--direct") o.direct = true;
    else if (a === "-h" || a === "--help") {
      console.log(fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\nimport ")[0]);
      process.exit(0);
    } else fail(`unknown argument ${a} (see --help)`);
  }
  if (!Number.isInteger(o.jobs) || o.jobs < 1) fail("-j needs a positive integer");
  if (Boolean(o.libDir) !== Boolean(o.backend)) fail("--lib-dir and --backend go together");
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

function packageDir(name) {
  return packageDirFrom(root, name);
}

// ---------- 1. headers ----------
function ensureHeaders() {
  if (opts.headers) {
    if (
      !fs.existsSync(path.join(opts.headers, "include", "llama.h")) ||
      !fs.existsSync(path.join(opts.headers, "ggml", "include", "gguf.h"))
    )
      fail(`--headers ${opts.headers}: no include/llama.h and ggml/include/gguf.h there`);
    log(`headers from ${opts.headers}`);
    return { dir: opts.headers, nodeLlamaCpp: null };
  }
  let version;
  try {
    version = llamaPackagesVersion(root);
  } catch (e) {
    fail(e.message);
  }
  const dest = path.join(buildDir, "llama-headers");
  const stamp = path.join(dest, "commit.txt");
  const versionStamp = path.join(dest, "node-llama-cpp-version.txt");
  if (
    fs.existsSync(path.join(dest, "include", "llama.h")) &&
    fs.existsSync(path.join(dest, "ggml", "include", "gguf.h")) &&
    fs.existsSync(stamp) &&
    fs.existsSync(versionStamp) &&
    fs.readFileSync(versionStamp, "utf8").trim() === version
  ) {
    log(`headers present in ${path.relative(root, dest)} (llama.cpp ${fs.readFileSync(stamp, "utf8").trim()})`);
    return { dir: dest, nodeLlamaCpp: version };
  }
  let bundle;
  try {
    bundle = llamaBundle(root, log);
  } catch (e) {
    fail(e.message);
  }
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
  fs.writeFileSync(versionStamp, version + "\n");
  log(`extracted llama.cpp headers (${commit}, node-llama-cpp ${version}) into ${path.relative(root, dest)}`);
  return { dir: dest, nodeLlamaCpp: version };
}

// ---------- 2. link flags ----------
// Nothing of llama.cpp is linked. Linux: libdl for dlopen (part of libc since glibc 2.34, a separate library before),
// and -z now so that a call which bypasses native/llama_api.h's table (an undefined llama_* symbol) makes the addon
// fail to load in the smoke test below instead of at that call in a user's process.
function linkArgs() {
  if (process.platform === "linux") return { libraries: ["-ldl"], ldflags: ["-Wl,-z,now"] };
  return { libraries: [], ldflags: [] };
}

// ---------- 3. node-gyp ----------
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

// Copies src to dest through a temporary file and a rename: a process that has the old dest loaded (a test run,
// a running hsd) keeps its mapping; writing into the file in place could crash it.
function installFile(src, dest) {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}`;
  fs.copyFileSync(src, tmp);
  fs.renameSync(tmp, dest);
}

async function main() {
  const t0 = Date.now();
  const headers = ensureHeaders();
  const buildInputs = {
    includeDirs: [path.join(headers.dir, "include"), path.join(headers.dir, "ggml", "include")],
    ...linkArgs(),
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

  // Smoke test in a child process: a missing symbol or a library that does not load shows up here, not in the
  // user's first run.
  const libDir = opts.libDir ?? installedCpuLibDir(root);
  if (libDir) {
    const probe = spawnSync(
      process.execPath,
      [
        "-e",
        `const a=require(${JSON.stringify(addon)});const d=a.loadBackends(${JSON.stringify(libDir)});console.log(JSON.stringify(d.map(x=>x.name)))`,
      ],
      { encoding: "utf8" },
    );
    if (probe.status !== 0) fail(`the built addon does not load:\n${probe.stderr || probe.stdout}`);
    log(`addon loads llama.cpp from ${libDir}; ggml devices: ${probe.stdout.trim()}`);
  } else {
    log(
      `no llama.cpp libraries installed for ${platformKey} (@node-llama-cpp/${cpuPackageName() ?? "?"}): load test skipped`,
    );
  }

  const meta = {
    napiVersion: 8,
    platform: process.platform,
    arch: process.arch,
    llamaCommit: llamaCommit(headers.dir),
    // The @node-llama-cpp/* packages whose libraries match these headers (null: headers from a source tree).
    nodeLlamaCpp: headers.nodeLlamaCpp,
    builtAt: new Date().toISOString(),
  };
  if (opts.libDir) {
    const local = path.join(buildDir, "local", "hsd_native.node");
    installFile(addon, local);
    const config = {
      libDir: opts.libDir,
      backend: opts.backend,
      source: "build-llama",
      addon: path.relative(root, local),
      llamaCommit: meta.llamaCommit,
      builtAt: meta.builtAt,
    };
    fs.writeFileSync(path.join(buildDir, "native-config.json"), JSON.stringify(config, null, 2) + "\n");
    log(
      `wrote ${path.relative(root, local)} and build/native-config.json (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
    log("back to the installed @node-llama-cpp packages: delete build/native-config.json");
  } else {
    const dest = path.join(root, "prebuilds", platformKey, "hsd_native.node");
    installFile(addon, dest);
    fs.writeFileSync(path.join(path.dirname(dest), "hsd_native.json"), JSON.stringify(meta, null, 2) + "\n");
    log(`wrote ${path.relative(root, dest)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    const config = path.join(buildDir, "native-config.json");
    if (fs.existsSync(config))
      log(
        `note: ${path.relative(root, config)} (a local llama.cpp build) still takes precedence; delete it to use the prebuilt addon`,
      );
  }
}

await main();
