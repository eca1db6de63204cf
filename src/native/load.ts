// Locates and loads the compiled addon and the llama.cpp build it runs on.
//
// The addon: prebuilds/<platform>-<arch>/hsd_native.node, shipped in the npm package (built by `npm pack` /
// `npm publish` through the `prepare` script, by `npm ci` in a checkout, or by `npx hsd-build-addon` in a
// consumer's project on a platform without one). It does not link llama.cpp; it loads the libraries at run time.
// llama.cpp: an explicit local build wins (build/native-config.json, written by `npm run build:llama`: {libDir,
// backend, addon}); otherwise the installed @node-llama-cpp packages, chosen by ./backends.ts (CUDA, Vulkan, CPU;
// HSD_BACKEND forces one). Nothing is compiled at run time. The ggml backend plugins are loaded from the chosen
// folders once per process: ggml's own search looks next to the node executable and would find nothing.
import fs from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { packageResolver, selectBackend, type PluginResult } from "./backends.js";
import type { SamplingTransform, EvaluateTarget } from "./types.js";
import { NativeLoadError } from "../errors.js";

/** The repository / package root (this file is src/native/load.ts or ts-lib/native/load.js). */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const nativeConfigPath = path.join(packageRoot, "build", "native-config.json");
/** The prebuilt addon for this platform, and its build record (hsd_native.json). */
export const prebuildDir = path.join(packageRoot, "prebuilds", `${process.platform}-${process.arch}`);

/** What the loader settled on. */
export interface NativeConfig {
  /** Folder of libllama / libggml* and the CPU backend plugins. */
  libDir: string;
  /** "cpu" | "cuda" | "vulkan" | "metal": the backend in use (a GPU one only when it found a device). */
  backend: string;
  /** "@node-llama-cpp/<package>[ + <package>]" (prebuilt) or "build-llama" (built from source). */
  source?: string;
  /** The addon, relative to the package root. */
  addon?: string;
  llamaCommit?: string;
  builtAt?: string;
}

/** The build record next to a prebuilt addon (scripts/build-addon.mjs). */
interface PrebuildMeta {
  napiVersion?: number;
  llamaCommit?: string;
  /** The version of the @node-llama-cpp packages whose headers it was compiled against; null: a source tree's. */
  nodeLlamaCpp?: string | null;
  builtAt?: string;
}

/** A ggml device as the backends report it. */
export interface NativeDevice {
  name: string;
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel" | "other";
  memoryFree: number;
  memoryTotal: number;
}

/** What the compiled module exports (internal: use loadModel() from ./model.js). */
export interface RawModelInfo {
  path: string;
  vocabSize: number;
  trainContextSize: number;
  parameterCount: number;
  sizeBytes: number;
  description: string;
  bosToken: number;
  eosToken: number;
  vocabOnly: boolean;
}
export interface RawModelHandle {
  info(): RawModelInfo;
  metadata(): Record<string, string>;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
  tokenPiece(token: number): Uint8Array;
  isEndOfGeneration(token: number): boolean;
  createContext(options: {
    contextSize: number;
    batchSize: number;
    threads: number;
    flashAttention: number;
  }): RawContextHandle;
  dispose(): void;
  isDisposed(): boolean;
}
export interface RawContextHandle {
  info(): { contextSize: number; batchSize: number; vocabSize: number };
  position(): number;
  setSampling(t: SamplingTransform): void;
  evaluate(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): Promise<void>;
  evaluateSync(tokens: Int32Array, position: number, firstOutput: number, target: EvaluateTarget): void;
  truncate(position: number): void;
  timeDecodeLoop(tokens: Int32Array, position: number, firstOutput: number, repetitions: number): Float64Array;
  dispose(): void;
  isDisposed(): boolean;
}
export interface RawAddon {
  openLibraries(libDir: string): { ggmlBase: string; ggml: string; llama: string };
  loadBackendPlugin(path: string): PluginResult;
  loadBackends(libDir: string): NativeDevice[];
  devices(): NativeDevice[];
  systemInfo(): string;
  loadModel(
    path: string,
    options: { gpuLayers?: number; vocabOnly?: boolean; rpcServers?: string[] },
  ): Promise<RawModelHandle>;
  /** Whether llama.cpp's RPC backend plugin is loaded. */
  rpcAvailable(): boolean;
  /** The RPC protocol version of the headers the addon was compiled against, e.g. "6.0.0". */
  rpcProtocolVersion(): string;
  /** Connects to an rpc-server and does the handshake, within timeoutMs (native/rpc.h). */
  probeRpcServer(host: string, port: number, timeoutMs: number): Promise<RawRpcProbe>;
  probeRpcServerSync(host: string, port: number, timeoutMs: number): RawRpcProbe;
  /** Two connected, close-on-exec socket ends (native/channel.h). */
  socketPair(): [number, number];
  Channel: new (fd: number) => RawChannel;
}

/** What probing an rpc-server found (native/rpc.h, RpcProbe). */
export interface RawRpcProbe {
  state:
    | "ok"
    | "version"
    | "refused"
    | "unreachable"
    | "resolve"
    | "connect-timeout"
    | "handshake-timeout"
    | "closed"
    | "error";
  /** The server's protocol version when it answered, else null. */
  version: string | null;
  detail: string;
}

/** A framed channel over one socket end (native/channel.h). Errors carry a `code`: HSD_CHANNEL_*. */
export interface RawChannel {
  call(bytes: Uint8Array, timeoutMs: number): ArrayBuffer;
  callAsync(bytes: Uint8Array, timeoutMs: number): Promise<ArrayBuffer>;
  receive(): ArrayBuffer | null;
  send(bytes: Uint8Array): void;
  close(): void;
}

export interface LoadedNative {
  addon: RawAddon;
  config: NativeConfig;
  /** Devices found when the backends were loaded. */
  devices: NativeDevice[];
  addonPath: string;
  /** Why each GPU backend that was tried is not in use (empty when one is, or none is installed). */
  gpuNotes: string[];
}

const BUILD_HINT =
  "Build it from source: in a project that depends on hsd-llm, `npx hsd-build-addon` (a C++17 compiler, Python 3 " +
  "and git needed); in a checkout of hsd-llm, `npm run build:addon`.";
let loaded: LoadedNative | undefined;

function readJson<T>(file: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch (e) {
    throw new NativeLoadError(`Cannot read ${file}: ${(e as Error).message}`);
  }
}

function requireAddon(addonPath: string, hint: string): RawAddon {
  try {
    return createRequire(import.meta.url)(addonPath) as RawAddon;
  } catch (e) {
    throw new NativeLoadError(`Cannot load the hsd native addon ${addonPath}: ${(e as Error).message}. ${hint}`);
  }
}

/** An explicit local llama.cpp build (npm run build:llama): its libraries, with the addon it names. */
function loadLocalBuild(): LoadedNative {
  const hint =
    "Rebuild it (npm run build:llama -- --backend …) or delete build/native-config.json to use the installed packages.";
  const config = readJson<NativeConfig>(nativeConfigPath);
  if (typeof config.libDir !== "string" || typeof config.backend !== "string")
    throw new NativeLoadError(`${nativeConfigPath} lacks libDir/backend. ${hint}`);
  const addonPath = config.addon ? path.resolve(packageRoot, config.addon) : path.join(prebuildDir, "hsd_native.node");
  if (!fs.existsSync(addonPath))
    throw new NativeLoadError(`The hsd native addon ${addonPath} (${nativeConfigPath}) is missing. ${hint}`);
  if (!fs.existsSync(config.libDir))
    throw new NativeLoadError(
      `The llama.cpp libraries named in ${nativeConfigPath} are gone (${config.libDir}). ${hint}`,
    );
  const addon = requireAddon(addonPath, hint);
  const devices = loadBackendsFrom(addon, config.libDir);
  return { addon, config, devices, addonPath, gpuNotes: [] };
}

/** The prebuilt addon, on the llama.cpp packages ./backends.ts picks. */
function loadPrebuilt(): LoadedNative {
  const addonPath = path.join(prebuildDir, "hsd_native.node");
  if (!fs.existsSync(addonPath))
    throw new NativeLoadError(
      `hsd-llm has no native addon for ${process.platform}-${process.arch} (${addonPath} is missing). ${BUILD_HINT}`,
    );
  const metaPath = path.join(prebuildDir, "hsd_native.json");
  const meta = fs.existsSync(metaPath) ? readJson<PrebuildMeta>(metaPath) : {};
  const addon = requireAddon(addonPath, BUILD_HINT);
  const selection = selectBackend({
    platform: process.platform,
    arch: process.arch,
    forced: process.env.HSD_BACKEND,
    expectedVersion: meta.nodeLlamaCpp ?? null,
    resolve: packageResolver(fileURLToPath(import.meta.url)),
    // The same folder as the plugins (pluginDir): the addon opens libllama and loads the backends from one place.
    openLibraries: (dir) => void addon.openLibraries(pluginDir(dir)),
    loadPlugin: (file) => addon.loadBackendPlugin(file),
  });
  const devices = loadBackendsFrom(addon, selection.libDir);
  const config: NativeConfig = {
    libDir: selection.libDir,
    backend: selection.backend,
    source: selection.source,
    addon: path.relative(packageRoot, addonPath),
    ...(meta.llamaCommit ? { llamaCommit: meta.llamaCommit } : {}),
    ...(meta.builtAt ? { builtAt: meta.builtAt } : {}),
  };
  return { addon, config, devices, addonPath, gpuNotes: selection.gpuNotes };
}

/** A CPU backend variant's file: libggml-cpu-haswell.so, ggml-cpu-zen4.dll, … (the name is group 2). */
const CPU_VARIANT_FILE = /^(lib)?ggml-cpu-([\w-]+)\.(so|dll|dylib)$/;

/**
 * The folder ggml loads the backend plugins from. ggml picks the CPU variant with the highest feature score, which
 * is not always the fastest: on an AMD EPYC with AVX-512 (Zen 4) node-llama-cpp's zen4 variant made a one-token
 * pass of the bundled 5M target 2.2x (64 tokens in the KV cache) to 4.4x (300 tokens) dearer than its haswell
 * variant (BENCHMARKS.md, "Which llama.cpp build"). HSD_CPU_VARIANT=haswell (a variant's name) makes ggml see
 * only that one: a folder of links to libDir's files without the other variants, made once per process (a new
 * temporary folder, not a predictable path another user could prepare) and removed when the process exits.
 */
function pluginDir(libDir: string): string {
  const variant = process.env.HSD_CPU_VARIANT;
  if (variant === undefined || variant === "") return libDir;
  const made = variantDirs.get(libDir);
  if (made) return made;
  const dir = variantDir(libDir, variant);
  variantDirs.set(libDir, dir);
  return dir;
}

const variantDirs = new Map<string, string>();

/** loadBackends from pluginDir(libDir); a variant named by HSD_CPU_VARIANT that does not run here says so. */
function loadBackendsFrom(addon: RawAddon, libDir: string): NativeDevice[] {
  try {
    return addon.loadBackends(pluginDir(libDir));
  } catch (e) {
    const variant = process.env.HSD_CPU_VARIANT;
    if (!variant || e instanceof NativeLoadError) throw e;
    throw new NativeLoadError(
      `HSD_CPU_VARIANT=${variant}: ggml could not load that CPU backend variant (does this CPU lack its instruction set?): ${(e as Error).message}. Name another variant, or unset HSD_CPU_VARIANT to let ggml choose.`,
    );
  }
}

function variantDir(libDir: string, variant: string): string {
  const files = fs.readdirSync(libDir);
  const variants = files.flatMap((f) => {
    const m = CPU_VARIANT_FILE.exec(f);
    return m ? [m[2]!] : [];
  });
  if (!variants.includes(variant))
    throw new NativeLoadError(
      `HSD_CPU_VARIANT=${variant}: ${libDir} has no such CPU backend variant` +
        (variants.length > 0 ? ` (it has: ${variants.join(", ")})` : " (it has one CPU backend, no variants)") +
        ". Unset HSD_CPU_VARIANT to let ggml choose.",
    );
  const real = fs.realpathSync(libDir);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hsd-cpu-${variant}-`));
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  for (const f of files) {
    const m = CPU_VARIANT_FILE.exec(f);
    if (m && m[2] !== variant) continue;
    fs.symlinkSync(path.join(real, f), path.join(dir, f));
  }
  return dir;
}

/** Loads the addon and its backends once per process; throws an Error that says what to do. */
export function loadNative(): LoadedNative {
  if (loaded) return loaded;
  loaded = fs.existsSync(nativeConfigPath) ? loadLocalBuild() : loadPrebuilt();
  return loaded;
}

/**
 * Which llama.cpp this process runs on, in words: the prebuilt packages or a local build, and the CPU backend library
 * ggml chose among its variants (Linux: read from /proc/self/maps). Benchmarks print it: on one host the prebuilt
 * zen4 variant's passes cost 2.2x (1 token) to 3.6x (16 tokens) those of a local build of the same source
 * (BENCHMARKS.md, "Which llama.cpp build").
 */
export function llamaBuildDescription(): string {
  const { config } = loadNative();
  const where =
    config.source === "build-llama" ? `a local build (${config.libDir})` : `prebuilt ${config.source ?? config.libDir}`;
  let cpu = "";
  try {
    // Only this addon's libraries: another llama.cpp in the process (node-llama-cpp's own addon) maps its own.
    const dir = fs.realpathSync(config.libDir);
    const paths = fs.readFileSync("/proc/self/maps", "utf8").match(/\/\S*libggml-cpu[^/\s]*\.so\S*/g) ?? [];
    const libs = [
      ...new Set(
        paths
          .filter((p) => path.dirname(fs.realpathSync(p)) === dir || path.dirname(p) === dir)
          .map((p) => path.basename(p)),
      ),
    ];
    if (libs.length > 0) cpu = `; CPU backend ${libs.join(", ")}`;
  } catch {
    // Not Linux: the variant is not known.
  }
  return `${where}${cpu}`;
}

/** The ggml devices (CPU, GPUs) the loaded backends expose. */
export function nativeDevices(): NativeDevice[] {
  return loadNative().addon.devices();
}

/** The backend in use: "cpu", "cuda", "vulkan" or "metal". */
export function nativeBackend(): string {
  return loadNative().config.backend;
}
