"""OMSE clipping: pick the uniform quantiser's clipping range that minimises the MSE.

Clipping a few outliers buys a finer step for everyone else (Choukroun et al. 2019, "Low-bit
quantization of neural networks for efficient inference"). The search is exact and vectorised:
with the weights sorted once and prefix sums S1 = Σw, S2 = Σw², every quantisation bucket is a
contiguous slice of the sorted weights, so a candidate's squared error is

    Σ_levels  S2[bucket] - 2·q·S1[bucket] + n[bucket]·q²        (q = the bucket's level)

found with one ``np.searchsorted`` of all candidates' bucket boundaries at once: O(K·L·log N) for
K candidates and L = 2**n_bits levels instead of O(K·N).

Taught in: 04_quantization
"""
from __future__ import annotations

import numpy as np

from thinlab._validate import as_float64_weights, check_axis, check_finite, check_int_range
from thinlab.quant.uniform import affine_params, code_range, dequantize, quantize_uniform, symmetric_scale

#: at most this many (candidate, level) pairs are searched at once (bounds memory to ~100 MB)
_CHUNK = 2 ** 20


def _candidates(a: np.ndarray, symmetric: bool, n_candidates: int):
    """Candidate ranges: c = max|W|·j/n (symmetric) or (min(W,0)·i/n, max(W,0)·j/n), i, j = 1..n."""
    ratios = np.arange(1, n_candidates + 1) / n_candidates  # (n,)
    if symmetric:
        return np.abs(a).max() * ratios
    lo = np.unique(min(a.min(), 0.0) * ratios)  # (≤ n,), one value when W ≥ 0
    hi = np.unique(max(a.max(), 0.0) * ratios)  # (≤ n,)
    grid_lo, grid_hi = np.meshgrid(lo, hi, indexing="ij")  # (n_lo, n_hi) each
    return grid_lo.ravel(), grid_hi.ravel()  # (n_lo * n_hi,) each, lo-major


def candidate_sse(sorted_w: np.ndarray, scale, zero_point, *, n_bits: int, symmetric: bool) -> np.ndarray:
    """Exact squared error of K uniform quantisers on sorted weights, via prefix sums.

    Parameters
    ----------
    sorted_w : float64 array (N,), ascending.
    scale, zero_point : arrays (K,) (float32 scale as used by quantize_uniform; integer zero point).

    Returns
    -------
    float64 array (K,) of Σ (w - w_hat)².

    Taught in: 04_quantization
    """
    sorted_w = np.asarray(sorted_w)
    if sorted_w.ndim != 1 or sorted_w.size == 0 or sorted_w.dtype.kind != "f":
        raise ValueError(f"sorted_w must be a non-empty 1-D float array, got {sorted_w.dtype} {sorted_w.shape}; pass "
                         "np.sort(W.ravel()).astype(np.float64)")
    check_finite(sorted_w, name="sorted_w")
    if (np.diff(sorted_w) < 0).any():
        raise ValueError("sorted_w is not sorted ascending; pass np.sort(W.ravel())")
    sorted_w = sorted_w.astype(np.float64, copy=False)
    if np.shape(scale) != np.shape(zero_point) or np.ndim(scale) > 1:
        raise ValueError(f"scale and zero_point must be 1-D arrays of one size; got {np.shape(scale)} and "
                         f"{np.shape(zero_point)}")
    check_finite(np.asarray(scale, dtype=np.float64), name="scale", what="scales")
    if (np.asarray(scale) <= 0).any():
        raise ValueError("scale must be > 0; use symmetric_scale or affine_params")
    n = sorted_w.size
    p1 = np.concatenate([[0.0], np.cumsum(sorted_w)])  # (N + 1,)
    p2 = np.concatenate([[0.0], np.cumsum(sorted_w ** 2)])  # (N + 1,)
    qmin, qmax = code_range(n_bits=n_bits, symmetric=symmetric)
    ks = np.arange(qmin, qmax + 1, dtype=np.float64)  # (L,) codes
    s_all = np.asarray(scale, dtype=np.float64)
    z_all = np.asarray(zero_point, dtype=np.float64)
    out = np.empty(s_all.size)
    step = max(1, _CHUNK // ks.size)
    for start in range(0, s_all.size, step):  # a few chunks of candidates
        s = s_all[start:start + step, None]  # (k, 1)
        z = z_all[start:start + step, None]  # (k, 1)
        levels = (ks[None, :] - z) * s  # (k, L)
        bounds = (ks[None, :-1] - z + 0.5) * s  # (k, L-1): between code c and c+1
        pos = np.searchsorted(sorted_w, bounds.ravel()).reshape(bounds.shape)  # (k*(L-1),) → (k, L-1)
        edges = np.concatenate([np.zeros((len(s), 1), np.int64), pos, np.full((len(s), 1), n)], axis=1)  # (k, L+1)
        lo_e, hi_e = edges[:, :-1], edges[:, 1:]
        cnt, s1, s2 = hi_e - lo_e, p1[hi_e] - p1[lo_e], p2[hi_e] - p2[lo_e]
        out[start:start + step] = (s2 - 2 * levels * s1 + cnt * levels ** 2).sum(axis=1)
    return np.maximum(out, 0.0)


def _best_clip(a: np.ndarray, n_bits: int, symmetric: bool, n_candidates: int):
    cands = _candidates(a, symmetric, n_candidates)
    if symmetric:
        scale, zp = symmetric_scale(cands, n_bits=n_bits), np.zeros(cands.size)
    else:
        scale, zp = affine_params(*cands, n_bits=n_bits)
    sse = candidate_sse(np.sort(a.ravel()), scale, zp, n_bits=n_bits, symmetric=symmetric)
    best = int(np.argmin(sse))
    return float(cands[best]) if symmetric else (float(cands[0][best]), float(cands[1][best]))


def omse_clip(W, *, n_bits: int, symmetric: bool, axis: int | None = None, n_candidates: int = 100):
    """The clipping range minimising the MSE of :func:`quantize_uniform` on ``W``.

    Parameters
    ----------
    W : float array, any shape.
    n_bits : 1..8 (symmetric 2..8); above 8 bits clipping gains nothing measurable.
    symmetric : search c in [-c, c] (c = max|W|·j/n) or pairs (lo, hi) = (min·i/n, max·j/n).
    axis : None (one range) or a channel axis (one range per ``W.shape[axis]``).
    n_candidates : n, the number of ratios per searched end (the full range is always one).

    Returns
    -------
    ``c`` (symmetric) or ``(lo, hi)``; floats per tensor, arrays of shape (C,) per channel. Pass it
    as ``quantize_uniform(W, ..., clip=...)``; its MSE is never above the min/max range's.

    Taught in: 04_quantization
    """
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric={symmetric!r} must be True or False")
    n_bits = check_int_range(n_bits, name="n_bits", lo=2 if symmetric else 1, hi=8,
                             hint="above 8 bits clipping gains nothing measurable: use clip=None")
    n_candidates = check_int_range(n_candidates, name="n_candidates", lo=1, hi=10_000, hint="e.g. 100")
    a = as_float64_weights(W)
    axis = check_axis(axis, a.ndim)
    if axis is None:
        return _best_clip(a, n_bits, bool(symmetric), n_candidates)
    rows = np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)  # (C, N / C)
    best = [_best_clip(r, n_bits, bool(symmetric), n_candidates) for r in rows]  # one search per channel
    if symmetric:
        return np.array(best)
    return np.array([b[0] for b in best]), np.array([b[1] for b in best])


def omse_clip_reference(W, *, n_bits: int, symmetric: bool, n_candidates: int = 100):
    """Slow, obviously correct :func:`omse_clip` (per tensor): quantise and dequantise each candidate.

    Taught in: 04_quantization
    """
    a = np.asarray(W, dtype=np.float64)
    cands = _candidates(a, symmetric, n_candidates)
    pairs = list(cands) if symmetric else list(zip(*cands))
    mses = [np.mean((a - dequantize(quantize_uniform(a, n_bits=n_bits, symmetric=symmetric, clip=c))) ** 2)
            for c in pairs]
    best = pairs[int(np.argmin(mses))]
    return float(best) if symmetric else (float(best[0]), float(best[1]))
