#!/usr/bin/env python3
"""Check the exported GGUF files against our tokenizer and torch, through llama.cpp (node-llama-cpp's binding).

  verify.py --config scripts/models/family-tiny.json --models-dir models/tiny [--member NAME ...] [--windows 24]

(a) llama.cpp must tokenize every held-out document to exactly the ids bpe.py gives (all documents, ~160k tokens);
(b) llama.cpp's perplexity on `--windows` evenly spaced 512-token held-out windows must equal torch's (fp32,
    same checkpoint, same windows, each window from an empty context) within --tolerance (default 1%).
Writes build/models/verify/report.json (read by write_card.py) and exits 1 on any failure.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import DOC_SEP, Encoder  # noqa: E402
from model import Llama  # noqa: E402
from train import evaluate  # noqa: E402

PROMPTS = ["The President of the United States", "It was a dark and stormy night, and", "I think that we should"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--member", action="append")
    ap.add_argument("--build", default="build/models")
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--ckpt-dir", help="checkpoints the GGUF files were exported from, where not BUILD/ckpt "
                    "(e.g. BUILD/ckpt-distilled; members missing there are read from BUILD/ckpt)")
    ap.add_argument("--tolerance", type=float, default=0.01)
    a = ap.parse_args()
    with open(a.config) as fh:
        spec = json.load(fh)
    names = a.member or [m["name"] for m in spec["members"]]
    vdir = os.path.join(a.build, "verify")
    os.makedirs(vdir, exist_ok=True)

    with open(os.path.join(a.build, "tokenizer.json"), encoding="utf-8") as fh:
        enc = Encoder(json.load(fh))
    with open(os.path.join(a.build, "corpus/heldout.txt"), encoding="utf-8") as fh:
        texts = fh.read().split("\n" + DOC_SEP + "\n")
    with open(os.path.join(a.build, "corpus/manifest.json")) as fh:
        doc_names = json.load(fh)["heldout_documents"]
    docs = [{"name": n, "text": t, "ids": enc.encode(t)} for n, t in zip(doc_names, texts)]

    T = spec["seq_len"]
    held = np.fromfile(os.path.join(a.build, "data/heldout.bin"), dtype=np.uint16)
    k = len(held) // T
    idx = sorted(set(int(i) for i in np.linspace(0, k - 1, min(a.windows, k))))
    windows = np.stack([held[i * T:(i + 1) * T] for i in idx]).astype(np.int64)
    expected = {"docs": docs, "windows": windows.tolist(), "prompts": PROMPTS}
    exp_path = os.path.join(vdir, "expected.json")
    with open(exp_path, "w", encoding="utf-8") as fh:
        json.dump(expected, fh, ensure_ascii=False)

    paths = [os.path.join(a.models_dir, n + ".gguf") for n in names]
    for p in paths:
        if not os.path.exists(p):
            sys.exit(f"verify.py: missing {p}")
    llama_out = os.path.join(vdir, "llama.json")
    subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "verify-llama.mjs"),
                    "--expected", exp_path, "--out", llama_out, *paths], check=True)
    with open(llama_out) as fh:
        llama_res = {os.path.basename(r["model"])[:-5]: r for r in json.load(fh)}

    torch.set_num_threads(2)
    report_path = os.path.join(vdir, "report.json")
    report = {}
    if os.path.exists(report_path):
        with open(report_path) as fh:
            report = json.load(fh)
    ok = True
    wt = torch.from_numpy(windows)
    for n in names:
        path = os.path.join(a.ckpt_dir, n + ".pt") if a.ckpt_dir else ""
        if not os.path.exists(path):  # the teacher has no distilled checkpoint
            path = os.path.join(a.build, "ckpt", n + ".pt")
        ck = torch.load(path, map_location="cpu")
        m = Llama(ck["config"])
        m.load_state_dict(ck["state_dict"])
        nll = evaluate(m, wt, "cpu", lambda: torch.autocast("cpu", enabled=False))
        lr = llama_res[n]
        rel = abs(lr["perplexity"]["ppl"] / math.exp(nll) - 1)
        tok_ok = not lr["tokenization"]["mismatches"]
        ppl_ok = rel <= a.tolerance
        ok &= tok_ok and ppl_ok
        report[n] = {"tokenization": {"documents": lr["tokenization"]["documents"],
                                      "tokens": lr["tokenization"]["tokens"],
                                      "mismatches": lr["tokenization"]["mismatches"][:5], "ok": tok_ok},
                     "windows": len(idx), "window_len": T, "predicted_tokens": lr["perplexity"]["tokens"],
                     "torch_fp32_ppl": math.exp(nll), "llama_ppl": lr["perplexity"]["ppl"],
                     "relative_difference": rel, "ppl_ok": ppl_ok,
                     "llama_eval_seconds": lr["perplexity"]["seconds"], "samples": lr["samples"],
                     "file_bytes": os.path.getsize(os.path.join(a.models_dir, n + ".gguf"))}
        print(f"verify: {n}: tokenization {'OK' if tok_ok else 'MISMATCH'} "
              f"({lr['tokenization']['tokens']} tokens, {lr['tokenization']['documents']} docs); "
              f"ppl torch {math.exp(nll):.3f} llama.cpp {lr['perplexity']['ppl']:.3f} (diff {100 * rel:.3f}%) "
              f"{'OK' if ppl_ok else 'FAIL'}", flush=True)
        if not tok_ok:
            print("  first mismatches:", json.dumps(lr["tokenization"]["mismatches"][:3], ensure_ascii=False))
    with open(report_path, "w") as fh:
        json.dump(report, fh, indent=1, ensure_ascii=False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
