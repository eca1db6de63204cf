// The native layer: llama.cpp through the hsd_native addon. See types.ts for the contract.
export * from "./types.js";
export { LlamaModel, loadModel, defaultContextSize, contextOptions } from "./model.js";
export { LlamaContext, GREEDY } from "./context.js";
export {
  loadNative,
  llamaBuildDescription,
  nativeBackend,
  nativeDevices,
  nativeConfigPath,
  packageRoot,
  prebuildDir,
} from "./load.js";
export type { NativeConfig, NativeDevice, LoadedNative } from "./load.js";
export { selectBackend, llamaPackagesFor, packageResolver, BACKEND_NAMES } from "./backends.js";
export type { BackendName, BackendSelection, LlamaPackage, PluginResult, SelectOptions } from "./backends.js";
export { defaultThreads, physicalCoresFromCpuinfo } from "./threads.js";
