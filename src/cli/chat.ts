// `hsd chat`: an interactive conversation in the terminal. The answer streams; Ctrl-C stops the answer (at the next
// target pass) and returns to the prompt; /reset forgets the conversation, /exit (or Ctrl-D) quits. Every turn
// re-renders the whole conversation with the model's template, and the KV caches keep what they already hold, so
// only the new turn is evaluated (the line after each answer says how much of the prompt was reused).

import { createInterface } from "node:readline";
import type { GenerateRequest, Hsd } from "../api/hsd.js";
import { ChatSession } from "../chat/session.js";
import { ChatFormat } from "../chat/template.js";

export interface ChatOptions {
  /** The target's chat format (default: read from the model). */
  format?: ChatFormat;
  system?: string;
  /** Decoding settings of every answer (maxTokens, sampling, hierarchy); the signal is the chat's own. */
  request: Omit<GenerateRequest, "signal">;
}

const HELP = "Type a message; /reset forgets the conversation, /exit quits. Ctrl-C stops an answer.";

export async function chat(hsd: Hsd, options: ChatOptions): Promise<void> {
  const input = process.stdin;
  const output = process.stdout;
  // The answers go to stdout; everything about them (statistics, notices) to stderr.
  const info = (line: string) => process.stderr.write(`${line}\n`);
  const session = new ChatSession(hsd, options.format ?? ChatFormat.of(hsd), options.system);
  const terminal = input.isTTY === true && output.isTTY === true;
  const rl = createInterface({ input, output, terminal, prompt: "> " });
  let answering: AbortController | null = null;
  let lastInterrupt = 0;

  // Ctrl-C: in a terminal readline reports the key; with piped input it arrives as the SIGINT signal.
  const interrupt = () => {
    if (answering) {
      answering.abort();
      return;
    }
    if (terminal && rl.line.length > 0) {
      rl.write(null, { ctrl: true, name: "u" }); // clear the line being typed, like a shell
      return;
    }
    if (!terminal || Date.now() - lastInterrupt < 2000) {
      rl.close();
      return;
    }
    lastInterrupt = Date.now();
    output.write("\n(To exit, press Ctrl-C again, Ctrl-D, or type /exit)\n");
    rl.prompt();
  };
  rl.on("SIGINT", interrupt);
  process.on("SIGINT", interrupt);

  try {
    if (terminal) {
      info(`hsd chat with ${hsd.target.info.file}. ${HELP}`);
      rl.prompt();
    }
    for await (const line of rl) {
      const text = line.trim();
      if (text === "/exit" || text === "/quit") break;
      if (text === "/reset") {
        session.reset();
        info("(conversation reset)");
      } else if (text === "/help") {
        info(HELP);
      } else if (text.length > 0) {
        answering = new AbortController();
        try {
          const { run, turn } = session.reply(text, { ...options.request, signal: answering.signal });
          for await (const chunk of run) output.write(chunk.text);
          const result = await run.result;
          output.write("\n");
          const stopped = result.stopReason === "aborted" ? " (stopped)" : "";
          const dropped = turn.droppedMessages > 0 ? `, ${turn.droppedMessages} oldest messages dropped to fit` : "";
          info(
            `[hsd] ${result.tokens.length} tokens, ${result.stats.msPerToken.toFixed(2)} ms/token${stopped}; prompt ${turn.promptTokens} tokens, ${turn.reusedTokens} reused from the last turn${dropped}`,
          );
        } catch (error) {
          // A turn that cannot run (conversation too long, template refusal) is reported; the chat goes on.
          info(`hsd: ${error instanceof Error ? error.message : String(error)}`);
        } finally {
          answering = null;
        }
      }
      if (terminal) rl.prompt();
    }
  } finally {
    process.off("SIGINT", interrupt);
    rl.close();
  }
}
