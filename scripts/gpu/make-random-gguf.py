#!/usr/bin/env python3
"""Random-weight llama-architecture GGUF files with the shapes of the Qwen2.5 0.5B / 1.5B / 3B / 7B models, for
timing forward passes on a GPU (the weights are noise: only the cost of a pass is meaningful, never its output).

All members share one vocabulary (same token texts, types and special ids), so hsd accepts them as one family.
The tokenizer is a byte-level BPE ("gpt2") whose first 256 tokens are the GPT-2 byte alphabet, so any text
tokenizes; the other tokens are dummy texts "<tNNNNNN>" and the last is <|endoftext|>.

Shapes (Qwen2.5 configs; written as llama arch: no q/k/v biases, so a pass costs a hair less than Qwen2's):
  name   dim   layers heads kv  ffn    tied output
  0.5b   896   24     14    2   4864   yes
  1.5b   1536  28     12    2   8960   yes
  3b     2048  36     16    2   11008  yes
  7b     3584  28     28    4   18944  no
--scale s (0 < s <= 1) shrinks heads, layers and ffn by s (head size kept) for quick CPU tests.

Speed: a pool of 64 Mi random f16 values (N(0, 0.02^2), drawn once) is written over and over, each tensor from
a random offset, so writing costs about what the disk (page cache) takes: no per-tensor random generation.

Usage: python3 make-random-gguf.py --out DIR [--sizes 0.5b,1.5b,3b,7b] [--vocab 151936] [--scale 1] [--seed 1]
Needs numpy and gguf-py (found in $GGUF_PY, build/llama.cpp-src/gguf-py or build/llama.cpp/gguf-py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def import_gguf():
    candidates = [os.environ.get("GGUF_PY", ""), ROOT / "build/llama.cpp-src/gguf-py", ROOT / "build/llama.cpp/gguf-py"]
    for c in candidates:
        if c and (Path(c) / "gguf" / "__init__.py").exists():
            sys.path.insert(0, str(c))
            break
    try:
        import gguf  # noqa: F401
    except ImportError as e:
        sys.exit(f"make-random-gguf.py: cannot import gguf-py ({e}); set GGUF_PY to llama.cpp's gguf-py folder")
    return sys.modules["gguf"]


gguf = import_gguf()

PRESETS = {
    # name: (dim, layers, heads, kv_heads, ffn, tied)
    "0.5b": (896, 24, 14, 2, 4864, True),
    "1.5b": (1536, 28, 12, 2, 8960, True),
    "3b": (2048, 36, 16, 2, 11008, True),
    "7b": (3584, 28, 28, 4, 18944, False),
}
POOL_VALUES = 64 * 1024 * 1024
STD = 0.02


def shape_for(name: str, scale: float) -> dict:
    dim, layers, heads, kv, ffn, tied = PRESETS[name]
    head_dim = dim // heads
    if scale != 1.0:
        heads = max(1, round(heads * scale))
        kv = max(1, min(heads, round(kv * scale)))
        while heads % kv:  # GQA needs kv | heads
            kv -= 1
        layers = max(1, round(layers * scale))
        ffn = max(32, int(round(ffn * scale / 32)) * 32)
        dim = heads * head_dim
    return {"dim": dim, "layers": layers, "heads": heads, "kv_heads": kv, "head_dim": head_dim, "ffn": ffn, "tied": tied}


def bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable character table, as the bundled family's tokenizer uses it (scripts/models/bpe.py)."""
    sys.path.insert(0, str(ROOT / "scripts" / "models"))
    from bpe import bytes_to_unicode as byte_table  # noqa: E402 (bpe.py needs numpy and regex, both on the GPU image)
    table = byte_table()
    return [table[b] for b in range(256)]


def vocabulary(size: int) -> tuple[list[str], list[int], list[str], int]:
    if size < 300:
        raise SystemExit(f"--vocab {size}: need at least 300 tokens (256 bytes + a few)")
    byte_tokens = bytes_to_unicode()
    space = byte_tokens[ord(" ")]
    tokens = byte_tokens + [space + "t"]
    merges = [f"{space} t"]
    while len(tokens) < size - 1:
        tokens.append(f"<t{len(tokens):06d}>")
    tokens.append("<|endoftext|>")
    types = [int(gguf.TokenType.NORMAL)] * (size - 1) + [int(gguf.TokenType.CONTROL)]
    return tokens, types, merges, size - 1


class Pool:
    """Random f16 values, written out in slices: tensor bytes come from the pool, wrapping around."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.values = (rng.standard_normal(POOL_VALUES, dtype=np.float32) * STD).astype(np.float16)
        self.bytes = memoryview(self.values.view(np.uint8))
        self.rng = rng

    def write(self, f, nbytes: int) -> None:
        start = int(self.rng.integers(0, len(self.bytes) // 2)) * 2
        while nbytes > 0:
            chunk = min(nbytes, len(self.bytes) - start)
            f.write(self.bytes[start:start + chunk])
            nbytes -= chunk
            start = 0


def write_model(path: Path, name: str, s: dict, vocab: tuple, pool: Pool, context: int) -> dict:
    tokens, types, merges, eos = vocab
    V = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"hsd-random-qwen2.5-{name}")
    w.add_description("random weights (hsd scripts/gpu/make-random-gguf.py): for timing only, output is noise")
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    w.add_context_length(context)
    w.add_embedding_length(s["dim"])
    w.add_block_count(s["layers"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_rope_dimension_count(s["head_dim"])
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(V)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(False)

    f16, f32 = np.dtype(np.float16), np.dtype(np.float32)
    dim, hd = s["dim"], s["head_dim"]
    q_out, kv_out = s["heads"] * hd, s["kv_heads"] * hd
    # (name, numpy shape = (rows, cols) with cols the input dimension, dtype)
    plan: list[tuple[str, tuple[int, ...], np.dtype]] = [("token_embd.weight", (V, dim), f16)]
    for i in range(s["layers"]):
        b = f"blk.{i}."
        plan += [
            (b + "attn_norm.weight", (dim,), f32),
            (b + "attn_q.weight", (q_out, dim), f16),
            (b + "attn_k.weight", (kv_out, dim), f16),
            (b + "attn_v.weight", (kv_out, dim), f16),
            (b + "attn_output.weight", (dim, q_out), f16),
            (b + "ffn_norm.weight", (dim,), f32),
            (b + "ffn_gate.weight", (s["ffn"], dim), f16),
            (b + "ffn_up.weight", (s["ffn"], dim), f16),
            (b + "ffn_down.weight", (dim, s["ffn"]), f16),
        ]
    plan.append(("output_norm.weight", (dim,), f32))
    if not s["tied"]:
        plan.append(("output.weight", (V, dim), f16))
    params = 0
    for tname, shape, dt in plan:
        n = int(np.prod(shape))
        params += n
        w.add_tensor_info(tname, shape, dt, n * dt.itemsize)

    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    f = w.fout[0]
    ones = {}
    for tname, shape, dt in plan:
        n = int(np.prod(shape))
        w.write_padding(f, f.tell())
        if dt == f32:  # RMSNorm weights: ones, as an untrained model starts
            ones.setdefault(n, np.ones(n, dtype=np.float32)).tofile(f)
        else:
            pool.write(f, n * 2)
        w.write_padding(f, n * dt.itemsize)
    w.close()
    return {"file": path.name, "params": params, "bytes": path.stat().st_size, **s, "vocab": V}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--sizes", default="0.5b,1.5b,3b,7b", help=f"comma-separated, from {', '.join(PRESETS)}")
    ap.add_argument("--vocab", type=int, default=151936, help="vocabulary size (Qwen2.5: 151936)")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink width and depth by this factor (CPU tests)")
    ap.add_argument("--context", type=int, default=32768, help="context_length metadata")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="rewrite files that exist")
    a = ap.parse_args()
    if not 0 < a.scale <= 1:
        sys.exit(f"--scale {a.scale}: must be in (0, 1]")
    sizes = [x.strip().lower() for x in a.sizes.split(",") if x.strip()]
    for x in sizes:
        if x not in PRESETS:
            sys.exit(f"--sizes: unknown size {x!r} (known: {', '.join(PRESETS)})")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    vocab = vocabulary(a.vocab)
    pool = None  # drawn on first use: nothing to draw when every file exists
    manifest = []
    for x in sizes:
        s = shape_for(x, a.scale)
        path = out / f"random-qwen2.5-{x}.gguf"
        t = time.time()
        if path.exists() and not a.force:
            print(f"[make-random-gguf] {path.name} exists: kept", flush=True)
            manifest.append({"file": path.name, "bytes": path.stat().st_size, **s, "vocab": a.vocab, "kept": True})
            continue
        if pool is None:
            pool = Pool(a.seed)
            print(f"[make-random-gguf] pool of {POOL_VALUES} f16 values in {time.time() - t:.1f} s", flush=True)
            t = time.time()
        tmp = path.with_suffix(".gguf.tmp")
        info = write_model(tmp, x, s, vocab, pool, a.context)
        tmp.rename(path)
        info["file"] = path.name
        dt = time.time() - t
        print(f"[make-random-gguf] {path.name}: {info['params'] / 1e9:.2f} B params, {info['bytes'] / 2**30:.2f} GiB "
              f"in {dt:.1f} s ({info['bytes'] / 2**30 / max(dt, 1e-9):.2f} GiB/s)  {json.dumps(s)}", flush=True)
        manifest.append(info)
    (out / "manifest.json").write_text(json.dumps({"scale": a.scale, "vocab": a.vocab, "seed": a.seed, "models": manifest}, indent=1))
    print(f"[make-random-gguf] done in {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
