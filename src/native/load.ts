// Locates and loads the compiled addon (build/Release/hsd_native.node) and the ggml backends it needs.
//
// scripts/build-addon.mjs (npm run build:addon, also run by `npm install`) or scripts/build-llama.mjs write
// build/native-config.json: which llama.cpp shared libs the addon was linked against (libDir) and their backend.
// The ggml backend plugins (CPU variants, CUDA, Vulkan, Metal) live in that same folder and are loaded from it
// once per process: ggml's own search looks next to the node executable and would find nothing.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

import type { SamplingTransform, EvaluateTarget } from "./types.js";

/** The repository / package root (this file is src/native/load.ts or ts-lib/native/load.js). */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const nativeConfigPath = path.join(packageRoot, "build", "native-config.json");

export interface NativeConfig {
  /** Folder of libllama / libggml* and the backend plugins the addon was linked against. */
  libDir: string;
  /** "cpu" | "cuda" | "vulkan" | "metal" (what the libs were built for). */
  backend: string;
  /** "@node-llama-cpp/<package>" (prebuilt) or "build-llama" (built from source). */
  source?: string;
  /** The addon, relative to the package root. */
  addon?: string;
  llamaCommit?: string;
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
  eotToken: number;
  addBos: boolean;
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
  loadBackends(libDir: string): NativeDevice[];
  devices(): NativeDevice[];
  systemInfo(): string;
  loadModel(path: string, options: { gpuLayers?: number; vocabOnly?: boolean }): Promise<RawModelHandle>;
}

export interface LoadedNative {
  addon: RawAddon;
  config: NativeConfig;
  /** Devices found when the backends were loaded. */
  devices: NativeDevice[];
  addonPath: string;
}

const BUILD_HINT = "Run `npm run build:addon` (or `npm run build:llama -- --backend <cpu|cuda|vulkan|metal>`).";
let loaded: LoadedNative | undefined;

/** Loads the addon and its backends once per process; throws an Error that says how to build it. */
export function loadNative(): LoadedNative {
  if (loaded) return loaded;
  if (!fs.existsSync(nativeConfigPath))
    throw new Error(`The hsd native addon is not built: ${nativeConfigPath} is missing. ${BUILD_HINT}`);
  let config: NativeConfig;
  try {
    config = JSON.parse(fs.readFileSync(nativeConfigPath, "utf8")) as NativeConfig;
  } catch (e) {
    throw new Error(`Cannot read ${nativeConfigPath}: ${(e as Error).message}. ${BUILD_HINT}`);
  }
  if (typeof config.libDir !== "string" || typeof config.backend !== "string")
    throw new Error(`${nativeConfigPath} lacks libDir/backend. ${BUILD_HINT}`);
  const addonPath = path.resolve(packageRoot, config.addon ?? path.join("build", "Release", "hsd_native.node"));
  if (!fs.existsSync(addonPath))
    throw new Error(`The hsd native addon is not built: ${addonPath} is missing. ${BUILD_HINT}`);
  if (!fs.existsSync(config.libDir))
    throw new Error(`The llama.cpp libraries the addon was built against are gone (${config.libDir}). ${BUILD_HINT}`);

  const require = createRequire(import.meta.url);
  let addon: RawAddon;
  try {
    addon = require(addonPath) as RawAddon;
  } catch (e) {
    throw new Error(`Cannot load the hsd native addon ${addonPath}: ${(e as Error).message}. ${BUILD_HINT}`);
  }
  const devices = addon.loadBackends(config.libDir);
  loaded = { addon, config, devices, addonPath };
  return loaded;
}

/** The ggml devices (CPU, GPUs) the loaded backends expose. */
export function nativeDevices(): NativeDevice[] {
  return loadNative().addon.devices();
}

/** The backend the llama.cpp libs were built for: "cpu", "cuda", "vulkan" or "metal" (build/native-config.json). */
export function nativeBackend(): string {
  return loadNative().config.backend;
}
