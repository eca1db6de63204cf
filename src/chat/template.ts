// Chat templates: the model's own `tokenizer.chat_template` (Jinja, as written for Hugging Face transformers),
// rendered with @huggingface/jinja (the implementation transformers.js uses), then tokenized with special-token
// parsing so that markers such as "<|im_start|>" become their ids.

import { Template } from "@huggingface/jinja";
import type { Hsd } from "../api/hsd.js";
import type { NativeModel } from "../native/types.js";
import { ChatTemplateError } from "../errors.js";

export interface ChatMessage {
  /** "system", "user", "assistant", … as the template knows them. */
  role: string;
  content: string;
}

export interface SpecialTokens {
  /** The text of the BOS token ("" when the model has none). */
  bosToken: string;
  eosToken: string;
}

export interface RenderOptions {
  /** End with the header of an assistant turn, so that the model writes the answer (default true). */
  addGenerationPrompt?: boolean;
  /** More template variables (e.g. `date_string`); the usual ones above win. */
  variables?: Record<string, unknown>;
}

/** The GGUF key llama.cpp and the Hugging Face converters store a model's template under. */
export const CHAT_TEMPLATE_KEY = "tokenizer.chat_template";

/** A compiled chat template. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    readonly special: SpecialTokens,
  ) {
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new ChatTemplateError(`the chat template does not parse: ${messageOf(error)}`);
    }
  }

  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    try {
      return this.template.render({
        ...options.variables,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
        bos_token: this.special.bosToken,
        eos_token: this.special.eosToken,
      });
    } catch (error) {
      // Templates refuse conversations they cannot express with raise_exception (e.g. "roles must alternate").
      throw new ChatTemplateError(`the model's chat template refused the conversation: ${messageOf(error)}`);
    }
  }
}

/** What a chat format needs of a model: its metadata and tokenizer (a vocabulary-only load is enough). */
export type ChatVocabulary = Pick<NativeModel, "metadata" | "tokenize" | "tokenPiece" | "bosToken" | "eosToken">;

/** A model's template with its tokenizer: conversation in, prompt token ids out. */
export class ChatFormat {
  private constructor(
    private readonly vocabulary: ChatVocabulary,
    readonly template: ChatTemplate,
    /** Whether the tokenizer starts every text with BOS (the model's add_bos). */
    private readonly addsBos: boolean,
  ) {}

  /** The template of `hsd`'s target; a ChatTemplateError when its GGUF has none. */
  static of(hsd: Hsd): ChatFormat {
    return ChatFormat.forModel(hsd.target.native, hsd.target.info.file);
  }

  /** The format of one model (`name` is for messages); `source` overrides the template in its GGUF. */
  static forModel(model: ChatVocabulary, name: string, source = model.metadata()[CHAT_TEMPLATE_KEY]): ChatFormat {
    if (!source) {
      throw new ChatTemplateError(
        `${name} has no chat template (GGUF key ${CHAT_TEMPLATE_KEY}), so it cannot chat: use plain completions (hsd run, /v1/completions), or a model whose GGUF carries a template`,
      );
    }
    const text = (token: number) => (token < 0 ? "" : new TextDecoder().decode(model.tokenPiece(token)));
    const addsBos = model.bosToken >= 0 && model.tokenize("", true, false)[0] === model.bosToken;
    return new ChatFormat(
      model,
      new ChatTemplate(source, { bosToken: text(model.bosToken), eosToken: text(model.eosToken) }),
      addsBos,
    );
  }

  render(messages: readonly ChatMessage[], options?: RenderOptions): string {
    return this.template.render(messages, options);
  }

  /**
   * The rendered conversation as token ids. Special-token text is parsed (the template writes "<|im_end|>" and
   * the like as text); BOS is added only when the tokenizer adds one and the template did not already write it,
   * as llama.cpp's server does, so that templates that start with `{{ bos_token }}` do not get two.
   */
  tokens(messages: readonly ChatMessage[], options?: RenderOptions): Int32Array {
    const body = this.vocabulary.tokenize(this.render(messages, options), false, true);
    const bos = this.vocabulary.bosToken;
    if (!this.addsBos || body[0] === bos) return body;
    const withBos = new Int32Array(body.length + 1);
    withBos[0] = bos;
    withBos.set(body, 1);
    return withBos;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
