"""torch side of pruning: magnitude pruning of a whole model (per layer or global, or to a byte
budget) and structured neuron pruning that really shrinks the DNN.

The numpy kernels in :mod:`thinlab.prune` choose what to remove; this module only converts at the
torch boundary (:mod:`thinlab.nn.weights` holds the orientation conversion and the masks).

Taught in: 01_pruning
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from thinlab import prune
from thinlab.models import build_model
from thinlab.nn._util import device_of
from thinlab.nn.compress import compress, compressible_layers, size_report
from thinlab.nn.weights import _to_paper, _to_torch, apply_masks, layer_weights


def prune_model(model: nn.Module, *, sparsity: float, layers=None, scope: str = "layer",
                storage: str = "csr") -> nn.Module:
    """Magnitude-prune ``layers`` of a copy of ``model`` in one shot.

    ``scope="layer"`` prunes ``sparsity`` of every layer (:func:`thinlab.prune.magnitude_mask`);
    ``scope="global"`` prunes ``sparsity`` of all their weights pooled under one threshold
    (:func:`thinlab.prune.global_magnitude_mask`), so layers end up with different sparsities.

    Taught in: 01_pruning
    """
    weights = layer_weights(model, layers=layers)
    if scope == "layer":
        masks = {n: prune.magnitude_mask(W, sparsity=sparsity) for n, W in weights.items()}
    elif scope == "global":
        masks = prune.global_magnitude_mask(weights, sparsity=sparsity)
    else:
        raise ValueError(f"scope={scope!r}; choose 'layer' (same sparsity per layer) or 'global' (one threshold)")
    return apply_masks(model, masks, storage=storage)


def prune_to_bytes(model: nn.Module, *, n_bytes: int, layers=None, storage: str = "csr") -> nn.Module:
    """Magnitude-prune ``layers`` with one size_fraction so that the whole model (every stored tensor,
    as :func:`~thinlab.nn.size_report` counts it) takes at most ``n_bytes``.

    Taught in: 01_pruning
    """
    names = compressible_layers(model) if layers is None else list(layers)
    rows = size_report(model).layers
    chosen = sum(r.bytes for r in rows if r.name in {f"{n}.weight" for n in names})
    other = size_report(model).total_bytes - chosen
    fraction = (n_bytes - other) / chosen
    if not 0 < fraction <= 1:
        raise ValueError(f"n_bytes={n_bytes:,} cannot be met by pruning {names}: the other tensors take "
                         f"{other:,} bytes and the chosen layers {chosen:,} dense; pass n_bytes in "
                         f"({other:,}, {other + chosen:,}]")
    return compress(model, method="prune", size_fraction=fraction, layers=names, storage=storage)


@torch.no_grad()
def shrink_dnn(model: nn.Module, *, sparsity: float | None = None, keep=None, norm: str = "l1"):
    """Structured pruning of the DNN: remove hidden units (smallest incoming-weight norm first) from
    every hidden layer and return a new, smaller, plain DNN that computes what the masked one would.

    Parameters
    ----------
    model : a :class:`thinlab.models.DNN` (plain, not masked)
    sparsity : fraction of each hidden layer's units to remove, or
    keep : units to keep, one int for all hidden layers or one per layer. Pass exactly one.
    norm : "l1" or "l2", see :func:`thinlab.prune.prune_neurons`.

    Returns
    -------
    (small DNN, dict hidden-layer name → ascending kept unit indices)

    Taught in: 01_pruning
    """
    if not hasattr(model, "hidden") or not hasattr(model, "out"):
        raise TypeError(f"shrink_dnn needs a thinlab DNN (build_model('dnn', ...)), got {type(model).__name__}")
    layers = [*model.hidden, model.out]
    n_hidden = len(model.hidden)
    keeps = [keep] * n_hidden if keep is None or np.isscalar(keep) else list(keep)
    if len(keeps) != n_hidden:
        raise ValueError(f"keep has {len(keeps)} entries for {n_hidden} hidden layers; pass one int or one per layer")
    Ws = [_to_paper(l.weight) for l in layers]  # each (Q, R)
    bs = [l.bias.detach().numpy().copy() for l in layers]
    kept = {}
    for i in range(n_hidden):
        Ws[i], bs[i], Ws[i + 1], idx = prune.prune_neurons(Ws[i], bs[i], Ws[i + 1], keep=keeps[i],
                                                             sparsity=sparsity, norm=norm)
        kept[f"hidden.{i}"] = idx
    spec = {k: v for k, v in getattr(model, "thinlab_spec", {}).items() if k not in ("name", "n_classes")}
    spec.update(hidden=tuple(W.shape[1] for W in Ws[:n_hidden]), n_frames=model.n_frames, n_mels=model.n_mels,
                time_pool=model.time_pool, dropout=model.drop.p)
    small = build_model("dnn", model.out.out_features, **spec)
    small.norm.load_state_dict(model.norm.state_dict())
    for layer, W, b in zip([*small.hidden, small.out], Ws, bs):
        layer.weight.copy_(_to_torch(W, layer.weight.shape))
        layer.bias.copy_(torch.as_tensor(b))
    return small.to(device_of(model)), kept


