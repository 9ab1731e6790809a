"""Explorer responsiveness: milliseconds per slider move, target ≤ 200 ms.

A move is ``explorer.update(value)`` (compute, readout, Vega-Lite bundle) plus the JSON encoding
the kernel does to send the chart; the browser's drawing is not included. Each figure is the
median over several moves to distinct values. Layers are the DeepThin-paper DNN's: 2000 x 512
(input layer) and 512 x 512 (hidden).

* ``cold``: first visit of each value (memoised explorers — DeepThin, bits — compute then);
* ``warm``: the same values again (pruning and rank have no memo: they recompute every move).

Keys: ``widget_update_ms_<explorer>`` (cold, 512 x 512), ``..._2000x512`` (cold, the big layer),
``..._warm`` (512 x 512), ``widget_update_ms_bits_<method>`` (cold, 512 x 512, per method) and
``widget_build_ms_<explorer>_2000x512`` (one-off precompute: sort, SVD, ...).

Run alone: ``python -m benchmarks widgets``.
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

SHAPES = {"512x512": (512, 512), "2000x512": (2000, 512)}
TARGET_MS = 200.0
BITS_METHODS = ("uniform", "omse", "kmeans", "fixed", "multibit")


def _layer(shape) -> np.ndarray:
    """A trained-looking float32 layer: a few strong directions plus heavy-tailed noise."""
    rng = np.random.default_rng(0)
    Q, R = shape
    low = rng.normal(size=(Q, 16)) @ rng.normal(size=(16, R)) / np.sqrt(16 * Q)
    return (low + rng.standard_t(5, size=shape) * 0.5 / np.sqrt(Q)).astype(np.float32)


def _move_ms(ex, value) -> float:
    t0 = time.perf_counter()
    ex.update(value)
    json.dumps(ex.spec)  # what the kernel serialises to send the chart
    return (time.perf_counter() - t0) * 1e3


def _moves(ex, values) -> tuple[float, float]:
    """(cold, warm) median ms over moves to ``values`` (first visits, then revisits)."""
    cold = [_move_ms(ex, v) for v in values]
    warm = [_move_ms(ex, v) for v in values]
    return statistics.median(cold), statistics.median(warm)


def _explorers(W):
    """name → (factory building the explorer, values to move to; none equal to the start value)."""
    from thinlab.widgets import deepthin_explorer, prune_explorer, rank_explorer

    full = min(W.shape)
    ranks = [k for k in (1, 3, 8, 16, 24, 48, 96, 160, 256, 400) if k <= full and k != max(1, full // 8)]

    def deepthin():
        ex = deepthin_explorer(W, factor=2)
        return ex, [f for f in ex.factors if f != 2][:9]

    return {
        "prune": lambda: (prune_explorer(W, sparsity=0.5), [0.1, 0.3, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]),
        "rank": lambda: (rank_explorer(W), ranks),
        "deepthin": deepthin,
    }


def run() -> dict[str, float]:
    from thinlab.widgets import bits_explorer

    out: dict[str, float] = {}
    for label, shape in SHAPES.items():
        W = _layer(shape)
        suffix = "" if label == "512x512" else f"_{label}"
        for name, build in _explorers(W).items():
            t0 = time.perf_counter()
            ex, values = build()
            build_ms = (time.perf_counter() - t0) * 1e3
            cold, warm = _moves(ex, values)
            out[f"widget_update_ms_{name}{suffix}"] = cold
            if not suffix:
                out[f"widget_update_ms_{name}_warm"] = warm
            else:
                out[f"widget_build_ms_{name}{suffix}"] = build_ms
            print(f"{name:>9} {label:>9}: {cold:7.1f} ms per move cold, {warm:6.1f} warm "
                  f"(build {build_ms:6.0f} ms)", flush=True)
        colds, warms = [], []
        for method in BITS_METHODS:
            ex = bits_explorer(W, method=method, n_bits=8)
            values = [2, 3, 4, 5, 6, 7]  # ≥ 2 for every method; 8 was computed at build
            cold, warm = _moves(ex, values)
            colds.append(cold)
            warms.append(warm)
            if not suffix:
                out[f"widget_update_ms_bits_{method}"] = cold
            print(f"bits/{method:<8} {label:>9}: {cold:7.1f} ms per move cold, {warm:6.1f} warm", flush=True)
        out[f"widget_update_ms_bits{suffix}"] = statistics.median(colds)
        if not suffix:
            out["widget_update_ms_bits_warm"] = statistics.median(warms)
    slow = {k: v for k, v in out.items() if k.startswith("widget_update_ms") and v > TARGET_MS}
    print(f"target ≤ {TARGET_MS:.0f} ms per move: " + ("all met" if not slow else
          "over on " + ", ".join(f"{k} ({v:.0f} ms)" for k, v in sorted(slow.items()))))
    return out


if __name__ == "__main__":
    run()
