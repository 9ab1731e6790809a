"""torch side of low rank: factorize chosen layers to a rank each, read the ranks back, and build the
widest plain DNN that fits the same bytes (the "just train a smaller dense net" control).

The factorisation itself is :class:`~thinlab.nn.LowRank` (``weight (R, Q) = U (R, r) · V (r, Q)``,
the paper's W = A·B transposed) registered by :func:`~thinlab.nn.compress`; this module only adds
per-layer ranks and the byte-matched controls that lesson 02 compares against.

Taught in: 02_svd
"""
from __future__ import annotations

import numbers

from torch import nn
from torch.nn.utils import parametrize

from thinlab.nn.compress import compress, compressible_layers, size_report
from thinlab.nn._util import device_of
from thinlab.nn.parametrizations import LowRank
from thinlab.models import build_model


def factorize(model: nn.Module, ranks, *, layers=None, init: str = "project", seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose chosen layers store ``weight = U · V`` at the given ranks.

    Parameters
    ----------
    model : a torch model (left untouched)
    ranks : int (the same rank for every layer in ``layers``) or dict layer name → rank
    layers : layer names when ``ranks`` is an int (default: every ``nn.Linear``); ignored for a dict
    init : ``"project"`` — factors from the truncated SVD of the trained weight (best rank-r fit);
        ``"random"`` — fresh random factors, for training a factorized layer from scratch
    seed : seed of the random factors

    Returns
    -------
    nn.Module, trainable (gradients flow into U and V); :func:`~thinlab.nn.size_report` counts
    ``(Q + R)·r`` float32 values plus both shapes per factorized layer.

    Taught in: 02_svd
    """
    if isinstance(ranks, numbers.Integral) and not isinstance(ranks, bool):
        names = compressible_layers(model) if layers is None else list(layers)
        ranks = {n: int(ranks) for n in names}
    if not isinstance(ranks, dict) or not ranks:
        raise TypeError(f"ranks={ranks!r}: pass one int rank, or a dict layer name → rank such as "
                        f"{{'hidden.0': 32}}; layers: {compressible_layers(model)}")
    out = model
    for name, k in ranks.items():
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"ranks[{name!r}]={k!r} must be an int ≥ 1")
        out = compress(out, method="lowrank", rank=int(k), layers=[name], init=init, seed=seed)
    return out


def layer_ranks(model: nn.Module) -> dict[str, int]:
    """Layer name → rank of every layer of ``model`` stored as low-rank factors. Taught in: 02_svd"""
    return {name: int(mod.parametrizations.weight[0].rank) for name, mod in model.named_modules()
            if parametrize.is_parametrized(mod, "weight") and isinstance(mod.parametrizations.weight[0], LowRank)}


def thin_dnn(model: nn.Module, *, n_bytes: int) -> tuple[nn.Module, int]:
    """An untrained plain DNN like ``model`` (same input, depth, classes) with the widest uniform
    hidden width whose stored bytes (every tensor, as :func:`~thinlab.nn.size_report` counts)
    are at most ``n_bytes``.

    Parameters
    ----------
    model : a :class:`thinlab.models.DNN` built by ``build_model("dnn", ...)``
    n_bytes : the budget, e.g. ``size_report(factorized).total_bytes``

    Returns
    -------
    (DNN, width)

    Taught in: 02_svd
    """
    if not hasattr(model, "hidden") or not hasattr(model, "out"):
        raise TypeError(f"thin_dnn needs a thinlab DNN (build_model('dnn', ...)), got {type(model).__name__}")
    spec = {k: v for k, v in getattr(model, "thinlab_spec", {}).items() if k not in ("name", "n_classes")}
    spec.update(n_frames=model.n_frames, n_mels=model.n_mels, time_pool=model.time_pool, dropout=model.drop.p)
    depth, n_classes = len(model.hidden), model.out.out_features

    def build(width):
        return build_model("dnn", n_classes, **{**spec, "hidden": (width,) * depth})

    # bytes(h) = a·h² + b·h + c exactly (uniform width h: (depth − 1) h×h layers, the rest linear in h);
    # three tiny models give a, b, c, so no wide model is built while searching
    y1, y2, y3 = (size_report(build(h)).total_bytes for h in (1, 2, 3))
    a2 = y3 - 2 * y2 + y1  # = 2a
    b = (y2 - y1) - 3 * a2 // 2
    c = y1 - a2 // 2 - b

    def nbytes(width):
        return a2 * width * width // 2 + b * width + c

    if y1 > n_bytes:
        raise ValueError(f"n_bytes={n_bytes:,} is below the {y1:,} bytes of a width-1 DNN of this shape; "
                         "pass a larger budget")
    lo, hi = 1, 2
    while nbytes(hi) <= n_bytes:  # bytes grow with the width: find an upper bound, then bisect
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if nbytes(mid) <= n_bytes else (lo, mid)
    thin = build(lo).to(device_of(model))
    assert size_report(thin).total_bytes == nbytes(lo) <= n_bytes  # the formula is exact
    return thin, lo
