#!/usr/bin/env python3
"""Train one member (or all) of a model family described by a family spec (JSON).

  train.py --config scripts/models/family-tiny.json --member hsd-tiny-0.1M --device cpu
           [--data build/models/data] [--out build/models/ckpt] [--threads 2] [--tokens N]

Every member sees exactly the same token stream: batch b is drawn from the training tokens with a generator
seeded by the family's data_seed alone, so a member's quality differs from another's only by its shape (with
too few tokens the order of quality can invert, see /work/shared/model-family-notes.md). Weights are seeded by
the family seed. bf16 autocast on both devices; weights and optimiser state stay fp32.

Writes OUT/<member>.pt: {"config": member config merged with family defaults, "state_dict": fp32 weights,
"stats": tokens, seconds, tok/s, final loss, held-out perplexity}. --device cuda trains the same token stream
on a GPU (bf16 autocast there too). --distill-from T.pt adds a KL term to the teacher's distribution, the
teacher running online (about one teacher forward per step). --soft-labels DIR distils from soft_labels.py's
cache instead (the teacher's top-k log-probabilities on fixed windows; the batches are those windows, in an
order seeded by data_seed): loss = a*CE + (1-a)*KL(teacher||draft) over the top-k ids plus one bucket for the
rest. --init-from CKPT continues from a trained checkpoint (fine-tuning) instead of fresh weights; --lr and
--warmup-steps override the spec's peak learning rate and warm-up for such a run.
On the CPU, results are reproducible for a fixed --threads; they are not bit-identical across thread counts or
devices.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Llama  # noqa: E402

FAMILY_KEYS = ("vocab_size", "seq_len", "batch_size", "train_tokens", "seed", "data_seed", "rope_theta",
               "norm_eps", "context_length", "warmup_steps", "weight_decay", "min_lr_ratio", "eval_windows")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def member_config(spec, name):
    for m in spec["members"]:
        if m["name"] == name:
            c = {k: spec[k] for k in FAMILY_KEYS if k in spec}
            c.update(m)
            return c
    sys.exit(f"train.py: member {name!r} not in the family spec (have: {[m['name'] for m in spec['members']]})")


def load_tokens(data_dir, split):
    path = os.path.join(data_dir, f"{split}.bin")
    if not os.path.exists(path):
        sys.exit(f"train.py: missing {path} (run bpe.py encode first)")
    return np.fromfile(path, dtype=np.uint16)


def heldout_windows(tokens, seq_len, n=None):
    """Non-overlapping windows of seq_len tokens from the start of the held-out stream (shared with verify)."""
    k = len(tokens) // seq_len
    if n is not None:
        k = min(k, n)
    return torch.from_numpy(tokens[: k * seq_len].astype(np.int64)).view(k, seq_len)


@torch.no_grad()
def evaluate(model, windows, device, autocast, batch=8):
    """Mean NLL (nats) of tokens 1..T-1 of each window given the tokens before it in that window."""
    model.eval()
    tot, cnt = 0.0, 0
    for i in range(0, len(windows), batch):
        x = windows[i:i + batch].to(device)
        with autocast():
            logits = model(x[:, :-1])
        nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum")
        tot += nll.item()
        cnt += x[:, 1:].numel()
    model.train()
    return tot / cnt


def load_soft_labels(path, c):
    """soft_labels.py's cache, memory-mapped; it must match the member's vocabulary and sequence length."""
    meta_path = os.path.join(path, "meta.json")
    if not os.path.exists(meta_path):
        sys.exit(f"train.py: --soft-labels {path}: no meta.json (incomplete cache; rerun soft_labels.py)")
    with open(meta_path) as fh:
        meta = json.load(fh)
    if meta["vocab_size"] != c["vocab_size"] or meta["seq_len"] != c["seq_len"]:
        sys.exit(f"train.py: --soft-labels {path}: vocab/seq_len differ from {c['name']}'s")
    load = lambda n: np.load(os.path.join(path, n), mmap_mode="r")
    return {"meta": meta, "tokens": load("tokens.npy"), "ids": load("ids.npy"), "logp": load("logp.npy")}


def topk_kl(logits, t_ids, t_logp):
    """KL(teacher || draft) per position, averaged, over the teacher's top-k ids plus one bucket for the rest."""
    logq = torch.log_softmax(logits, -1)
    q_k = logq.gather(-1, t_ids)
    p = t_logp.exp()
    p_rest = (1 - p.sum(-1)).clamp_min(1e-6)
    q_rest = (1 - q_k.exp().sum(-1)).clamp_min(1e-6)
    kl = (p * (t_logp - q_k)).sum(-1) + p_rest * (p_rest.log() - q_rest.log())
    return kl.mean()


def train_member(c, args):
    device = torch.device(args.device)
    if args.device == "cuda":
        autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        torch.set_num_threads(args.threads)
        autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)

    train_tok = load_tokens(args.data, "train")
    held_tok = load_tokens(args.data, "heldout")
    if train_tok.max() >= c["vocab_size"]:
        sys.exit("train.py: token id beyond vocab_size in train.bin")

    g = torch.Generator().manual_seed(c["seed"])
    torch.manual_seed(c["seed"])
    model = Llama(c)
    model.init_weights(g)
    if args.init_from:
        ik = torch.load(args.init_from, map_location="cpu")
        shape = ("vocab_size", "dim", "n_layers", "n_heads", "ffn_dim")
        if any(ik["config"].get(k) != c.get(k) for k in shape):
            sys.exit(f"train.py: --init-from {args.init_from} has another shape than {c['name']}")
        model.load_state_dict({k: v.float() for k, v in ik["state_dict"].items()})
    if args.lr is not None:
        c = dict(c, lr=args.lr)
    if args.warmup_steps is not None:
        c = dict(c, warmup_steps=args.warmup_steps)
    model.to(device)
    n_ne = model.non_embedding_params()

    teacher = None
    if args.distill_from:
        # Distillation: the draft also matches the target's full next-token distribution (KL), which raises
        # how often the target accepts its drafts. The teacher must share the tokenizer (same vocab_size).
        tk = torch.load(args.distill_from, map_location="cpu")
        if tk["config"]["vocab_size"] != c["vocab_size"]:
            sys.exit(f"train.py: --distill-from {args.distill_from} has another vocab_size")
        teacher = Llama(tk["config"])
        teacher.load_state_dict({k: v.float() for k, v in tk["state_dict"].items()})
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    soft = None
    if args.soft_labels:
        if args.distill_from:
            sys.exit("train.py: --soft-labels and --distill-from exclude each other")
        soft = load_soft_labels(args.soft_labels, c)

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=c["lr"], betas=(0.9, 0.95), eps=1e-8)

    T, B = c["seq_len"], c["batch_size"]
    total_tokens = args.tokens or c["train_tokens"]
    steps = max(1, total_tokens // (B * T))
    rng = np.random.default_rng(c["data_seed"])  # the same batches for every member
    starts_hi = len(train_tok) - T - 1
    print(f"train: {c['name']}: {n_ne} non-embedding params, {steps} steps x {B}x{T} = {steps * B * T} tokens, "
          f"device {args.device}", flush=True)

    def lr_at(s):
        if s < c["warmup_steps"]:
            return c["lr"] * (s + 1) / c["warmup_steps"]
        p = (s - c["warmup_steps"]) / max(1, steps - c["warmup_steps"])
        return c["lr"] * (c["min_lr_ratio"] + (1 - c["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * p)))

    t0 = time.time()
    ema = None
    order = np.zeros(0, dtype=np.int64)
    for s in range(steps):
        if soft is None:
            starts = rng.integers(0, starts_hi, size=B)
            batch = torch.from_numpy(np.stack([train_tok[i:i + T + 1] for i in starts]).astype(np.int64)).to(device)
        else:
            while len(order) < B:  # a fresh seeded permutation of the cached windows per epoch
                order = np.concatenate([order, rng.permutation(len(soft["tokens"]))])
            pick, order = np.sort(order[:B]), order[B:]
            batch = torch.from_numpy(soft["tokens"][pick].astype(np.int64)).to(device)
        for grp in opt.param_groups:
            grp["lr"] = lr_at(s)
        with autocast():
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        if teacher is not None:
            with torch.no_grad(), autocast():
                t_logits = teacher(batch[:, :-1])
            kl = F.kl_div(F.log_softmax(logits.float(), -1).reshape(-1, logits.size(-1)),
                          F.log_softmax(t_logits.float(), -1).reshape(-1, logits.size(-1)),
                          log_target=True, reduction="batchmean")
            loss = args.distill_alpha * loss + (1 - args.distill_alpha) * kl
        elif soft is not None:
            t_ids = torch.from_numpy(soft["ids"][pick].astype(np.int64)).to(device)
            t_logp = torch.from_numpy(soft["logp"][pick].astype(np.float32)).to(device)
            kl = topk_kl(logits.float(), t_ids, t_logp)
            loss = args.distill_alpha * loss + (1 - args.distill_alpha) * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if (s + 1) % args.log_every == 0 or s + 1 == steps:
            el = time.time() - t0
            print(f"train: {c['name']} step {s + 1}/{steps} loss {ema:.4f} lr {lr_at(s):.2e} "
                  f"{(s + 1) * B * T / el:.0f} tok/s, {el:.0f}s", flush=True)
    train_s = time.time() - t0

    windows = heldout_windows(held_tok, T, c.get("eval_windows"))
    nll = evaluate(model, windows, device, autocast)
    stats = {"non_embedding_params": n_ne, "params": sum(p.numel() for p in model.parameters()),
             "train_tokens": steps * B * T, "steps": steps, "train_seconds": round(train_s, 1),
             "tokens_per_second": round(steps * B * T / train_s), "final_train_loss_ema": round(ema, 4),
             "heldout_windows": len(windows), "heldout_window_len": T, "heldout_nll": nll,
             "heldout_ppl": math.exp(nll), "device": args.device, "threads": args.threads,
             "torch": torch.__version__,
             "device_name": torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()}
    print(f"train: {c['name']} done: held-out ppl {math.exp(nll):.2f} over {len(windows)}x{T} tokens, "
          f"{train_s:.0f}s", flush=True)
    os.makedirs(args.out, exist_ok=True)
    dt = {"float32": torch.float32, "float16": torch.float16}[args.ckpt_dtype]
    sd = {k: v.detach().to(dt).cpu() for k, v in model.state_dict().items()}
    stats["ckpt_dtype"] = args.ckpt_dtype
    if teacher is not None:
        stats["distilled_from"] = os.path.basename(args.distill_from)
        stats["distill_alpha"] = args.distill_alpha
    if soft is not None:
        stats["distilled_from"] = soft["meta"]["teacher"]
        stats["distill_alpha"] = args.distill_alpha
        stats["soft_labels"] = soft["meta"]
    if args.init_from:
        stats["init_from"] = os.path.basename(args.init_from)
        stats["lr"], stats["warmup_steps"] = c["lr"], c["warmup_steps"]
    tmp = os.path.join(args.out, c["name"] + ".pt.tmp")
    torch.save({"config": c, "state_dict": sd, "stats": stats}, tmp)
    os.replace(tmp, os.path.join(args.out, c["name"] + ".pt"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="family spec (JSON)")
    ap.add_argument("--member", action="append", help="member name (repeatable); default: all, in spec order")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--data", default="build/models/data")
    ap.add_argument("--out", default="build/models/ckpt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=0, help="override train_tokens (smoke tests)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--distill-from", help="teacher checkpoint (.pt): loss = a*CE + (1-a)*KL(teacher||draft)")
    ap.add_argument("--distill-alpha", type=float, default=0.5, help="weight a of the next-token loss")
    ap.add_argument("--soft-labels", help="soft_labels.py cache dir: distil from it (see above)")
    ap.add_argument("--init-from", help="start from this checkpoint's weights (same shape) instead of fresh ones")
    ap.add_argument("--lr", type=float, help="override the member's peak learning rate")
    ap.add_argument("--warmup-steps", type=int, help="override the family's warm-up steps")
    ap.add_argument("--ckpt-dtype", choices=("float32", "float16"), default="float32",
                    help="float16 halves the file (the GGUF is f16 anyway); for copying checkpoints off a GPU box")
    args = ap.parse_args()
    with open(args.config) as fh:
        spec = json.load(fh)
    names = args.member or [m["name"] for m in spec["members"]]
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("train.py: --device cuda but torch sees no CUDA device")
    for n in names:
        train_member(member_config(spec, n), args)


if __name__ == "__main__":
    main()
