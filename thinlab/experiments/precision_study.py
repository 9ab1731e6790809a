"""Lesson 05's experiments as tested functions: the gaps between neighbouring floats, a trained
model's gradients against float16's limits, loss-scale sweeps, lost SGD updates, training one model
in FP32 / FP16 / BF16 / mixed precision with a logged dynamic loss scale, replaying that scale with
the learner's rule, and the thesis's FP32 → FP16 transfer on shares of the training data.

Numbers come from :mod:`thinlab.precision` (numpy facts) and :mod:`thinlab.nn.half` (torch half
precision); scoring goes through a :class:`thinlab.experiments.setup.Lesson`.

Taught in: 05_fp16_transfer
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from thinlab import models, precision, train
from thinlab.nn import half

FORMATS = ("float16", "bfloat16", "float32")
PRECISIONS = ("fp32", "fp16", "bf16", "fp16-mixed")
_HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def spacing_layout(dtype) -> tuple[int, int]:
    """``(mantissa_bits, min_exponent)`` of a format: its fraction bits and the exponent of its smallest
    normal number (float16: (10, −14)). Taught in: 05_fp16_transfer"""
    f = precision.format_facts(dtype)
    return f.mantissa_bits, int(np.log2(f.smallest_normal))


def relative_gaps(spacing, *, formats=FORMATS, grid=None) -> list[dict]:
    """``spacing(x, mantissa_bits, min_exponent) / x`` over a log grid of |x| for each format, from its
    smallest subnormal up; rows ``{"|x|", "format", "ulp / |x|"}``. ``spacing`` is the learner's (or
    any) ulp function. Taught in: 05_fp16_transfer"""
    grid = np.geomspace(1e-9, 6e4, 300) if grid is None else np.asarray(grid, dtype=np.float64)
    rows = []
    for f in formats:
        lay, tiny = spacing_layout(f), precision.format_facts(f).smallest_subnormal
        rows += [{"|x|": float(x), "format": f, "ulp / |x|": float(spacing(float(x), *lay)) / float(x)}
                 for x in grid if x >= tiny]
    return rows


def gradients(model, X, y, *, n_batches: int = 4, batch_size: int = 64, seed: int = 0) -> np.ndarray:
    """FP32 gradients of every parameter of a copy of ``model`` (train mode, on the CPU) on the first
    ``n_batches`` batches of (X, y): an array (batches, parameters). Taught in: 05_fp16_transfer"""
    model, out = copy.deepcopy(model).cpu().train(), []      # on the CPU: identical on every device
    torch.manual_seed(seed)                                    # dropout masks: the same every run
    for i in range(n_batches):
        xb = torch.as_tensor(X[i * batch_size:(i + 1) * batch_size])
        yb = torch.as_tensor(y[i * batch_size:(i + 1) * batch_size]).long()
        if len(yb) == 0:
            break
        model.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        out.append(np.concatenate([p.grad.cpu().numpy().ravel() for p in model.parameters()]))
    return np.stack(out)                                       # (batches, parameters)


def log2_histogram(values) -> list[dict]:
    """Counts of |values| (nonzero) per power of two: rows ``{"log2 |g|", "gradients"}`` (empty bins
    left out). Taught in: 05_fp16_transfer"""
    lo = np.log2(np.abs(np.asarray(values, dtype=np.float64)[np.asarray(values) != 0]))
    counts, edges = np.histogram(lo, bins=np.arange(np.floor(lo.min()), np.ceil(lo.max()) + 2))
    return [{"log2 |g|": float(e), "gradients": int(c)} for e, c in zip(edges[:-1], counts) if c]


def limits_log2(dtype="float16") -> dict:
    """log2 of a format's smallest subnormal, smallest normal and max, keyed by readable names.
    Taught in: 05_fp16_transfer"""
    f = precision.format_facts(dtype)
    return {k.replace("_", " "): float(np.log2(getattr(f, k))) for k in ("smallest_subnormal", "smallest_normal", "max")}


def subnormal_share(v, *, dtype="float16") -> float:
    """Share of ``v`` that ``dtype`` keeps only as a subnormal (nonzero, below the smallest normal).
    Taught in: 05_fp16_transfer"""
    v = np.asarray(v)
    small = float(np.mean(np.abs(v) < precision.format_facts(dtype).smallest_normal))
    return small - precision.underflow_fraction(v, dtype=dtype)


def loss_scale_sweep(g, *, log2_scales=range(0, 31, 2)) -> list[dict]:
    """What float16 does to the gradients ``g`` times S = 2**k for each k: rows ``{"log2 S", "what",
    "% of gradients"}`` for "underflow to 0", "subnormal (fewer bits)" and "overflow to inf".
    Taught in: 05_fp16_transfer"""
    rows = []
    for k in log2_scales:
        s = np.asarray(g) * 2.0 ** k
        rows += [{"log2 S": k, "what": "underflow to 0", "% of gradients": 100 * precision.underflow_fraction(s)},
                 {"log2 S": k, "what": "subnormal (fewer bits)", "% of gradients": 100 * subnormal_share(s)},
                 {"log2 S": k, "what": "overflow to inf", "% of gradients": 100 * precision.overflow_fraction(s)}]
    return rows


def choose_loss_scale(g, *, log2_scales=range(0, 31, 2)) -> tuple[int, list[int]]:
    """``(best_k, safe)``: ``safe`` lists the k where S = 2**k loses nothing to underflow or overflow;
    ``best_k`` is the smallest safe k, else the k losing the least. Taught in: 05_fp16_transfer"""
    g = np.asarray(g)
    lost = {k: (precision.underflow_fraction(g * 2.0 ** k), precision.overflow_fraction(g * 2.0 ** k))
            for k in log2_scales}
    safe = [k for k, (u, o) in lost.items() if u == 0 and o == 0]
    return (safe[0] if safe else min(lost, key=lambda k: sum(lost[k]))), safe


def loss_scaling_summary(g, *, log2_scale: int) -> dict:
    """Underflow, subnormal and overflow shares of ``g`` in float16 without and with S = 2**log2_scale,
    and its underflow in bfloat16 (the lesson's ``results["loss_scaling"]``). Taught in: 05_fp16_transfer"""
    g = np.asarray(g)
    s = g * 2.0 ** log2_scale
    return {"n_gradients": int(g.size), "underflow_without": precision.underflow_fraction(g),
            "subnormal_without": subnormal_share(g), "log2_scale": int(log2_scale),
            "underflow_with": precision.underflow_fraction(s), "subnormal_with": subnormal_share(s),
            "overflow_with": precision.overflow_fraction(s),
            "underflow_bf16_without": precision.underflow_fraction(g, dtype="bfloat16")}


def updates_lost(params, G, *, lr: float = 3e-3, formats=FORMATS) -> dict:
    """Share of plain SGD steps w − lr·g (nonzero g) that leave the stored weight unchanged, per format.

    ``params`` (P,) are the weights, ``G`` (batches, P) the gradients (:func:`gradients`).
    Taught in: 05_fp16_transfer
    """
    W = np.asarray(params, dtype=np.float64)[None, :]               # (1, P)
    G = np.asarray(G, dtype=np.float64)
    out = {}
    for f in formats:
        Wh = precision.round_to_format(W, dtype=f)                  # the stored weights
        out[f] = float(np.mean((precision.round_to_format(Wh - lr * G, dtype=f) == Wh)[G != 0]))
    return out


def adam_state_loss(g, *, beta2_step: float = 0.001, eps: float = 1e-4) -> dict:
    """Adam in float16: the share of gradients whose first second-moment update ``beta2_step·g²`` is 0,
    the |g| below which that happens, and how many times lr the step lr·g/eps can then be.
    Taught in: 05_fp16_transfer"""
    g_v = float(np.sqrt(2.0 ** -25 / beta2_step))       # 2**-25: half float16's smallest subnormal
    share = precision.underflow_fraction(beta2_step * np.asarray(g, dtype=np.float64) ** 2)
    return {"share": share, "g_limit": g_v, "step_over_lr": g_v / eps}


def probe_failures() -> dict:
    """Ops that fail or differ from float32 by more than 2 % on this CPU, per half format
    (:func:`thinlab.nn.half.probe_cpu_half_ops`). Taught in: 05_fp16_transfer"""
    out = {}
    for name, dt in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        ok = half.probe_cpu_half_ops(dtype=dt)
        out[name] = [k for k, v in ok.items() if not v]
    return out


def half_subset(n: int, max_n: int, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_n`` of ``n`` training clips (seeded). Taught in: 05_fp16_transfer"""
    return np.sort(np.random.default_rng(seed).permutation(n)[:max_n])


def nested_shares(n: int, fractions, *, seed: int = 0) -> dict:
    """fraction → sorted indices of ``max(1, round(fraction·n))`` of n clips, nested (the 20 % contain
    the 10 %). Taught in: 05_fp16_transfer"""
    order = np.random.default_rng(seed + 1).permutation(n)
    return {f: np.sort(order[:max(1, round(f * n))]) for f in fractions}


def recording_step(scaler, log: list, *, mode: str = "pure", dtype=torch.float16):
    """:func:`thinlab.nn.half.half_step_fn` for ``train.fit`` that appends ``{"step", "scale", "skipped"}``
    to ``log`` at every step. Taught in: 05_fp16_transfer"""
    step = half.half_step_fn(scaler, mode=mode, dtype=dtype)

    def run(model, xb, yb, optimizer):
        log.append({"step": len(log), "scale": scaler.scale_})
        loss, logits, skipped = step(model, xb, yb, optimizer)
        log[-1]["skipped"] = bool(skipped)
        return torch.tensor(loss), logits, skipped             # train.fit takes the loss as a tensor
    return run


def train_in(kind: str, model, X, y, *, epochs: int, lr: float = 3e-3, set_stats: bool = True, val=None,
             seed: int = 0, device=None, growth_interval: int = 100, desc: str | None = None):
    """Train a copy of the FP32 ``model`` in precision ``kind``: "fp32", "fp16" or "bf16" (pure: weights,
    activations, gradients and Adam state in 16 bits, Adam ε = 1e-4 in float16, dynamic loss scaling) or
    "fp16-mixed" (FP32 master weights, float16 forward and backward).

    Returns ``(trained model, History, scale log)``; ``val``: ``(X_val, y_val)`` to validate each epoch.
    Taught in: 05_fp16_transfer
    """
    if kind not in PRECISIONS:
        raise ValueError(f"precision {kind!r} is unknown; choose one of {PRECISIONS}")
    log, kw = [], {}
    if kind == "fp32":
        model = copy.deepcopy(model)
    elif kind == "fp16-mixed":
        model = copy.deepcopy(model)
        kw = {"step_fn": recording_step(precision.DynamicLossScaler(growth_interval=growth_interval), log, mode="mixed")}
    else:
        model = half.to_half(model, dtype=_HALF[kind])
        kw = {"step_fn": recording_step(precision.DynamicLossScaler(growth_interval=growth_interval), log,
                                        dtype=_HALF[kind]),
              "eps": 1e-4 if kind == "fp16" else 1e-8}
    vx, vy = val if val is not None else (None, None)
    h = train.fit(model, X, y, vx, vy, epochs=epochs, lr=lr, seed=seed, set_stats=set_stats, desc=desc or kind,
                  device=device, **kw)
    return model, h, log


def precision_runs(init, X, y, lesson, *, precisions, epochs: int, growth_interval: int = 100) -> dict:
    """:func:`train_in` for each of ``precisions`` from the same ``init`` on the same clips, validated each
    epoch; kind → ``{"model", "history", "log", "hits", "test_acc", "s_per_epoch"}``.
    Taught in: 05_fp16_transfer"""
    runs = {}
    for p in precisions:
        m, h, log = train_in(p, init, X, y, epochs=epochs, val=(lesson.ds.X_val, lesson.ds.y_val),
                             seed=lesson.seed, device=lesson.device, growth_interval=growth_interval)
        hits = lesson.test_hits(m)
        runs[p] = {"model": m, "history": h, "log": log, "hits": hits, "test_acc": float(hits.mean()),
                   "s_per_epoch": h.seconds / epochs}
    return runs


def replay_loss_scale(log: list, update, *, growth_interval: int) -> dict:
    """Replay a run's scale log with ``update(scale, good_steps, found_inf, growth_interval=...)`` (the
    learner's rule); raises AssertionError at the first step where it differs from what the run did.
    Returns ``{"n_steps", "first_scale", "last_scale", "n_skipped"}``. Taught in: 05_fp16_transfer"""
    if not log:
        return {"n_steps": 0, "first_scale": None, "last_scale": None, "n_skipped": 0}
    scale, good = log[0]["scale"], 0
    for r in log:
        assert scale == r["scale"], f"step {r['step']}: your rule gives scale {scale}, the run used {r['scale']}"
        scale, good, skip = update(scale, good, r["skipped"], growth_interval=growth_interval)
        assert skip == r["skipped"], f"step {r['step']}: your rule skips={skip}, the run skipped={r['skipped']}"
    return {"n_steps": len(log), "first_scale": log[0]["scale"], "last_scale": scale,
            "n_skipped": sum(bool(r["skipped"]) for r in log)}


def transfer_runs(fp32, init, X, y, lesson, *, fractions, epochs: int, lr: float = 1e-3, mixed: bool = True,
                  growth_interval: int = 100) -> tuple[list[dict], dict]:
    """The thesis's transfer: FP16 retrained from the trained ``fp32`` model (lr ``lr``), FP16 from scratch
    (``init``, lr 3e-3, input statistics set) and, with ``mixed``, mixed precision from FP32, on nested
    shares of (X, y); share 0 is the FP32 model cast to FP16.

    Returns ``(rows, hits)``: rows ``{"share", "start", "test accuracy", "clips", "seconds"}``, hits
    ``(share, start) → per-clip hits``. Taught in: 05_fp16_transfer
    """
    cast_hits = lesson.test_hits(half.transfer_fp32_to_fp16(fp32))
    rows = [{"share": 0.0, "start": "from FP32", "test accuracy": float(cast_hits.mean()), "clips": 0, "seconds": 0.0}]
    hits = {(0.0, "from FP32"): cast_hits}
    for frac, idx in nested_shares(len(y), fractions, seed=lesson.seed).items():
        for start in ("from FP32", "from scratch") + (("from FP32, mixed",) if mixed else ()):
            base, rate = (init, 3e-3) if start == "from scratch" else (fp32, lr)
            m, h, _ = train_in("fp16-mixed" if start.endswith("mixed") else "fp16", base, X[idx], y[idx],
                               epochs=epochs, lr=rate, set_stats=start == "from scratch", seed=lesson.seed,
                               device=lesson.device, growth_interval=growth_interval, desc=f"{start} {frac:.0%}")
            hits[(frac, start)] = lesson.test_hits(m)
            rows.append({"share": frac, "start": start, "test accuracy": float(hits[(frac, start)].mean()),
                         "clips": int(len(idx)), "seconds": h.seconds})
    return rows, hits


def init_cnn(ds, *, seed: int = 0):
    """The CNN every from-scratch run starts from (seeded), shaped for ``ds``. Taught in: 05_fp16_transfer"""
    torch.manual_seed(seed)
    return models.build_model("cnn", len(ds.labels), n_frames=ds.X_train.shape[1], n_mels=ds.X_train.shape[2])


def cpu_half_flags() -> list[str]:
    """This CPU's 16-bit float instructions among avx512_bf16, amx_bf16, avx512_fp16, amx_fp16 (Linux's
    /proc/cpuinfo; [] elsewhere). Taught in: 05_fp16_transfer"""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:                                # not Linux: no flags to show
        return []
    return sorted(flags & {"avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16"})
