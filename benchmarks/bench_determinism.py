"""What ``train.set_deterministic(True)`` (the lessons' ``DETERMINISTIC = True``) costs in training speed.

Figures (deterministic time / default time, measured side by side, interleaved round by round):
  determinism_cost_hashed   one training step of the lesson DNN with HashedNets hidden layers (size 1/20),
                            whose backward pass is an indexed accumulate: the kernel that is not
                            repeatable across two multi-threaded runs without the switch
  determinism_cost_cnn      one training step of the lesson CNN (batch 64)
  determinism_cost_dnn      one training step of the plain lesson DNN (batch 64)

A ratio near 1 means repeatable runs are free on this machine; the lessons keep the switch on.
Run: ``python -m benchmarks determinism``.
"""
from __future__ import annotations

import torch
from torch import nn

from benchmarks.common import side_by_side
from thinlab import models, train
from thinlab.nn import compress

BATCH = 64


def _step_fn(model):
    x = torch.randn(BATCH, 101, 40)
    y = torch.randint(0, 10, (BATCH,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return step


def _toggled(step, on: bool):
    def run():
        train.set_deterministic(on)
        step()
    return run


def run() -> dict[str, float]:
    torch.manual_seed(0)
    nets = {"hashed": compress(models.build_model("dnn", 10), method="hashed", size_fraction=0.05,
                               layers=["hidden.0", "hidden.1", "hidden.2"], init="random"),
            "cnn": models.build_model("cnn", 10), "dnn": models.build_model("dnn", 10)}
    out = {}
    try:
        for name, net in nets.items():
            step = _step_fn(net.train())
            t = side_by_side({"default": _toggled(step, False), "deterministic": _toggled(step, True)},
                             repeat=9, warmup=2)
            out[f"determinism_cost_{name}"] = t["deterministic"] / t["default"]
            print(f"{name:>7}: default {1e3 * t['default']:.1f} ms, deterministic {1e3 * t['deterministic']:.1f} ms "
                  f"per step of {BATCH}: x{out[f'determinism_cost_{name}']:.2f}")
    finally:
        train.set_deterministic(False)
    return out


if __name__ == "__main__":
    run()
