// Every error hsd raises on purpose is an HsdError subclass whose message says what is wrong,
// with which file or option, and what to do about it.

export class HsdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A GGUF file that cannot be read: missing, not GGUF, truncated, corrupt. */
export class GgufFormatError extends HsdError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/** The models folder (or --target inside it) cannot be used. */
export class ModelFolderError extends HsdError {}

/** Models whose vocabularies differ cannot verify each other's tokens. */
export class VocabularyMismatchError extends HsdError {}

/**
 * The native addon or the llama.cpp libraries cannot be loaded (a missing optional package, a stale local build,
 * HSD_BACKEND naming a backend that is not there); the message says how to install or rebuild.
 */
export class NativeLoadError extends HsdError {}

/** A bad option value (CLI flag or API field). */
export class InvalidOptionError extends HsdError {}

/**
 * The caller's AbortSignal (the CLI: Ctrl-C) stopped work that has no partial result to return, such as a
 * calibration; nothing of it was cached. (A generation that is stopped returns its text with stopReason "aborted".)
 */
export class AbortedError extends HsdError {}

export class PromptTooLongError extends HsdError {
  constructor(
    readonly promptTokens: number,
    readonly contextSize: number,
  ) {
    super(
      `the prompt is ${promptTokens} tokens but the context holds ${contextSize}: shorten the prompt or raise --context-size`,
    );
  }
}

export class ContextOverflowError extends HsdError {
  constructor(
    readonly model: string,
    readonly needed: number,
    readonly contextSize: number,
  ) {
    super(
      `${model}: the sequence needs ${needed} tokens but the context holds ${contextSize}; use a shorter prompt, fewer --max-tokens, or a larger --context-size`,
    );
  }
}

/**
 * An rpc-server (llama.cpp's RPC backend) that cannot serve: it refused or did not answer the connection, speaks
 * another protocol version, or failed while a model on it was running. `endpoint` names it ("host:port").
 */
export class RpcServerError extends HsdError {
  constructor(
    readonly endpoint: string,
    message: string,
  ) {
    super(message);
  }
}

/** RPC was asked for, but the llama.cpp build in use has no RPC backend. */
export class RpcUnavailableError extends HsdError {}

/** A chat needs the model's chat template: it has none, or the template refused the conversation. */
export class ChatTemplateError extends HsdError {}
