#!/usr/bin/python3
"""Independent PyTorch reference: test/fixtures/models/masked_attention.ts, trained with torch.optim.AdamW.

Token embeddings, then three residual attention layers of bias-free projections: an encoder layer whose
softmax(q k^T / sqrt(D) + mask) sees every position, with a constant mask of 0.25; cross-attention from
every position to a memory of half the length (pairs of positions concatenated and projected by `pool`),
not causal; a causal decoder layer. Then RMSNorm (eps 1e-6) and an untied bias-free head. Attention is
written out here (torch 1.13 has no scaled_dot_product_attention). It shares no code with Stowage; the
files, the data loader, the schedule, the optimizer and the training loop are those of gpt2_torch.py.
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
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def attend(q, k, v, mask):
    """softmax(q k^T / sqrt(D) + mask) v over [B, H, T, D] heads; mask [Tq, Tk]."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1]) + mask
    return F.softmax(scores, dim=-1) @ v


class Attention(nn.Module):
    def __init__(self, dim, heads, kind):
        super().__init__()
        self.heads, self.kind = heads, kind
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x, memory):
        B, T, C = x.shape
        Tk = memory.shape[1]
        H = self.heads

        def heads(t):
            return t.view(B, t.shape[1], H, C // H).transpose(1, 2)

        q = heads(self.q(x))
        k, v = (heads(t) for t in self.kv(memory).split(C, dim=-1))
        if self.kind == "decoder":
            mask = torch.full((T, Tk), float("-inf")).triu(1)
        elif self.kind == "encoder":
            mask = torch.full((T, Tk), 0.25)
        else:
            mask = torch.zeros(T, Tk)
        return self.out(attend(q, k, v, mask).transpose(1, 2).reshape(B, T, C))


class MaskedModel(nn.Module):
    def __init__(self, vocab, dim, heads):
        super().__init__()
        self.dim = dim
        self.wte = nn.Embedding(vocab, dim)
        self.encoder = Attention(dim, heads, "encoder")
        self.pool = nn.Linear(2 * dim, dim, bias=False)
        self.cross = Attention(dim, heads, "cross")
        self.decoder = Attention(dim, heads, "decoder")
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx)
        x = x + self.encoder(x, x)
        memory = self.pool(x.reshape(B, T // 2, 2 * self.dim))
        x = x + self.cross(x, memory)
        x = x + self.decoder(x, x)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def build(config):
    cfg = gpt2_torch.parse_config(config, ("vocab", "seq", "dim", "heads"))
    return MaskedModel(cfg["vocab"], cfg["dim"], cfg["heads"]), cfg


if __name__ == "__main__":
    gpt2_torch.main(build, __doc__)
