#!/usr/bin/python3
"""Independent PyTorch reference: the two-layer regression model of test/fixtures/models/regression_task.ts
(fc2(relu(fc1(x))), the mean squared error against y), trained with torch.optim.AdamW on float batches
given as JSON (--batches: one {"x": [...], "y": [...]} per step, flattened row-major). It shares no code
with Stowage; the safetensors reader, the schedule and the optimizer are those of gpt2_torch.py.
Prints one JSON line: {"losses": [...]}.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn as nn

import gpt2_torch
from gpt2_torch import Fail


class Regressor(nn.Module):
    def __init__(self, features, hidden):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x, y):
        return ((self.fc2(torch.relu(self.fc1(x))) - y) ** 2).mean()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--init", required=True)
    p.add_argument("--batches", required=True)
    p.add_argument("--config", required=True, help='JSON: {"features","hidden"}')
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
    a = p.parse_args()
    torch.set_num_threads(1)
    try:
        cfg = gpt2_torch.parse_config(a.config, ("features", "hidden"))
        model = Regressor(cfg["features"], cfg["hidden"])
        gpt2_torch.load_parameters(model, a.init)
        with open(a.batches) as f:
            batches = json.load(f)
        if len(batches) < a.steps:
            raise Fail(f"{a.batches}: {len(batches)} batches, the run takes {a.steps} steps")
        optimizer = gpt2_torch.make_optimizer(model, a)
        losses = []
        for t in range(1, a.steps + 1):
            b = batches[t - 1]
            x = torch.tensor(b["x"], dtype=torch.float32).view(a.batch, cfg["features"])
            y = torch.tensor(b["y"], dtype=torch.float32).view(a.batch, 1)
            for group in optimizer.param_groups:
                group["lr"] = gpt2_torch.lr_at(t, a)
            optimizer.zero_grad(set_to_none=True)
            loss = model(x, y)
            loss.backward()
            if a.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
            optimizer.step()
            losses.append(float(loss))
        print(json.dumps({"losses": losses}))
    except (Fail, OSError) as e:
        print(f"{os.path.basename(sys.argv[0])}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
