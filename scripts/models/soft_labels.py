#!/usr/bin/env python3
"""Precompute a teacher's soft labels (top-k log-probabilities) on training windows, for distilling the drafts.

  soft_labels.py --teacher build/models/ckpt/hsd-tiny-5M.pt --out build/models/soft/hsd-tiny-5M \
                 [--data build/models/data] [--windows 256] [--topk 128] [--seed 777] [--threads 2]

Why a cache: on a CPU the teacher's forward pass costs more than a small draft's whole training step, and all
drafts learn from the same teacher, so the teacher runs once here and train.py --soft-labels reuses its output
for every draft. Keeping the top-k (plus, implicitly, the rest as one bucket) makes the cache 4*k bytes per
token instead of 2*vocab; the KL train.py computes over those k+1 buckets is exact for the coarsened
distribution and a lower bound of the full KL.

Windows of seq_len+1 tokens start at offsets drawn from the training stream by a generator seeded with --seed
alone; the teacher scores positions 0..seq_len-1 (the next-token distribution after each prefix) under bf16
autocast, as in training. Writes OUT/tokens.npy [N, T+1] uint16, OUT/ids.npy [N, T, k] uint16,
OUT/logp.npy [N, T, k] float16 and OUT/meta.json (written last; its presence marks a complete cache).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Llama  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True, help="teacher checkpoint (.pt, from train.py)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default="build/models/data")
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--topk", type=int, default=128)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("soft_labels.py: --device cuda but torch sees no CUDA device")

    ck = torch.load(a.teacher, map_location="cpu")
    c = ck["config"]
    teacher = Llama(c)
    teacher.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
    teacher.to(a.device).eval()
    T, V = c["seq_len"], c["vocab_size"]
    if not 0 < a.topk <= V:
        sys.exit(f"soft_labels.py: --topk must be in 1..{V}")
    path = os.path.join(a.data, "train.bin")
    if not os.path.exists(path):
        sys.exit(f"soft_labels.py: missing {path} (run bpe.py encode first)")
    train_tok = np.fromfile(path, dtype=np.uint16)

    rng = np.random.default_rng(a.seed)
    starts = rng.integers(0, len(train_tok) - T - 1, size=a.windows)
    tokens = np.stack([train_tok[i:i + T + 1] for i in starts])
    os.makedirs(a.out, exist_ok=True)
    meta_path = os.path.join(a.out, "meta.json")
    if os.path.exists(meta_path):
        os.remove(meta_path)
    np.save(os.path.join(a.out, "tokens.npy"), tokens)
    ids = np.lib.format.open_memmap(os.path.join(a.out, "ids.npy"), "w+", np.uint16, (a.windows, T, a.topk))
    logp = np.lib.format.open_memmap(os.path.join(a.out, "logp.npy"), "w+", np.float16, (a.windows, T, a.topk))
    t0, mass = time.time(), 0.0
    with torch.no_grad():
        for i in range(0, a.windows, a.batch):
            x = torch.from_numpy(tokens[i:i + a.batch, :-1].astype(np.int64)).to(a.device)
            with torch.autocast(a.device, dtype=torch.bfloat16):
                logits = teacher(x)
            lp = torch.log_softmax(logits.float(), -1)
            v, k = lp.topk(a.topk, -1)
            ids[i:i + len(x)] = k.cpu().numpy().astype(np.uint16)
            logp[i:i + len(x)] = v.cpu().numpy().astype(np.float16)
            mass += v.exp().sum(-1).sum().item()
            done = i + len(x)
            el = time.time() - t0
            print(f"soft_labels: {done}/{a.windows} windows, {done * T / el:.0f} tok/s, {el:.0f}s", flush=True)
    ids.flush()
    logp.flush()
    meta = {"teacher": os.path.basename(a.teacher), "windows": a.windows, "seq_len": T, "topk": a.topk,
            "seed": a.seed, "vocab_size": V, "mean_topk_mass": mass / (a.windows * T),
            "seconds": round(time.time() - t0, 1), "threads": a.threads, "device": a.device, "torch": torch.__version__}
    with open(meta_path, "w") as fh:
        json.dump(meta, fh, indent=1)
    print(f"soft_labels: done, top-{a.topk} mass {meta['mean_topk_mass']:.3f}, {meta['seconds']}s", flush=True)


if __name__ == "__main__":
    main()
