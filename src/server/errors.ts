// Errors as the OpenAI API writes them: {"error": {"message", "type", "param", "code"}} with a 4xx/5xx status, so
// that its client libraries raise the matching exception (BadRequestError, AuthenticationError, NotFoundError, …).

import {
  ChatTemplateError,
  ContextOverflowError,
  HsdError,
  InvalidOptionError,
  PromptTooLongError,
} from "../errors.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get type(): string {
    if (this.status === 401) return "authentication_error";
    if (this.status >= 500) return "server_error";
    return "invalid_request_error";
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Any error as an ApiError: the caller's mistakes are 400s, everything unforeseen a 500. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof PromptTooLongError || error instanceof ContextOverflowError)
    return new ApiError(400, error.message, "messages", "context_length_exceeded");
  if (error instanceof ChatTemplateError) return new ApiError(400, error.message, "messages", "chat_template");
  if (error instanceof InvalidOptionError) return new ApiError(400, error.message);
  const message = error instanceof Error ? error.message : String(error);
  return new ApiError(500, error instanceof HsdError ? message : `internal error: ${message}`);
}
