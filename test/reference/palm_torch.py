#!/usr/bin/python3
"""Independent PyTorch reference: PaLM as samples/palm.ts describes it, trained with torch.optim.AdamW.

Parallel blocks x + attn(ln(x)) + mlp(ln(x)) with one bias-free LayerNorm, multi-query (or grouped-query)
attention whose K and V heads are repeated to the query heads here, rotary embeddings with rotate-half
pairing on q and k, a SwiGLU MLP of width 4 * dim, no biases anywhere, and the input embedding reused as
the output one with the logits scaled by 1 / sqrt(dim) (the embedding held divided by sqrt(dim)). It shares no code with Stowage; the files, the
data loader, the learning-rate schedule, the optimizer and the training loop are those of gpt2_torch.py.
Prints one JSON line: {"losses": [...]} (plus "grad_norms" when clipping is on).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import gpt2_torch
from gpt2_torch import Fail


def rotary(x, base=10000.0):
    """x [B, H, T, D]: pair (x_i, x_{i+D/2}) at position t turned by t base^(-2i/D)."""
    T, D = x.shape[-2], x.shape[-1]
    # Angles in float64, rounded once to float32, so the reference tables are as exact as they can be.
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    cos = torch.cat((angles.cos(), angles.cos()), dim=-1).to(x.dtype)
    sin = torch.cat((angles.sin(), angles.sin()), dim=-1).to(x.dtype)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class LayerNormNoBias(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


class MultiQueryAttention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        D = self.head_dim
        q = rotary(self.q_proj(x).view(B, T, self.heads, D).transpose(1, 2))
        k = rotary(self.k_proj(x).view(B, T, self.kv_heads, D).transpose(1, 2))
        v = self.v_proj(x).view(B, T, self.kv_heads, D).transpose(1, 2)
        group = self.heads // self.kv_heads
        k = k.repeat_interleave(group, dim=1)  # query head h reads KV head h // group
        v = v.repeat_interleave(group, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        return self.out_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gate = nn.Linear(dim, 4 * dim, bias=False)
        self.up = nn.Linear(dim, 4 * dim, bias=False)
        self.down = nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class ParallelBlock(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.ln = LayerNormNoBias(dim)
        self.attn = MultiQueryAttention(dim, heads, kv_heads)
        self.mlp = SwiGLU(dim)

    def forward(self, x):
        h = self.ln(x)
        return x + self.attn(h) + self.mlp(h)


class PaLM(nn.Module):
    def __init__(self, vocab, layers, dim, heads, kv_heads):
        super().__init__()
        self.dim = dim
        self.wte = nn.Embedding(vocab, dim)
        self.h = nn.ModuleList([ParallelBlock(dim, heads, kv_heads) for _ in range(layers)])
        self.ln_f = LayerNormNoBias(dim)

    def forward(self, idx, targets):
        # wte holds E / sqrt(dim) (see samples/palm.ts): the input is E, the logits x E^T / sqrt(dim).
        x = self.wte(idx) * math.sqrt(self.dim)
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # the output embedding is the input one
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def build_palm(config):
    cfg = gpt2_torch.parse_config(config, ("vocab", "seq", "layers", "dim", "heads", "kv_heads"))
    if cfg["dim"] % cfg["heads"] != 0 or (cfg["dim"] // cfg["heads"]) % 2 != 0:
        raise Fail(f"dim {cfg['dim']} must split into {cfg['heads']} heads of even width")
    if cfg["kv_heads"] < 1 or cfg["heads"] % cfg["kv_heads"] != 0:
        raise Fail(f"kv_heads {cfg['kv_heads']} must divide heads {cfg['heads']}")
    return PaLM(cfg["vocab"], cfg["layers"], cfg["dim"], cfg["heads"], cfg["kv_heads"]), cfg


if __name__ == "__main__":
    gpt2_torch.main(build_palm, __doc__)
