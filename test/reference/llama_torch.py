#!/usr/bin/python3
"""Independent PyTorch reference: Llama as samples/llama.ts describes it, trained with torch.optim.AdamW.

Written from Meta's model.py, in plain torch: pre-norm blocks with RMSNorm (computed as Meta does, x *
rsqrt(mean(x^2) + eps) * weight), grouped-query attention whose K and V heads are repeated to the query
heads here (Meta's repeat_kv), rotary embeddings on q and k with rotate-half pairing (Hugging Face's
layout: x_i turns with x_{i+D/2}) and base rope_theta, a SwiGLU feed-forward w2(silu(w1 x) * w3 x), no
biases, and an untied output layer. Parameter names are Meta's. It shares no code with Stowage; the
files, the data loader, the schedule, the optimizer and the training loop are those of gpt2_torch.py.
Prints one JSON line: {"losses": [...]} (plus "grad_norms" when clipping is on).
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import gpt2_torch
from gpt2_torch import Fail


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, D, theta):
    """cos and sin [T, D] for rotate-half pairs: position t, pair i turned by t theta^(-2i/D)."""
    # In float64, rounded once to float32, so the tables are as exact as they can be.
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_heads, theta):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.theta = heads, kv_heads, dim // heads, theta
        self.wq = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(heads * self.head_dim, dim, bias=False)

    def forward(self, x):
        B, T, _ = x.shape
        D = self.head_dim
        cos, sin = rope_tables(T, D, self.theta)
        q = apply_rope(self.wq(x).view(B, T, self.heads, D).transpose(1, 2), cos, sin)
        k = apply_rope(self.wk(x).view(B, T, self.kv_heads, D).transpose(1, 2), cos, sin)
        v = self.wv(x).view(B, T, self.kv_heads, D).transpose(1, 2)
        n_rep = self.heads // self.kv_heads
        k = k.repeat_interleave(n_rep, dim=1)  # query head h reads K/V head h // n_rep
        v = v.repeat_interleave(n_rep, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        mask = torch.full((T, T), float("-inf")).triu(1)
        probs = F.softmax(scores + mask, dim=-1)
        return self.wo((probs @ v).transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = Attention(cfg["dim"], cfg["heads"], cfg["kv_heads"], cfg["rope_theta"])
        self.feed_forward = FeedForward(cfg["dim"], cfg["hidden"])
        self.attention_norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.ffn_norm = RMSNorm(cfg["dim"], cfg["norm_eps"])

    def forward(self, x):
        h = x + self.attention(self.attention_norm(x))
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_embeddings = nn.Embedding(cfg["vocab"], cfg["dim"])
        self.layers = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg["layers"])])
        self.norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.output = nn.Linear(cfg["dim"], cfg["vocab"], bias=False)

    def forward(self, idx, targets):
        h = self.tok_embeddings(idx)
        for layer in self.layers:
            h = layer(h)
        logits = self.output(self.norm(h))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def build_llama(config):
    cfg = gpt2_torch.parse_config(config, ("vocab", "seq", "layers", "dim", "heads", "kv_heads", "hidden"))
    try:
        floats = json.loads(config)
        cfg["rope_theta"], cfg["norm_eps"] = float(floats["rope_theta"]), float(floats["norm_eps"])
    except (ValueError, KeyError, TypeError) as e:
        raise Fail(f"--config must also give rope_theta and norm_eps as numbers: {e!r}")
    if cfg["dim"] % cfg["heads"] != 0 or (cfg["dim"] // cfg["heads"]) % 2 != 0:
        raise Fail(f"dim {cfg['dim']} must split into {cfg['heads']} heads of even width")
    if cfg["kv_heads"] < 1 or cfg["heads"] % cfg["kv_heads"] != 0:
        raise Fail(f"kv_heads {cfg['kv_heads']} must divide heads {cfg['heads']}")
    return Transformer(cfg), cfg


if __name__ == "__main__":
    gpt2_torch.main(build_llama, __doc__)
