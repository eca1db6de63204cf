// The vocabulary compatibility rule (src/gguf/vocabulary.ts, docs/ALGORITHM.md §11) on hand-made vocabularies:
// what it accepts (identical, padded to other sizes, padding typed differently) and what it refuses, naming the
// first difference. The same rule on real tokenizers and models: test/padded-vocabulary.test.ts.
import { expect } from "chai";
import { compareVocabularies, type VocabularyInfo } from "../src/gguf/vocabulary.js";

const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;

/** Ten real tokens (the last a control token, the EOS), padded to `size` ids as the converter pads. */
function vocab(size: number, edit: (v: { tokens: string[]; types: number[]; merges: string[] }) => void = () => {}) {
  const tokens = ["a", "b", "c", "ab", "bc", "abc", " a", " b", " c", "<|end|>"];
  const types = [...Array(9).fill(NORMAL), CONTROL];
  for (let id = tokens.length; id < size; id++) {
    tokens.push(`[PAD${id}]`);
    types.push(UNUSED);
  }
  const v = { tokens, types, merges: ["a b", "b c", "ab c"] };
  edit(v);
  const info: VocabularyInfo = {
    model: "gpt2",
    tokens: v.tokens,
    types: v.types,
    merges: v.merges,
    specials: { bos: null, eos: 9, eot: null, eom: null, pad: 9, unknown: null, seperator: null, mask: null },
  };
  return info;
}

describe("vocabulary compatibility (padding-only differences)", () => {
  it("accepts identical vocabularies", () => {
    expect(compareVocabularies(vocab(12), vocab(12), "t.gguf")).to.deep.equal({
      compatible: true,
      note: "same tokenizer",
      extraIds: 0,
    });
  });

  it("accepts vocabularies padded to different sizes, either way round, and says so", () => {
    const c = compareVocabularies(vocab(12), vocab(16), "t.gguf");
    expect(c).to.deep.equal({
      compatible: true,
      note: "same tokenizer; the target has 4 extra padding ids (12 vs 16 tokens)",
      extraIds: 4,
    });
    const wide = compareVocabularies(vocab(16), vocab(10), "t.gguf");
    expect(wide.compatible && wide.note).to.match(/this model has 6 extra padding ids \(16 vs 10 tokens\)/);
  });

  it("accepts padding the converter typed USER_DEFINED (older converters) against UNUSED", () => {
    const old = vocab(14, (v) => v.types.fill(USER_DEFINED, 10));
    const c = compareVocabularies(old, vocab(16), "t.gguf");
    expect(c.compatible && c.note).to.match(/2 extra padding ids \(14 vs 16 tokens\); 4 padding ids typed differently/);
    // Extra ids count as padding by type UNUSED whatever their text (SentencePiece pads count from [PAD1]).
    const spm = vocab(16, (v) => v.tokens.fill("<unused>", 12));
    expect(compareVocabularies(vocab(12), spm, "t.gguf").compatible).to.equal(true);
  });

  it("refuses a different text or type at a shared id, naming the first one", () => {
    const text = compareVocabularies(
      vocab(12, (v) => (v.tokens[4] = "bd")),
      vocab(16),
      "t.gguf",
    );
    expect(text).to.deep.equal({
      compatible: false,
      reason: `its vocabulary differs from the target t.gguf's: id 4 is "bd" (normal) here and "bc" (normal) in the target`,
    });
    const type = compareVocabularies(
      vocab(12, (v) => (v.types[3] = CONTROL)),
      vocab(12),
      "t.gguf",
    );
    expect(type.compatible === false && type.reason).to.match(/id 3 is "ab" \(control\) here and "ab" \(normal\)/);
  });

  it("refuses extra ids that are real tokens", () => {
    const extra = vocab(16, (v) => {
      v.tokens[13] = "<|tool|>";
      v.types[13] = CONTROL;
    });
    const c = compareVocabularies(vocab(12), extra, "t.gguf");
    expect(c.compatible === false && c.reason).to.match(
      /id 13, "<\|tool\|>" \(control\), is a real token only the target has/,
    );
  });

  it("refuses other merges, special ids or tokenizer models", () => {
    const merges = compareVocabularies(
      vocab(12, (v) => (v.merges[2] = "a bc")),
      vocab(12),
      "t.gguf",
    );
    expect(merges.compatible === false && merges.reason).to.match(
      /merge rule 2 is "a bc" here and "ab c" in the target/,
    );
    const eos = compareVocabularies({ ...vocab(12), specials: { ...vocab(12).specials, eos: 3 } }, vocab(12), "t.gguf");
    expect(eos.compatible === false && eos.reason).to.match(/eos token id 3 vs 9/);
    const model = compareVocabularies({ ...vocab(12), model: "llama" }, vocab(12), "t.gguf");
    expect(model.compatible === false && model.reason).to.match(/tokenizer model llama vs gpt2/);
  });
});
