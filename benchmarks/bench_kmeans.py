"""k-means weight sharing on 1M weights into 16 clusters (thinlab.quant.kmeans_quantize).

Figures:
  kmeans_1m_16_s              wall time of kmeans_quantize with its defaults (linear init, ≤ 50
                              iterations, tol 1e-6) on 1M N(0, 0.05) float32 weights; target ≤ 0.5 s
  kmeans_speedup_vs_bincount  50 fixed Lloyd iterations, measured side by side: re-assigning every
                              weight each iteration (searchsorted on midpoints + np.bincount means,
                              O(N log k) per iteration) / thinlab's sort-once + prefix sums
                              (O(k log N) per iteration)

Run: ``python -m benchmarks kmeans`` or ``python -m benchmarks.bench_kmeans``.
"""
from __future__ import annotations

import numpy as np

from benchmarks.common import best_of, side_by_side
from thinlab.quant import kmeans_init, kmeans_quantize

N, K, ITERS = 1_000_000, 16, 50


def lloyd_bincount(a: np.ndarray, c: np.ndarray, n_iter: int) -> np.ndarray:
    """Baseline Lloyd: every iteration assigns all N weights, then np.bincount for the means."""
    for _ in range(n_iter):
        idx = np.searchsorted((c[:-1] + c[1:]) / 2, a)
        cnt = np.bincount(idx, minlength=len(c))
        sums = np.bincount(idx, weights=a, minlength=len(c))
        c = np.where(cnt > 0, sums / np.maximum(cnt, 1), c)
    return c


def run() -> dict[str, float]:
    W = np.random.default_rng(0).normal(0, 0.05, N).astype(np.float32)
    a = W.astype(np.float64)
    t_default = best_of(lambda: kmeans_quantize(W, n_clusters=K), repeat=5, warmup=1)
    r = kmeans_quantize(W, n_clusters=K)
    print(f"kmeans_quantize 1M weights -> {K} clusters (defaults): {t_default:.3f} s "
          f"(target <= 0.5 s), {r.n_iter} iterations, MSE {r.init_mse:.3g} (linear init) -> {r.mse:.3g}")

    c0 = kmeans_init(a, n_clusters=K, init="linear")
    fixed = kmeans_quantize(W, n_clusters=K, n_iter=ITERS, tol=0)
    base = lloyd_bincount(a, c0, ITERS)
    assert np.allclose(fixed.codebook, base, rtol=1e-5, atol=1e-7), "the two Lloyd variants disagree"
    t = side_by_side({"thinlab": lambda: kmeans_quantize(W, n_clusters=K, n_iter=ITERS, tol=0),
                      "bincount": lambda: lloyd_bincount(a, c0, ITERS)}, repeat=3, warmup=1)
    speedup = t["bincount"] / t["thinlab"]
    print(f"{ITERS} Lloyd iterations, same codebook: sort once + prefix sums {t['thinlab']:.3f} s vs "
          f"re-assign + bincount {t['bincount']:.3f} s -> {speedup:.1f}x")
    return {"kmeans_1m_16_s": t_default, "kmeans_speedup_vs_bincount": speedup}


if __name__ == "__main__":
    print(run())
