#!/usr/bin/env python3
"""Byte-level BPE: training, encoding, and the files the rest of the pipeline reads.

The tokenizer is the GPT-2 scheme as llama.cpp implements it for `tokenizer.ggml.model = gpt2`,
`tokenizer.ggml.pre = gpt-2`: the text is split by the GPT-2 regex, each piece's UTF-8 bytes are mapped to
printable characters (bytes_to_unicode), and merges are applied lowest rank first. Token ids: 0..255 are the
single bytes (id = byte value), then one id per new token in the order its merge was learned, and
`<|endoftext|>` last.

Training is the incremental algorithm: count the distinct pre-tokenized words once, keep a count for every
adjacent pair and an index pair -> words containing it, and after each merge touch only the words that contained
the merged pair (a naive recount over the corpus per merge would be ~4000x slower). The best pair comes from a
heap with lazy invalidation; ties go to the smaller (left id, right id), so the result is deterministic.

Usage:
  bpe.py train  --corpus DIR --vocab-size 4096 --out tokenizer.json
  bpe.py encode --tokenizer tokenizer.json --corpus DIR --out DIR     (writes train.bin / heldout.bin, uint16)
"""
import argparse
import heapq
import json
import os
import sys
import time
from collections import Counter

import numpy as np
import regex

# The pattern llama.cpp uses for pre = "gpt-2" (src/llama-vocab.cpp); its custom splitter also implements the
# trailing `|\s+` alternative of the original GPT-2 regex (src/unicode.cpp), so we keep it here.
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOS_TEXT = "<|endoftext|>"
DOC_SEP = "\x00DOC\x00"  # written by corpus.py between documents


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map (printable Latin-1 bytes map to themselves)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def documents(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read().split("\n" + DOC_SEP + "\n")


def train(corpus_dir, vocab_size, log_every=500):
    t0 = time.time()
    counts = Counter()
    for doc in documents(os.path.join(corpus_dir, "train.txt")):
        counts.update(GPT2_PATTERN.findall(doc))
    print(f"bpe: {len(counts)} distinct pieces ({time.time() - t0:.1f}s)", flush=True)

    words = [list(w.encode("utf-8")) for w in sorted(counts)]  # sorted: order-independent of hashing
    freqs = [counts[w] for w in sorted(counts)]
    pair_count = Counter()
    where = {}
    for i, (w, f) in enumerate(zip(words, freqs)):
        for p in zip(w, w[1:]):
            pair_count[p] += f
            where.setdefault(p, set()).add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    # Two merge paths can spell the same bytes ("ab"+"c", "a"+"bc"): the second one is kept as a merge (llama.cpp
    # looks the result up by text) but gets the existing id instead of a new token.
    token_bytes = [bytes([b]) for b in range(256)]
    id_of_bytes = {t: i for i, t in enumerate(token_bytes)}
    merges = []  # (left id, right id)
    while len(token_bytes) < vocab_size - 1 and heap:  # one id kept for <|endoftext|>
        negc, p = heapq.heappop(heap)
        if pair_count.get(p, 0) != -negc or negc == 0:
            continue  # stale heap entry
        a, b = p
        nb = token_bytes[a] + token_bytes[b]
        new_id = id_of_bytes.get(nb)
        if new_id is None:
            new_id = id_of_bytes[nb] = len(token_bytes)
            token_bytes.append(nb)
        merges.append(p)
        changed = set()
        for i in sorted(where.pop(p, ())):
            w = words[i]
            f = freqs[i]
            out = []
            j = 0
            hit = False
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(new_id)
                    j += 2
                    hit = True
                else:
                    out.append(w[j])
                    j += 1
            if not hit:
                continue
            for q in zip(w, w[1:]):
                pair_count[q] -= f
                changed.add(q)
            for q in zip(out, out[1:]):
                pair_count[q] += f
                changed.add(q)
                where.setdefault(q, set()).add(i)
            words[i] = out
        pair_count.pop(p, None)
        for q in changed:
            c = pair_count.get(q, 0)
            if c > 0:
                heapq.heappush(heap, (-c, q))
            elif q in pair_count:
                del pair_count[q]
        if len(merges) % log_every == 0:
            print(f"bpe: {len(merges)} merges, last count {-negc} ({time.time() - t0:.1f}s)", flush=True)

    b2u = bytes_to_unicode()
    to_text = lambda bs: "".join(b2u[x] for x in bs)
    tokens = [to_text(t) for t in token_bytes] + [EOS_TEXT]
    if len(set(tokens)) != len(tokens):
        sys.exit("bpe: duplicate token text (a merge produced an existing token)")
    return {
        "model": "gpt2", "pre": "gpt-2", "pattern": GPT2_PATTERN.pattern,
        "tokens": tokens,
        "merges": [f"{tokens[a]} {tokens[b]}" for a, b in merges],
        "eos_id": len(tokens) - 1,
        "train_seconds": round(time.time() - t0, 1),
    }


class Encoder:
    """Rank-ordered merge application, the same procedure llama.cpp's BPE session runs."""

    def __init__(self, tok):
        self.tokens = tok["tokens"]
        self.id_of = {t: i for i, t in enumerate(self.tokens)}
        self.rank = {}
        for r, m in enumerate(tok["merges"]):
            a, b = m.split(" ")
            self.rank[(self.id_of[a], self.id_of[b])] = (r, self.id_of[a + b])
        self.eos_id = tok["eos_id"]
        self.cache = {}

    def encode_piece(self, piece):
        hit = self.cache.get(piece)
        if hit is not None:
            return hit
        w = list(piece.encode("utf-8"))
        while len(w) > 1:
            best = None
            for j in range(len(w) - 1):
                r = self.rank.get((w[j], w[j + 1]))
                if r is not None and (best is None or r[0] < best[0]):
                    best = (r[0], r[1], w[j], w[j + 1])
            if best is None:
                break
            _, new, a, b = best
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            w = out
        self.cache[piece] = w
        return w

    def encode(self, text):
        ids = []
        for piece in GPT2_PATTERN.findall(text):
            ids.extend(self.encode_piece(piece))
        return ids

    def decode(self, ids):
        u2b = {c: b for b, c in bytes_to_unicode().items()}
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if i == self.eos_id:
                out += t.encode()
            else:
                out += bytes(u2b[c] for c in t)
        return out.decode("utf-8", errors="replace")


def encode_corpus(tok, corpus_dir, out_dir):
    enc = Encoder(tok)
    os.makedirs(out_dir, exist_ok=True)
    stats = {}
    for split in ("train", "heldout"):
        t0 = time.time()
        ids = []
        docs = documents(os.path.join(corpus_dir, f"{split}.txt"))
        for d in docs:
            ids.extend(enc.encode(d))
            ids.append(enc.eos_id)  # every document ends with <|endoftext|>
        arr = np.asarray(ids, dtype=np.uint16)
        arr.tofile(os.path.join(out_dir, f"{split}.bin"))
        nbytes = sum(len(d.encode("utf-8")) for d in docs)
        stats[split] = {"tokens": int(arr.size), "documents": len(docs), "bytes": nbytes,
                        "bytes_per_token": round(nbytes / (arr.size - len(docs)), 3)}
        print(f"bpe: {split}: {arr.size} tokens, {stats[split]['bytes_per_token']} bytes/token "
              f"({time.time() - t0:.1f}s)", flush=True)
    with open(os.path.join(out_dir, "tokens.json"), "w") as fh:
        json.dump(stats, fh, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--corpus", required=True)
    t.add_argument("--vocab-size", type=int, default=4096)
    t.add_argument("--out", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--tokenizer", required=True)
    e.add_argument("--corpus", required=True)
    e.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "train":
        tok = train(a.corpus, a.vocab_size)
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump(tok, fh, ensure_ascii=False)
        print(f"bpe: wrote {a.out}: {len(tok['tokens'])} tokens in {tok['train_seconds']}s")
    else:
        with open(a.tokenizer, encoding="utf-8") as fh:
            tok = json.load(fh)
        encode_corpus(tok, a.corpus, a.out)


if __name__ == "__main__":
    main()
