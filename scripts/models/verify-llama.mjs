// llama.cpp side of the family check, through node-llama-cpp's own prebuilt binding (CPU, 1 thread).
//
//   node scripts/models/verify-llama.mjs --expected build/models/verify/expected.json --out result.json MODEL.gguf...
//
// expected.json (written by verify.py): {docs: [{name, text, ids}], windows: [[ids...]...], prompts: [...]}.
// For each model: (a) tokenizes every held-out document and compares with our tokenizer's ids, (b) evaluates
// every window from a fresh KV cache and sums -log p(window[j+1] | window[..j]) from the full next-token
// distribution at temperature 1 (no top-k/top-p/min-p), (c) greedy continuations of a few prompts for the card.
import {readFileSync, writeFileSync} from "node:fs";
import {getLlama, LlamaCompletion} from "node-llama-cpp";

const args = process.argv.slice(2);
const opt = (name) => {
    const i = args.indexOf(name);
    if (i < 0 || i + 1 >= args.length) throw new Error(`verify-llama.mjs: missing ${name}`);
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
};
const expectedPath = opt("--expected");
const outPath = opt("--out");
const models = args;
if (models.length === 0) throw new Error("verify-llama.mjs: no model paths given");
const expected = JSON.parse(readFileSync(expectedPath, "utf8"));

const llama = await getLlama({gpu: false, build: "never"});
const results = [];
for (const modelPath of models) {
    const model = await llama.loadModel({modelPath});
    const r = {model: modelPath, tokenization: {documents: 0, tokens: 0, mismatches: []}};

    // (a) tokenization, special-token parsing off (held-out text is plain text)
    for (const doc of expected.docs) {
        const got = Array.from(model.tokenize(doc.text, false));
        r.tokenization.documents++;
        r.tokenization.tokens += doc.ids.length;
        if (got.length !== doc.ids.length || got.some((t, i) => t !== doc.ids[i])) {
            let i = 0;
            while (i < Math.min(got.length, doc.ids.length) && got[i] === doc.ids[i]) i++;
            r.tokenization.mismatches.push({doc: doc.name, index: i, ours: doc.ids.slice(i, i + 8),
                llama: got.slice(i, i + 8), text: model.detokenize(got.slice(Math.max(0, i - 4), i + 8))});
        }
    }

    // (b) perplexity
    const winLen = expected.windows[0].length;
    const context = await model.createContext({contextSize: winLen, batchSize: winLen, threads: 1,
        sequences: 1});
    const seq = context.getSequence();
    let nll = 0, n = 0;
    const t0 = performance.now();
    for (const w of expected.windows) {
        await seq.clearHistory();
        const input = w.map((t, j) => j < w.length - 1
            ? [t, {generateNext: {probabilities: true, options: {temperature: 1, topK: 0, topP: 1, minP: 0}}}]
            : t);
        const out = await seq.controlledEvaluate(input);
        for (let j = 0; j < w.length - 1; j++) {
            const p = out[j]?.next?.probabilities?.get(w[j + 1]);
            if (!(p > 0)) throw new Error(`verify-llama.mjs: no probability for token ${w[j + 1]} at ${j}`);
            nll -= Math.log(p);
            n++;
        }
    }
    r.perplexity = {windows: expected.windows.length, tokens: n, nll: nll / n, ppl: Math.exp(nll / n),
        seconds: (performance.now() - t0) / 1000};

    // (c) greedy samples
    await seq.clearHistory();
    const completion = new LlamaCompletion({contextSequence: seq});
    r.samples = [];
    for (const prompt of expected.prompts) {
        const text = await completion.generateCompletion(prompt, {maxTokens: 40, temperature: 0});
        r.samples.push({prompt, text});
        await seq.clearHistory();
    }
    r.trainContextSize = model.trainContextSize;
    r.fileSize = model.fileSize;
    await context.dispose();
    await model.dispose();
    console.log(JSON.stringify({model: modelPath, tokenization_mismatches: r.tokenization.mismatches.length,
        tokens: r.tokenization.tokens, ppl: r.perplexity.ppl, seconds: r.perplexity.seconds}));
    results.push(r);
}
writeFileSync(outPath, JSON.stringify(results, null, 1));
