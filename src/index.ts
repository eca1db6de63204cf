// hsd-llm: hierarchical speculative decoding over llama.cpp.
export {
  Hsd,
  GenerationRun,
  BUNDLED_MODELS_DIR,
  type OpenOptions,
  type Hierarchy,
  type GenerateRequest,
  type GenerationReport,
  type PlanRequest,
  type PromptTokens,
} from "./api/hsd.js";
export { ChatTemplate, ChatFormat, type ChatMessage, type RenderOptions } from "./chat/template.js";
export { ChatSession, type ChatTurn } from "./chat/session.js";
export { HsdServer, type ServeOptions } from "./server/server.js";
export { DEFAULT_SAMPLING, type SamplingSettings } from "./api/sampling.js";
export type { PlanReport, PlannedChain } from "./api/plan.js";
export type { GenerationChunk, GenerationResult, RunStats, StopReason } from "./engine/generate.js";
export { scanModelFolder, type FolderScan, type RejectedFile } from "./models/scan.js";
export { readModelInfo, type ModelInfo } from "./gguf/model-info.js";
export {
  HsdError,
  GgufFormatError,
  ModelFolderError,
  VocabularyMismatchError,
  InvalidOptionError,
  PromptTooLongError,
  ContextOverflowError,
  ChatTemplateError,
  AbortedError,
  NativeLoadError,
  RpcServerError,
  RpcUnavailableError,
} from "./errors.js";
// Lower layers, for people who build their own loops.
export { HsdDecoder } from "./engine/hsd.js";
export { generate } from "./engine/generate.js";
export { NativeLevel } from "./levels/native-model.js";
export * as planner from "./planner/index.js";
