"""Unstructured magnitude pruning: per layer, global across layers, and a per-layer sensitivity scan.

A mask is a bool array of the weight's shape, ``True`` where the weight is kept.
Exactly ``round(sparsity * n)`` entries are pruned; among equal magnitudes the
lower flat (row-major) index is pruned first, so results never depend on the
sort algorithm.

Taught in: 01_pruning
"""
from __future__ import annotations

import numbers
from typing import Callable, Mapping

import numpy as np

from thinlab._validate import as_weight, check_int, check_sparsity


def n_pruned(n: int, *, sparsity: float) -> int:
    """Number of entries pruned out of ``n`` at ``sparsity``: ``round(sparsity * n)`` (half to even).

    Taught in: 01_pruning
    """
    n = check_int(n, name="n", low=0, hint="pass the number of weights, e.g. W.size")
    return int(round(check_sparsity(sparsity) * n))


def keep_largest(scores: np.ndarray, *, n_drop: int) -> np.ndarray:
    """Bool mask over a 1-D ``scores`` that drops the ``n_drop`` smallest, lower index first on ties.

    O(n) with :func:`numpy.partition`: everything strictly below the ``n_drop``-th
    smallest score goes, then just enough of the scores equal to it, in index order.

    Parameters
    ----------
    scores : ndarray, shape (n,)
    n_drop : int, 0 ≤ n_drop ≤ n

    Returns
    -------
    keep : ndarray of bool, shape (n,), with exactly ``n - n_drop`` True.

    Taught in: 01_pruning
    """
    scores = as_weight(scores, name="scores", ndim=1, hint="(n,); pass one score per weight, e.g. np.abs(W).ravel()")
    n_drop = check_int(n_drop, name="n_drop", low=0, high=scores.size,
                       hint=f"drop between 0 and all {scores.size} entries")
    keep = np.ones(scores.shape, dtype=bool)
    if n_drop == 0:
        return keep
    threshold = np.partition(scores, n_drop - 1)[n_drop - 1]
    below = scores < threshold
    keep[below] = False
    tied = np.flatnonzero(scores == threshold)[: n_drop - int(below.sum())]
    keep[tied] = False
    return keep


def magnitude_mask(W, *, sparsity: float) -> np.ndarray:
    """Mask that prunes the ``round(sparsity * W.size)`` smallest-magnitude weights of one layer.

    Parameters
    ----------
    W : ndarray of float, any shape, e.g. (Q, R) dense or (out, in, kh, kw) conv
    sparsity : float in [0, 1)
        Fraction of weights to prune.

    Returns
    -------
    mask : ndarray of bool, same shape as ``W``; ``True`` = kept. Exactly
        ``round(sparsity * W.size)`` entries are False; ties are pruned lower flat index first.

    Taught in: 01_pruning
    """
    W = as_weight(W)
    n_drop = n_pruned(W.size, sparsity=sparsity)
    return keep_largest(np.abs(W).ravel(), n_drop=n_drop).reshape(W.shape)  # (n,) → W.shape


def magnitude_mask_reference(W, *, sparsity: float) -> np.ndarray:
    """Loop reference for :func:`magnitude_mask`: sort by (|w|, index), prune the first k.

    Taught in: 01_pruning
    """
    flat = np.abs(np.asarray(W)).ravel().tolist()
    k = int(round(sparsity * len(flat)))
    keep = [True] * len(flat)
    for i in sorted(range(len(flat)), key=lambda i: (flat[i], i))[:k]:
        keep[i] = False
    return np.array(keep, dtype=bool).reshape(np.shape(W))  # (n,) → W.shape


def magnitude_prune(W, *, sparsity: float) -> np.ndarray:
    """Copy of ``W`` with its ``round(sparsity * W.size)`` smallest-magnitude weights set to zero.

    Parameters
    ----------
    W : ndarray of float, any shape
    sparsity : float in [0, 1)

    Returns
    -------
    ndarray, same shape and dtype as ``W``. If ``W`` already holds more exact
    zeros than are pruned, those stay zero, so the zero count is
    ``max(round(sparsity * W.size), zeros already in W)``.

    Taught in: 01_pruning
    """
    W = as_weight(W)
    return np.where(magnitude_mask(W, sparsity=sparsity), W, W.dtype.type(0))


def _check_layers(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(weights, Mapping) or len(weights) == 0:
        got = "an empty dict" if isinstance(weights, Mapping) else f"a {type(weights).__name__}"
        raise TypeError(f"weights must be a non-empty dict name → array, got {got}; pass e.g. "
                        "{name: p.detach().numpy() for name, p in model.named_parameters()}")
    return {name: as_weight(W, name=f"weights[{name!r}]") for name, W in weights.items()}


def global_magnitude_mask(weights: Mapping[str, np.ndarray], *, sparsity: float) -> dict[str, np.ndarray]:
    """Masks that prune the smallest magnitudes of all layers pooled, under one shared threshold.

    Parameters
    ----------
    weights : dict name → ndarray of float (any shapes)
    sparsity : float in [0, 1)
        Fraction of all weights, counted across layers, to prune.

    Returns
    -------
    dict name → bool mask of that layer's shape (``True`` = kept), same key
    order. Exactly ``round(sparsity * total)`` entries are False in total; ties
    are pruned in dict order, then flat index order.

    Taught in: 01_pruning
    """
    weights = _check_layers(weights)
    scores = np.concatenate([np.abs(W).ravel() for W in weights.values()])  # (total,)
    keep = keep_largest(scores, n_drop=n_pruned(scores.size, sparsity=sparsity))
    splits = np.cumsum([W.size for W in weights.values()])[:-1]
    return {name: part.reshape(W.shape)  # (W.size,) → W.shape
            for (name, W), part in zip(weights.items(), np.split(keep, splits))}


def global_magnitude_mask_reference(weights: Mapping[str, np.ndarray], *, sparsity: float) -> dict:
    """Loop reference for :func:`global_magnitude_mask`: sort all (|w|, layer, index), prune the first k.

    Taught in: 01_pruning
    """
    entries = [(abs(float(w)), li, i) for li, W in enumerate(weights.values())
               for i, w in enumerate(np.asarray(W).ravel())]
    k = int(round(sparsity * len(entries)))
    keep = [np.ones(np.size(W), dtype=bool) for W in weights.values()]
    for _, li, i in sorted(entries)[:k]:
        keep[li][i] = False
    return {name: m.reshape(np.shape(W))  # (W.size,) → W.shape
            for (name, W), m in zip(weights.items(), keep)}


def global_magnitude_prune(weights: Mapping[str, np.ndarray], *, sparsity: float) -> dict[str, np.ndarray]:
    """Prune all layers together with one magnitude threshold (see :func:`global_magnitude_mask`).

    Parameters
    ----------
    weights : dict name → ndarray of float (any shapes)
    sparsity : float in [0, 1)

    Returns
    -------
    dict name → new pruned array (same shapes, dtypes and key order).

    Taught in: 01_pruning
    """
    masks = global_magnitude_mask(weights, sparsity=sparsity)
    return {name: np.where(masks[name], W, np.asarray(W).dtype.type(0)) for name, W in weights.items()}


def sensitivity_scan(weights: Mapping[str, np.ndarray], evaluate: Callable[[dict], float], *,
                     sparsities, layers=None) -> list[dict]:
    """Score the model with one layer magnitude-pruned at a time, every other layer intact.

    Parameters
    ----------
    weights : dict name → ndarray of float
    evaluate : callable dict → float
        Scores a full weight dict (e.g. validation accuracy after loading it).
        It must not modify the arrays it is given.
    sparsities : sequence of float in [0, 1)
    layers : sequence of str, optional
        Which layers to scan (default: all, in dict order), e.g. skip biases.

    Returns
    -------
    list of dict rows ``{"layer", "sparsity", "score"}``, layer-major, ready
    for a DataFrame or a line chart.

    Taught in: 01_pruning
    """
    weights = _check_layers(weights)
    if not callable(evaluate):
        raise TypeError(f"evaluate must be a callable dict → float, got {type(evaluate).__name__}; "
                        "pass e.g. lambda w: accuracy(load(model, w), val_set)")
    sparsities = [check_sparsity(s, name="each of sparsities") for s in np.atleast_1d(sparsities).tolist()]
    layers = list(weights) if layers is None else list(layers)
    unknown = [name for name in layers if name not in weights]
    if unknown:
        raise KeyError(f"layers {unknown} are not in weights (which has {list(weights)}); "
                       "pass names from weights.keys()")
    rows = []
    for name in layers:
        for s in sparsities:
            score = evaluate({**weights, name: magnitude_prune(weights[name], sparsity=s)})
            if isinstance(score, bool) or not isinstance(score, numbers.Real):
                raise TypeError(f"evaluate returned {score!r}; expected one number per weight dict, "
                                "e.g. return float(accuracy)")
            rows.append({"layer": name, "sparsity": s, "score": float(score)})
    return rows
