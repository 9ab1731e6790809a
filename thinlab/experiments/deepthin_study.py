"""Lesson 03's experiments as library calls: layouts, sizes and floors, the run grid and its verdicts,
the inference timing tables.

The kernels live in :mod:`thinlab.deepthin` and :mod:`thinlab.lowrank`; these functions run them over
the lesson's grids and return plain rows that the lesson displays, charts and writes to its JSON.

Taught in: 03_deepthin
"""
from __future__ import annotations

import math
import time

import numpy as np

from thinlab import deepthin, lowrank
from thinlab.experiments import compare


def position_rows(pos, n: int, used: int) -> list[dict]:
    """One row per cell of ``pos`` (flat positions t): ``{row, column, t, W_aux row}``.

    ``W_aux row`` is t // n for the first ``used`` positions, else "unused" (for a categorical heatmap).

    Taught in: 03_deepthin
    """
    return [{"row": int(i), "column": int(j), "t": int(t), "W_aux row": str(t // n) if t < used else "unused"}
            for (i, j), t in np.ndenumerate(np.asarray(pos))]


def layouts(Q: int, R: int, ns, *, rank: int, seed: int = 0, n_alignments=None) -> tuple[list[dict], dict]:
    """DeepThin layers W (Q, R) from the paper's random initialisation at each auxiliary width n.

    ``n_alignments(Q, R, n)`` (the lesson's exercise) is checked against the library's alignment
    classes. Returns rows ``{n, m, gcd(n, Q), offsets (your n_alignments), rank(W), stored numbers}``
    and the matrices ``{"n = …, gcd = …": W}``.

    Taught in: 03_deepthin
    """
    rows, mats = [], {}
    for n in ns:
        m = -(-Q * R // n)                                   # ceil(Q·R / n): rows of W_aux
        Xf, Wf = deepthin.init_factors(m, n, rank, target_std=1.0, rng=seed)
        W = deepthin.reconstruct(Xf, Wf, Q=Q, R=R)
        classes = deepthin.FusedDeepThin(Xf, Wf, Q=Q, R=R).n_classes_
        offsets = classes if n_alignments is None else n_alignments(Q, R, n)
        assert offsets == classes, f"n_alignments({Q}, {R}, {n}) = {offsets}, the library counts {classes}"
        g = math.gcd(n, Q)
        rows.append({"n": n, "m": m, "gcd(n, Q)": g, "offsets (your n_alignments)": int(offsets),
                     "rank(W)": int(np.linalg.matrix_rank(W)), "stored numbers": (m + n) * rank})
        mats[f"n = {n}, gcd = {g}"] = W
    return rows, mats


def floors(shapes: dict, *, lower_bound=deepthin.deepthin_lower_bound, wide: int = 1024) -> dict:
    """Smallest size fractions of the hidden layers together: DeepThin, rank-1 factorisation, and
    DeepThin for the same network with ``wide``-unit hidden layers.

    ``lower_bound(Q, R)`` is one layer's DeepThin floor (the lesson's exercise or the library's).

    Taught in: 03_deepthin
    """
    dense = sum(4 * q * r for q, r in shapes.values())
    names = list(shapes)
    wide_shapes = {k: (shapes[k][0] if i == 0 else wide, wide) for i, k in enumerate(names)}
    return {"deepthin": sum(lower_bound(*s) * 4 * s[0] * s[1] for s in shapes.values()) / dense,
            "lowrank": sum(lowrank.lowrank_bytes(s, 1) for s in shapes.values()) / dense,
            "deepthin_1024_wide": sum(lower_bound(*s) * 4 * s[0] * s[1] for s in wide_shapes.values())
            / sum(4 * q * r for q, r in wide_shapes.values()),
            "wide": wide}


def plan_rows(shapes: dict, factors) -> list[dict]:
    """The network plans at each factor: DeepThin ``m, n, r, gcd`` and the low-rank rank per layer.

    Taught in: 03_deepthin
    """
    rows = []
    for F in factors:
        p = deepthin.plan_network(shapes, size_fraction=1 / F)
        try:
            ranks = compare.lowrank_ranks(shapes, size_fraction=1 / F)
        except ValueError:                                   # below rank factorisation's floor
            ranks = {}
        rows += [{"factor": F, "layer": k, "m": s.m, "n": s.n, "DeepThin r": s.r, "gcd(n, Q)": s.gcd,
                  "low-rank r": ranks.get(k, "—")} for k, s in p.layers.items()]
    return rows


def rank_curves(shapes: dict, layers, *, lower_bound=deepthin.deepthin_lower_bound, points: int = 24) -> list[dict]:
    """The rank that fits a budget, per layer, for DeepThin and for low rank, over log-spaced factors.

    Rows ``{compression, rank, method ("DeepThin" / "low rank"), layer, series}``; each method stops at
    its floor.

    Taught in: 03_deepthin
    """
    top = 1 / min(lower_bound(*shapes[k]) for k in shapes)
    grid = sorted({int(round(f)) for f in np.geomspace(5, top, points)})
    rows = []
    for k in layers:
        Q, R = shapes[k]
        for F in grid:
            if F <= 1 / lower_bound(Q, R):
                rows.append({"compression": F, "rank": deepthin.deepthin_size(Q, R, size_fraction=1 / F).r,
                             "method": "DeepThin", "layer": k})
            if lowrank.lowrank_bytes((Q, R), 1) <= 4 * Q * R / F:
                rows.append({"compression": F, "rank": lowrank.rank_for_budget((Q, R), size_fraction=1 / F),
                             "method": "low rank", "layer": k})
    return [dict(r, series=f"{r['method']} {r['layer']} {shapes[r['layer']][0]}x{shapes[r['layer']][1]}")
            for r in rows]


def rank_contrast(curves: list[dict], layer: str) -> dict:
    """For one layer of :func:`rank_curves`: at the sizes both reach, is DeepThin's rank the same as
    low rank's everywhere, at least it everywhere, and higher at how many sizes.

    Returns ``{same, at_least, higher, shared}`` (``shared``: the number of sizes both reach).

    Taught in: 03_deepthin
    """
    dt = {r["compression"]: r["rank"] for r in curves if r["layer"] == layer and r["method"] == "DeepThin"}
    lr = {r["compression"]: r["rank"] for r in curves if r["layer"] == layer and r["method"] == "low rank"}
    both = sorted(set(dt) & set(lr))
    return {"same": all(dt[F] == lr[F] for F in both), "at_least": all(dt[F] >= lr[F] for F in both),
            "higher": sum(dt[F] > lr[F] for F in both), "shared": len(both),
            "beyond": len(set(dt) - set(lr))}


def init_study(Q: int, R: int, ranks, *, seed: int = 0) -> tuple[list[dict], dict]:
    """The paper's initialisation at each rank on a coprime layout (n = Q − 1): std / σ and excess kurtosis.

    σ is Glorot's √(2/(Q+R)). Returns rows ``{rank, m, n, std / σ, excess kurtosis, 6 / r}`` and the
    flattened W entries per rank (for histograms).

    Taught in: 03_deepthin
    """
    sigma = deepthin.glorot_std(Q, R)
    n = Q - 1                                               # n = Q − 1 is always coprime to Q
    m = -(-Q * R // n)
    rows, entries = [], {}
    for r in ranks:
        Xf, Wf = deepthin.init_factors(m, n, r, target_std=sigma, rng=seed)
        w = deepthin.reconstruct(Xf, Wf, Q=Q, R=R).ravel()
        z = (w - w.mean()) / w.std()
        rows.append({"rank": r, "m": m, "n": n, "std / σ": float(w.std() / sigma),
                     "excess kurtosis": float((z ** 4).mean() - 3), "6 / r": 6 / r})
        entries[r] = w
    return rows, entries


def budgets(shapes: dict, methods, factors) -> dict:
    """Hidden-layer bytes each method's plan takes at each factor, None below its floor.

    Returns ``{factor: {method: bytes or None}}`` ("dense" skipped); every plan is checked against the
    budget dense / factor.

    Taught in: 03_deepthin
    """
    dense = sum(4 * q * r for q, r in shapes.values())
    out = {}
    for F in factors:
        out[F] = {}
        for m in methods:
            if m == "dense":
                continue
            try:
                b = compare.plan(m, shapes, size_fraction=1 / F)["bytes"]
            except ValueError:
                b = None                                    # below this method's floor
            assert b is None or b <= dense / F, f"{m} at 1/{F} is over budget"
            out[F][m] = b
    return out


def reachable(method: str, shapes: dict, factor: float) -> bool:
    """Can ``method`` meet 1/``factor`` of the dense hidden bytes of ``shapes`` (False below its floor)?

    Taught in: 03_deepthin
    """
    try:
        compare.plan(method, shapes, size_fraction=1 / factor)
    except ValueError:
        return False
    return True


def _dnn_like(ds):
    from thinlab import models
    return models.build_model("dnn", len(ds.labels), n_frames=ds.X_train.shape[1], n_mels=ds.X_train.shape[2])


def run_grid(ds, *, factors, methods, seeds, epochs: int, max_train=None, device=None, keep="deepthin",
             log=print) -> tuple[list[dict], dict, float]:
    """Train every method at every reachable factor and seed from scratch (``compare.train_compressed``).

    One dense run per seed (at the first factor). Keeps the ``keep`` method's first-seed model per factor.
    Returns ``(runs, kept models {factor: model}, seconds)``; ``log`` gets one line per (method, size).

    Taught in: 03_deepthin
    """
    shapes = compare.hidden_shapes(_dnn_like(ds))
    runs, kept, t0 = [], {}, time.perf_counter()
    for F in factors:
        for method in methods:
            if method == compare.REFERENCE and F != factors[0]:
                continue                                     # one dense reference per seed
            if method != compare.REFERENCE and not reachable(method, shapes, F):
                continue                                     # below this method's floor
            accs, r = [], None
            for seed in seeds:
                r = compare.train_compressed(ds, method=method, size_fraction=1 / F, seed=seed, epochs=epochs,
                                             eval_splits=("test",), max_train=max_train, device=device,
                                             keep_model=method == keep and seed == seeds[0])
                if "model" in r:
                    kept[F] = r.pop("model")
                runs.append(r)
                accs.append(r["acc"])
            if accs and log:
                log(f"{'full' if method == compare.REFERENCE else f'1/{F}':>6} {method:<18} accuracy {np.mean(accs):.3f}"
                    f" (seeds {', '.join(f'{a:.3f}' for a in accs)}), {r['bytes']:,} bytes, {r['seconds']:.0f} s per run")
    return runs, kept, time.perf_counter() - t0


def whole_model_factor(runs: list[dict]) -> dict:
    """Mean whole-model compression (dense total bytes / total bytes) per ``"method 1/F"``.

    Taught in: 03_deepthin
    """
    dense = next(r["total_bytes"] for r in runs if r["method"] == "dense")
    groups: dict = {}
    for r in runs:
        if r["method"] != "dense":
            groups.setdefault(f"{r['method']} 1/{round(1 / r['size_fraction'])}", []).append(dense / r["total_bytes"])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def verdict_lines(rel: list[dict], summary: list[dict], factors, methods) -> list[str]:
    """One line per factor: DeepThin's accuracy, the best method there, and the paired verdicts.

    ``rel`` is :func:`thinlab.experiments.compare.paired_verdicts`' rows, ``summary`` is
    :func:`compare.summarize`'s.

    Taught in: 03_deepthin
    """
    acc = {(s["method"], s["factor"]): s["acc_mean"] for s in summary}
    lines = []
    for F in factors:
        here = [r for r in rel if r["factor"] == F]
        if not here:
            continue
        best = max((m for m in methods if (m, F) in acc and m != "dense"), key=lambda m: acc[(m, F)])
        by = {v: [r["method"] for r in here if r["verdict"] == v] for v in ("better", "worse", "within noise")}
        lines.append(f"1/{F}: DeepThin {acc[('deepthin', F)]:.3f}; best here: {best} {acc[(best, F)]:.3f}; "
                     + "; ".join(f"DeepThin {v} than {', '.join(ms)}" if v != "within noise" else
                                 f"within noise of {', '.join(ms)}" for v, ms in by.items() if ms))
    return lines


def wins_and_losses(rel: list[dict], factors, *, n_speakers: int) -> list[str]:
    """Sentences: the sizes where no method beats DeepThin beyond noise, and what beats it where.

    Taught in: 03_deepthin
    """
    wins = [F for F in factors if any(r["factor"] == F for r in rel)
            and all(r["verdict"] != "worse" for r in rel if r["factor"] == F)]
    losses = sorted({(r["method"], r["factor"]) for r in rel if r["verdict"] == "worse"}, key=lambda t: (t[1], t[0]))
    noise = f"beyond noise: paired 95% interval over {n_speakers} test speakers"
    out = [f"At {', '.join('1/%d' % F for F in wins)} no method beats DeepThin ({noise}); a method may still "
           "score higher within the noise." if wins else f"At every size some method beats DeepThin ({noise})."]
    if losses:
        out.append(f"It loses ({noise}) to: " + ", ".join(f"{m} at 1/{F}" for m, F in losses))
    return out


def rank1_runs(runs: list[dict]) -> list[dict]:
    """The comparison's ``deepthin`` runs (r = 1) in the form :func:`deepthin_rank.rank_comparison` reuses.

    Taught in: 03_deepthin
    """
    return [{"factor": round(1 / r["size_fraction"]), "rank": "1", "seed": r["seed"], "acc": r["acc"],
             "n_eval": r["n_eval"], "bytes": r["bytes"],
             "layers": {k: [d["m"], d["n"], d["r"]] for k, d in r["detail"].items()},
             "seconds": r["seconds"], "same_as_rank_1": False, "hits": r["hits"], "speakers": r["speakers"]}
            for r in runs if r["method"] == "deepthin"]


def timing_table(where: dict) -> list[dict]:
    """Flat rows of timing results grouped by what was timed (``{label: timing rows}``).

    Taught in: 03_deepthin
    """
    return [{"what": k, "batch": r["batch"], "dense MB read": r["dense_bytes"] / 2**20,
             "stored KB": r["stored_bytes"] / 2**10, "dense µs": r["dense_us"], "fused µs": r["fused_us"],
             "speedup": r["speedup"], "method": r["method"]} for k, rows in where.items() for r in rows]


def _fits(nbytes, level, caches):
    size = caches.get(level)
    return f"the size of {level} unknown" if size is None else (
        f"{'within' if nbytes <= size else 'beyond'} {level} ({size / 2**20:.1f} MB)")


def timing_notes(paper_rows, tfkaldi_rows, course_rows, *, caches: dict, batches, threads) -> list[str]:
    """Sentences explaining the timings: bytes read, reuse over a batch, caches, small layers, threads.

    ``paper_rows``/``tfkaldi_rows`` come from :func:`thinlab.experiments.timing.layer_timing`,
    ``course_rows`` from :func:`timing.inference_timing` (its ``hidden.1`` rows are used when present).

    Taught in: 03_deepthin
    """
    at = lambda rows, B: next(r for r in rows if r["batch"] == B)   # noqa: E731
    b_lo, b_hi = min(batches), max(batches)
    big1, bigB, tf1 = at(paper_rows, b_lo), at(paper_rows, b_hi), at(tfkaldi_rows, b_lo)
    shape = f"{big1['Q']} x {big1['R']}"
    notes = [
        f"Bytes: at batch {b_lo} the dense {shape} product reads {big1['dense_bytes'] / 2**20:.0f} MB of weights for "
        f"{b_lo} row(s); the fused one reads {big1['stored_bytes'] / 2**10:.0f} KB "
        f"({big1['dense_bytes'] / big1['stored_bytes']:.0f}x less) plus its input: {big1['dense_us']:.0f} µs against "
        f"{big1['fused_us']:.0f} µs, {big1['speedup']:.1f}x.",
        f"Reuse and batch: at batch {b_hi} the dense product reuses every weight {b_hi} times "
        f"({bigB['dense_us'] / b_hi:.1f} µs per row instead of {big1['dense_us'] / b_lo:.1f}), while the fused product "
        f"redoes its correlation for each row ({bigB['fused_us'] / b_hi:.1f} µs per row): the speedup is "
        f"{bigB['speedup']:.1f}x.",
        f"Caches: the {shape} weights ({big1['dense_bytes'] / 2**20:.0f} MB) are "
        f"{_fits(big1['dense_bytes'], 'L2', caches)}, the TFKaldi network's {tf1['dense_bytes'] / 2**20:.0f} MB "
        f"{_fits(tf1['dense_bytes'], 'L3', caches)}; its fused factors, {tf1['stored_bytes'] / 2**10:.0f} KB, are "
        f"{_fits(tf1['stored_bytes'], 'L2', caches)}. TFKaldi at batch {b_lo}: {tf1['dense_us']:.0f} µs dense, "
        f"{tf1['fused_us']:.0f} µs fused ({tf1['speedup']:.1f}x).",
    ]
    small = [r for r in course_rows if r["layer"] == "hidden.1" and r["batch"] == b_lo]
    if small:
        s = small[0]
        notes.append(f"Small layers: the course DNN's hidden.1 ({s['Q']} x {s['R']}) has "
                     f"{s['dense_bytes'] / 2**10:.0f} KB of weights, {_fits(s['dense_bytes'], 'L2', caches)}; dense "
                     f"takes {s['dense_us']:.1f} µs at batch {b_lo} and the fused product {s['fused_us']:.1f} µs "
                     f"({s['speedup']:.1f}x): with little to read, the fixed cost of the correlation (FFT calls or a "
                     "GEMM, a few dozen numpy calls in all) is what is left.")
    notes.append(f"Threads: both sides ran on {threads} thread(s); numpy's dense product spreads one GEMM over all "
                 "of them, the fused product its FFTs over the rows of a batch, and a single row gives it nothing "
                 "to split.")
    return notes


def projection_rows(W, factors, *, evaluate) -> list[dict]:
    """Project a trained W (Q, R) onto DeepThin's structure at each factor and score it.

    Re-layout W back into W_aux (m, n), keep its best rank-r part, re-layout again. Rows
    ``{factor, m, n, r, gcd, bytes, relative error, accuracy}`` with ``evaluate(W_hat)``.

    Taught in: 03_deepthin
    """
    W = np.asarray(W)
    rows = []
    for F in factors:
        s = deepthin.deepthin_size(*W.shape, size_fraction=1 / F)
        A, B = lowrank.truncated_svd(deepthin.unrelayout(W, m=s.m, n=s.n), rank=s.r)   # best rank-r W_aux
        W_hat = deepthin.reconstruct(A, B, Q=s.Q, R=s.R)
        rows.append({"factor": F, "m": s.m, "n": s.n, "r": s.r, "gcd": s.gcd, "bytes": s.bytes,
                     "relative error": float(np.linalg.norm(W - W_hat) / np.linalg.norm(W)),
                     "accuracy": float(evaluate(W_hat))})
    return rows


def floor_layers(plans: list[dict]) -> list[tuple]:
    """``(factor, layer)`` of the planned layers with gcd(n, Q) > 1 (stuck at a block-wise low-rank floor).

    Taught in: 03_deepthin
    """
    return sorted({(p["factor"], p["layer"]) for p in plans if p["gcd(n, Q)"] > 1})


def floor_notes(aligned, summary: list[dict]) -> list[str]:
    """Sentences for the sizes where a layer sits at n = Q: DeepThin against DeepThin-shuffled there.

    Taught in: 03_deepthin
    """
    acc = {(s["method"], s["factor"]): s["acc_mean"] for s in summary}
    out = []
    for F in sorted({F for F, _ in aligned}):
        at = [k for f, k in aligned if f == F]
        out.append(f"At 1/{F}, {', '.join(at)} sit at their floor with n = Q (section 3): rank-1 factorisation, "
                   f"the re-layout adds nothing there. DeepThin {acc.get(('deepthin', F), float('nan')):.3f} vs "
                   f"DeepThin-shuffled {acc.get(('deepthin_shuffled', F), float('nan')):.3f}, whose permutation "
                   "breaks those blocks.")
    return out


def trained_timing(models: dict, *, layer: str = "hidden.1", **kw) -> list[dict]:
    """:func:`thinlab.experiments.timing.inference_timing` of each trained DeepThin model ``{factor: model}``.

    First checks that the paper-layout reconstruction of ``layer`` equals torch's weightᵀ (the (out, in)
    → (in, out) boundary). Rows get their ``factor``.

    Taught in: 03_deepthin
    """
    from thinlab.experiments import timing

    rows = []
    for F, model in models.items():
        Xf, Wf, Q, R = timing.deepthin_factors(model)[layer]
        w_torch = dict(model.named_modules())[layer].weight.detach().cpu().numpy()      # torch (R, Q)
        assert np.allclose(deepthin.reconstruct(Xf, Wf, Q=Q, R=R), w_torch.T, atol=1e-6)  # paper W = weightᵀ
        rows += [dict(r, factor=F) for r in timing.inference_timing(model, **kw)]
    return rows
