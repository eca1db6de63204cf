// Which llama.cpp build the addon loads: one of node-llama-cpp's prebuilt platform packages (optional dependencies
// of hsd-llm, so npm installs those of this OS and CPU), chosen at run time.
//
// Order: CUDA when its package is installed and its plugin loads and finds a GPU, then Vulkan, then the CPU.
// HSD_BACKEND=cpu|cuda|vulkan|metal forces one (auto = this order). The core libraries (libggml-base, libggml,
// libllama) come from one package: the CPU one when installed (every default install has it), else the first GPU
// one installed (a slim CUDA-only install). GPU plugins are then loaded by path from their own packages, the way
// node-llama-cpp loads its CUDA fallback plugin from @node-llama-cpp/linux-x64-cuda-ext: a plugin only depends on
// libggml-base (readelf -d), which is the same file in every x64 package of one release (md5sum, 3.21.1), and ggml
// checks the plugin's API version when it loads it. All packages must be the version the addon was compiled for.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { NativeLoadError } from "../errors.js";

export type BackendName = "cpu" | "cuda" | "vulkan" | "metal";
export const BACKEND_NAMES: readonly BackendName[] = ["cpu", "cuda", "vulkan", "metal"];

/** A prebuilt llama.cpp package: its libraries' folder and, for a GPU build, the plugin files that bring the GPU. */
export interface LlamaPackage {
  backend: BackendName;
  /** npm name, e.g. "@node-llama-cpp/linux-x64-cuda". */
  name: string;
  /** The folder of libllama/libggml* inside the package. */
  libSubdir: string;
  /** GPU plugins to try in order ({package, file inside it}); [] when the GPU support is built in (Metal) or CPU. */
  plugins: { name: string; file: string }[];
}

const pkg = (suffix: string) => `@node-llama-cpp/${suffix}`;
function cpuPackage(suffix: string): LlamaPackage {
  return { backend: "cpu", name: pkg(suffix), libSubdir: `bins/${suffix}`, plugins: [] };
}
function gpuPackage(backend: BackendName, suffix: string, plugin: string, fallback?: string): LlamaPackage {
  const plugins = [{ name: pkg(suffix), file: `bins/${suffix}/${plugin}` }];
  // The -ext package holds a second build of the plugin (node-llama-cpp: "fallback", CUDA 12 where the main is 13).
  if (fallback) plugins.push({ name: pkg(`${suffix}-ext`), file: `bins/${suffix}/fallback/${fallback}` });
  return { backend, name: pkg(suffix), libSubdir: `bins/${suffix}`, plugins };
}

/**
 * node-llama-cpp's prebuilt packages for a platform, best first (its dist/bindings/utils/compileLLamaCpp.js maps
 * platforms to packages the same way). Only linux-x64 has run here; the other rows follow the same naming.
 */
export function llamaPackagesFor(platform: string, arch: string): LlamaPackage[] {
  const so = platform === "win32" ? (n: string) => `ggml-${n}.dll` : (n: string) => `libggml-${n}.so`;
  if (platform === "linux" && arch === "x64")
    return [
      gpuPackage("cuda", "linux-x64-cuda", so("cuda"), so("cuda")),
      gpuPackage("vulkan", "linux-x64-vulkan", so("vulkan")),
      cpuPackage("linux-x64"),
    ];
  if (platform === "win32" && arch === "x64")
    return [
      gpuPackage("cuda", "win-x64-cuda", so("cuda"), so("cuda")),
      gpuPackage("vulkan", "win-x64-vulkan", so("vulkan")),
      cpuPackage("win-x64"),
    ];
  if (platform === "linux" && arch === "arm64") return [cpuPackage("linux-arm64")];
  if (platform === "linux" && arch === "arm") return [cpuPackage("linux-armv7l")];
  if (platform === "linux" && arch === "riscv64") return [cpuPackage("linux-riscv64")];
  if (platform === "win32" && arch === "arm64") return [cpuPackage("win-arm64")];
  if (platform === "darwin" && arch === "arm64")
    return [{ backend: "metal", name: pkg("mac-arm64-metal"), libSubdir: "bins/mac-arm64-metal", plugins: [] }];
  if (platform === "darwin" && arch === "x64") return [cpuPackage("mac-x64")];
  return [];
}

/** An installed package: its folder and version, or null when not installed (resolved from hsd-llm's own folder). */
export type ResolvePackage = (name: string) => { dir: string; version: string } | null;

/** Resolves packages the way Node would from `fromFile`: hoisted or nested under hsd-llm, both work. */
export function packageResolver(fromFile: string): ResolvePackage {
  const require = createRequire(fromFile);
  return (name) => {
    let entry: string;
    try {
      entry = require.resolve(name); // the packages export only ".", so their package.json is found by walking up
    } catch {
      return null;
    }
    for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const pj = path.join(dir, "package.json");
      if (!fs.existsSync(pj)) continue;
      const json = JSON.parse(fs.readFileSync(pj, "utf8")) as { name?: string; version?: string };
      if (json.name === name) return { dir, version: json.version ?? "" };
    }
    return null;
  };
}

/** What one plugin load reported (the addon's loadBackendPlugin). */
export interface PluginResult {
  loaded: boolean;
  name: string;
  gpuDevices: number;
  error: string;
}

export interface BackendSelection {
  /** The backend in use: a GPU one only when its devices were found. */
  backend: BackendName;
  /** Where the core libraries and the CPU plugins came from. */
  libDir: string;
  /** The packages in use, e.g. "@node-llama-cpp/linux-x64 + @node-llama-cpp/linux-x64-cuda". */
  source: string;
  /** Why each GPU backend that was tried is not in use (empty when one is, or none is installed). */
  gpuNotes: string[];
}

export interface SelectOptions {
  platform: string;
  arch: string;
  /** HSD_BACKEND: undefined or "auto" = CUDA, Vulkan, CPU in that order. */
  forced?: string;
  /** The node-llama-cpp version the addon was compiled for (null: do not check). */
  expectedVersion: string | null;
  resolve: ResolvePackage;
  /** Loads the core libraries from a folder (the addon's openLibraries). */
  openLibraries: (libDir: string) => void;
  /** Loads one GPU plugin into ggml's registry (the addon's loadBackendPlugin). */
  loadPlugin: (file: string) => PluginResult;
}

const INSTALL_HINT = (name: string, version: string | null) =>
  `npm install ${name}${version ? `@${version}` : ""} in your project`;

/**
 * Picks and loads the llama.cpp libraries (see the top of this file). Calls openLibraries once and loadPlugin for
 * each GPU plugin tried; the caller then loads the CPU plugins from `libDir` (the addon's loadBackends).
 * Throws an Error naming the package and the command when nothing usable is installed or a forced backend fails.
 */
export function selectBackend(o: SelectOptions): BackendSelection {
  const forced = o.forced === undefined || o.forced === "" || o.forced === "auto" ? undefined : o.forced;
  if (forced !== undefined && !(BACKEND_NAMES as readonly string[]).includes(forced))
    throw new NativeLoadError(`HSD_BACKEND must be auto, ${BACKEND_NAMES.join(", ")}; got "${forced}"`);
  const all = llamaPackagesFor(o.platform, o.arch);
  if (all.length === 0)
    throw new NativeLoadError(
      `node-llama-cpp has no prebuilt llama.cpp for ${o.platform}-${o.arch}: build it from source in a checkout of ` +
        "hsd-llm (npm run build:llama -- --backend cpu)",
    );
  const checkVersion = (name: string, found: { version: string }) => {
    if (o.expectedVersion !== null && found.version !== o.expectedVersion)
      return `${name} is version ${found.version}, but hsd's addon was compiled against the headers of ${o.expectedVersion}`;
    return null;
  };
  const installed = all
    .map((p) => ({ p, found: o.resolve(p.name) }))
    .filter((x): x is { p: LlamaPackage; found: { dir: string; version: string } } => x.found !== null);

  let core: (typeof installed)[number] | undefined;
  if (forced !== undefined) {
    core = installed.find((x) => x.p.backend === forced);
    const wanted = all.find((p) => p.backend === forced);
    if (!wanted)
      throw new NativeLoadError(
        `HSD_BACKEND=${forced}: no prebuilt ${forced} llama.cpp exists for ${o.platform}-${o.arch}`,
      );
    if (!core)
      throw new NativeLoadError(
        `HSD_BACKEND=${forced}: ${wanted.name} is not installed (${INSTALL_HINT(wanted.name, o.expectedVersion)})`,
      );
  } else {
    core = installed.find((x) => x.p.backend === "cpu") ?? installed[0];
  }
  if (!core) {
    const cpu = all.find((p) => p.backend === "cpu") ?? all[all.length - 1]!;
    throw new NativeLoadError(
      `no llama.cpp libraries installed for ${o.platform}-${o.arch}: none of ${all.map((p) => p.name).join(", ")} ` +
        `(optional dependencies of hsd-llm; omitted with --omit=optional?). For the CPU: ${INSTALL_HINT(cpu.name, o.expectedVersion)}`,
    );
  }
  const coreMismatch = checkVersion(core.p.name, core.found);
  if (coreMismatch) throw new NativeLoadError(`${coreMismatch}: ${INSTALL_HINT(core.p.name, o.expectedVersion)}`);
  const libDir = path.join(core.found.dir, core.p.libSubdir);
  o.openLibraries(libDir);

  const gpuNotes: string[] = [];
  let gpu: { backend: BackendName; source: string } | undefined;
  const gpuCandidates = installed.filter(
    (x) => x.p.backend !== "cpu" && (forced === undefined || x.p.backend === forced),
  );
  for (const { p } of gpuCandidates) {
    if (p.plugins.length === 0) {
      gpu = { backend: p.backend, source: p.name }; // built into the core libraries (Metal)
      break;
    }
    for (const plugin of p.plugins) {
      const found = o.resolve(plugin.name);
      if (!found) continue; // e.g. the -ext fallback package is not installed
      const mismatch = checkVersion(plugin.name, found);
      if (mismatch) {
        gpuNotes.push(`${p.backend}: ${mismatch}`);
        continue;
      }
      const file = path.join(found.dir, plugin.file);
      if (!fs.existsSync(file)) {
        gpuNotes.push(`${p.backend}: ${file} is missing`);
        continue;
      }
      const r = o.loadPlugin(file);
      if (r.loaded && r.gpuDevices > 0) {
        gpu = { backend: p.backend, source: plugin.name };
        break;
      }
      gpuNotes.push(
        `${p.backend}: ${r.loaded ? `${file} loaded but found no GPU` : r.error.replace(/^load_backend: /, "")}`,
      );
    }
    if (gpu) break;
  }
  if (forced !== undefined && forced !== "cpu" && !gpu)
    throw new NativeLoadError(
      `HSD_BACKEND=${forced}: the ${forced} backend could not be used (${gpuNotes.join("; ") || "no plugin found"}). ` +
        "Unset HSD_BACKEND to fall back to the CPU.",
    );
  const sources = [core.p.name, ...(gpu && gpu.source !== core.p.name ? [gpu.source] : [])];
  return { backend: gpu?.backend ?? "cpu", libDir, source: sources.join(" + "), gpuNotes: gpu ? [] : gpuNotes };
}
