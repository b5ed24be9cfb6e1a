#!/usr/bin/python3
"""Independent PyTorch reference: GPT-2 exactly as nanoGPT defines it, trained with torch.optim.AdamW.

It shares no code with Stowage. It reads the initial parameters from a safetensors file (parsed by hand:
only torch and the standard library are available), reads batches from an llm.c token file as llm.c's
data loader does, and prints one JSON line: {"losses": [...]} (plus "grad_norms" when clipping is on),
each step's loss from its forward pass, before the update.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Fail(Exception):
    """A problem with the inputs: reported on one line, exit status 2."""


# ---------------------------------------------------------------------------------------------- model


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(dim, 3 * dim, bias=True)
        self.c_proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        B, T, C = x.shape
        hd = C // self.heads
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.heads, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.heads, hd).transpose(1, 2)
        v = v.view(B, T, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~causal, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.c_fc = nn.Linear(dim, 4 * dim, bias=True)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * dim, dim, bias=True)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = CausalSelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = MLP(dim)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, seq, layers, dim, heads):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, dim),
            wpe=nn.Embedding(seq, dim),
            h=nn.ModuleList([Block(dim, heads) for _ in range(layers)]),
            ln_f=nn.LayerNorm(dim, eps=1e-5),
        ))
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in nanoGPT

    def forward(self, idx, targets):
        B, T = idx.shape
        pos = torch.arange(T, dtype=torch.long)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


# ---------------------------------------------------------------------------------------------- files

SAFETENSORS_DTYPES = {"F32": torch.float32}


def read_safetensors(path):
    """{name: tensor}; the same layout rules as the format's reference implementation."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise Fail(f"{path}: too short for safetensors ({len(raw)} bytes)")
    (n,) = struct.unpack_from("<Q", raw, 0)
    if 8 + n > len(raw):
        raise Fail(f"{path}: header length {n} at byte 0 runs past the end of the file ({len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except ValueError as e:
        raise Fail(f"{path}: header at byte 8 is not valid JSON: {e}")
    data = raw[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise Fail(f"{path}: tensor {name} has dtype {entry['dtype']}; the reference reads F32 only")
        begin, end = entry["data_offsets"]
        shape = entry["shape"]
        numel = math.prod(shape)
        if not (0 <= begin <= end <= len(data)) or end - begin != 4 * numel:
            raise Fail(f"{path}: tensor {name} has bad data_offsets [{begin}, {end}] for shape {shape}")
        # bytearray: frombuffer needs a writable buffer; clone() so no tensor aliases the file bytes.
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32) if numel else torch.empty(0)
        tensors[name] = t.reshape(shape).clone()
    return tensors


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        b = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header)
    text += " " * ((8 - len(text.encode()) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text.encode())))
        f.write(text.encode())
        for b in blobs:
            f.write(b)


def read_tokens(path):
    """An llm.c token file: 256 int32 header (magic 20240520, version 1, count), then count uint16."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 1024:
        raise Fail(f"{path}: too short for an llm.c token file ({len(raw)} bytes)")
    magic, version, count = struct.unpack_from("<3i", raw, 0)
    if magic != 20240520 or version != 1:
        raise Fail(f"{path}: not an llm.c token file (magic {magic}, version {version})")
    if len(raw) != 1024 + 2 * count:
        raise Fail(f"{path}: count {count} needs {1024 + 2 * count} bytes, the file has {len(raw)}")
    if count == 0:
        return torch.empty(0, dtype=torch.long)
    # torch has no uint16 arithmetic: read int16 and undo the sign.
    return torch.frombuffer(bytearray(raw[1024:]), dtype=torch.int16).to(torch.long) & 0xFFFF


def load_parameters(model, path):
    """Every parameter of the model must be in the file; lm_head.weight may be, if it equals wte."""
    tensors = read_safetensors(path)
    expected = dict(model.named_parameters())  # the tied lm_head.weight appears once, as wte
    tied = tensors.pop("lm_head.weight", None)
    if tied is not None and not torch.equal(tied, tensors.get("transformer.wte.weight", torch.empty(0))):
        raise Fail(f"{path}: lm_head.weight differs from transformer.wte.weight, but they are tied")
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise Fail(f"{path}: missing parameters {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for name, p in expected.items():
            if list(tensors[name].shape) != list(p.shape):
                raise Fail(f"{path}: {name} has shape {list(tensors[name].shape)}, expected {list(p.shape)}")
            p.copy_(tensors[name])


# ---------------------------------------------------------------------------------------------- training


def lr_at(t, a):
    """Learning rate of 1-based step t."""
    if a.lr_schedule == "constant":
        return a.lr
    if a.warmup_steps > 0 and t <= a.warmup_steps:
        return a.lr * t / a.warmup_steps
    progress = min(1.0, max(0.0, (t - a.warmup_steps) / max(1, a.steps - a.warmup_steps)))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model, a):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    options = dict(lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps, foreach=False)
    # torch 2.x has a fused kernel; the reference uses the plain per-parameter loop wherever it exists.
    if "fused" in torch.optim.AdamW.__init__.__code__.co_varnames:
        options["fused"] = False
    return torch.optim.AdamW(groups, **options)


def parse_config(text, keys):
    """--config as {key: int} for the given keys."""
    try:
        cfg = json.loads(text)
        return {k: int(cfg[k]) for k in keys}
    except (ValueError, KeyError, TypeError) as e:
        raise Fail(f"--config must be JSON with integer {', '.join(keys)}: {e!r}")


def build_gpt(config):
    """The model of --config and its config; other references (palm_torch.py) pass their own builder."""
    cfg = parse_config(config, ("vocab", "seq", "layers", "dim", "heads"))
    if cfg["dim"] % cfg["heads"] != 0:
        raise Fail(f"dim {cfg['dim']} is not divisible by heads {cfg['heads']}")
    return GPT(cfg["vocab"], cfg["seq"], cfg["layers"], cfg["dim"], cfg["heads"]), cfg


def train(a, build):
    model, cfg = build(a.config)
    if a.seq > cfg["seq"]:
        raise Fail(f"--seq {a.seq} exceeds the model's context {cfg['seq']}")
    load_parameters(model, a.init)
    tokens = read_tokens(a.data)
    B, T = a.batch, a.seq
    if tokens.numel() < B * T + 1:
        raise Fail(f"{a.data}: {tokens.numel()} tokens, one batch needs {B * T + 1}")
    if tokens.numel() and int(tokens.max()) >= cfg["vocab"]:
        raise Fail(f"{a.data}: token {int(tokens.max())} is outside the vocabulary of {cfg['vocab']}")

    optimizer = make_optimizer(model, a)
    losses, grad_norms = [], []
    position = 0
    for t in range(1, a.steps + 1):
        if position + B * T + 1 > tokens.numel():
            position = 0
        x = tokens[position:position + B * T].view(B, T)
        y = tokens[position + 1:position + B * T + 1].view(B, T)
        position += B * T

        for group in optimizer.param_groups:
            group["lr"] = lr_at(t, a)
        optimizer.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        if a.grad_clip > 0:
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)))
        optimizer.step()
        losses.append(float(loss))

    if a.out:
        state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
        write_safetensors(a.out, state)
    result = {"losses": losses}
    if a.grad_clip > 0:
        result["grad_norms"] = grad_norms
    print(json.dumps(result))


def main(build=build_gpt, description=__doc__):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--init", required=True, help="safetensors with every parameter under nanoGPT names")
    p.add_argument("--data", required=True, help="llm.c token file")
    p.add_argument("--config", required=True, help='JSON: {"vocab","seq","layers","dim","heads", ...}')
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
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
    p.add_argument("--out", help="optional: write the final parameters here (safetensors, nanoGPT names)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    try:
        train(a, build)
    except (Fail, OSError) as e:
        print(f"{os.path.basename(sys.argv[0])}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
