"""Gradual magnitude pruning while training (Zhu & Gupta 2017): the one schedule the course uses.

The mask of every chosen layer shrinks along :func:`thinlab.prune.polynomial_sparsity` (cubic) from
all weights kept at ``begin`` to the final mask at ``end`` (fractions of all training steps), in
``n_updates`` updates; the rest of the run trains at the final mask. Lesson 01 prunes a trained model
this way (:func:`gradual_prune`); lesson 03's paper comparison prunes a model trained from scratch to
each layer's CSR byte budget (:func:`gradual_step` with per-layer targets). Both use
:data:`SCHEDULE`.

Taught in: 01_pruning, 03_deepthin
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from thinlab import prune, train
from thinlab.nn._util import plain_step
from thinlab.nn.compress import compressible_layers
from thinlab.nn.weights import _modules, _to_paper, _to_torch, apply_masks, layer_weights

#: the schedule: the mask shrinks from ``begin`` to ``end`` (shares of all steps) in ``n_updates`` updates
SCHEDULE = {"begin": 0.1, "end": 0.6, "n_updates": 10, "power": 3}


def _window(total_steps: int, begin: float, end: float, n_updates: int) -> tuple[int, int, int]:
    if not 0 <= begin < end <= 1:
        raise ValueError(f"begin={begin}, end={end}: expected 0 ≤ begin < end ≤ 1 (shares of the training steps)")
    t0 = min(int(round(begin * total_steps)), max(total_steps - 1, 0))
    t1 = min(max(t0 + 1, int(round(end * total_steps))), max(total_steps, t0 + 1))
    return t0, t1, max(1, (t1 - t0) // max(1, n_updates))


def gradual_step(mods: dict, *, total_steps: int, keep: dict | None = None, final_sparsity: float | None = None,
                 scope: str = "layer", begin: float = SCHEDULE["begin"], end: float = SCHEDULE["end"],
                 n_updates: int = SCHEDULE["n_updates"], power: float = SCHEDULE["power"]):
    """A :func:`thinlab.train.fit` ``step_fn`` that shrinks the masks of ``mods`` (name → masked module).

    Targets: ``keep`` (name → weights kept at the end, e.g. a CSR byte budget's nnz) or
    ``final_sparsity`` with ``scope`` "layer" (every layer alike) or "global" (one threshold over all).
    At each update the weights still alive with the smallest magnitudes are masked.

    Returns ``(step_fn, finish, rows)``: call ``finish()`` after training (a run too short to reach
    the schedule's end jumps to the final mask); ``rows`` fills with ``{"step", "sparsity"}`` per step.

    Taught in: 01_pruning, 03_deepthin
    """
    if (keep is None) == (final_sparsity is None):
        raise ValueError("pass exactly one of keep= (weights kept per layer) and final_sparsity=")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope={scope!r}; choose 'layer' (same sparsity per layer) or 'global' (one threshold)")
    if scope == "global" and keep is not None:
        raise ValueError("scope='global' takes final_sparsity=, not per-layer keep=")
    t0, t1, freq = _window(total_steps, begin, end, n_updates)
    sizes = {k: m.weight.numel() for k, m in mods.items()}
    final = keep if keep is not None else {k: n - prune.n_pruned(n, sparsity=final_sparsity) for k, n in sizes.items()}
    target = final_sparsity if final_sparsity is not None else \
        sum(n - final[k] for k, n in sizes.items()) / max(1, sum(sizes.values()))
    state = {"step": 0, "progress": 0.0, "sparsity": 0.0}
    rows = []
    loss_fn = nn.CrossEntropyLoss()

    @torch.no_grad()
    def set_progress(p: float) -> None:
        """Mask each layer to ``p`` of the way from everything kept to its final mask."""
        if scope == "global":
            weights = {k: _to_paper(m.weight) for k, m in mods.items()}      # masked weights are 0
            masks = prune.global_magnitude_mask(weights, sparsity=p * final_sparsity)
            for k, m in mods.items():
                m.parametrizations.weight[0].mask.copy_(_to_torch(masks[k].astype(np.float32), m.weight.shape))
        else:
            for k, m in mods.items():
                n = sizes[k]
                k_keep = n - int(round(p * (n - final[k])))
                mask = prune.magnitude_mask(_to_paper(m.weight), sparsity=(n - k_keep) / n)   # masked weights are 0
                m.parametrizations.weight[0].mask.copy_(_to_torch(mask.astype(np.float32), m.weight.shape))
        state["progress"] = p
        state["sparsity"] = p * target                                  # the schedule's sparsity at this step

    def step_fn(model, xb, yb, opt):
        p = prune.polynomial_sparsity(state["step"], final_sparsity=0.5, begin_step=t0, end_step=t1,
                                      frequency=freq, power=power) / 0.5   # share of the way to the final mask
        if p != state["progress"]:
            set_progress(p)
        rows.append({"step": state["step"], "sparsity": state["sparsity"]})
        state["step"] += 1
        return plain_step(model, xb, yb, opt, loss_fn)

    def finish() -> None:
        if state["progress"] != 1.0:
            set_progress(1.0)

    return step_fn, finish, rows


def gradual_prune(model: nn.Module, X_train, y_train, X_val=None, y_val=None, *, final_sparsity: float,
                  epochs: int, layers=None, scope: str = "layer", begin: float = SCHEDULE["begin"],
                  end: float = SCHEDULE["end"], n_updates: int = SCHEDULE["n_updates"],
                  power: float = SCHEDULE["power"], lr: float = 1e-3, seed: int = 0, batch_size: int = 64,
                  progress: bool = True, device=None):
    """Prune a copy of ``model`` gradually while fine-tuning it (Zhu & Gupta 2017, :data:`SCHEDULE`).

    Returns
    -------
    (masked model, :class:`thinlab.train.History`, list of rows ``{"step", "sparsity"}`` per step)

    Taught in: 01_pruning
    """
    names = compressible_layers(model) if layers is None else list(layers)
    masked = apply_masks(model, {n: np.ones_like(W, dtype=bool) for n, W in layer_weights(model, layers=names).items()})
    mods = _modules(masked, names)
    total = epochs * -(-len(y_train) // batch_size)
    step_fn, finish, rows = gradual_step(mods, total_steps=total, final_sparsity=final_sparsity, scope=scope,
                                         begin=begin, end=end, n_updates=n_updates, power=power)
    hist = train.finetune(masked, X_train, y_train, X_val, y_val, epochs=epochs, lr=lr, seed=seed,
                          batch_size=batch_size, progress=progress, step_fn=step_fn, desc="gradual prune",
                          device=device)
    finish()
    return masked, hist, rows
