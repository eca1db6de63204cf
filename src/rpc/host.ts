// The child process that runs models on RPC devices (started by ./remote-model.ts, RemoteModelHost).
//
// Why a process of its own: ggml-rpc ends its process (GGML_ABORT) when a server dies or the network fails, and
// nothing can catch that in-process. Here that ends only this process; the parent sees its channel close, finds
// which server failed (./probe.ts) and reports it. The parent talks to this process over file descriptor 3 (one end
// of a socket pair, native/channel.h): one request, one answer, in order (./protocol.ts). Everything runs on this
// process's one thread, blocking: there is nothing else for it to do. It exits when the parent closes the channel
// (or dies: the kernel closes the parent's end).
import { loadNative } from "../native/load.js";
import { LlamaModel } from "../native/model.js";
import type { LlamaContext } from "../native/context.js";
import { ensureRpcBackend } from "./support.js";
import {
  Op,
  decodeControl,
  decodeEvaluate,
  evaluateAnswer,
  failedAnswer,
  okAnswer,
  type ControlMessages,
  type LoadAnswer,
} from "./protocol.js";

const CHANNEL_FD = 3;

const native = loadNative();
ensureRpcBackend(native);
const channel = new native.addon.Channel(CHANNEL_FD);
const models = new Map<number, LlamaModel>();
const contexts = new Map<number, { context: LlamaContext; vocabSize: number }>();
let nextId = 1;

function contextOf(id: number) {
  const c = contexts.get(id);
  if (!c) throw new Error(`no context ${id} in the RPC process`);
  return c;
}

function evaluate(bytes: Uint8Array): Uint8Array {
  const r = decodeEvaluate(bytes);
  const { context, vocabSize } = contextOf(r.contextId);
  const rows = r.tokens.length - r.firstOutput;
  const answer = evaluateAnswer(Math.max(0, rows), vocabSize, r.wantProbs);
  context.evaluateSync(r.tokens, r.position, r.firstOutput, {
    probs: answer.probs,
    argmax: answer.argmax,
    rowOffset: 0,
  });
  answer.setPosition(context.position);
  return answer.bytes;
}

async function control(bytes: Uint8Array): Promise<unknown> {
  const { op, request } = decodeControl(bytes);
  switch (op) {
    case Op.load: {
      const r = request as ControlMessages[typeof Op.load]["request"];
      const handle = await native.addon.loadModel(r.path, { gpuLayers: r.gpuLayers, rpcServers: r.servers });
      const model = new LlamaModel(handle, r.path);
      const modelId = nextId++;
      models.set(modelId, model);
      const answer: LoadAnswer = { modelId, info: handle.info() };
      return answer;
    }
    case Op.createContext: {
      const r = request as ControlMessages[typeof Op.createContext]["request"];
      const model = models.get(r.modelId);
      if (!model) throw new Error(`no model ${r.modelId} in the RPC process`);
      const context = model.createContext(r);
      const contextId = nextId++;
      contexts.set(contextId, { context, vocabSize: model.vocabSize });
      return { contextId, contextSize: context.contextSize, batchSize: context.batchSize };
    }
    case Op.setSampling: {
      const r = request as ControlMessages[typeof Op.setSampling]["request"];
      contextOf(r.contextId).context.setSampling(r.transform);
      return null;
    }
    case Op.truncate: {
      const r = request as ControlMessages[typeof Op.truncate]["request"];
      contextOf(r.contextId).context.truncate(r.position);
      return null;
    }
    case Op.disposeContext: {
      const r = request as ControlMessages[typeof Op.disposeContext]["request"];
      contexts.get(r.contextId)?.context.dispose();
      contexts.delete(r.contextId);
      return null;
    }
    case Op.disposeModel: {
      const r = request as ControlMessages[typeof Op.disposeModel]["request"];
      models.get(r.modelId)?.dispose();
      models.delete(r.modelId);
      return null;
    }
    default:
      throw new Error(`unknown request ${op}`);
  }
}

async function serve(): Promise<void> {
  for (;;) {
    const frame = channel.receive();
    if (frame === null) break; // the parent closed the channel
    const bytes = new Uint8Array(frame);
    let answer: Uint8Array;
    try {
      answer = bytes[0] === Op.evaluate ? evaluate(bytes) : okAnswer(await control(bytes));
    } catch (e) {
      answer = failedAnswer((e as Error).message);
    }
    channel.send(answer);
  }
}

await serve();
process.exit(0);
