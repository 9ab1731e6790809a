"""Inference speed of trained DeepThin layers: the fused product against the dense one.

:func:`deepthin_factors` pulls X^f and W^f out of a trained torch model; :func:`inference_timing`
times, per layer and for the whole stack, numpy ``X @ W`` (W rebuilt once) against
:class:`thinlab.deepthin.FusedDeepThin` (which never builds W), on the same BLAS threads.

Taught in: 03_deepthin (and reused by 06_pipeline)
"""
from __future__ import annotations

import math
import time

import numpy as np
from torch.nn.utils import parametrize

from thinlab import deepthin
from thinlab.layers.parametrizations import DeepThin


def _best_time(fn, *, min_seconds: float = 0.05, repeat: int = 5) -> float:
    """Best per-call seconds of ``fn`` over ``repeat`` rounds of enough calls to last ``min_seconds``."""
    fn()
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= min_seconds / repeat or n > 1 << 16:
            break
        n *= 4
    best = t / n
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def deepthin_factors(model) -> dict:
    """name → (X^f (m, r), W^f (r, n), Q, R) numpy copies of every (unshuffled) DeepThin layer of ``model``.

    Taught in: 03_deepthin
    """
    out = {}
    for name, mod in model.named_modules():
        if parametrize.is_parametrized(mod, "weight") and isinstance(mod.parametrizations.weight[0], DeepThin):
            P, W = mod.parametrizations.weight[0], mod.parametrizations.weight
            if P.seed is not None:
                continue                                             # shuffled: no fused path
            out[name] = (W.original0.detach().numpy().copy(), W.original1.detach().numpy().copy(), P.cols, P.rows)
    return out


def inference_timing(model, *, batches=(1, 32), min_seconds: float = 0.05, repeat: int = 5, threads: int = 1) -> list:
    """Time the fused DeepThin product against the dense product of the reconstructed W, per layer.

    For each DeepThin layer of ``model`` (and for all of them in sequence, with bias and ReLU, as
    ``"all"``) and each batch size: ``dense_us`` (numpy ``X @ W``, W rebuilt once beforehand),
    ``fused_us`` (:class:`thinlab.deepthin.FusedDeepThin`, plan built beforehand), ``speedup`` =
    dense / fused, the layout (``n``, ``r``, ``gcd`` = gcd(n, Q); None for ``"all"``), the fused
    method, and the largest relative difference of the outputs. BLAS runs
    on ``threads`` threads (threadpoolctl), so the two sides compete on equal terms.

    Taught in: 03_deepthin
    """
    from threadpoolctl import threadpool_limits

    factors = deepthin_factors(model)
    if not factors:
        raise ValueError("model has no (unshuffled) DeepThin layer; compress it with method='deepthin'")
    mods = dict(model.named_modules())
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(threads):
        layers = {}
        for name, (Xf, Wf, Q, R) in factors.items():
            W = deepthin.reconstruct(Xf, Wf, Q=Q, R=R)                # (Q, R)
            b = mods[name].bias.detach().numpy().astype(np.float32)
            layers[name] = (W, deepthin.FusedDeepThin(Xf, Wf, Q=Q, R=R), b)
        for B in batches:
            for name, (W, F, _) in layers.items():
                X = rng.standard_normal((B, W.shape[0]), dtype=np.float32)
                ref = X @ W
                diff = float(np.abs(F(X) - ref).max() / max(np.abs(ref).max(), 1e-12))
                td, tf = (_best_time(f, min_seconds=min_seconds, repeat=repeat) for f in (lambda: X @ W, lambda: F(X)))
                n, r = F.Wf.shape[1], F.Wf.shape[0]
                rows.append({"layer": name, "Q": W.shape[0], "R": W.shape[1], "n": n, "r": r,
                             "gcd": math.gcd(n, W.shape[0]), "batch": B, "method": F.method_,
                             "dense_us": td * 1e6, "fused_us": tf * 1e6, "speedup": td / tf, "max_rel_diff": diff})
            first = next(iter(layers.values()))[0].shape[0]
            X = rng.standard_normal((B, first), dtype=np.float32)

            def stack(use_fused, X=X):
                h = X
                for W, F, b in layers.values():
                    h = np.maximum((F(h) if use_fused else h @ W) + b, 0)
                return h
            td, tf = (_best_time(lambda u=u: stack(u), min_seconds=min_seconds, repeat=repeat) for u in (False, True))
            ref = stack(False)
            rows.append({"layer": "all", "Q": first, "R": next(reversed(layers.values()))[0].shape[1],
                         "n": None, "r": None, "gcd": None, "batch": B,
                         "method": "+".join(sorted({F.method_ for _, F, _ in layers.values()})),
                         "dense_us": td * 1e6, "fused_us": tf * 1e6, "speedup": td / tf,
                         "max_rel_diff": float(np.abs(stack(True) - ref).max() / max(np.abs(ref).max(), 1e-12))})
    return rows
