"""The Llama architecture as llama.cpp's `llama` arch computes it, in plain torch.

RMSNorm -> attention with RoPE -> residual -> RMSNorm -> SwiGLU -> residual, final RMSNorm, output tied to the
token embedding. RoPE rotates ADJACENT pairs (x[2i], x[2i+1]) by pos * theta^(-2i/head_dim): that is ggml's
"normal" rope mode, which llama.cpp uses for arch `llama`, so Q/K weights are exported without the permutation
that convert_hf_to_gguf.py applies to Hugging Face's rotate-half layout.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight.to(x.dtype)


def rope_tables(seq_len, head_dim, theta, device):
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    ang = torch.arange(seq_len, dtype=torch.float32, device=device)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()  # [T, head_dim/2]


def apply_rope(x, cos, sin):
    # x: [B, H, T, D]; rotate pairs (0,1), (2,3), ... ("normal" mode)
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.to(x.dtype)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.h = c["dim"], c["n_heads"]
        self.kv = c.get("n_kv_heads", self.h)
        self.hd = d // self.h
        self.attn_norm = RMSNorm(d, c["norm_eps"])
        self.wq = nn.Linear(d, self.h * self.hd, bias=False)
        self.wk = nn.Linear(d, self.kv * self.hd, bias=False)
        self.wv = nn.Linear(d, self.kv * self.hd, bias=False)
        self.wo = nn.Linear(self.h * self.hd, d, bias=False)
        self.ffn_norm = RMSNorm(d, c["norm_eps"])
        self.w_gate = nn.Linear(d, c["ffn_dim"], bias=False)
        self.w_up = nn.Linear(d, c["ffn_dim"], bias=False)
        self.w_down = nn.Linear(c["ffn_dim"], d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.wk(h).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.wv(h).view(B, T, self.kv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        att = (q @ k.transpose(-1, -2)).float() * (1.0 / math.sqrt(self.hd)) + mask
        y = att.softmax(-1).to(v.dtype) @ v
        x = x + self.wo(y.transpose(1, 2).reshape(B, T, -1))
        h = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok_emb = nn.Embedding(c["vocab_size"], c["dim"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["dim"], c["norm_eps"])
        self._tables = {}

    def init_weights(self, generator):
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * self.c["n_layers"]) if name.endswith(("wo.weight", "w_down.weight")) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=generator) * s)

    def non_embedding_params(self):
        return sum(p.numel() for n, p in self.named_parameters() if not n.startswith("tok_emb"))

    def forward(self, idx):
        B, T = idx.shape
        key = (T, idx.device)
        if key not in self._tables:
            cos, sin = rope_tables(T, self.c["dim"] // self.c["n_heads"], self.c["rope_theta"], idx.device)
            mask = torch.full((T, T), float("-inf"), device=idx.device).triu(1)
            self._tables = {key: (cos, sin, mask)}
        cos, sin, mask = self._tables[key]
        x = self.tok_emb(idx)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        x = self.norm(x)
        return x @ self.tok_emb.weight.to(x.dtype).t()  # tied output
