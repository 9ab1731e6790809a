"""Structured pruning: remove whole hidden units or conv channels and return smaller dense arrays.

Removing unit ``j`` of a layer deletes everything that produces it (its
column of ``W1``, its bias) and everything that reads it (its row of the next
layer's ``W2``, or its input channel / flattened rows of the next layer), so
the smaller network computes exactly what the masked one did.

Units are ranked by the L1 or L2 norm of their incoming weights; the
smallest go first, lower index first on ties. ``kept_idx`` is returned
ascending so any other per-unit array (a BatchNorm's scale, shift and
running stats) can be sliced the same way: ``gamma[kept_idx]``.

Taught in: 01_pruning
"""
from __future__ import annotations

import numpy as np

from thinlab._validate import as_weight, check_int

from .magnitude import keep_largest, n_pruned

NORMS = ("l1", "l2")


def unit_norms(W: np.ndarray, *, axis, norm: str = "l1") -> np.ndarray:
    """L1 or L2 norm of ``W`` over ``axis`` (in float64), one score per remaining index.

    Taught in: 01_pruning
    """
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not one of {NORMS}; pass norm='l1' or norm='l2'")
    W = as_weight(W)
    axes = axis if isinstance(axis, tuple) else (axis,)
    if not axes or not all(isinstance(a, int) and not isinstance(a, bool) and -W.ndim <= a < W.ndim for a in axes):
        raise ValueError(f"axis={axis!r} must be an int or a tuple of ints in [{-W.ndim}, {W.ndim - 1}] for W of shape "
                         f"{W.shape}; e.g. axis=0 for the norm of each column")
    W = np.abs(W.astype(np.float64))
    return W.sum(axis=axis) if norm == "l1" else np.sqrt((W * W).sum(axis=axis))


def _n_keep(n_units: int, keep, sparsity, unit: str) -> int:
    if (keep is None) == (sparsity is None):
        raise ValueError(f"got keep={keep!r} and sparsity={sparsity!r}; pass exactly one: keep= (how many "
                         f"{unit} to keep) or sparsity= (fraction of the {n_units} {unit} to remove)")
    if keep is not None:
        return check_int(keep, name="keep", low=1, high=n_units,
                         hint=f"keep at least 1 and at most all {n_units} {unit}")
    n_keep = n_units - n_pruned(n_units, sparsity=sparsity)
    if n_keep < 1:
        raise ValueError(f"sparsity={sparsity} would remove all {n_units} {unit}; "
                         "use a smaller sparsity or pass keep=1")
    return n_keep


def _bias(b, n_units: int, name: str):
    if b is None:
        return None
    b = as_weight(b, name=name, ndim=1, hint=f"({n_units},); pass that layer's bias vector")
    if b.shape[0] != n_units:
        raise ValueError(f"{name} has {b.shape[0]} entries but the layer has {n_units} units; "
                         f"pass that layer's own bias (or None)")
    return b


def prune_neurons(W1, b1, W2, *, keep: int | None = None, sparsity: float | None = None,
                  norm: str = "l1"):
    """Remove the hidden units of Y = act(X·W1 + b1)·W2 whose incoming weights have the smallest norm.

    Parameters
    ----------
    W1 : ndarray of float, shape (Q, H) = (in, hidden)
    b1 : ndarray of float, shape (H,), or None
    W2 : ndarray of float, shape (H, R) = (hidden, out)
    keep : int in [1, H], optional
        Number of hidden units to keep.
    sparsity : float in [0, 1), optional
        Fraction of hidden units to remove (``round(sparsity * H)`` of them). Pass exactly one of the two.
    norm : {"l1", "l2"}
        Norm of each unit's column of ``W1`` used as its score.

    Returns
    -------
    W1p : ndarray, shape (Q, K)
    b1p : ndarray, shape (K,), or None
    W2p : ndarray, shape (K, R)
    kept_idx : ndarray of int64, shape (K,), ascending indices of the kept units.

    Taught in: 01_pruning
    """
    W1 = as_weight(W1, name="W1", ndim=2, hint="(Q, H) = (in, hidden); transpose a torch Linear.weight")
    H = W1.shape[1]
    b1 = _bias(b1, H, "b1")
    W2 = as_weight(W2, name="W2", ndim=2, hint="(H, R) = (hidden, out); transpose a torch Linear.weight")
    if W2.shape[0] != H:
        raise ValueError(f"W2 has shape {W2.shape} but W1 {W1.shape} has H={H} hidden units; W2 must be "
                         f"({H}, R) in Y = X·W notation (transpose a torch Linear.weight first)")
    n_keep = _n_keep(H, keep, sparsity, "hidden units")
    kept = np.flatnonzero(keep_largest(unit_norms(W1, axis=0, norm=norm), n_drop=H - n_keep))
    return W1[:, kept], None if b1 is None else b1[kept], W2[kept], kept


def prune_neurons_reference(W1, b1, W2, *, keep: int, norm: str = "l1"):
    """Loop reference for :func:`prune_neurons`: score, sort, then copy kept units one by one.

    Taught in: 01_pruning
    """
    H = W1.shape[1]
    power = 1 if norm == "l1" else 2
    scores = [sum(abs(float(w)) ** power for w in W1[:, j]) ** (1 / power) for j in range(H)]
    dropped = set(sorted(range(H), key=lambda j: (scores[j], j))[: H - keep])
    kept = [j for j in range(H) if j not in dropped]
    b1p = None if b1 is None else np.array([b1[j] for j in kept], dtype=b1.dtype)
    return (np.stack([W1[:, j] for j in kept], axis=1), b1p,
            np.stack([W2[j] for j in kept], axis=0), np.array(kept, dtype=np.int64))


def prune_channels(conv_w, conv_b, next_w, *, keep: int | None = None, sparsity: float | None = None,
                   norm: str = "l1", spatial: int = 1):
    """Remove the output channels of a conv whose filters have the smallest norm, and fix up the next layer.

    Parameters
    ----------
    conv_w : ndarray of float, shape (C, C_in, kh, kw), torch layout
    conv_b : ndarray of float, shape (C,), or None
    next_w : ndarray of float, either
        * the next conv's weight, shape (C2, C, kh2, kw2): input channels are removed, or
        * a dense weight after flatten, shape (Q, R) = (C * spatial, out) in Y = X·W notation, rows
          ordered channel-major as ``torch.flatten`` of (batch, C, H, W) gives: row ``c * spatial + s``.
          The ``spatial`` rows of each removed channel are removed.
    keep : int in [1, C], optional
        Number of channels to keep.
    sparsity : float in [0, 1), optional
        Fraction of channels to remove. Pass exactly one of the two.
    norm : {"l1", "l2"}
        Norm of each filter ``conv_w[c]`` used as its score.
    spatial : int
        H * W of the feature map entering the dense ``next_w`` (after any pooling); ignored for a conv.

    Returns
    -------
    conv_wp : ndarray, shape (K, C_in, kh, kw)
    conv_bp : ndarray, shape (K,), or None
    next_wp : ndarray, shape (C2, K, kh2, kw2) or (K * spatial, R)
    kept_idx : ndarray of int64, shape (K,), ascending indices of the kept channels.

    Taught in: 01_pruning
    """
    conv_w = as_weight(conv_w, name="conv_w", ndim=4, hint="(out, in, kh, kw); pass a Conv2d weight as torch stores it")
    C = conv_w.shape[0]
    conv_b = _bias(conv_b, C, "conv_b")
    next_w = as_weight(next_w, name="next_w")
    spatial = check_int(spatial, name="spatial", low=1, hint="pass H * W of the feature map fed to next_w")
    if next_w.ndim not in (2, 4):
        raise ValueError(f"next_w has shape {next_w.shape} ({next_w.ndim}-D); expected the next conv "
                         f"(C2, {C}, kh, kw) or the next dense weight (C * spatial, R)")
    if next_w.ndim == 4 and next_w.shape[1] != C:
        raise ValueError(f"next_w has shape {next_w.shape} but conv_w has C={C} output channels; the next "
                         f"conv must read them as its input channels, shape (C2, {C}, kh, kw)")
    if next_w.ndim == 2 and next_w.shape[0] != C * spatial:
        hint = (f"pass spatial={next_w.shape[0] // C} (H * W of the flattened feature map)"
                if next_w.shape[0] % C == 0 else "pass the dense layer that reads this conv's flattened output")
        raise ValueError(f"next_w has Q={next_w.shape[0]} rows but C * spatial = {C} * {spatial} = "
                         f"{C * spatial}; {hint}")
    n_keep = _n_keep(C, keep, sparsity, "channels")
    kept = np.flatnonzero(keep_largest(unit_norms(conv_w, axis=(1, 2, 3), norm=norm), n_drop=C - n_keep))
    if next_w.ndim == 4:
        next_p = next_w[:, kept]
    else:
        R = next_w.shape[1]
        next_p = (next_w.reshape(C, spatial, R)[kept]  # (C * spatial, R) → (C, spatial, R)
                  .reshape(n_keep * spatial, R))  # (K, spatial, R) → (K * spatial, R)
    return conv_w[kept], None if conv_b is None else conv_b[kept], next_p, kept


def prune_channels_reference(conv_w, conv_b, next_w, *, keep: int, norm: str = "l1", spatial: int = 1):
    """Loop reference for :func:`prune_channels`: score, sort, then copy kept channels one by one.

    Taught in: 01_pruning
    """
    C = conv_w.shape[0]
    power = 1 if norm == "l1" else 2
    scores = [sum(abs(float(w)) ** power for w in conv_w[c].ravel()) ** (1 / power) for c in range(C)]
    dropped = set(sorted(range(C), key=lambda c: (scores[c], c))[: C - keep])
    kept = [c for c in range(C) if c not in dropped]
    conv_bp = None if conv_b is None else np.array([conv_b[c] for c in kept], dtype=conv_b.dtype)
    if next_w.ndim == 4:
        next_p = np.stack([next_w[:, c] for c in kept], axis=1)
    else:
        next_p = np.concatenate([next_w[c * spatial:(c + 1) * spatial] for c in kept], axis=0)
    return np.stack([conv_w[c] for c in kept]), conv_bp, next_p, np.array(kept, dtype=np.int64)
