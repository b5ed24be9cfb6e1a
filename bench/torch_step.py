#!/usr/bin/python3
"""PyTorch side of `npm run bench`: time GPT-2 training steps, eager, fp32.

The model and the optimizer setup are those of the test reference (test/reference/gpt2_torch.py): nanoGPT's
GPT-2 and torch.optim.AdamW with weight decay on 2-D+ parameters, foreach=False. One step is what Stowage's
step is: zero_grad, forward with cross-entropy, backward, clip_grad_norm_, optimizer step. Batches come
from the same llm.c token file, in llm.c's order. Prints one JSON line.
"""
import argparse
import ctypes
import json
import os
import resource
import statistics
import sys
import time
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "reference"))
import torch  # noqa: E402
from gpt2_torch import GPT, make_optimizer, read_tokens  # noqa: E402


def openblas_core():
    """The kernel family of the OpenBLAS that torch loaded, or None when torch uses another BLAS."""
    for line in open("/proc/self/maps"):
        path = line.split()[-1]
        if "libopenblas" in path:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
    return None


def init_like_nanogpt(model):
    """nanoGPT's init (weights N(0, 0.02), biases 0), as Stowage's: torch's default init makes the loss
    blow up in the first steps, and a diverging run is not a fair speed measurement."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
            elif p.dim() >= 2:
                p.normal_(0.0, 0.02)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="llm.c token file")
    p.add_argument("--config", required=True, help='JSON: {"vocab","seq","layers","dim","heads"}')
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--steps", type=int, required=True, help="measured steps, after the warm-up")
    p.add_argument("--threads", type=int, required=True)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    cfg = json.loads(a.config)
    model = GPT(cfg["vocab"], cfg["seq"], cfg["layers"], cfg["dim"], cfg["heads"])
    init_like_nanogpt(model)
    hyper = types.SimpleNamespace(lr=6e-4, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    optimizer = make_optimizer(model, hyper)
    tokens = read_tokens(a.data)
    B, T = a.batch, a.seq
    if tokens.numel() < B * T + 1:
        sys.exit(f"torch_step.py: {a.data} has {tokens.numel()} tokens, one batch needs {B * T + 1}")

    step_seconds, losses, position = [], [], 0
    for _ in range(a.warmup + a.steps):
        start = time.perf_counter()
        if position + B * T + 1 > tokens.numel():
            position = 0
        x = tokens[position:position + B * T].view(B, T)
        y = tokens[position + 1:position + B * T + 1].view(B, T)
        position += B * T
        optimizer.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step_seconds.append(time.perf_counter() - start)
        losses.append(float(loss))

    measured = step_seconds[a.warmup:]
    print(json.dumps({
        "tokens_per_s": [B * T / s for s in measured],
        "median_tokens_per_s": statistics.median(B * T / s for s in measured),
        "losses": losses,
        "param_count": sum(p.numel() for p in model.parameters()),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "openblas_core": openblas_core(),
        "parallel_info": torch.__config__.parallel_info(),
        "config": torch.__config__.show(),
    }))


if __name__ == "__main__":
    main()
