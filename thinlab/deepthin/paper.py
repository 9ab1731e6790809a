"""The DeepThin paper's own speed-up idea, *dot-product reuse*, for comparison with :mod:`.fused`.

Taught in: 03_deepthin
"""
from __future__ import annotations

import numpy as np

from thinlab._validate import check_count
from thinlab.deepthin import _plan
from thinlab.deepthin.relayout import _check_room, _checked_factors


def segment_pairs(Q: int, R: int, n: int) -> dict:
    """Every (W_aux row, W column) overlap of the re-layout, in column order.

    Returns
    -------
    dict with ``col`` (S,), ``row`` (S,) and ``shift`` (S,) = row·n − col·Q for the S overlapping
    pairs, and ``first`` (R,) index of each column's first pair (for ``np.add.reduceat``).

    Taught in: 03_deepthin
    """
    Q, R, n = check_count("Q", Q), check_count("R", R), check_count("n", n)
    plan = _plan.column_classes(Q, R, n)
    i0, spans = plan["i0"], plan["rows"]                                # first row, rows touched per column
    col = np.repeat(np.arange(R, dtype=np.int64), spans)
    first = np.concatenate(([0], np.cumsum(spans)[:-1]))
    row = i0[col] + np.arange(col.size) - first[col]
    return dict(col=col, row=row, shift=row * n - col * Q, first=first)


def reuse_stats(Q: int, R: int, n: int) -> dict:
    """How much dot-product reuse the re-layout allows.

    Returns
    -------
    dict with ``pairs`` (row, column) segments, ``distinct_shifts`` (each needs r dot products of
    length ≤ n), ``reuse`` = pairs / distinct_shifts, ``period`` = n / gcd(n, Q) alignment classes.

    Taught in: 03_deepthin
    """
    pairs = segment_pairs(Q, R, n)
    distinct = int(np.unique(pairs["shift"]).size)
    return dict(pairs=int(pairs["col"].size), distinct_shifts=distinct,
                reuse=pairs["col"].size / distinct, period=n // int(np.gcd(n, Q)))


def fused_matmul_paper(X, Xf, Wf, *, Q: int, R: int) -> np.ndarray:
    """Y = X·W by the paper's dot-product reuse, with no per-layer plan.

    The idea: a column of W is a run of segments of W_aux rows, and a W_aux row is
    Σ_k X^f[i, k]·W^f[k, :]. So the dot product of an input segment with a W_aux row segment is
    Σ_k X^f[i, k]·(x-segment · W^f[k, segment]), and the bracket depends only on where the
    segment sits relative to the input – the shift s = i·n − j·Q – not on the row i. Every
    (row, column) pair with the same shift reuses the same r partial dot products. When n
    divides Q each column is whole rows and only Q/n shifts occur, reused R times each; with
    gcd(n, Q) = g the shifts are multiples of g, so at most (Q + n)/g distinct ones, and with
    the LCM rule (g = 1, n ≥ R) almost every pair has its own shift and nothing is reused.

    Steps: list all pairs, compute the partial dot products once per distinct shift (a
    (B, S, n) sliding-window view of the zero-padded input @ W^f.T), then each column sums
    X^f[row]·partial[shift] over its pairs. :class:`~thinlab.deepthin.fused.FusedDeepThin`
    does the same sums from a precomputed plan, grouped by alignment class, with FFTs when
    nearly every shift occurs.

    Parameters
    ----------
    X : array (B, Q) or (Q,)
    Xf : array (m, r)
    Wf : array (r, n)

    Returns
    -------
    Y : ndarray (B, R) or (R,) float32

    Taught in: 03_deepthin
    """
    Xf, Wf, Q, R = _checked_factors(Xf, Wf, Q, R)
    n = Wf.shape[1]
    _check_room(Xf.shape[0], n, Q, R)
    X = np.asarray(X, dtype=np.float32)
    single = X.ndim == 1
    if X.ndim not in (1, 2) or X.shape[-1] != Q:
        raise ValueError(f"X must have shape (batch, {Q}) or ({Q},), got {X.shape}")
    X = X.reshape(-1, Q)                                                  # (Q,) → (1, Q)
    pairs = segment_pairs(Q, R, n)
    shifts, which = np.unique(pairs["shift"], return_inverse=True)        # S distinct shifts in (−n, Q)
    xp = np.zeros((X.shape[0], n + Q + n), dtype=np.float32)              # n zeros, x, n zeros
    xp[:, n:n + Q] = X
    windows = np.lib.stride_tricks.sliding_window_view(xp, n, axis=1)[:, shifts + n]   # (B, S, n)
    partial = windows @ Wf.T                                              # (B, S, r): reused dot products
    terms = np.einsum("pk,bpk->bp", Xf[pairs["row"]], partial[:, which])  # (B, pairs)
    Y = np.add.reduceat(terms, pairs["first"], axis=1)                    # (B, R)
    return Y[0] if single else Y
