// A multi-turn conversation over one Hsd instance. Each turn re-renders the whole conversation with the model's
// template; every model cuts its KV cache to the longest common prefix of what it holds and the new prompt
// (levels/native-model.ts), so only the new turn is evaluated.

import { GenerationRun, type GenerateRequest, type GenerationReport, type Hsd } from "../api/hsd.js";
import type { GenerationChunk } from "../engine/generate.js";
import { DEFAULT_MAX_TOKENS } from "../defaults.js";
import { ChatFormat, type ChatMessage } from "./template.js";

export interface ChatTurn {
  /** Tokens of the rendered conversation this turn generated from. */
  promptTokens: number;
  /** Of those, the leading tokens the previous turn had already put through the target (its KV cache holds them). */
  reusedTokens: number;
  /** Oldest exchanges dropped so that the conversation fits the context. */
  droppedMessages: number;
}

export class ChatSession {
  private history: ChatMessage[] = [];
  /** The last prompt and its answer as token ids: what the target's KV cache now holds (but its last token). */
  private evaluated: Int32Array = new Int32Array(0);
  private readonly contextSize: number;

  constructor(
    private readonly hsd: Hsd,
    readonly format: ChatFormat = ChatFormat.of(hsd),
    private readonly system?: string,
  ) {
    this.contextSize = Math.min(...hsd.models.map((m) => m.context.contextSize));
  }

  get messages(): readonly ChatMessage[] {
    return this.withSystem(this.history);
  }

  /** Forget the conversation (the system message stays). */
  reset(): void {
    this.history = [];
  }

  /**
   * Answer `text`. Iterate the run for the streamed answer; once it ends (also when aborted), the answer joins the
   * history. `turn` says how much of the prompt was reused. When the conversation no longer fits the context with
   * room for `maxTokens` (at most half the context), the oldest exchanges are dropped first.
   */
  reply(text: string, request: GenerateRequest = {}): { run: GenerationRun; turn: ChatTurn } {
    const room = Math.min(request.maxTokens ?? DEFAULT_MAX_TOKENS, Math.floor(this.contextSize / 2));
    let history = [...this.history, { role: "user", content: text }];
    let dropped = 0;
    let tokens = this.tokens(history);
    // Drop whole exchanges (user + assistant) from the front; the new user message always stays.
    while (tokens.length + room > this.contextSize && history.length >= 3) {
      history = history.slice(2);
      dropped += 2;
      tokens = this.tokens(history);
    }
    const turn = {
      promptTokens: tokens.length,
      reusedTokens: commonPrefix(this.evaluated, tokens),
      droppedMessages: dropped,
    };
    const inner = this.hsd.generate(tokens, request);
    const session = this;
    async function* answer(): AsyncGenerator<GenerationChunk, GenerationReport, void> {
      yield* inner;
      const result = await inner.result;
      session.history = [...history, { role: "assistant", content: result.text }];
      const evaluated = new Int32Array(tokens.length + result.tokens.length);
      evaluated.set(tokens);
      evaluated.set(result.tokens, tokens.length);
      session.evaluated = evaluated;
      return result;
    }
    return { run: new GenerationRun(answer()), turn };
  }

  private tokens(history: ChatMessage[]): Int32Array {
    return this.format.tokens(this.withSystem(history));
  }

  private withSystem(history: readonly ChatMessage[]): ChatMessage[] {
    return [...(this.system ? [{ role: "system", content: this.system }] : []), ...history];
  }
}

function commonPrefix(a: Int32Array, b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
