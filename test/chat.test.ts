// Chat templates: real templates from llama.cpp's source (the copy node-llama-cpp ships) render to the formats
// their families document; the bundled family chats; a chat re-evaluates only its new turn.
import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hsd } from "../src/api/hsd.js";
import { ChatFormat, ChatTemplate, type ChatMessage } from "../src/chat/template.js";
import { ChatSession } from "../src/chat/session.js";
import { ChatTemplateError } from "../src/errors.js";
import { withMetadata } from "../scripts/models/set-chat-template.js";
import { loadModel } from "../src/native/index.js";
import { bundledFamily } from "./helpers/models.js";

const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Hello!" },
  { role: "assistant", content: "Hi! How can I help?" },
  { role: "user", content: "What is 2+2?" },
];
const NO_SYSTEM = CONVERSATION.slice(1);

/**
 * Files of llama.cpp's source (templates in models/templates/, vocabulary-only GGUFs in models/), read from the git
 * bundle at test time instead of being copied into this repository.
 */
function bundledTemplates(): { read(name: string): string; readFile(path: string): Buffer; dispose(): void } {
  // node-llama-cpp (a dependency) ships the llama.cpp source its binaries were built from as a git bundle.
  const bundle = fileURLToPath(new URL("../node_modules/node-llama-cpp/llama/gitRelease.bundle", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "hsd-llama-src-"));
  execFileSync("git", ["clone", "--quiet", "--no-checkout", bundle, dir]);
  return {
    read: (name) =>
      execFileSync("git", ["-C", dir, "show", `HEAD:models/templates/${name}`], {
        encoding: "utf8",
        maxBuffer: 1 << 24,
      }),
    readFile: (path) => execFileSync("git", ["-C", dir, "show", `HEAD:${path}`], { maxBuffer: 1 << 26 }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

describe("chat templates of real model families (@huggingface/jinja)", function () {
  this.timeout(60_000);
  let templates: ReturnType<typeof bundledTemplates>;
  let scratch: string;
  before(() => {
    templates = bundledTemplates();
    scratch = mkdtempSync(join(tmpdir(), "hsd-vocab-"));
  });
  after(() => {
    templates?.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });

  // Expected strings: each family's documented prompt format, for CONVERSATION.
  const cases: {
    file: string;
    bos: string;
    eos: string;
    messages: ChatMessage[];
    expected: string;
    source: string;
  }[] = [
    {
      // ChatML: https://qwen.readthedocs.io/en/latest/getting_started/concepts.html (control tokens, chat template)
      file: "Qwen-Qwen2.5-7B-Instruct.jinja",
      bos: "",
      eos: "<|im_end|>",
      messages: CONVERSATION,
      expected:
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n" +
        "<|im_start|>assistant\nHi! How can I help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
        "<|im_start|>assistant\n",
      source: "Qwen2.5 (ChatML)",
    },
    {
      // Without a system message Qwen2.5 supplies its default one (the model card's example prompt shows it).
      file: "Qwen-Qwen2.5-7B-Instruct.jinja",
      bos: "",
      eos: "<|im_end|>",
      messages: NO_SYSTEM,
      expected:
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n" +
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
      source: "Qwen2.5 default system message",
    },
    {
      // https://www.llama.com/docs/model-cards-and-prompt-formats/llama3_1/ : BOS, a system header with the
      // knowledge cut-off and today's date, <|eot_id|> after each turn, an open assistant header.
      file: "meta-llama-Llama-3.1-8B-Instruct.jinja",
      bos: "<|begin_of_text|>",
      eos: "<|eot_id|>",
      messages: CONVERSATION,
      expected:
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n" +
        "Today Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" +
        "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
      source: "Llama 3.1",
    },
    {
      // https://www.llama.com/docs/model-cards-and-prompt-formats/llama3_2/ : the same shape as 3.1.
      file: "meta-llama-Llama-3.2-3B-Instruct.jinja",
      bos: "<|begin_of_text|>",
      eos: "<|eot_id|>",
      messages: NO_SYSTEM,
      expected:
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n" +
        "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
      source: "Llama 3.2",
    },
    {
      // Mistral's tokenizer v3 (Tekken) format, https://docs.mistral.ai/guides/tokenization/ : <s>[INST]…[/INST]
      // answer</s>, no spaces, the system message prepended to the last user message.
      file: "mistralai-Mistral-Nemo-Instruct-2407.jinja",
      bos: "<s>",
      eos: "</s>",
      messages: CONVERSATION,
      expected:
        "<s>[INST]Hello![/INST]Hi! How can I help?</s>[INST]You are a helpful assistant.\n\nWhat is 2+2?[/INST]",
      source: "Mistral Nemo",
    },
    {
      // https://ai.google.dev/gemma/docs/core/prompt-structure : <start_of_turn>user / model, <end_of_turn>.
      file: "google-gemma-2-2b-it.jinja",
      bos: "<bos>",
      eos: "<eos>",
      messages: NO_SYSTEM,
      expected:
        "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi! How can I help?<end_of_turn>\n" +
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
      source: "Gemma 2",
    },
    {
      // The model card of microsoft/Phi-3.5-mini-instruct ("Chat Format"): <|system|>, <|user|>, <|assistant|>, <|end|>.
      file: "microsoft-Phi-3.5-mini-instruct.jinja",
      bos: "<s>",
      eos: "<|endoftext|>",
      messages: CONVERSATION,
      expected:
        "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\nHi! How can I help?<|end|>\n" +
        "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n",
      source: "Phi-3.5",
    },
    {
      // IBM's Granite 3.3 prompt format (granite docs, "chat template"): <|start_of_role|>…<|end_of_role|>…<|end_of_text|>.
      file: "ibm-granite-granite-3.3-2B-Instruct.jinja",
      bos: "",
      eos: "<|end_of_text|>",
      messages: CONVERSATION,
      expected:
        "<|start_of_role|>system<|end_of_role|>You are a helpful assistant.<|end_of_text|>\n" +
        "<|start_of_role|>user<|end_of_role|>Hello!<|end_of_text|>\n" +
        "<|start_of_role|>assistant<|end_of_role|>Hi! How can I help?<|end_of_text|>\n" +
        "<|start_of_role|>user<|end_of_role|>What is 2+2?<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
      source: "Granite 3.3",
    },
  ];
  for (const c of cases) {
    it(`${c.source}: ${c.file} renders the documented prompt`, function () {
      const template = new ChatTemplate(templates.read(c.file), { bosToken: c.bos, eosToken: c.eos });
      // date_string pins the date the Llama templates would otherwise take from the clock.
      expect(template.render(c.messages, { variables: { date_string: "26 Jul 2024" } })).to.equal(c.expected);
    });
  }

  it("a template's own refusal (raise_exception) becomes a ChatTemplateError with its message", function () {
    const gemma = new ChatTemplate(templates.read("google-gemma-2-2b-it.jinja"), { bosToken: "<bos>", eosToken: "" });
    expect(() => gemma.render(CONVERSATION)).to.throw(ChatTemplateError, /System role not supported/);
    expect(() => gemma.render([{ role: "assistant", content: "hi" }])).to.throw(ChatTemplateError, /must alternate/);
  });

  // With the families' real vocabularies (llama.cpp's vocabulary-only test GGUFs): markers become their single
  // special ids, the end-of-turn token is an end of generation for llama.cpp, and BOS appears exactly once whether
  // the template writes it (Llama 3) or the tokenizer adds it (Phi-3) or neither has one (Qwen2).
  for (const c of [
    {
      vocab: "ggml-vocab-qwen2.gguf",
      file: "Qwen-Qwen2.5-7B-Instruct.jinja",
      open: "<|im_start|>",
      end: "<|im_end|>",
      bos: 0,
    },
    {
      vocab: "ggml-vocab-llama-bpe.gguf",
      file: "meta-llama-Llama-3.1-8B-Instruct.jinja",
      open: "<|start_header_id|>",
      end: "<|eot_id|>",
      bos: 1,
    },
    {
      vocab: "ggml-vocab-phi-3.gguf",
      file: "microsoft-Phi-3.5-mini-instruct.jinja",
      open: "<|user|>",
      end: "<|end|>",
      bos: 1,
    },
  ]) {
    it(`${c.file} with llama.cpp's ${c.vocab}: ${c.open} and ${c.end} are special ids, ${c.end} ends generation, ${c.bos} BOS`, async function () {
      const path = join(scratch, c.vocab);
      writeFileSync(path, templates.readFile(`models/${c.vocab}`));
      const model = await loadModel(path, { vocabOnly: true });
      try {
        const id = (text: string) => {
          const ids = Array.from(model.tokenize(text, false, true));
          expect(ids, text).to.have.length(1);
          return ids[0]!;
        };
        const format = ChatFormat.forModel(model, c.vocab, templates.read(c.file));
        const tokens = Array.from(
          format.tokens([{ role: "user", content: "Hello!" }], { variables: { date_string: "26 Jul 2024" } }),
        );
        expect(tokens.filter((t) => t === model.bosToken)).to.have.length(c.bos);
        if (c.bos) expect(tokens[0]).to.equal(model.bosToken);
        expect(tokens).to.include(id(c.open));
        expect(tokens).to.include(id(c.end));
        expect(model.isEndOfGeneration(id(c.end))).to.equal(true);
      } finally {
        model.dispose();
      }
    });
  }

  it("a template that does not parse is a ChatTemplateError", function () {
    expect(() => new ChatTemplate("{% for m in messages %}", { bosToken: "", eosToken: "" })).to.throw(
      ChatTemplateError,
      /does not parse/,
    );
  });
});

describe("chat on GGUF models", function () {
  this.timeout(120_000);
  const family = bundledFamily();
  const scratch = mkdtempSync(join(tmpdir(), "hsd-chat-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it("the bundled family's template is the pipeline's (scripts/models/chat_template.jinja) and tokenizes with <|endoftext|> as the EOS id", async function () {
    const hsd = await Hsd.open({ threads: 1 });
    try {
      const format = ChatFormat.of(hsd);
      const source = readFileSync(new URL("../scripts/models/chat_template.jinja", import.meta.url), "utf8");
      expect(format.template.source).to.equal(source);
      const messages = [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hello" },
      ];
      expect(format.render(messages)).to.equal(
        "System:\nBe brief.<|endoftext|>\nUser:\nHello<|endoftext|>\nAssistant:\n",
      );
      const tokens = Array.from(format.tokens(messages));
      const eos = hsd.target.native.eosToken;
      expect(tokens.filter((t) => t === eos)).to.have.length(2);
      expect(tokens[0], "no BOS: the family's add_bos is false").to.not.equal(eos);
      expect(hsd.target.native.isEndOfGeneration(eos), "the turn end stops generation").to.equal(true);
      // Without special-token parsing the marker would be plain text: many tokens, no EOS id.
      const plain = Array.from(hsd.tokenize(format.render(messages), { addSpecial: false }));
      expect(plain).to.not.include(eos);
    } finally {
      await hsd.dispose();
    }
  });

  it("a model without a template: ChatFormat.of says so and names the file", async function () {
    const file = join(scratch, "no-template.gguf");
    writeFileSync(file, withMetadata(readFileSync(family.files[0]!), "tokenizer.chat_template", null));
    const hsd = await Hsd.open({ files: [file], threads: 1 });
    try {
      expect(() => ChatFormat.of(hsd)).to.throw(ChatTemplateError, /no-template\.gguf has no chat template/);
    } finally {
      await hsd.dispose();
    }
  });

  it("BOS: added once when the tokenizer adds it, whether or not the template writes it", async function () {
    for (const [name, template] of [
      ["writes-bos", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"],
      ["no-bos", "{% for m in messages %}{{ m.content }}{% endfor %}"],
    ] as const) {
      const file = join(scratch, `${name}.gguf`);
      let bytes = withMetadata(readFileSync(family.files[0]!), "tokenizer.ggml.add_bos_token", true);
      bytes = withMetadata(bytes, "tokenizer.chat_template", template);
      writeFileSync(file, bytes);
      const hsd = await Hsd.open({ files: [file], threads: 1 });
      try {
        const bos = hsd.target.native.bosToken;
        const tokens = Array.from(ChatFormat.of(hsd).tokens([{ role: "user", content: "Hello there" }]));
        expect(tokens[0], name).to.equal(bos);
        expect(tokens[1], name).to.not.equal(bos);
        expect(tokens.slice(1), name).to.deep.equal(Array.from(hsd.tokenize("Hello there", { addSpecial: false })));
      } finally {
        await hsd.dispose();
      }
    }
  });

  it("a multi-turn chat evaluates only the new turn: the target's KV cache keeps the conversation so far", async function () {
    const hsd = await Hsd.open({ threads: 1 });
    try {
      const files = hsd.models.map((m) => m.info.file);
      const session = new ChatSession(hsd, undefined, "You are a helpful assistant.");
      // The target alone: every token it evaluates is either new prompt or one generated token.
      const request = {
        maxTokens: 24,
        sampling: { greedy: true },
        hierarchy: { files: [files.at(-1)!], thresholds: [] },
      };
      const turns = [];
      for (const question of ["Hello, who are you?", "Tell me about the Union.", "And then?"]) {
        const { run, turn } = session.reply(question, request);
        let streamed = "";
        for await (const chunk of run) streamed += chunk.text;
        const result = await run.result;
        expect(streamed).to.equal(result.text);
        turns.push({ turn, evaluated: result.stats.levels.at(-1)!.tokensEvaluated, generated: result.tokens.length });
      }
      expect(session.messages.map((m) => m.role)).to.deep.equal([
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
      ]);
      expect(turns[0]!.turn.reusedTokens).to.equal(0);
      for (const { turn, evaluated, generated } of turns.slice(1)) {
        // The previous prompt and answer are reused: the new prompt tokens are the new user message and headers.
        const fresh = turn.promptTokens - turn.reusedTokens;
        expect(turn.reusedTokens, JSON.stringify(turns)).to.be.greaterThan(turn.promptTokens / 2);
        // Evaluated: the new prompt tokens, the previous answer's last token (never fed), one per generated token.
        expect(evaluated, JSON.stringify(turns)).to.be.at.most(fresh + 1 + generated);
        expect(evaluated, JSON.stringify(turns)).to.be.lessThan(turn.promptTokens);
      }
      session.reset();
      expect(session.messages).to.deep.equal([{ role: "system", content: "You are a helpful assistant." }]);
    } finally {
      await hsd.dispose();
    }
  });

  it("a conversation that outgrows the context drops its oldest exchanges and goes on", async function () {
    const hsd = await Hsd.open({ threads: 1, contextSize: 160 });
    try {
      const files = hsd.models.map((m) => m.info.file);
      const context = Math.min(...hsd.models.map((m) => m.context.contextSize)); // llama.cpp rounds up (256)
      const session = new ChatSession(hsd, undefined, "Be brief.");
      const request = {
        maxTokens: 40,
        sampling: { greedy: true },
        hierarchy: { files: [files.at(-1)!], thresholds: [] },
      };
      const dropped: number[] = [];
      for (let i = 0; i < 6; i++) {
        const { run, turn } = session.reply(`Question number ${i}: what happened in the year ${1900 + i}?`, request);
        const result = await run.result;
        expect(result.tokens.length).to.be.greaterThan(0);
        expect(turn.promptTokens + 40).to.be.at.most(context);
        dropped.push(turn.droppedMessages);
      }
      expect(
        dropped.some((d) => d > 0),
        JSON.stringify(dropped),
      ).to.equal(true);
      expect(session.messages[0]).to.deep.equal({ role: "system", content: "Be brief." });
      expect(session.messages[1]!.role).to.equal("user");
    } finally {
      await hsd.dispose();
    }
  });
});
