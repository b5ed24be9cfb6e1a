#!/usr/bin/python3
"""Independent PyTorch reference: BERT with its masked-LM loss, as samples/bert.ts describes it, trained
with torch.optim.AdamW.

Written from Hugging Face's modeling_bert.py (BertForMaskedLM), in plain torch: embeddings (word plus
learned positions, no token types) and LayerNorm; post-norm layers, LN(x + attention(x)) then
LN(h + W2 gelu(W1 h)), with bidirectional attention over each sequence's real tokens (Hugging Face's
extended attention mask: the scores of padding keys are filled with -inf); the MLM head, dense + gelu + LayerNorm and
a decoder tied to the word embeddings plus its own bias; the cross-entropy of the labels at the masked
positions, gathered from the last hidden states. GELU is the tanh approximation, LayerNorm's eps 1e-12.
Parameter names are Hugging Face's. It shares no code with Stowage; the safetensors reader, the schedule
and the optimizer are those of gpt2_torch.py. The batches come as JSON (--batches): one object per step,
{"tokens": [...], "attention_mask": [...], "positions": [...], "labels": [...]}, each flattened row-major
(attention_mask: 1 for a real token, 0 for padding).
Prints one JSON line: {"losses": [...]} (plus "grad_norms" when clipping is on).
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import gpt2_torch
from gpt2_torch import Fail

EPS = 1e-12


def gelu(x):
    return F.gelu(x, approximate="tanh")


class SelfAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)


class AddNorm(nn.Module):
    """BertSelfOutput and BertOutput: LayerNorm(dense(h) + residual)."""

    def __init__(self, inp, dim):
        super().__init__()
        self.dense = nn.Linear(inp, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=EPS)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.self = SelfAttention(dim)
        self.output = AddNorm(dim, dim)

    def forward(self, x, attention_mask):
        B, T, C = x.shape
        D = C // self.heads

        def split(t):
            return t.view(B, T, self.heads, D).transpose(1, 2)

        q, k, v = split(self.self.query(x)), split(self.self.key(x)), split(self.self.value(x))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.output(y.transpose(1, 2).reshape(B, T, C), x)


class Intermediate(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.dense = nn.Linear(dim, hidden)


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = Attention(cfg["dim"], cfg["heads"])
        self.intermediate = Intermediate(cfg["dim"], cfg["hidden"])
        self.output = AddNorm(cfg["hidden"], cfg["dim"])

    def forward(self, x, attention_mask):
        h = self.attention(x, attention_mask)
        return self.output(gelu(self.intermediate.dense(h)), h)


class Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg["vocab"], cfg["dim"])
        self.position_embeddings = nn.Embedding(cfg["seq"], cfg["dim"])
        self.LayerNorm = nn.LayerNorm(cfg["dim"], eps=EPS)

    def forward(self, tokens):
        T = tokens.shape[1]
        return self.LayerNorm(self.word_embeddings(tokens) + self.position_embeddings(torch.arange(T)))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.ModuleList([Layer(cfg) for _ in range(cfg["layers"])])


class BertModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)

    def forward(self, tokens, attention_mask):
        x = self.embeddings(tokens)
        for layer in self.encoder.layer:
            x = layer(x, attention_mask)
        return x


class Transform(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=EPS)

    def forward(self, x):
        return self.LayerNorm(gelu(self.dense(x)))


class Predictions(nn.Module):
    def __init__(self, cfg, word_embeddings):
        super().__init__()
        self.transform = Transform(cfg["dim"])
        self.decoder = nn.Linear(cfg["dim"], cfg["vocab"], bias=False)
        self.decoder.weight = word_embeddings.weight  # tied, as tie_word_embeddings does
        self.bias = nn.Parameter(torch.zeros(cfg["vocab"]))

    def forward(self, x):
        return self.decoder(self.transform(x)) + self.bias


class Heads(nn.Module):
    def __init__(self, cfg, word_embeddings):
        super().__init__()
        self.predictions = Predictions(cfg, word_embeddings)


class BertForMaskedLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.bert = BertModel(cfg)
        self.cls = Heads(cfg, self.bert.embeddings.word_embeddings)

    def forward(self, tokens, attention_mask, positions, labels):
        h = self.bert(tokens, attention_mask)  # [B, T, C]
        index = positions.unsqueeze(-1).expand(-1, -1, h.shape[-1])
        logits = self.cls.predictions(torch.gather(h, 1, index))  # [B, K, vocab]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def build(config):
    cfg = gpt2_torch.parse_config(config, ("vocab", "seq", "layers", "dim", "heads", "hidden", "predictions"))
    if cfg["dim"] % cfg["heads"] != 0:
        raise Fail(f"dim {cfg['dim']} is not divisible by heads {cfg['heads']}")
    return BertForMaskedLM(cfg), cfg


def read_batches(path, cfg, batch, steps):
    with open(path) as f:
        batches = json.load(f)
    if len(batches) < steps:
        raise Fail(f"{path}: {len(batches)} batches, the run takes {steps} steps")
    shapes = {"tokens": cfg["seq"], "attention_mask": cfg["seq"], "positions": cfg["predictions"], "labels": cfg["predictions"]}
    out = []
    for s, b in enumerate(batches[:steps]):
        step = {}
        for name, width in shapes.items():
            if len(b.get(name, [])) != batch * width:
                raise Fail(f"{path}: step {s}: {name} must hold {batch} x {width} values")
            step[name] = torch.tensor(b[name], dtype=torch.float32 if name == "attention_mask" else torch.long).view(batch, width)
        out.append(step)
    return out


def train(a):
    model, cfg = build(a.config)
    gpt2_torch.load_parameters(model, a.init)
    batches = read_batches(a.batches, cfg, a.batch, a.steps)
    optimizer = gpt2_torch.make_optimizer(model, a)
    losses, grad_norms = [], []
    for t in range(1, a.steps + 1):
        b = batches[t - 1]
        for group in optimizer.param_groups:
            group["lr"] = gpt2_torch.lr_at(t, a)
        optimizer.zero_grad(set_to_none=True)
        loss = model(b["tokens"], b["attention_mask"], b["positions"], b["labels"])
        loss.backward()
        if a.grad_clip > 0:
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)))
        optimizer.step()
        losses.append(float(loss))
    result = {"losses": losses}
    if a.grad_clip > 0:
        result["grad_norms"] = grad_norms
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--init", required=True, help="safetensors with every parameter under Hugging Face's names")
    p.add_argument("--batches", required=True, help="JSON: one object of flattened inputs per step")
    p.add_argument("--config", required=True, help='JSON: {"vocab","seq","layers","dim","heads","hidden","predictions"}')
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--min-lr", type=float, default=0.0)
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--weight-decay", type=float, required=True)
    p.add_argument("--beta1", type=float, required=True)
    p.add_argument("--beta2", type=float, required=True)
    p.add_argument("--eps", type=float, required=True)
    p.add_argument("--grad-clip", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    try:
        train(a)
    except (Fail, OSError) as e:
        print(f"{os.path.basename(sys.argv[0])}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
