"""Inference speed of DeepThin layers: the fused product against the dense one, numpy and torch.

* :func:`inference_timing` – the DeepThin layers of a trained torch model, numpy ``X @ W`` (W rebuilt
  once) against :class:`thinlab.deepthin.FusedDeepThin` (W never built), per layer and stacked;
* :func:`layer_timing` – the same for any layer shapes at a size, with the paper's initialisation
  (a paper-sized 2048 x 2048 layer, the TFKaldi network);
* :func:`torch_inference_timing` – a whole compressed torch model in evaluation mode: the dense
  model, the DeepThin model rebuilding W (:func:`thinlab.nn.deepthin_fused.dense_inference`)
  and the DeepThin model running the fused product (:mod:`thinlab.nn.deepthin_fused`).

Both sides of every comparison run on the same threads and are timed in alternating rounds; the
figures are medians over the rounds (a burst of load from another process hits both sides).

Taught in: 03_deepthin (and reused by 06_pipeline)
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize

from thinlab import deepthin
from thinlab._threads import limited_threads
from thinlab.nn.parametrizations import DeepThin


def sample_times(fns: dict, *, repeat: int = 5, warmup: int = 1, calls: dict | None = None) -> dict:
    """name → seconds per call in each of ``repeat`` rounds; the functions alternate inside every round,
    so a slow spell of the machine falls on all of them. ``calls``: calls per round (default 1).

    The one timer of thinlab: :func:`median_times`, the pipeline's and the deployment lesson's
    latencies all use it. Taught in: 03_deepthin, 06_pipeline, 07_deploy
    """
    calls = calls or {}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            k = calls.get(name, 1)
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    return samples


def median_times(fns: dict, *, min_seconds: float = 0.05, repeat: int = 5) -> dict:
    """name → median seconds per call over ``repeat`` alternating rounds, each ≈ min_seconds / repeat long
    (fast functions are called several times per round). Taught in: 03_deepthin"""
    calls = {}
    for name, fn in fns.items():
        fn()
        n = 1
        while True:                                                  # calls per round for this function
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            if time.perf_counter() - t0 >= min_seconds / repeat or n > 1 << 16:
                break
            n *= 4
        calls[name] = n
    return {name: statistics.median(v) for name, v in
            sample_times(fns, repeat=repeat, warmup=0, calls=calls).items()}


def cache_sizes() -> dict:
    """Data cache sizes in bytes (``L1d``, ``L2``, ``L3``) of CPU 0 as Linux reports them in
    ``/sys/devices/system/cpu/cpu0/cache``; None where unknown (other systems).

    Taught in: 03_deepthin
    """
    out = {"L1d": None, "L2": None, "L3": None}
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        key = "L1d" if level == "1" and kind == "Data" else f"L{level}" if kind == "Unified" else None
        if key in out and size:
            out[key] = int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    return out


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
            out[name] = (W.original0.detach().cpu().numpy().copy(), W.original1.detach().cpu().numpy().copy(),
                         P.cols, P.rows)
    return out


def _time_layers(layers: dict, *, batches, min_seconds: float, repeat: int, threads: int | None,
                 per_layer: bool = True) -> list:
    """Rows of :func:`inference_timing` for ``layers`` (name → (Xf, Wf, Q, R, bias or None))."""
    rng = np.random.default_rng(0)
    rows = []
    with limited_threads(threads, blas_only=True):
        built = {}
        for name, (Xf, Wf, Q, R, b) in layers.items():
            built[name] = (deepthin.reconstruct(Xf, Wf, Q=Q, R=R),
                           deepthin.FusedDeepThin(Xf, Wf, Q=Q, R=R, threads=threads),
                           np.zeros(R, dtype=np.float32) if b is None else b)
        for B in batches:
            for name, (W, F, _) in (built.items() if per_layer or len(built) < 2 else ()):
                X = rng.standard_normal((B, W.shape[0]), dtype=np.float32)
                ref = X @ W
                diff = float(np.abs(F(X) - ref).max() / max(np.abs(ref).max(), 1e-12))
                t = median_times({"dense": lambda: X @ W, "fused": lambda: F(X)}, min_seconds=min_seconds,
                                  repeat=repeat)
                n, r = F.Wf.shape[1], F.Wf.shape[0]
                m = F.Xf.shape[0]
                rows.append({"layer": name, "Q": W.shape[0], "R": W.shape[1], "m": m, "n": n, "r": r,
                             "gcd": math.gcd(n, W.shape[0]), "batch": B, "algorithm": F.algorithm_at(B),
                             "dense_bytes": 4 * W.size, "stored_bytes": 4 * (m + n) * r,
                             "dense_us": t["dense"] * 1e6, "fused_us": t["fused"] * 1e6,
                             "speedup": t["dense"] / t["fused"], "max_rel_diff": diff})
            if len(built) < 2:
                continue
            first = next(iter(built.values()))[0].shape[0]
            X = rng.standard_normal((B, first), dtype=np.float32)
            net = deepthin.FusedNetwork([F for _, F, _ in built.values()], biases=[b for _, _, b in built.values()],
                                        relu=[True] * len(built), threads=threads)

            def stack(X=X):
                h = X
                for W, _, b in built.values():
                    h = h @ W + b
                    np.maximum(h, 0, out=h)
                return h
            t = median_times({"dense": stack, "fused": lambda X=X: net(X)}, min_seconds=min_seconds, repeat=repeat)
            ref = stack()
            rows.append({"layer": "all", "Q": first, "R": next(reversed(built.values()))[0].shape[1], "m": None,
                         "n": None, "r": None, "gcd": None, "batch": B,
                         "algorithm": "+".join(sorted({F.algorithm_at(B) for _, F, _ in built.values()})),
                         "path": net.path_at(B), "fused_threads": net.threads_at(B) if net.path_at(B) == "compiled" else 1,
                         "dense_bytes": sum(4 * W.size for W, _, _ in built.values()),
                         "stored_bytes": sum(4 * F.Xf.size + 4 * F.Wf.size for _, F, _ in built.values()),
                         "dense_us": t["dense"] * 1e6, "fused_us": t["fused"] * 1e6,
                         "speedup": t["dense"] / t["fused"],
                         "max_rel_diff": float(np.abs(net(X) - ref).max() / max(np.abs(ref).max(), 1e-12))})
    return rows


def inference_timing(model, *, batches=(1, 32), min_seconds: float = 0.05, repeat: int = 5, threads: int = 1) -> list:
    """Time the fused DeepThin product against the dense product of the reconstructed W, per layer.

    For each DeepThin layer of ``model`` (and for all of them in sequence, with bias and ReLU, as
    ``"all"``) and each batch size: ``dense_us`` (numpy ``X @ W``, W rebuilt once beforehand),
    ``fused_us`` (:class:`thinlab.deepthin.FusedDeepThin`, plan built beforehand; for ``"all"`` a
    :class:`thinlab.deepthin.FusedNetwork`, with its ``path`` and ``fused_threads``), ``speedup`` =
    dense / fused, the layout (``m``, ``n``, ``r``, ``gcd`` = gcd(n, Q); None for ``"all"``), the
    bytes each side reads (``dense_bytes``, ``stored_bytes``), the fused method, and the largest
    relative difference of the outputs. BLAS and the fused FFTs run on ``threads`` threads
    (None: all), so the two sides compete on equal terms.

    Taught in: 03_deepthin
    """
    factors = deepthin_factors(model)
    if not factors:
        raise ValueError("model has no (unshuffled) DeepThin layer; compress it with method='deepthin'")
    mods = dict(model.named_modules())
    layers = {name: (*f, mods[name].bias.detach().cpu().numpy().astype(np.float32)) for name, f in factors.items()}
    return _time_layers(layers, batches=batches, min_seconds=min_seconds, repeat=repeat, threads=threads)


def layer_timing(shapes: dict, *, size_fraction: float, batches=(1, 32), threads: int | None = 1, seed: int = 0,
                 min_seconds: float = 0.05, repeat: int = 5, per_layer: bool = True, **plan_kw) -> list:
    """:func:`inference_timing` for layers of the given shapes (name → (Q, R)) planned together at
    ``size_fraction`` (:func:`thinlab.deepthin.plan_network`, its default layout unless ``plan_kw``
    says otherwise), factors at the paper's initialisation (He std), no bias. ``per_layer=False``
    times only the whole stack (row ``"all"``) when there are several layers.

    Taught in: 03_deepthin
    """
    plan = deepthin.plan_network(shapes, size_fraction=size_fraction, **plan_kw)
    rng = np.random.default_rng(seed)
    layers = {name: (*deepthin.init_factors(s.m, s.n, s.r, target_std=deepthin.he_std(s.Q), rng=rng), s.Q, s.R, None)
              for name, s in plan.layers.items()}
    return _time_layers(layers, batches=batches, min_seconds=min_seconds, repeat=repeat, threads=threads,
                        per_layer=per_layer)


def torch_inference_timing(model, X, *, batches=(1, 32), threads: int | None = 1, min_seconds: float = 0.05,
                           repeat: int = 5) -> list:
    """Time a compressed torch model's forward pass in evaluation mode, on its device, three ways.

    ``dense_us``: the same model with every compressed weight baked into a dense one
    (:func:`thinlab.nn.compress.uncompressed`); ``plain_us``: the DeepThin model rebuilding W
    from its factors in every forward (:func:`thinlab.nn.deepthin_fused.dense_inference`);
    ``fused_us``: the DeepThin model as it runs by default in evaluation mode, the fused product
    (``kernel``: ``"numpy"`` on the CPU, ``"torch"`` elsewhere, see
    :func:`thinlab.nn.deepthin_fused.inference_kernel`).
    ``speedup`` = dense / fused, ``speedup_vs_plain`` = plain / fused; ``max_rel_diff`` compares
    the fused logits with the plain ones. ``X``: inputs, the first ``batch`` rows are used.

    Taught in: 03_deepthin (and 06_pipeline)
    """
    from thinlab.nn.compress import uncompressed
    from thinlab.nn.deepthin_fused import dense_inference, inference_kernel

    if not deepthin_factors(model):
        raise ValueError("model has no (unshuffled) DeepThin layer; compress it with method='deepthin'")
    device = next(model.parameters()).device
    dense = uncompressed(model).eval()
    model_was_training = model.training
    model.eval()
    rows = []
    with limited_threads(threads):
        try:
            for B in batches:
                x = torch.as_tensor(np.asarray(X[:B]), dtype=torch.float32, device=device)

                def run(net, plain=False, x=x):
                    with torch.inference_mode():
                        if plain:
                            with dense_inference():
                                out = net(x)
                        else:
                            out = net(x)
                    if out.is_cuda:
                        torch.cuda.synchronize()
                    return out
                t = median_times({"dense": lambda: run(dense), "plain": lambda: run(model, True),
                                   "fused": lambda: run(model)}, min_seconds=min_seconds, repeat=repeat)
                ref, got = run(model, True), run(model)
                rows.append({"batch": int(x.shape[0]), "device": str(device), "kernel": inference_kernel(device),
                             "dense_us": t["dense"] * 1e6, "plain_us": t["plain"] * 1e6, "fused_us": t["fused"] * 1e6,
                             "speedup": t["dense"] / t["fused"], "speedup_vs_plain": t["plain"] / t["fused"],
                             "max_rel_diff": float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12))})
        finally:
            model.train(model_was_training)
    return rows
