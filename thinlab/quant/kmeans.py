"""k-means weight sharing (Han et al. 2016, "Deep Compression"): each weight stores the index of
its cluster, and the layer stores one small float32 codebook.

Lloyd's algorithm in 1-D, vectorised. With sorted centroids c, the nearest centroid of w is found by
``searchsorted`` on the midpoints between neighbours, and each cluster is a contiguous slice of the
*sorted* weights. So the weights are sorted once (O(N log N)), with prefix sums of w and w², and
every iteration afterwards costs only O(k log N): k binary searches and k slice sums. This is
faster than re-assigning all N weights per iteration (O(N log k) with ``np.bincount`` updates),
which is what the final code assignment does once.

Taught in: 04_quantization
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thinlab._validate import as_float64_weights, check_finite, check_int_range, uint_dtype
from thinlab.size import packed_bits_bytes, shape_bytes

INITS = ("linear", "density", "random")
#: bytes of one codebook entry (float32)
CODEBOOK_ENTRY_BYTES = 4


@dataclass(frozen=True, eq=False)
class KMeansResult:
    """Cluster codes, codebook and diagnostics of :func:`kmeans_quantize`.

    Attributes
    ----------
    codes : uint8/uint16 array of W's shape, index of each weight's centroid.
    codebook : float32 array (k,), ascending.
    n_iter : Lloyd iterations run.
    mse : MSE of ``codebook[codes]`` against W.     init_mse : the same for the initial codebook.
    history : squared-error sum after each iteration (float64), non-increasing.

    Taught in: 04_quantization
    """

    codes: np.ndarray
    codebook: np.ndarray
    n_iter: int
    mse: float
    init_mse: float
    history: tuple


def kmeans_code_bits(n_clusters: int) -> int:
    """Bits per code for ``n_clusters`` clusters: ``max(1, ceil(log2(k)))``. Taught in: 04_quantization"""
    n_clusters = check_int_range(n_clusters, name="n_clusters", lo=1, hi=2 ** 16, hint="e.g. n_clusters=16")
    return max(1, math.ceil(math.log2(n_clusters)))


def _check_result(result) -> None:
    if not isinstance(result, KMeansResult):
        raise TypeError(f"expected a KMeansResult from kmeans_quantize, got {type(result).__name__}")
    cb, codes = np.asarray(result.codebook), np.asarray(result.codes)
    if cb.ndim != 1 or cb.size == 0 or codes.dtype.kind not in "iu":
        raise ValueError(f"KMeansResult has codebook {cb.dtype} {cb.shape} and codes {codes.dtype}; expected a 1-D "
                         "codebook and integer codes, as kmeans_quantize returns")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= cb.size):
        raise ValueError(f"KMeansResult codes lie in [{codes.min()}, {codes.max()}] but the codebook has {cb.size} "
                         "entries; pass the result of one kmeans_quantize call")
    check_finite(cb, name="codebook", what="values")


def kmeans_init(W, *, n_clusters: int, init: str = "linear", seed: int = 0) -> np.ndarray:
    """Initial centroids (float64, ascending, shape (k,)) for :func:`kmeans_quantize`.

    ``"linear"``: evenly spaced in [min W, max W] (Han et al.'s best: keeps the large weights);
    ``"density"``: the (j + 0.5)/k quantiles of W; ``"random"``: k distinct weights drawn with
    ``np.random.default_rng(seed)`` (Forgy).

    Taught in: 04_quantization
    """
    a = as_float64_weights(W).ravel()  # (N,)
    k = check_int_range(n_clusters, name="n_clusters", lo=1, hi=min(a.size, 2 ** 16),
                        hint=f"at most 65536 and at most the number of weights ({a.size})")
    if init == "linear":
        return np.linspace(a.min(), a.max(), k)
    if init == "density":
        return np.quantile(a, (np.arange(k) + 0.5) / k)
    if init == "random":
        seed = check_int_range(seed, name="seed", lo=0, hi=2 ** 63 - 1)
        return np.sort(a[np.random.default_rng(seed).choice(a.size, size=k, replace=False)])
    raise ValueError(f"init={init!r}; choose one of {INITS}")


def _assign(a: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Nearest centroid (lower index on ties) of each weight: O(N log k)."""
    mids = (codebook[:-1].astype(np.float64) + codebook[1:]) / 2  # (k-1,)
    return np.searchsorted(mids, a, side="left")


def _cluster_sums(ws: np.ndarray, p1: np.ndarray, p2: np.ndarray, c: np.ndarray):
    """Size, Σw and Σw² of each nearest-centroid cluster of the sorted weights: O(k log N)."""
    mids = (c[:-1].astype(np.float64) + c[1:]) / 2  # (k-1,)
    edges = np.concatenate([[0], np.searchsorted(ws, mids, side="right"), [ws.size]])  # (k+1,)
    return np.diff(edges), p1[edges[1:]] - p1[edges[:-1]], p2[edges[1:]] - p2[edges[:-1]]


def kmeans_quantize(W, *, n_clusters: int, init: str = "linear", n_iter: int = 50,
                    tol: float = 1e-6, seed: int = 0) -> KMeansResult:
    """Cluster the weights of ``W`` into ``n_clusters`` shared values with Lloyd's algorithm.

    Parameters
    ----------
    W : float array, any shape (to share only the nonzero weights of a pruned layer, pass
        ``W[W != 0]``).
    n_clusters : k, 1..min(N, 65536).
    init : ``"linear"``, ``"density"`` or ``"random"`` (see :func:`kmeans_init`).
    n_iter : maximum Lloyd iterations (0 keeps the initial centroids).
    tol : stop when no centroid moves more than ``tol * (max W - min W)``.
    seed : for ``init="random"``.

    Returns
    -------
    :class:`KMeansResult` (codes of W's shape, float32 codebook (k,)). Lloyd's iterations never
    increase the error; rounding the codebook to float32 moves each centroid by at most half an
    ulp, so as a final guard the initial codebook is returned if it is at least as good.

    Taught in: 04_quantization
    """
    a_full = as_float64_weights(W)
    if np.abs(a_full).max() > np.finfo(np.float32).max:
        raise ValueError(f"W holds magnitudes up to {np.abs(a_full).max():.3g}, beyond float32 (the codebook is stored "
                         "as float32); rescale W first, e.g. W / np.abs(W).max()")
    a = a_full.ravel()  # (N,)
    c0 = kmeans_init(a, n_clusters=n_clusters, init=init, seed=seed)  # (k,)
    n_iter = check_int_range(n_iter, name="n_iter", lo=0, hi=100_000, hint="e.g. n_iter=50")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < math.inf:
        raise ValueError(f"tol={tol!r} must be a finite number ≥ 0; e.g. tol=1e-6 (0 runs all n_iter)")
    shift = float(np.mean(a))  # centre the prefix sums: no cancellation when |mean| ≫ spread
    w_in = np.asarray(W).ravel()  # (N,)
    ws = np.sort(w_in if w_in.dtype == np.float32 else a).astype(np.float64) - shift  # (N,); float32 sorts faster
    p1 = np.concatenate([[0.0], np.cumsum(ws)])  # (N + 1,)
    p2 = np.concatenate([[0.0], np.cumsum(ws ** 2)])  # (N + 1,)
    width = ws[-1] - ws[0]
    c = c0 - shift
    history, done = [], 0
    for done in range(1, n_iter + 1):  # Lloyd iterations, each O(k log N)
        cnt, s1, s2 = _cluster_sums(ws, p1, p2, c)
        new = np.where(cnt > 0, s1 / np.maximum(cnt, 1), c)  # empty clusters keep their centroid
        history.append(float(np.sum(np.where(cnt > 0, s2 - s1 * new, 0.0))))  # Σ (w - mean)² per cluster
        shift_max = float(np.max(np.abs(new - c)))
        c = np.sort(new)
        if shift_max <= tol * width:
            break
    init_cb = c0.astype(np.float32)
    ci = init_cb.astype(np.float64) - shift  # (k,) centred, float64
    cnt, s1, s2 = _cluster_sums(ws, p1, p2, ci)
    init_mse = float(max(np.sum(s2 - 2 * ci * s1 + cnt * ci ** 2), 0.0) / a.size)
    codebook = (c + shift).astype(np.float32)
    codes = _assign(a, codebook)  # (N,), the one O(N log k) pass
    mse = float(np.mean((a - codebook[codes]) ** 2))
    if init_mse <= mse:  # only by float32 rounding (see Returns)
        codebook, mse, codes = init_cb, init_mse, _assign(a, init_cb)
    codes = codes.astype(uint_dtype(kmeans_code_bits(len(codebook))))
    return KMeansResult(codes=codes.reshape(a_full.shape), codebook=codebook,  # (N,) → W's shape
                        n_iter=done, mse=mse, init_mse=init_mse, history=tuple(history))


def kmeans_dequantize(result: KMeansResult) -> np.ndarray:
    """``codebook[codes]``: float32, W's shape. Taught in: 04_quantization"""
    _check_result(result)
    return result.codebook[result.codes]


def kmeans_bytes(result: KMeansResult) -> int:
    """Bytes of k-means sharing: codes packed at ``kmeans_code_bits(k)`` bits + float32 codebook + shape.

    Taught in: 04_quantization
    """
    _check_result(result)
    k = len(result.codebook)
    return (packed_bits_bytes(result.codes.size, kmeans_code_bits(k)) + CODEBOOK_ENTRY_BYTES * k
            + shape_bytes(result.codes.shape))


def kmeans_lloyd_reference(W, *, init_centroids, n_iter: int):
    """Plain Lloyd's algorithm, loops everywhere: ``(codes (N,), centroids (k,))`` after ``n_iter`` rounds.

    Assignment: nearest centroid, lowest index on ties. Update: the mean of each cluster; an empty
    cluster keeps its centroid. Taught in: 04_quantization
    """
    w = np.ravel(W).astype(np.float64).tolist()
    c = sorted(float(x) for x in init_centroids)
    codes = [0] * len(w)
    for _ in range(n_iter):
        codes = [min(range(len(c)), key=lambda j: abs(x - c[j])) for x in w]
        sums, counts = [0.0] * len(c), [0] * len(c)
        for x, j in zip(w, codes):
            sums[j] += x
            counts[j] += 1
        c = sorted(sums[j] / counts[j] if counts[j] else c[j] for j in range(len(c)))
    codes = [min(range(len(c)), key=lambda j: abs(x - c[j])) for x in w]
    return np.array(codes), np.array(c)
