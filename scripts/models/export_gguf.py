#!/usr/bin/env python3
"""Write a trained checkpoint (train.py) as a llama.cpp GGUF file, arch `llama`, with the shared tokenizer.

  PYTHONPATH=build/llama.cpp/gguf-py export_gguf.py --ckpt build/models/ckpt/hsd-tiny-0.1M.pt \
      --tokenizer build/models/tokenizer.json --out models/tiny/hsd-tiny-0.1M.gguf [--ftype f16|f32]

Uses the `gguf` package from the llama.cpp source that node-llama-cpp ships (no PyPI here). Matrices are f16
(or f32), 1-D norm weights stay f32 as llama.cpp expects. Output is tied: no output.weight, llama.cpp reuses
token_embd. RoPE is already in ggml's adjacent-pair layout (model.py), so Q/K are written unpermuted.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

try:
    import gguf
except ImportError:
    sys.exit("export_gguf.py: cannot import gguf; set PYTHONPATH=<llama.cpp source>/gguf-py")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chat-template", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "chat_template.jinja"),
                    help="Jinja chat template stored as tokenizer.chat_template (default: the family's own)")
    ap.add_argument("--ftype", choices=("f16", "f32", "q8_0", "q4_0"), default="f16",
                    help="matrix type; q8_0/q4_0 are quantized with gguf-py's numpy reference quantizer")
    a = ap.parse_args()
    for p in (a.ckpt, a.tokenizer, a.chat_template):
        if not os.path.exists(p):
            sys.exit(f"export_gguf.py: missing {p}")
    ck = torch.load(a.ckpt, map_location="cpu")
    c, sd, stats = ck["config"], ck["state_dict"], ck["stats"]
    with open(a.tokenizer, encoding="utf-8") as fh:
        tok = json.load(fh)
    if len(tok["tokens"]) != c["vocab_size"]:
        sys.exit(f"export_gguf.py: tokenizer has {len(tok['tokens'])} tokens, model vocab_size {c['vocab_size']}")

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name(c["name"])
    w.add_description(f"hsd bundled family member, {stats['non_embedding_params']} non-embedding params, "
                      f"{stats['train_tokens']} training tokens")
    w.add_license("MIT (weights); training text: see models/README.md")
    w.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "f32": gguf.LlamaFileType.ALL_F32,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[a.ftype])
    w.add_vocab_size(c["vocab_size"])
    w.add_context_length(c["context_length"])
    w.add_embedding_length(c["dim"])
    w.add_block_count(c["n_layers"])
    w.add_feed_forward_length(c["ffn_dim"])
    w.add_head_count(c["n_heads"])
    w.add_head_count_kv(c.get("n_kv_heads", c["n_heads"]))
    w.add_rope_dimension_count(c["dim"] // c["n_heads"])
    w.add_rope_freq_base(float(c["rope_theta"]))
    w.add_layer_norm_rms_eps(float(c["norm_eps"]))

    eos = tok["eos_id"]
    w.add_tokenizer_model(tok["model"])
    w.add_tokenizer_pre(tok["pre"])
    w.add_token_list(tok["tokens"])
    w.add_token_types([gguf.TokenType.CONTROL if i == eos else gguf.TokenType.NORMAL
                       for i in range(len(tok["tokens"]))])
    w.add_token_merges(tok["merges"])
    w.add_bos_token_id(eos)  # GPT-2 convention: one special token serves both
    w.add_eos_token_id(eos)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    # Plain-text turns ended by <|endoftext|>, so that `hsd chat` and the server's chat endpoint work out of the box
    # without adding tokens (set-chat-template.ts wrote the same into the committed files).
    with open(a.chat_template, encoding="utf-8") as fh:
        w.add_chat_template(fh.read())

    quant = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}.get(a.ftype)

    def mat(t):
        if quant is not None:
            return gguf.quants.quantize(t.float().numpy().astype(np.float32), quant)
        return t.numpy().astype(np.float16 if a.ftype == "f16" else np.float32)

    def add_matrix(name, t):
        if quant is not None:
            w.add_tensor(name, mat(t), raw_dtype=quant)
        else:
            w.add_tensor(name, mat(t))

    def vec(t):
        return t.numpy().astype(np.float32)

    add_matrix("token_embd.weight", sd["tok_emb.weight"])
    names = {"attn_norm.weight": "attn_norm.weight", "wq.weight": "attn_q.weight", "wk.weight": "attn_k.weight",
             "wv.weight": "attn_v.weight", "wo.weight": "attn_output.weight", "ffn_norm.weight": "ffn_norm.weight",
             "w_gate.weight": "ffn_gate.weight", "w_up.weight": "ffn_up.weight", "w_down.weight": "ffn_down.weight"}
    for i in range(c["n_layers"]):
        for src, dst in names.items():
            t = sd[f"blocks.{i}.{src}"]
            if t.dim() == 1:
                w.add_tensor(f"blk.{i}.{dst}", vec(t))
            else:
                add_matrix(f"blk.{i}.{dst}", t)
    w.add_tensor("output_norm.weight", vec(sd["norm.weight"]))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, a.out)
    print(f"export: {a.out} ({os.path.getsize(a.out)} bytes, {a.ftype})")


if __name__ == "__main__":
    main()
