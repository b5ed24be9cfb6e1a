#!/usr/bin/python3
"""Independent PyTorch reference: test/fixtures/models/rmsnorm_gpt.ts, trained with torch.optim.AdamW.

Pre-norm blocks with RMSNorm (x * rsqrt(mean(x^2) + 1e-5) * w), causal attention from one bias-free qkv
projection, and an MLP whose hidden features h are gated as relu(h) * softmax(h) * width. Learned
position embeddings, an untied bias-free LM head. It shares no code with Stowage; the files, the data
loader, the schedule, the optimizer and the training loop are those of gpt2_torch.py.
Prints one JSON line: {"losses": [...]} (plus "grad_norms" when clipping is on).
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
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))
        h = self.up(self.norm2(x))
        return x + self.down(F.relu(h) * (F.softmax(h, dim=-1) * (4 * C)))


class RmsGPT(nn.Module):
    def __init__(self, vocab, seq, layers, dim, heads):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(seq, dim)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def build(config):
    cfg = gpt2_torch.parse_config(config, ("vocab", "seq", "layers", "dim", "heads"))
    return RmsGPT(cfg["vocab"], cfg["seq"], cfg["layers"], cfg["dim"], cfg["heads"]), cfg


if __name__ == "__main__":
    gpt2_torch.main(build, __doc__)
