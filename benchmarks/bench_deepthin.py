"""DeepThin fused forward vs dense numpy on a TFKaldi-shaped network (440 → 6 x 2048 → 6928, ReLU).

Figures (all measured side by side in this run, best of several interleaved rounds; each side
is timed with the default BLAS threads and with 1 and keeps its faster, see
``benchmarks.common.side_by_side_threads``):
  deepthin_speedup_b{1,32}[_f<α>]    dense X @ W time / fused time, whole network, weights only
  deepthin_cost_per_param[_b1]       fused time / time of dense float32 products that read as many
                                     parameters as the compressed layers (batch 32 / batch 1)
  ..._rank1, ..._aligned             the same for other layouts of the same size (see LAYOUTS)
  deepthin_ms_*                      raw times in milliseconds

Layouts (all at the same size_fraction, all from ``plan_network``):
  default  the paper's rules: largest rank, gcd(n, Q) = 1 (LCM rule)
  rank1    rank 1 and gcd(n, Q) = 1: short W_aux rows (n ≈ 1/α), still no repeated blocks
  aligned  largest rank, n | Q where it fits: the repeating-block layout the LCM rule avoids
"""
from __future__ import annotations

import numpy as np

from benchmarks.common import auto_number, side_by_side_threads
from thinlab.deepthin import FusedDeepThin, init_factors, plan_network, reconstruct

TFKALDI = {"in": (440, 2048), **{f"h{i}": (2048, 2048) for i in range(1, 6)}, "out": (2048, 6928)}
LAYOUTS = {"default": dict(), "rank1": dict(rank=1), "aligned": dict(layout="aligned")}
#: (suffix, size_fraction, layout) of each measured configuration
CONFIGS = [("", 0.01, "default"), ("_f0.02", 0.02, "default"), ("_f0.004", 0.004, "default"),
           ("_rank1", 0.01, "rank1"), ("_aligned", 0.01, "aligned")]
BATCHES = (1, 32)


def forward(layers, x):
    """ReLU network forward: every layer but the last is followed by ReLU."""
    for layer in layers[:-1]:
        x = layer(x)
        np.maximum(x, 0, out=x)
    return layers[-1](x)


def build(plan, rng):
    """Factors at the paper's initialisation (He std) and a fused plan for each layer."""
    fused, factors = [], []
    for s in plan.layers.values():
        Xf, Wf = init_factors(s.m, s.n, s.r, target_std=np.sqrt(2.0 / s.Q), rng=rng)
        factors.append((Xf, Wf, s.Q, s.R))
        fused.append(FusedDeepThin(Xf, Wf, Q=s.Q, R=s.R))
    return fused, factors


def param_matched(plan, batch, rng):
    """Dense float32 products reading as many parameters as each compressed layer: X (B, Q) @ D (Q, ⌈p/Q⌉)."""
    mats = [(rng.standard_normal((batch, s.Q), dtype=np.float32),
             rng.standard_normal((s.Q, -(-s.n_params // s.Q)), dtype=np.float32)) for s in plan.layers.values()]
    return lambda: [x @ D for x, D in mats]


def run() -> dict[str, float]:
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    dense_layers, checked = None, False
    for suffix, alpha, layout in CONFIGS:
        plan = plan_network(TFKALDI, size_fraction=alpha, **LAYOUTS[layout])
        fused, factors = build(plan, rng)
        if dense_layers is None:                 # dense weights = this plan's reconstruction (same function)
            Ws = [reconstruct(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in factors]
            dense_layers = [W.__rmatmul__ for W in Ws]
        methods = ",".join(sorted({f.method_ for f in fused}))
        shapes = " ".join(f"{s.n}/{s.r}" for s in plan.layers.values())
        print(f"{layout:8s} α={alpha:<6} achieved {plan.size_fraction:.4f} ({1 / plan.size_fraction:.0f}x), "
              f"{plan.n_params:,} params, n/r per layer {shapes}, method {methods}")
        for B in BATCHES:
            x = rng.standard_normal((B, 440), dtype=np.float32)
            if not checked:
                ref = forward(dense_layers, x)
                err = np.abs(forward(fused, x) - ref).max() / np.abs(ref).max()
                assert err < 1e-3, f"fused forward differs from dense by {err:.2g} (relative)"
                checked = True
            fns = {"dense": lambda d=dense_layers, x=x: forward(d, x),
                   "fused": lambda f=fused, x=x: forward(f, x),
                   "params": param_matched(plan, B, rng)}
            number = {k: auto_number(fn, target=0.01) for k, fn in fns.items()}   # ≈ 10 ms per timed run
            best = side_by_side_threads(fns, repeat=9 if B == 1 else 5, number=number)
            t = {k: v[0] for k, v in best.items()}
            speed, cpp = t["dense"] / t["fused"], t["fused"] / t["params"]
            out[f"deepthin_speedup_b{B}{suffix}"] = speed
            out[f"deepthin_cost_per_param{suffix}" + ("_b1" if B == 1 else "")] = cpp
            for k in ("dense", "fused", "params"):
                out[f"deepthin_ms_{k}_b{B}{suffix}"] = t[k] * 1e3
            thr = {k: v[1] or "default" for k, v in best.items()}
            print(f"  batch {B:>2}: dense {t['dense'] * 1e3:7.2f} ms  fused {t['fused'] * 1e3:7.2f} ms  "
                  f"speedup {speed:6.2f}x   param-matched dense {t['params'] * 1e3:6.3f} ms  "
                  f"cost/param {cpp:6.2f}   (BLAS threads {thr['dense']}/{thr['fused']}/{thr['params']})",
                  flush=True)
    print("targets: speedup ≥ 15 at batch 1, ≥ 2 at batch 32; cost/param ≤ 2")
    for suffix, alpha, layout in CONFIGS:
        b1, b32 = out[f"deepthin_speedup_b1{suffix}"], out[f"deepthin_speedup_b32{suffix}"]
        cpp = out[f"deepthin_cost_per_param{suffix}"]
        marks = ["met" if ok else "missed" for ok in (b1 >= 15, b32 >= 2, cpp <= 2)]
        print(f"  {layout:8s} α={alpha:<6} batch 1 {b1:6.2f}x {marks[0]:6s}  batch 32 {b32:6.2f}x {marks[1]:6s}  "
              f"cost/param {cpp:6.2f} {marks[2]}")
    return out


if __name__ == "__main__":
    run()
