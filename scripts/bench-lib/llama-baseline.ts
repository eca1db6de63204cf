// The reference point from the ecosystem: node-llama-cpp 3.21.1's DraftSequenceTokenPredictor (draft-model
// speculation inside LlamaContextSequence.evaluate) with the planner's best single draft and its threshold.
//
// Settings, and why:
//  - getLlama({gpu: false, build: "never"}) (gpu "auto" with --gpu-layers): the prebuilt binaries that ship with
//    the package, never a build.
//  - threads: the same per-model count as hsd (1 by default), for the target and the draft context alike.
//  - minTokens = maxTokens = T: with minTokens 0 the predictor may return no draft at all and the target then
//    never verifies anything; T from the planner makes it classic single-draft speculation at our best T.
//  - minConfidence 0: draft T tokens every time, like hsd (its default 0.6 stops drafting on unsure tokens).
//  - The input is hsd's own token ids for the prompt (same tokenizer call), so both decode the same context.
// Its draft runs on its own thread pipeline, and it verifies by sampling the target and comparing tokens
// rather than by speculative sampling's min(1, p/q) test; both keep the target's output law.

import {
  DraftSequenceTokenPredictor,
  InputLookupTokenPredictor,
  getLlama,
  LlamaLogLevel,
  type Llama,
  type LlamaContext,
  type LlamaModel,
} from "node-llama-cpp";
import type { SamplingMode } from "./options.js";

export interface LlamaRun {
  tokens: number[];
  /** Time from the call to the last token (prompt processing included). */
  wallMs: number;
  /** Time from the first generated token to the last. */
  decodeMs: number;
  /** Tokens generated after the first one. */
  decodeTokens: number;
  /** Deltas of LlamaContextSequence.tokenPredictions over this run. */
  predictions: { used: number; unused: number; validated: number; refuted: number };
}

interface Loaded {
  model: LlamaModel;
  context: LlamaContext;
}

export class LlamaBaseline {
  private readonly loaded = new Map<string, Loaded>();

  private constructor(
    private readonly llama: Llama,
    private readonly threads: number,
    private readonly contextSize: number,
    /** Same setting as hsd's contexts, so that both pay the same pass costs. */
    private readonly flashAttention: boolean,
    private readonly gpuLayers: number,
  ) {}

  static async create(
    threads: number,
    contextSize: number,
    flashAttention: boolean,
    gpuLayers = 0,
  ): Promise<LlamaBaseline> {
    const llama = await getLlama({
      gpu: gpuLayers > 0 ? "auto" : false,
      build: "never",
      logLevel: LlamaLogLevel.error,
      maxThreads: threads,
    });
    return new LlamaBaseline(llama, threads, contextSize, flashAttention, gpuLayers);
  }

  private async load(path: string): Promise<Loaded> {
    let l = this.loaded.get(path);
    if (!l) {
      const model = await this.llama.loadModel({ modelPath: path, gpuLayers: this.gpuLayers });
      const context = await model.createContext({
        contextSize: this.contextSize,
        threads: this.threads,
        sequences: 1,
        flashAttention: this.flashAttention,
      });
      l = { model, context };
      this.loaded.set(path, l);
    }
    return l;
  }

  /**
   * One generation: `promptTokens` (hsd's tokens), up to `maxTokens` new tokens, with draft `draftPath` at T, or
   * (draftPath null) with InputLookupTokenPredictor at its defaults (patterns of 1+ tokens, up to 3 predicted).
   */
  async generate(
    targetPath: string,
    draftPath: string | null,
    T: number,
    promptTokens: Int32Array,
    mode: SamplingMode,
    seed: number,
    maxTokens: number,
  ): Promise<LlamaRun> {
    const target = await this.load(targetPath);
    const draftSequence = draftPath ? (await this.load(draftPath)).context.getSequence() : null;
    const predictor = draftSequence
      ? new DraftSequenceTokenPredictor(draftSequence, { minTokens: T, maxTokens: T, minConfidence: 0 })
      : new InputLookupTokenPredictor();
    const sequence = target.context.getSequence({ tokenPredictor: predictor });
    try {
      const options = mode === "greedy" ? { temperature: 0 } : { temperature: 1, topK: 40, topP: 1, minP: 0, seed };
      const tokens: number[] = [];
      const started = performance.now();
      let first = 0;
      for await (const token of sequence.evaluate(Array.from(promptTokens) as never[], options)) {
        if (tokens.length === 0) first = performance.now();
        tokens.push(token as unknown as number);
        if (tokens.length >= maxTokens) break;
      }
      const end = performance.now();
      const p = sequence.tokenPredictions;
      return {
        tokens,
        wallMs: end - started,
        decodeMs: tokens.length > 1 ? end - first : 0,
        decodeTokens: Math.max(0, tokens.length - 1),
        predictions: { used: p.used, unused: p.unused, validated: p.validated, refuted: p.refuted },
      };
    } finally {
      sequence.dispose();
      draftSequence?.dispose();
    }
  }

  async dispose(): Promise<void> {
    for (const l of this.loaded.values()) {
      await l.context.dispose();
      await l.model.dispose();
    }
    this.loaded.clear();
    await this.llama.dispose();
  }
}
