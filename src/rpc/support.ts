// Where hsd finds llama.cpp's RPC backend and its rpc-server: build/rpc-config.json, written by
// `npm run build:llama -- --rpc` (a whole llama.cpp build with the RPC plugin in its library folder) or
// `--rpc-only` (only the plugin and the server, next to the installed prebuilt libraries, which have no RPC).
import fs from "node:fs";
import path from "node:path";

import { RpcUnavailableError } from "../errors.js";
import { loadNative, packageRoot, type LoadedNative } from "../native/load.js";

export const rpcConfigPath = path.join(packageRoot, "build", "rpc-config.json");

/** build/rpc-config.json. */
export interface RpcBuild {
  /** "full": part of a whole llama.cpp build (build/native-config.json names its libraries); "plugin": alone. */
  mode: "full" | "plugin";
  /** The RPC backend plugin (libggml-rpc.so). */
  plugin: string;
  /** The ggml-rpc-server executable. */
  server: string;
  /** The llama.cpp commit both were built from. */
  llamaCommit: string;
  builtAt: string;
}

const BUILD_HINT =
  "build it with `npm run build:llama -- --rpc-only` (adds the RPC backend and ggml-rpc-server to the installed " +
  "llama.cpp, a few minutes) or `npm run build:llama -- --rpc` (all of llama.cpp, with RPC)";

export function readRpcBuild(): RpcBuild | null {
  if (!fs.existsSync(rpcConfigPath)) return null;
  try {
    const build = JSON.parse(fs.readFileSync(rpcConfigPath, "utf8")) as RpcBuild;
    if (typeof build.plugin !== "string" || typeof build.server !== "string") return null;
    return build;
  } catch {
    return null;
  }
}

/**
 * Makes sure llama.cpp's RPC backend is loaded in this process: already (a whole build with RPC), or the plugin
 * that build/rpc-config.json names. Throws RpcUnavailableError saying how to build it.
 */
export function ensureRpcBackend(native: LoadedNative = loadNative()): void {
  if (native.addon.rpcAvailable()) return;
  const build = readRpcBuild();
  if (!build)
    throw new RpcUnavailableError(
      `the llama.cpp in use (${native.config.source ?? native.config.libDir}) has no RPC backend: ${BUILD_HINT}`,
    );
  const ours = native.config.llamaCommit;
  if (ours && build.llamaCommit && ours !== build.llamaCommit)
    throw new RpcUnavailableError(
      `${rpcConfigPath}: its RPC backend was built from llama.cpp ${build.llamaCommit.slice(0, 12)}, but the ` +
        `libraries in use are ${ours.slice(0, 12)}: rebuild it (${BUILD_HINT})`,
    );
  if (!fs.existsSync(build.plugin))
    throw new RpcUnavailableError(`${rpcConfigPath} names ${build.plugin}, which is gone: ${BUILD_HINT}`);
  const r = native.addon.loadBackendPlugin(build.plugin);
  if (!r.loaded || !native.addon.rpcAvailable())
    throw new RpcUnavailableError(`cannot load the RPC backend ${build.plugin}: ${r.error || "not an RPC plugin"}`);
}

/** The ggml-rpc-server of the RPC build (tests and benchmarks start it on 127.0.0.1), or null when not built. */
export function rpcServerPath(): string | null {
  const build = readRpcBuild();
  return build && fs.existsSync(build.server) ? build.server : null;
}
