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


def precision_runs(init, X, y, lesson, *, precisions, epochs: int, growth_interval: int = 100, seeds=None) -> dict:
    """:func:`train_in` for each of ``precisions`` from the same ``init`` on the same clips, validated each
    epoch, once per seed in ``seeds`` (default ``[lesson.seed]``: batch order and dropout change with it).

    Returns kind → ``{"model", "history", "log", "hits", "test_acc", "seed_accs", "seconds", "s_per_epoch",
    "skipped_steps"}``: ``model``, ``history``, ``log`` and ``skipped_steps`` are the first seed's run (its
    curve and loss-scale log), ``hits`` is (seeds, N), ``test_acc`` its mean, ``seconds`` the mean training
    time and ``s_per_epoch`` = seconds / epochs. Taught in: 05_fp16_transfer"""
    seeds = [lesson.seed] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. [0, 1, 2]")
    runs = {}
    for p in precisions:
        out = []
        for s in seeds:
            m, h, log = train_in(p, init, X, y, epochs=epochs, val=(lesson.ds.X_val, lesson.ds.y_val), seed=s,
                                 device=lesson.device, growth_interval=growth_interval, desc=f"{p} seed {s}")
            out.append((m, h, log, lesson.test_hits(m)))
        hits = np.stack([o[3] for o in out])                               # (seeds, N)
        seconds = float(np.mean([o[1].seconds for o in out]))
        runs[p] = {"model": out[0][0], "history": out[0][1], "log": out[0][2], "hits": hits,
                   "test_acc": float(hits.mean()), "seed_accs": [float(h.mean()) for h in hits], "seconds": seconds,
                   "s_per_epoch": seconds / epochs, "skipped_steps": out[0][1].skipped_steps}
    return runs


def near_chance(accuracy: float, se: float, chance: float) -> bool:
    """Is ``accuracy`` within two standard errors of ``chance`` (or below it)? Taught in: 05_fp16_transfer"""
    return accuracy <= chance + 2 * se


def chance_note(accs: dict, ses: dict, *, chance: float, steps: int) -> str:
    """Which runs in ``accs`` (name → accuracy; ``ses``: name → standard error) are within two standard errors
    of chance, in one sentence: when all are, their differences say nothing about the formats.
    Taught in: 05_fp16_transfer"""
    near = [k for k, a in accs.items() if near_chance(a, ses[k], chance)]
    shown = ", ".join(f"{k} {accs[k]:.3f}" for k in near)
    if not near:
        return f"every run scored above chance ({chance:.3f}) by more than two standard errors"
    if len(near) < len(accs):
        return (f"{shown} {'is' if len(near) == 1 else 'are'} within two standard errors of chance ({chance:.3f}) "
                f"after {steps} optimizer steps, the other{'s' * (len(accs) - len(near) > 1)} above it")
    return (f"{shown} are all within two standard errors of chance ({chance:.3f}): {steps} optimizer steps from "
            "random weights are too few to learn this task, so these numbers compare formats that have not started "
            "learning; raise HALF_EPOCHS or HALF_MAX_TRAIN to compare them.")


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


def n_steps(n_clips: int, epochs: int, *, batch_size: int = 64) -> int:
    """Optimizer steps of ``train.fit`` on ``n_clips`` clips: epochs × ⌈n / batch_size⌉. Taught in: 05_fp16_transfer"""
    return int(epochs) * -(-int(n_clips) // int(batch_size))


START_KINDS = {"from FP32": "fp16", "from scratch": "fp16", "from FP32, mixed": "fp16-mixed",
               "from scratch, FP32": "fp32"}


def transfer_runs(fp32, init, X, y, lesson, *, fractions, epochs: int, lr: float = 1e-3, mixed: bool = True,
                  growth_interval: int = 100, seeds=None, scratch_fp32: bool = False) -> tuple[list[dict], dict]:
    """The thesis's transfer: FP16 retrained from the trained ``fp32`` model (lr ``lr``), FP16 from scratch
    (``init``, lr 3e-3, input statistics set) and, with ``mixed``, mixed precision from FP32, on nested
    shares of (X, y); share 0 is the FP32 model cast to FP16. ``scratch_fp32`` adds a control at the
    smallest share: the same from-scratch run in float32 (does float16 or the short budget keep it at chance?).

    ``seeds`` (default ``[lesson.seed]``): each seed draws its own nested shares and its own batch order
    and dropout; accuracies are means over seeds and hits are stacked (seeds, N), so a paired comparison
    averages the seeds per clip.

    Returns ``(rows, hits)``: rows ``{"share", "start", "test accuracy", "seed accuracies", "clips", "steps",
    "skipped", "classes predicted", "seconds"}`` ("classes predicted": the fewest distinct test predictions
    of any seed), hits ``(share, start) → (seeds, N)`` per-clip hits. Taught in: 05_fp16_transfer
    """
    from thinlab import train as _train

    seeds = [lesson.seed] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, e.g. [0, 1, 2]")
    X_test, y_test = lesson.ds.X_test, np.asarray(lesson.ds.y_test)
    cast_pred = _train.predict(half.transfer_fp32_to_fp16(fp32), X_test, device=lesson.device)
    cast_hits = np.stack([cast_pred == y_test] * len(seeds))          # the cast has no randomness
    rows = [{"share": 0.0, "start": "from FP32", "test accuracy": float(cast_hits.mean()),
             "seed accuracies": [float(h.mean()) for h in cast_hits], "clips": 0, "steps": 0, "skipped": 0,
             "classes predicted": int(len(np.unique(cast_pred))), "seconds": 0.0}]
    hits = {(0.0, "from FP32"): cast_hits}
    starts = ("from FP32", "from scratch") + (("from FP32, mixed",) if mixed else ())
    runs = {}
    for s in seeds:
        shares = nested_shares(len(y), fractions, seed=s)
        for frac, idx in shares.items():
            extra = ("from scratch, FP32",) if scratch_fp32 and frac == min(fractions) else ()
            for start in starts + extra:
                scratch = start.startswith("from scratch")
                base, rate = (init, 3e-3) if scratch else (fp32, lr)
                m, h, _ = train_in(START_KINDS[start], base, X[idx], y[idx], epochs=epochs, lr=rate,
                                   set_stats=scratch, seed=s, device=lesson.device, growth_interval=growth_interval,
                                   desc=f"{start} {frac:.0%} seed {s}")
                pred = _train.predict(m, X_test, device=lesson.device)
                r = runs.setdefault((frac, start), {"hits": [], "classes": [], "skipped": 0, "seconds": 0.0,
                                                    "clips": int(len(idx))})
                r["hits"].append(pred == y_test)
                r["classes"].append(int(len(np.unique(pred))))
                r["skipped"] += h.skipped_steps
                r["seconds"] += h.seconds
    for (frac, start), r in runs.items():
        hits[(frac, start)] = np.stack(r["hits"])                       # (seeds, N)
        rows.append({"share": frac, "start": start, "test accuracy": float(hits[(frac, start)].mean()),
                     "seed accuracies": [float(x.mean()) for x in r["hits"]], "clips": r["clips"],
                     "steps": n_steps(r["clips"], epochs), "skipped": r["skipped"],
                     "classes predicted": min(r["classes"]), "seconds": r["seconds"]})
    return rows, hits


def first_step(fp32, X, y, *, lr: float = 1e-3, batch_size: int = 64, seed: int = 0) -> dict:
    """One AdamW step at learning rate ``lr`` from the trained ``fp32`` model on the first batch of (X, y),
    in pure FP16 and in mixed precision: how far each weight moves, in units of lr.

    Adam's first step moves every weight by about lr (|m̂| / √v̂ ≈ 1). In pure FP16 its second moment
    0.001·g² underflows for small gradients, so the step becomes lr·g/ε: too large for |g| > ε, too small
    (or lost to rounding) below; a gradient that underflows to 0 in float16 moves nothing at all.

    Both modes are measured over the same weights: those whose float32 gradient on this batch (the
    model in float32, the same dropout masks) is non-zero, i.e. every weight that had a gradient at all,
    so a weight whose float16 gradient underflowed counts in pure FP16 as one that did not move.
    Returns, per mode, ``{"over_2lr", "lost", "max_over_lr", "weights"}``: the share of those weights that
    moved more than 2·lr, the share that did not move at all (its update underflowed or rounded away), the
    largest move / lr, and how many weights the shares are over (the same number in both modes); plus
    ``"v_underflow"``: the share of those float32 gradients whose 0.001·g² is 0 in float16.
    Taught in: 05_fp16_transfer
    """
    xb = torch.as_tensor(np.asarray(X[:batch_size]), dtype=torch.float32)
    yb = torch.as_tensor(np.asarray(y[:batch_size])).long()
    ref = copy.deepcopy(fp32).cpu().float().train()           # the float32 gradient: which weights have one
    torch.manual_seed(seed)                                    # the same dropout masks as both modes below
    F.cross_entropy(ref(xb), yb).backward()
    g32 = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().ravel()
                     for p in ref.parameters()]).numpy()
    has_grad = g32 != 0
    out = {}
    for mode in ("pure", "mixed"):
        torch.manual_seed(seed)                                # the same dropout masks in both modes
        model = half.to_half(fp32, dtype=torch.float16) if mode == "pure" else copy.deepcopy(fp32).cpu()
        model = model.cpu().train()
        before = [p.detach().float().clone() for p in model.parameters()]
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, eps=1e-4 if mode == "pure" else 1e-8)
        scaler = precision.DynamicLossScaler()
        for _ in range(40):                                    # back off until a step is taken
            if not half.half_train_step(model, (xb, yb), opt, scaler, mode=mode).skipped:
                break
        moved = torch.cat([(p.detach().float() - b).abs().ravel() for p, b in zip(model.parameters(), before)])
        m = moved.numpy()[has_grad]                            # the same weights in both modes
        out[mode] = {"over_2lr": float(np.mean(m > 2 * lr)) if m.size else 0.0,
                     "lost": float(np.mean(m == 0)) if m.size else 0.0,
                     "max_over_lr": float(m.max() / lr) if m.size else 0.0, "weights": int(m.size)}
    nz = g32[has_grad]
    out["v_underflow"] = precision.underflow_fraction(0.001 * nz.astype(np.float64) ** 2) if nz.size else 0.0
    return out


def fp16_reasons(cmp, *, thesis_gap: float, underflow_with_scaling: float) -> list[str]:
    """Known reasons an FP32-vs-FP16 comparison (``cmp``, a :class:`thinlab.stats.Comparison`) can go either
    way, each worded from the numbers: the thesis's gap (a fraction) against this run's paired interval, and
    the share of gradients loss scaling still loses. For :func:`thinlab.teach.interpret`.
    Taught in: 05_fp16_transfer"""
    half_width = 100 * (cmp.high - cmp.low) / 2
    gap = 100 * thesis_gap
    return [f"the thesis's gap ({gap:.1f} points) is {'smaller than' if gap < half_width else 'at least'} half "
            f"the width of this run's paired interval ({half_width:.1f} points)",
            f"with loss scaling only {underflow_with_scaling:.3%} of the gradients underflow (section 2), so pure "
            "FP16 loses mainly small weight updates and Adam's state, whose effect grows with the number of steps",
            "runs this short are far from converged, so the budget can matter more than the format"]


def explain_transfer(rows, hits, lesson, *, chance: float, adam: dict | None = None, first: dict | None = None,
                     lr: float = 1e-3) -> dict:
    """Interpret :func:`transfer_runs` from its own numbers: where pure-FP16 retraining from FP32 fell below
    the cast model (paired over speakers), whether mixed precision held up there (so float16's optimizer
    state is to blame), where FP16 from scratch stayed near chance and whether the float32 control did too
    (so the budget, not float16, is to blame), and how far seeds spread.

    ``adam``: :func:`adam_state_loss` of the trained model's gradients; ``first``: :func:`first_step`.
    Returns ``{"lines": [sentence, ...], "facts": {...}}``; every direction word is chosen from the numbers
    the facts hold (paired comparisons as dicts, accuracies, standard errors).
    Taught in: 05_fp16_transfer
    """
    acc = {(r["share"], r["start"]): r for r in rows}
    shares = sorted({r["share"] for r in rows if r["share"] > 0})
    cast = hits[(0.0, "from FP32")]
    pct = lambda fs: ", ".join(f"{f:.0%}" for f in fs) or "no share"   # noqa: E731
    lines, facts = [], {"chance": chance}
    vs_cast = {f: lesson.compare(hits[(f, "from FP32")], cast, a="pure FP16 from FP32", b="cast only")
               for f in shares if (f, "from FP32") in hits}
    fell = [f for f, c in vs_cast.items() if c.verdict == "worse"]
    facts["pure_vs_cast"] = {str(f): c.as_dict() for f, c in vs_cast.items()}
    facts["fell_below_cast"] = fell
    lines.append(f"Pure FP16 retrained from the FP32 model fell below the cast model (accuracy {cast.mean():.3f}) "
                 f"beyond noise at {pct(fell)}" + (": " + ", ".join(f"{f:.0%} {vs_cast[f].acc_a:.3f}" for f in fell)
                                                     if fell else "") + ".")
    mixed = {f: lesson.compare(hits[(f, "from FP32, mixed")], hits[(f, "from FP32")], a="mixed", b="pure FP16")
             for f in fell if (f, "from FP32, mixed") in hits}
    facts["mixed_vs_pure_where_fell"] = {str(f): c.as_dict() for f, c in mixed.items()}
    if mixed:
        held = [f for f, c in mixed.items() if c.verdict == "better"]
        lines.append(f"Mixed precision from the same start (float16 arithmetic, FP32 weights and Adam state) scored "
                     + ", ".join(f"{f:.0%} {c.acc_a:.3f}" for f, c in mixed.items())
                     + f" there, above pure FP16 beyond noise at {pct(held)}.")
        if held:
            why = ("Where mixed precision held up, what pure FP16 lost is its float16 optimizer state and weights, "
                   "not float16 arithmetic (which mixed precision shares)")
            if adam:
                why += (f": for {adam['share']:.0%} of the trained CNN's gradients Adam's second moment 0.001·g² is 0 "
                        f"in float16, so its step lr·g/ε can reach {adam['step_over_lr']:.0f}× lr instead of about lr")
            if first:
                why += (f"; measured on one step at lr {lr:g}, {first['pure']['over_2lr']:.1%} of the weights moved "
                        f"more than 2·lr in pure FP16 and {first['mixed']['over_2lr']:.1%} in mixed precision")
            lines.append(why + ". Loss scaling cannot help here: the damage is done after the gradients are unscaled.")
        else:
            lines.append("Mixed precision did not hold up beyond noise either, so float16 storage is not shown to be "
                         "the cause here: retraining a trained model on a few clips for a few steps can also pull it "
                         "down (its batch-norm statistics are re-estimated from those clips alone).")
    spread = {f: acc[(f, "from FP32")]["seed accuracies"] for f in shares if (f, "from FP32") in acc}
    wide = {f: v for f, v in spread.items() if len(v) > 1 and max(v) - min(v) > 0.1}
    facts["seed_spread_pure"] = {str(f): [min(v), max(v)] for f, v in spread.items()}
    if wide:
        lines.append("Seeds disagree: pure FP16 from FP32 scored " + "; ".join(
            f"{min(v):.3f}-{max(v):.3f} at {f:.0%}" for f, v in wide.items()) + " over the seeds, so whether a "
            "run collapses depends on which clips and batches it drew: one seed's curve can jump between shares.")
    scratch = {f: (acc[(f, "from scratch")]["test accuracy"], lesson.interval(hits[(f, "from scratch")]).se)
               for f in shares if (f, "from scratch") in acc}
    stuck = [f for f, (a, se) in scratch.items() if near_chance(a, se, chance)]
    facts["scratch_near_chance"] = stuck
    facts["scratch"] = {str(f): {"acc": a, "se": se, "steps": acc[(f, "from scratch")]["steps"]}
                        for f, (a, se) in scratch.items()}
    if stuck:
        f0 = stuck[0]
        r0 = acc[(f0, "from scratch")]
        line = (f"FP16 from scratch stayed within two standard errors of chance ({chance:.3f}) at {pct(stuck)}; at "
                f"{f0:.0%} it made {r0['steps']} optimizer step{'s' * (r0['steps'] != 1)} and its weakest seed predicted only "
                f"{r0['classes predicted']} distinct class{'es' * (r0['classes predicted'] != 1)} on the test clips.")
        ctrl = acc.get((f0, "from scratch, FP32"))
        if ctrl is not None:
            c_se = lesson.interval(hits[(f0, "from scratch, FP32")]).se
            c_near = near_chance(ctrl["test accuracy"], c_se, chance)
            facts["scratch_fp32_control"] = {"share": f0, "acc": ctrl["test accuracy"], "se": c_se, "near_chance": c_near}
            line += (f" The same run in float32 scored {ctrl['test accuracy']:.3f}, "
                     + ("also near chance: the budget (too few steps from random weights), not float16, keeps it "
                        "there." if c_near else
                        "well above chance: here float16 itself stops it learning (small updates lost to rounding, "
                        "Adam's state underflowing)."))
        lines.append(line)
    elif scratch:
        lines.append(f"FP16 from scratch rose above chance ({chance:.3f}) beyond two standard errors at every share.")
    return {"lines": lines, "facts": facts}


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
