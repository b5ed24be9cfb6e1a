#!/usr/bin/python3
"""Independent PyTorch reference: test/fixtures/models/movement_gpt.ts, trained with torch.optim.AdamW.

The fixture moves its data with Stowage's movement ops; this twin writes the same model the way a
PyTorch user would, with none of them where torch has a plainer idiom: embedding rows by indexing, the
heads split by view and joined by transpose and reshape, the token shift by concatenating a zero row,
the two streams' mean by adding and halving, the feature rotation by torch.roll. Pre-norm blocks with
RMSNorm (x * rsqrt(mean(x^2) + 1e-5) * w), causal attention from one bias-free qkv projection, and an
MLP of a leaky ReLU (slope 0.1) plus a softmax gate over the features within 1 of their row's maximum.
It shares no code with Stowage; the files, the data loader, the schedule, the optimizer and the training
loop are those of gpt2_torch.py. Prints one JSON line: {"losses": [...]} (plus "grad_norms" when
clipping is on).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import gpt2_torch


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.norm2 = RMSNorm(dim)
        self.up = nn.Linear(dim, 4 * dim, bias=False)
        self.down = nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.heads, C // self.heads
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in self.qkv(self.norm1(x)).split(C, dim=-1))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        y = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        shifted = torch.cat([torch.zeros(B, 1, C), x[:, :-1]], dim=1)
        h = self.up(self.norm2((x + shifted) / 2))
        leaky = torch.where(h > 0, h, 0.1 * h)
        far_below_max = h < h.amax(-1, keepdim=True) - 1
        gate = F.softmax(h.masked_fill(far_below_max, float("-inf")), dim=-1)
        return x + self.down(leaky + gate)


class MovementGPT(nn.Module):
    def __init__(self, vocab, seq, layers, dim, heads):
        super().__init__()
        self.wte = nn.Parameter(torch.zeros(vocab, dim))
        self.wpe = nn.Parameter(torch.zeros(2 * seq, dim))
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte[idx] + self.wpe[:T]
        for block in self.blocks:
            x = block(x)
        # Feature c also reads feature c + 1 (the last reads the first).
        logits = self.head(self.norm(x + torch.roll(x, -1, dims=-1)))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def build(config):
    cfg = gpt2_torch.parse_config(config, ("vocab", "seq", "layers", "dim", "heads"))
    return MovementGPT(cfg["vocab"], cfg["seq"], cfg["layers"], cfg["dim"], cfg["heads"]), cfg


if __name__ == "__main__":
    gpt2_torch.main(build, __doc__)
