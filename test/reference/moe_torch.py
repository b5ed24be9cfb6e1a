#!/usr/bin/python3
"""Independent PyTorch reference: the Mixtral-style MoE decoder of samples/moe.ts, trained with torch.optim.AdamW.

Llama blocks (llama_torch.py's attention and RMSNorm) whose feed-forward network is a sparse MoE layer
written as Hugging Face's MixtralSparseMoeBlock does it: router logits, torch.topk for the top_k experts,
a softmax over the selected logits, and a sparse dispatch: each expert runs only on the tokens routed to
it, and its weighted outputs are added back with index_add_. Stowage's sample selects with amax and
comparisons and runs every expert densely, so the two share neither the selection nor the dispatch. Ties
in the router logits would be broken by torch.topk's unspecified rule; the test's data has none.
Parameter names are Mistral's (feed_forward.gate, feed_forward.experts.M.w1). The files, data loader,
schedule, optimizer and training loop are those of gpt2_torch.py. Prints one JSON line: {"losses": [...]}.
"""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F

import gpt2_torch
from gpt2_torch import Fail
from llama_torch import Attention, FeedForward, RMSNorm


class SparseMoe(nn.Module):
    def __init__(self, dim, hidden, experts, top_k):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dim, experts, bias=False)
        self.experts = nn.ModuleList([FeedForward(dim, hidden) for _ in range(experts)])

    def forward(self, x):
        B, T, C = x.shape
        flat = x.reshape(-1, C)
        logits = self.gate(flat)
        top_logits, top_idx = torch.topk(logits, self.top_k, dim=-1)  # [N, k]
        weights = F.softmax(top_logits, dim=-1)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = torch.nonzero(top_idx == e, as_tuple=True)
            # No skip for an expert that no token chose (Hugging Face skips it): run on no rows, its
            # gradient is zeros rather than None, so AdamW still decays it and steps its moments, as
            # Stowage's optimizer does for every parameter every step.
            y = expert(flat[token]) * weights[token, slot].unsqueeze(-1)
            out = out.index_add(0, token, y)
        return out.reshape(B, T, C)


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = Attention(cfg["dim"], cfg["heads"], cfg["kv_heads"], cfg["rope_theta"])
        self.feed_forward = SparseMoe(cfg["dim"], cfg["hidden"], cfg["experts"], cfg["top_k"])
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


def build_moe(config):
    keys = ("vocab", "seq", "layers", "dim", "heads", "kv_heads", "hidden", "experts", "top_k")
    cfg = gpt2_torch.parse_config(config, keys)
    try:
        floats = json.loads(config)
        cfg["rope_theta"], cfg["norm_eps"] = float(floats["rope_theta"]), float(floats["norm_eps"])
    except (ValueError, KeyError, TypeError) as e:
        raise Fail(f"--config must also give rope_theta and norm_eps as numbers: {e!r}")
    if cfg["dim"] % cfg["heads"] != 0 or (cfg["dim"] // cfg["heads"]) % 2 != 0:
        raise Fail(f"dim {cfg['dim']} must split into {cfg['heads']} heads of even width")
    if cfg["kv_heads"] < 1 or cfg["heads"] % cfg["kv_heads"] != 0:
        raise Fail(f"kv_heads {cfg['kv_heads']} must divide heads {cfg['heads']}")
    if not 1 <= cfg["top_k"] <= cfg["experts"]:
        raise Fail(f"top_k {cfg['top_k']} must be between 1 and experts {cfg['experts']}")
    return Transformer(cfg), cfg


if __name__ == "__main__":
    gpt2_torch.main(build_moe, __doc__)
