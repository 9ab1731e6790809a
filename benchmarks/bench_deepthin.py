"""DeepThin fused forward vs dense numpy on a TFKaldi-shaped network (440 → 6 x 2048 → 6928, ReLU).

Everything is measured side by side in this run, interleaved round by round, and the figures are
medians over the rounds (minima are printed beside them):
  deepthin_speedup_b{1,32}          dense X @ W / fused, whole network, all threads on both sides
                                    (BLAS default for dense; the fused network as
                                    :class:`thinlab.deepthin.FusedNetwork` with ``threads=None``)
  deepthin_speedup_b{1,32}_1t       the same with one thread on both sides
  deepthin_cost_per_param[_b1]      fused / dense float32 products that read as many parameters as
                                    the compressed layers (batch 32 / batch 1), each side at its
                                    faster thread setting (all or one: on a loaded machine a
                                    multi-threaded BLAS call can collapse, which would flatter either side)
  deepthin_cost_per_param[_b1]_1t   the same, one thread on both sides
  deepthin_cpu_speedup_b{1,32}_1t, deepthin_cpu_cost_per_param[_b1]_1t
                                    the one-thread figures again in CPU time of the calling thread
                                    (time.thread_time): what each side costs, whatever the load
  deepthin_ms_*                     raw median times in milliseconds
  deepthin_avx512_gain_b32_1t       the compiled path's sgemm kernels / its AVX-512 kernels (batch 32,
                                    one thread; only where the CPU has AVX-512F)
  deepthin_sweep_b{1,32}_f<α>       speedup at the paper's Table 2 sizes (all threads)
  deepthin_speedup_b{1,32}_{max,aligned}   other layouts of the same size, for comparison

Layout: ``plan_network(TFKALDI, size_fraction=0.01)``, the library default – the paper's r = 1
and gcd(n, Q) = 1 (LCM rule) – unless a suffix says otherwise:
  max      the largest rank that fits, gcd(n, Q) = 1
  aligned  the largest rank, n | Q where it fits: the repeating-block layout the LCM rule avoids
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.common import auto_number, blas_controller, load_average, side_by_side_samples
from thinlab.deepthin import FusedDeepThin, FusedNetwork, init_factors, plan_network, reconstruct
from thinlab.deepthin.fused import cpu_threads

TFKALDI = {"in": (440, 2048), **{f"h{i}": (2048, 2048) for i in range(1, 6)}, "out": (2048, 6928)}
ALPHA = 0.01
#: the paper's Table 2 relative sizes (compressed / dense)
PAPER_SIZES = (0.0195, 0.0129, 0.0099, 0.0057, 0.0040, 0.0027, 0.0020, 0.0014)
#: what issue 13 quotes of the paper's Table 2 (TFKaldi, fused kernel against dense, per platform)
PAPER_QUOTE = {"small-cache machine": "3.8-8.5x", "10-36 core machines (CONF1-CONF3)": "2.5-5.7x"}
#: issue 13's targets: (key, "≥" or "≤", value)
TARGETS = [("deepthin_speedup_b1", "≥", 10), ("deepthin_speedup_b32", "≥", 3),
           ("deepthin_speedup_b1_1t", "≥", 15), ("deepthin_speedup_b32_1t", "≥", 3),
           ("deepthin_cost_per_param", "≤", 3)]
BATCHES = (1, 32)


def forward(layers, x):
    """ReLU network forward: every layer but the last is followed by ReLU."""
    for layer in layers[:-1]:
        x = layer(x)
        np.maximum(x, 0, out=x)
    return layers[-1](x)


def factors_for(plan, rng):
    """Factors at the paper's initialisation (He std) for every layer of ``plan``."""
    return [(*init_factors(s.m, s.n, s.r, target_std=np.sqrt(2.0 / s.Q), rng=rng), s.Q, s.R)
            for s in plan.layers.values()]


def param_matched(plan, batch, rng):
    """Dense float32 products reading as many parameters as each compressed layer: X (B, Q) @ D (Q, ⌈p/Q⌉)."""
    mats = [(rng.standard_normal((batch, s.Q), dtype=np.float32),
             rng.standard_normal((s.Q, -(-s.n_params // s.Q)), dtype=np.float32)) for s in plan.layers.values()]
    return lambda: [x @ D for x, D in mats]


def one_thread(fn):
    """``fn`` run with BLAS limited to one thread (the fused plans passed here use ``threads=1`` too)."""
    controller = blas_controller()
    if controller is None:
        return fn

    def run():
        with controller.limit(limits=1, user_api="blas"):
            return fn()
    return run


def timed(fns: dict, rounds: int, clock=time.perf_counter) -> dict:
    """name → (median, min) seconds per call, interleaved rounds of ≈ 10 ms each."""
    number = {k: auto_number(fn, target=0.01) for k, fn in fns.items()}
    samples = side_by_side_samples(fns, rounds=rounds, number=number, clock=clock)
    return {k: (statistics.median(v), min(v)) for k, v in samples.items()}


def describe(plan) -> str:
    layers = " ".join(f"{s.n}/{s.r}" for s in plan.layers.values())
    return (f"achieved α {plan.size_fraction:.4f} ({1 / plan.size_fraction:.0f}x), {plan.n_params:,} params, "
            f"n/r per layer {layers}")


def run() -> dict[str, float]:
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    plan = plan_network(TFKALDI, size_fraction=ALPHA)
    factors = factors_for(plan, rng)
    dense = [reconstruct(Xf, Wf, Q=Q, R=R).__rmatmul__ for Xf, Wf, Q, R in factors]
    fused = FusedNetwork([FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in factors])
    fused_1t = FusedNetwork([FusedDeepThin(Xf, Wf, Q=Q, R=R, threads=1) for Xf, Wf, Q, R in factors], threads=1)
    print(f"default layout: {describe(plan)}; {cpu_threads()} CPUs; load {load_average()}")
    for B in BATCHES:
        x = rng.standard_normal((B, 440), dtype=np.float32)
        ref = forward(dense, x)
        err = float(np.abs(fused(x) - ref).max() / np.abs(ref).max())
        assert err < 1e-3, f"fused forward differs from dense by {err:.2g} (relative)"
        params = param_matched(plan, B, rng)
        fns = {"dense": lambda x=x: forward(dense, x), "fused": lambda x=x: fused(x), "params": params,
               "dense_1t": one_thread(lambda x=x: forward(dense, x)),
               "fused_1t": one_thread(lambda x=x: fused_1t(x)), "params_1t": one_thread(params)}
        t = timed(fns, rounds=41 if B == 1 else 25)
        med = {k: v[0] for k, v in t.items()}
        tag = "" if B == 32 else "_b1"
        out[f"deepthin_speedup_b{B}"] = med["dense"] / med["fused"]
        out[f"deepthin_speedup_b{B}_1t"] = med["dense_1t"] / med["fused_1t"]
        out[f"deepthin_cost_per_param{tag}"] = min(med["fused"], med["fused_1t"]) / min(med["params"], med["params_1t"])
        out[f"deepthin_cost_per_param{tag}_1t"] = med["fused_1t"] / med["params_1t"]
        for k, v in med.items():
            out[f"deepthin_ms_{k}_b{B}"] = v * 1e3
        cpu = timed({k: fns[k] for k in ("dense_1t", "fused_1t", "params_1t")}, rounds=15, clock=time.thread_time)
        out[f"deepthin_cpu_speedup_b{B}_1t"] = cpu["dense_1t"][0] / cpu["fused_1t"][0]
        out[f"deepthin_cpu_cost_per_param{tag}_1t"] = cpu["fused_1t"][0] / cpu["params_1t"][0]
        algorithms = ",".join(sorted({f.algorithm_at(B) for f in fused.layers}))
        print(f"  batch {B:>2} (max rel. error {err:.1e}, fused algorithm {algorithms}, {fused.path_at(B)} path, "
              f"{fused.threads_at(B) if fused.path_at(B) == 'compiled' else 1} thread(s)), median (min) ms:")
        for side in ("", "_1t"):
            d, f, p = (t[k + side] for k in ("dense", "fused", "params"))
            label = "all threads" if not side else "one thread"
            print(f"    {label:11s} dense {d[0] * 1e3:7.3f} ({d[1] * 1e3:7.3f})  "
                  f"fused {f[0] * 1e3:6.3f} ({f[1] * 1e3:6.3f})  param-matched {p[0] * 1e3:6.3f} ({p[1] * 1e3:6.3f})  "
                  f"speedup {d[0] / f[0]:6.2f}x  cost/param {f[0] / p[0]:5.2f}", flush=True)
        d, f, p = (cpu[k][0] for k in ("dense_1t", "fused_1t", "params_1t"))
        print(f"    one thread, CPU time: dense {d * 1e3:7.3f}  fused {f * 1e3:6.3f}  param-matched {p * 1e3:6.3f}  "
              f"speedup {d / f:6.2f}x  cost/param {f / p:5.2f}", flush=True)

    if fused.simd_:                                               # the compiled call's two kernels, side by side
        blas_1t = FusedNetwork(fused_1t.layers, threads=1, simd=False)
        x = rng.standard_normal((32, 440), dtype=np.float32)
        t = timed({"avx512": one_thread(lambda: fused_1t(x)), "sgemm": one_thread(lambda: blas_1t(x))}, rounds=25)
        out["deepthin_ms_fused_sgemm_b32_1t"] = t["sgemm"][0] * 1e3
        out["deepthin_avx512_gain_b32_1t"] = t["sgemm"][0] / t["avx512"][0]
        print(f"compiled path's kernels, batch 32, one thread, median (min) ms: AVX-512 {t['avx512'][0] * 1e3:6.3f} "
              f"({t['avx512'][1] * 1e3:6.3f})  sgemm {t['sgemm'][0] * 1e3:6.3f} ({t['sgemm'][1] * 1e3:6.3f})  "
              f"AVX-512 gain {t['sgemm'][0] / t['avx512'][0]:5.2f}x", flush=True)
    else:
        print("compiled path's kernels: sgemm only (this CPU has no AVX-512F, or numba does not load)")

    print("other layouts at the same size (all threads):")
    for name, kw in (("max", dict(rank="max")), ("aligned", dict(rank="max", layout="aligned"))):
        other = plan_network(TFKALDI, size_fraction=ALPHA, **kw)
        net = FusedNetwork([FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in factors_for(other, rng)])
        row = []
        for B in BATCHES:
            x = rng.standard_normal((B, 440), dtype=np.float32)
            t = timed({"dense": lambda x=x: forward(dense, x), "fused": lambda x=x, net=net: net(x),
                       "params": param_matched(other, B, rng)}, rounds=11)
            out[f"deepthin_speedup_b{B}_{name}"] = t["dense"][0] / t["fused"][0]
            out[f"deepthin_cost_per_param_b{B}_{name}"] = t["fused"][0] / t["params"][0]
            row.append(f"batch {B}: speedup {t['dense'][0] / t['fused'][0]:6.2f}x, "
                       f"cost/param {t['fused'][0] / t['params'][0]:6.2f}")
        print(f"  {name:8s} {describe(other)}\n           " + "; ".join(row), flush=True)

    print("the paper's Table 2 sizes, default layout, all threads (median speedup over dense):")
    print(f"  {'size':>7} {'factor':>7} {'batch 1':>9} {'batch 32':>9}   paper (issue 13's quote of Table 2): "
          + "; ".join(f"{k} {v}" for k, v in PAPER_QUOTE.items()))
    for alpha in PAPER_SIZES:
        p = plan_network(TFKALDI, size_fraction=alpha)
        net = FusedNetwork([FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in factors_for(p, rng)])
        cells = []
        for B in BATCHES:
            x = rng.standard_normal((B, 440), dtype=np.float32)
            t = timed({"dense": lambda x=x: forward(dense, x), "fused": lambda x=x, net=net: net(x)}, rounds=11)
            out[f"deepthin_sweep_b{B}_f{alpha}"] = t["dense"][0] / t["fused"][0]
            cells.append(f"{t['dense'][0] / t['fused'][0]:8.2f}x")
        print(f"  {alpha:7.4f} {1 / alpha:6.0f}x {cells[0]} {cells[1]}", flush=True)

    print(f"targets (issue 13), load average now {load_average()}:")
    for key, op, value in TARGETS:
        ok = out[key] >= value if op == "≥" else out[key] <= value
        print(f"  {key:28s} {out[key]:7.2f}  target {op} {value:<4}  {'met' if ok else 'MISSED'}")
    return out


if __name__ == "__main__":
    run()
