"""Low-rank factorisation by truncated SVD: W (Q, R) ≈ A (Q, k) · B (k, R).

With ``W = U · diag(s) · Vᵀ`` (singular values ``s`` descending), the best
rank-``k`` approximation in the Frobenius norm (Eckart–Young) keeps the first
``k`` terms. We split it as ``A = U_k · diag(s_k)`` and ``B = V_kᵀ``: B has
orthonormal rows and A carries the scale, so the dense layer Y = X·W becomes
two smaller ones, Y ≈ (X·A)·B, storing ``(Q + R) · k`` values instead of
``Q · R``. The squared error is the energy dropped: ``Σ_{i>k} s_i²``.

The SVD is computed in float64; factors come back at ``W``'s dtype.

Taught in: 02_svd
"""
from __future__ import annotations

import math

import numpy as np

from thinlab._validate import as_weight, check_int, check_real, round_up
from thinlab.size import dense_bytes, dtype_bytes, shape_bytes, share_budget

_W_HINT = "(Q, R) = (in, out); transpose a torch Linear.weight first"


def _check_rank(rank, shape) -> int:
    full = min(shape)
    return check_int(rank, name="rank", low=1, high=full,
                     hint=f"a rank-k factorisation of a {tuple(shape)} matrix needs 1 ≤ k ≤ min(Q, R) = {full}")


def _shape2d(shape) -> tuple[int, int]:
    shape = tuple(shape)
    if len(shape) != 2:
        raise ValueError(f"shape={shape} must be 2-D {_W_HINT}")
    return tuple(check_int(d, name="each dimension of shape", low=1, hint="pass W.shape") for d in shape)


def singular_values(W) -> np.ndarray:
    """Singular values of ``W``, descending, in float64.

    Parameters
    ----------
    W : ndarray of float, shape (Q, R)

    Returns
    -------
    s : ndarray of float64, shape (min(Q, R),)

    Taught in: 02_svd
    """
    W = as_weight(W, ndim=2, hint=_W_HINT)
    return np.linalg.svd(W.astype(np.float64), compute_uv=False)


def truncated_svd(W, *, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-``rank`` factors of ``W``: ``A = U_k · diag(s_k)``, ``B = V_kᵀ``, so ``W ≈ A · B``.

    Parameters
    ----------
    W : ndarray of float, shape (Q, R) = (in, out)
    rank : int in [1, min(Q, R)]

    Returns
    -------
    A : ndarray, shape (Q, rank), dtype of ``W`` — left singular vectors scaled by the singular values
    B : ndarray, shape (rank, R), dtype of ``W`` — right singular vectors as orthonormal rows

    Taught in: 02_svd
    """
    W = as_weight(W, ndim=2, hint=_W_HINT)
    k = _check_rank(rank, W.shape)
    U, s, Vt = np.linalg.svd(W.astype(np.float64), full_matrices=False)
    A = U[:, :k] * s[:k]
    _check_fits(A, W.dtype, "the factor A = U·diag(s)")
    return A.astype(W.dtype), Vt[:k].astype(W.dtype)


def _check_fits(a: np.ndarray, dtype, what: str) -> None:
    """Refuse a float64 result that would overflow to ±inf when cast back to the caller's ``dtype``."""
    top = float(np.max(np.abs(a))) if a.size else 0.0
    if not np.isfinite(top) or top > float(np.finfo(dtype).max):
        raise ValueError(f"{what} reaches {top:.3g}, beyond {np.dtype(dtype).name}'s largest value "
                         f"{np.finfo(dtype).max:.3g}; pass W.astype(np.float32) (or float64)")


def svd_reconstruct(A, B) -> np.ndarray:
    """The rank-k matrix ``A · B``.

    Parameters
    ----------
    A : ndarray of float, shape (Q, k)
    B : ndarray of float, shape (k, R)

    Returns
    -------
    ndarray, shape (Q, R)

    Taught in: 02_svd
    """
    A = as_weight(A, name="A", ndim=2, hint="(Q, k); pass the factors from truncated_svd")
    B = as_weight(B, name="B", ndim=2, hint="(k, R); pass the factors from truncated_svd")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A has shape {A.shape} and B {B.shape}: their ranks {A.shape[1]} ≠ {B.shape[0]}; "
                         "pass the pair returned by one truncated_svd call")
    out_dtype = np.result_type(A, B)
    product = A.astype(np.float64) @ B.astype(np.float64)  # (Q, R)
    _check_fits(product, out_dtype, "A · B")
    return product.astype(out_dtype)


def _check_s(s) -> np.ndarray:
    s = as_weight(s, name="s", ndim=1, hint="(k,); pass singular_values(W)")
    if (s < 0).any():
        raise ValueError(f"s has negative entries (min {s.min():g}); expected singular values ≥ 0, "
                         "e.g. from singular_values(W)")
    return s.astype(np.float64)


def energy(s) -> np.ndarray:
    """Cumulative energy fraction ``Σ_{i≤k} s_i² / Σ s²`` for k = 1 … len(s).

    Parameters
    ----------
    s : ndarray of float, shape (n,), singular values (descending for the usual reading)

    Returns
    -------
    ndarray of float64, shape (n,), non-decreasing, last entry exactly 1 (all ones if every s is 0).

    Taught in: 02_svd
    """
    return _energy(s)


def _scaled(s: np.ndarray) -> tuple[np.ndarray, float]:
    """``(s / c, c)``: huge singular values are scaled down so that their squares do not overflow to inf
    (c = 1, an exact no-op, for every ordinary matrix)."""
    top = float(s.max()) if s.size else 0.0
    c = top if top > 1e150 else 1.0
    return s / c, c


def _energy(s) -> np.ndarray:
    kept = np.cumsum(_scaled(_check_s(s))[0] ** 2)
    if kept[-1] == 0:
        return np.ones_like(kept)
    return kept / kept[-1]  # the same total everywhere: non-decreasing and the last entry exactly 1


def rank_for_energy(s, *, energy: float) -> int:
    """Smallest rank k whose first k singular values hold at least ``energy`` of ``Σ s²``.

    Parameters
    ----------
    s : ndarray of float, shape (n,), singular values, descending
    energy : float in (0, 1]

    Returns
    -------
    int in [1, n]

    Taught in: 02_svd
    """
    target = check_real(energy, name="energy", low=0.0, high=1.0, low_open=True,
                        hint="pass the fraction of Σ s² to keep, e.g. 0.9")
    return int(np.searchsorted(_energy(s), target, side="left")) + 1


def lowrank_bytes(shape, rank: int, *, dtype="float32") -> int:
    """Bytes of the factors A (Q, rank) and B (rank, R) at ``dtype``, with both shapes.

    Taught in: 02_svd
    """
    Q, R = _shape2d(shape)
    k = _check_rank(rank, (Q, R))
    return (Q + R) * k * dtype_bytes(dtype) + shape_bytes((Q, k)) + shape_bytes((k, R))


def rank_for_budget(shape, *, size_fraction: float | None = None, max_bytes: int | None = None,
                    dtype="float32") -> int:
    """Largest rank whose factors fit in ``max_bytes`` (or ``size_fraction`` of the dense bytes).

    Parameters
    ----------
    shape : tuple (Q, R)
    size_fraction : float > 0, optional
        Budget as compressed / dense bytes (the paper's α); ``max_bytes = size_fraction · Q · R · itemsize``.
    max_bytes : int ≥ 0, optional
        Budget in bytes. Pass exactly one of the two.
    dtype : numpy dtype of the factors (and of the dense reference)

    Returns
    -------
    int in [1, min(Q, R)]

    Taught in: 02_svd
    """
    Q, R = _shape2d(shape)
    dense = dense_bytes((Q, R), dtype=dtype)
    if (size_fraction is None) == (max_bytes is None):
        raise ValueError(f"got size_fraction={size_fraction!r} and max_bytes={max_bytes!r}; pass exactly one")
    if size_fraction is not None:
        budget = check_real(size_fraction, name="size_fraction", low=0.0, low_open=True,
                            hint="pass compressed / dense bytes, e.g. 0.1 for 10x") * dense
    else:
        budget = check_int(max_bytes, name="max_bytes", low=0, hint="pass a byte budget, e.g. 100_000")
    overhead = shape_bytes((Q, 1)) + shape_bytes((1, R))  # the shapes cost the same for any rank
    k = min(math.floor((budget - overhead) / ((Q + R) * dtype_bytes(dtype))), min(Q, R))
    if k < 1:
        need = lowrank_bytes((Q, R), 1, dtype=dtype)
        raise ValueError(f"a budget of {math.floor(budget):,} bytes is below rank 1's {need:,} bytes for W of shape "
                         f"{(Q, R)} at {np.dtype(dtype).name}; use size_fraction ≥ {round_up(need / dense):.3g} "
                         f"(max_bytes ≥ {need}) or compress a larger layer")
    return k


def rank_for_budget_reference(shape, *, max_bytes: int, dtype="float32") -> int:
    """Loop reference for :func:`rank_for_budget`: the last rank whose bytes fit.

    Taught in: 02_svd
    """
    fitting = [k for k in range(1, min(shape) + 1) if lowrank_bytes(shape, k, dtype=dtype) <= max_bytes]
    return max(fitting)


def reconstruction_error(W, *, rank: int) -> float:
    """Frobenius norm ``‖W − A·B‖_F`` of the rank-``rank`` truncation, measured in float64.

    Equals ``sqrt(Σ_{i>rank} s_i²)`` (the property the tests check).

    Parameters
    ----------
    W : ndarray of float, shape (Q, R)
    rank : int in [1, min(Q, R)]

    Taught in: 02_svd
    """
    W = as_weight(W, ndim=2, hint=_W_HINT).astype(np.float64)
    A, B = truncated_svd(W, rank=rank)
    return float(np.linalg.norm(W - A @ B))


def ranks_sweep(W, *, ranks=None, dtype="float32") -> list[dict]:
    """Error and bytes for many ranks from one SVD (cheap per rank: a slider redraws from this).

    Uses ``error_k = sqrt(Σ_{i>k} s_i²)`` instead of reconstructing each rank.

    Parameters
    ----------
    W : ndarray of float, shape (Q, R)
    ranks : sequence of int in [1, min(Q, R)], optional (default: every rank)
    dtype : numpy dtype the factors would be stored at

    Returns
    -------
    list of dict rows ``{"rank", "error", "relative_error", "energy", "bytes", "size_fraction"}``

    Taught in: 02_svd
    """
    s = singular_values(W)
    shape = np.shape(W)
    ranks = np.arange(1, s.size + 1) if ranks is None else np.atleast_1d(ranks)
    ranks = [_check_rank(k, shape) for k in ranks.tolist()]
    s_unit, c = _scaled(s)
    s2 = s_unit ** 2
    tail = np.append(np.cumsum(s2[::-1])[::-1][1:], 0.0)  # tail[k - 1] = Σ_{i>k} s_i² / c², never negative
    cumulative, norm = energy(s), c * math.sqrt(s2.sum())
    dense = dense_bytes(shape, dtype=dtype)
    return [{"rank": k, "error": c * math.sqrt(tail[k - 1]),
             "relative_error": c * math.sqrt(tail[k - 1]) / norm if norm else 0.0,
             "energy": float(cumulative[k - 1]), "bytes": lowrank_bytes(shape, k, dtype=dtype),
             "size_fraction": lowrank_bytes(shape, k, dtype=dtype) / dense} for k in ranks]


def ranks_sweep_reference(W, *, ranks, dtype="float32") -> list[dict]:
    """Loop reference for :func:`ranks_sweep`: a fresh SVD and reconstruction per rank.

    Taught in: 02_svd
    """
    norm = float(np.linalg.norm(W.astype(np.float64)))
    rows = []
    for k in ranks:
        s = singular_values(W)
        error = reconstruction_error(W, rank=k)
        rows.append({"rank": k, "error": error, "relative_error": error / norm if norm else 0.0,
                     "energy": float((s[:k] ** 2).sum() / (s ** 2).sum()) if norm else 1.0,
                     "bytes": lowrank_bytes(W.shape, k, dtype=dtype),
                     "size_fraction": lowrank_bytes(W.shape, k, dtype=dtype) / dense_bytes(W.shape, dtype=dtype)})
    return rows


def network_ranks(shapes: dict, *, size_fraction: float) -> dict:
    """Ranks for rank-r factorisation of every layer within ``size_fraction`` of their total bytes.

    One common fraction per layer; a layer whose rank-1 factors exceed it is pinned at rank 1
    and the others share what is left; the rounding slack then goes to the largest layers.

    Taught in: 02_svd, 03_deepthin
    """
    dense = {k: 4 * q * r for k, (q, r) in shapes.items()}
    budget = size_fraction * sum(dense.values())
    floor = {k: lowrank_bytes(s, 1) for k, s in shapes.items()}
    if sum(floor.values()) > budget:
        least = sum(floor.values()) / sum(dense.values())
        raise ValueError(f"size_fraction={size_fraction:.4g} is below what rank factorisation can reach for these "
                         f"layers: rank 1 everywhere takes {sum(floor.values()):,} bytes (size_fraction {least:.4g}); "
                         f"use size_fraction ≥ {least:.4g}")
    common, pinned = share_budget(dense, floor, budget)
    ranks = {k: 1 if k in pinned else rank_for_budget(shapes[k], max_bytes=int(common * dense[k]))
             for k in shapes}
    slack = budget - sum(lowrank_bytes(shapes[k], r) for k, r in ranks.items())
    for k in sorted(shapes, key=dense.get, reverse=True):
        step = (shapes[k][0] + shapes[k][1]) * 4                  # bytes of one more rank
        more = min(int(slack // step), min(shapes[k]) - ranks[k])
        ranks[k] += more
        slack -= more * step
    return ranks
