#!/usr/bin/env python3
"""Write calibration prompts drawn from the held-out documents, one per line, for `hsd plan --prompts FILE`.

  heldout_prompts.py [--build build/models] [--count 64] [--words 10] --out build/models/heldout-prompts.txt

Why: the built-in calibration prompts are 8, so an acceptance rate from them rests on 8 x 48 positions; these
give a larger, independent sample from text no model was trained on. Deterministic: the first --words words of
sentences at evenly spaced places in the held-out text (a sentence starts after ". " and with a capital).
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import DOC_SEP  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/models")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--words", type=int, default=10)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(os.path.join(a.build, "corpus/heldout.txt"), encoding="utf-8") as fh:
        text = fh.read().replace("\n" + DOC_SEP + "\n", "\n")
    starts = [m.end() for m in re.finditer(r"[.!?] +(?=[A-Z])", text)]
    prompts = []
    for i in range(a.count):
        pos = starts[(i * len(starts)) // a.count]
        words = text[pos:pos + 400].split()
        if len(words) >= a.words:
            prompts.append(" ".join(words[:a.words]))
    with open(a.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(prompts) + "\n")
    print(f"heldout_prompts: {len(prompts)} prompts -> {a.out}")


if __name__ == "__main__":
    main()
