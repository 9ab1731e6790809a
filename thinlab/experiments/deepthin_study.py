"""Lesson 03's experiments as library calls: layouts, sizes and floors, the run grid and its verdicts,
the inference timing tables.

The kernels live in :mod:`thinlab.deepthin` and :mod:`thinlab.lowrank`; these functions run them over
the lesson's grids and return plain rows that the lesson displays, charts and writes to its JSON.

Taught in: 03_deepthin
"""
from __future__ import annotations

import math
import numbers
import time

import numpy as np

from thinlab import deepthin, lowrank, teach
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
            if compare.is_reference(m):
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
            if compare.is_reference(method) and F != factors[0]:
                continue                                     # one dense reference per seed
            if not compare.is_reference(method) and not reachable(method, shapes, F):
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
                log(f"{'full' if compare.is_reference(method) else f'1/{F}':>6} {method:<18} accuracy {np.mean(accs):.3f}"
                    f" (seeds {', '.join(f'{a:.3f}' for a in accs)}), {r['bytes']:,} bytes, {r['seconds']:.0f} s per run")
    return runs, kept, time.perf_counter() - t0


def whole_model_factor(runs: list[dict]) -> dict:
    """Mean whole-model compression (dense total bytes / total bytes) per ``"method 1/F"``.

    Taught in: 03_deepthin
    """
    dense = next(r["total_bytes"] for r in runs if compare.is_reference(r["method"]))
    groups: dict = {}
    for r in runs:
        if not compare.is_reference(r["method"]):
            groups.setdefault(f"{r['method']} 1/{round(1 / r['size_fraction'])}", []).append(dense / r["total_bytes"])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def verdict_lines(rel: list[dict], summary: list[dict], factors, methods) -> list[str]:
    """One line per factor: DeepThin's accuracy, the highest mean accuracy there, and the paired verdicts.

    ``rel`` is :func:`thinlab.experiments.compare.paired_verdicts`' rows, ``summary`` is
    :func:`compare.summarize`'s. The highest mean is named as such: it may be within noise of DeepThin.

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
        lines.append(f"1/{F}: DeepThin {acc[('deepthin', F)]:.3f}; highest mean: {best} {acc[(best, F)]:.3f}; "
                     + "; ".join(f"DeepThin {v} than {', '.join(ms)} (beyond noise)" if v != "within noise" else
                                 f"within noise of {', '.join(ms)}" for v, ms in by.items() if ms))
    return lines


#: readable names of the methods DeepThin is compared with
LABELS = {"deepthin": "DeepThin", "deepthin_shuffled": "DeepThin-shuffled", "hashed": "HashedNets",
          "lowrank": "rank factorisation", "prune": "gradual pruning", "narrow": "the narrower network"}

#: reasons any comparison of this lesson can go either way (quoted where a result is not the expected one)
COMMON_REASONS = (
    "the paper's TFKaldi layers are 2048 wide and ours narrower (section 3), so at the same factor every method "
    "keeps fewer numbers per layer and the methods' floors are closer",
    "keyword spotting on one-second clips is data-limited: with few training clips a tiny model is limited by the "
    "data rather than by how its bytes are laid out",
    "the test split has few speakers, so a difference of a few points is often within noise",
)

#: DeepThin against each method: what to expect (teach.interpret's ``expected``) and why, and the known
#: reasons the comparison can go either way
EXPECTATIONS = {
    "deepthin_shuffled": ("similar", "the same stored numbers, the same parameter count and the same rank behaviour "
                          "(a random permutation lifts W's rank above r just as the re-layout does); only the "
                          "order of the weights differs",
                          ("shuffling keeps the parameter count and the rank behaviour, so only the order of the "
                           "weights can matter, and a random order is not obviously worse for training",)),
    "hashed": ("better", "the paper's smallest margin (6 % relative error on TFKaldi)",
               ("HashedNets also lets every weight draw on shared numbers in a random pattern, with one free "
                "number per bucket where DeepThin's weights are products of two",
                "the paper's margin over HashedNets was its smallest (6 %), easily lost in noise")),
    "lowrank": ("better", "DeepThin lifts the rank limit of rank factorisation (paper: 60 %)",
                ("for a square layer DeepThin's smallest m + n equals rank factorisation's Q + R, so only the "
                 "re-layout differs there",)),
    "prune": ("better", "the paper's 57 % over pruning",
              ("gradual pruning starts from a dense network and keeps the weights that matter; its CSR indices cost "
               "bytes, but at moderate factors that can be enough",)),
    "narrow": ("better", "the paper's 23 % over same-size networks",
               ("a narrower dense network trains easily and, on a data-limited task, can be as good as any "
                "compressed wide one",)),
}


def comparisons(runs: list[dict], *, reference: str = "deepthin") -> dict:
    """``{(method, factor): thinlab.stats.Comparison}`` of ``reference`` against each method at each size.

    The same paired speaker bootstrap as :func:`thinlab.experiments.compare.paired_verdicts` (per-clip
    correctness averaged over seeds), kept as :class:`thinlab.stats.Comparison` objects so that
    :func:`thinlab.teach.interpret` can word each result from its numbers.

    Taught in: 03_deepthin
    """
    from thinlab import stats

    groups: dict = {}
    for r in runs:
        if "hits" not in r:
            raise ValueError("comparisons needs the per-clip 'hits' that train_compressed returns; rerun the grid")
        groups.setdefault((r["method"], r["size_fraction"]), []).append(r)
    out = {}
    for method, frac, ref, rs in compare.against(groups, reference):
        a = np.stack([np.asarray(r["hits"], dtype=float) for r in ref])      # (seeds, clips)
        b = np.stack([np.asarray(r["hits"], dtype=float) for r in rs])
        out[(method, round(1 / frac))] = stats.paired_compare(a, b, np.asarray(ref[0]["speakers"]),
                                                              a=LABELS.get(reference, reference),
                                                              b=LABELS.get(method, method))
    return out


def _sizes(fs) -> str:
    return ", ".join(f"1/{F}" for F in fs) or "none"


def interpretations(cmps: dict, factors, methods) -> list[str]:
    """Computed sentences about DeepThin against every other method at every size.

    For each method: one :func:`thinlab.teach.interpret` sentence per size (which way it went, the paired
    interval, beyond noise or not), then one line that sets the run against the expectation
    (:data:`EXPECTATIONS`) and, where the run did not show it, the known reasons it can go either way.
    Every word of direction is chosen from the numbers.

    Taught in: 03_deepthin
    """
    from thinlab import teach

    out = []
    for m in methods:
        if m in ("dense", "deepthin") or m not in EXPECTATIONS:
            continue
        here = [(F, cmps[(m, F)]) for F in factors if (m, F) in cmps]
        if not here:
            continue
        expected, why, reasons = EXPECTATIONS[m]
        for F, c in here:
            out.append(teach.interpret(c, expected=expected, claim=f"1/{F}, DeepThin against {LABELS[m]}"))
        by = {v: [F for F, c in here if c.verdict == v] for v in ("better", "worse", "within noise")}
        agree = {"better": by["better"], "similar": by["within noise"]}[expected]
        exp_words = ("DeepThin ahead" if expected == "better" else "no difference beyond noise")
        line = (f"→ DeepThin against {LABELS[m]}: expected {exp_words} – {why}. This run: DeepThin better beyond "
                f"noise at {_sizes(by['better'])}; worse beyond noise at {_sizes(by['worse'])}; within noise at "
                f"{_sizes(by['within noise'])}")
        if len(agree) == len(here):
            line += " – as expected at every size."
        else:
            line += ((f" – the expectation held only at {_sizes(agree)}." if agree else
                      " – the expectation did not show at any size.") + " Known reasons it can go either way: "
                     + "; ".join((*reasons, *COMMON_REASONS)) + ".")
        out.append(line)
    return out


def relayout_answer(cmps: dict, factors) -> str:
    """One computed answer to "does the re-layout buy accuracy over a random permutation of the same weights?".

    Taught in: 03_deepthin
    """
    here = [(F, cmps[("deepthin_shuffled", F)]) for F in factors if ("deepthin_shuffled", F) in cmps]
    if not here:
        return "DeepThin-shuffled was not run: no answer to whether the re-layout beats a random permutation."
    by = {v: [F for F, c in here if c.verdict == v] for v in ("better", "worse", "within noise")}
    head = (f"Does the re-layout buy accuracy over a random permutation of the same weights? "
            + (f"Yes at {_sizes(by['better'])} (DeepThin better beyond noise)" if by["better"] else
               "Not in this run: at no size is DeepThin better than DeepThin-shuffled beyond noise"))
    rest = [f"within noise at {_sizes(by['within noise'])}" if by["within noise"] else "",
            f"DeepThin-shuffled better beyond noise at {_sizes(by['worse'])}" if by["worse"] else ""]
    rest = [r for r in rest if r]
    return (head + ("; " + "; ".join(rest) if rest else "") + ". Both keep the same stored numbers and lift the "
            "rank the same way. What the ordered layout does give is a way to compute Y = X·W without building W, "
            "the fused product of section 6, whose speed is measured there (the shuffled variant has none).")


def explorer_start(rows: list[dict], *, baseline: float, chance: float, keep: float = deepthin.OPENING_KEEP) -> tuple[int, str]:
    """The factor the DeepThin explorer should open at, and why (a sentence from the numbers).

    ``rows``: :func:`projection_rows`. :func:`thinlab.deepthin.opening_factor`'s rule on their accuracies: the largest
    factor whose projected layer keeps at least ``keep`` of the dense model's accuracy above chance; if
    none does, the smallest factor (closest to dense). ``deepthin_explorer(W, evaluate=...,
    chance=...)`` opens by the same rule when no ``factor`` is given.

    Taught in: 03_deepthin
    """
    if not rows:
        raise ValueError("explorer_start needs at least one projection row")
    acc = {r["factor"]: r["accuracy"] for r in rows}
    o = deepthin.opening_factor(list(acc), acc.__getitem__, baseline=baseline, chance=chance, keep=keep)
    return o["factor"], o["why"]


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
    """Flat rows of timing results grouped by what was timed (``{label: timing rows}``), for
    :func:`thinlab.teach.table` (``dense weights`` and ``stored`` in bytes).

    Taught in: 03_deepthin
    """
    return [{"what": k, "batch": r["batch"], "dense weights": r["dense_bytes"], "stored": r["stored_bytes"],
             "dense µs": float(r["dense_us"]), "fused µs": float(r["fused_us"]), "speedup": float(r["speedup"]),
             "algorithm": r["algorithm"]} for k, rows in where.items() for r in rows]


def accuracy_table(summary: list[dict], methods) -> list[dict]:
    """One row per method, one column per size: ``"0.812 ± 0.014"`` (mean ± std over seeds; blank where
    the method cannot reach the size), for :func:`thinlab.teach.table`.

    Taught in: 03_deepthin
    """
    cols = sorted({s["factor"] for s in summary})
    by = {(s["method"], s["factor"]): s for s in summary}
    return [{"method": m, **{("full size" if F == 1 else f"1/{F}"):
                             (f"{by[(m, F)]['acc_mean']:.3f} ± {by[(m, F)]['acc_std']:.3f}" if (m, F) in by else None)
                             for F in cols}} for m in methods if any(k[0] == m for k in by)]


def relative_table(rel: list[dict], paper: dict) -> list[dict]:
    """The paper's Table 1 on our run: per method the relative improvement in error at each size, its
    average over sizes and the paper's TFKaldi figure (fractions, None where absent).

    Taught in: 03_deepthin
    """
    factors = sorted({r["factor"] for r in rel})
    out = []
    for m in dict.fromkeys(r["method"] for r in rel):
        vals = {F: r["relative_improvement"] for r in rel if r["method"] == m for F in [r["factor"]]}
        got = [v for v in vals.values() if v == v]
        out.append({"method": m, **{f"1/{F}": vals.get(F) for F in factors},
                    "average": float(np.mean(got)) if got else None, "paper (TFKaldi)": paper.get(m)})
    return out


#: a speedup (dense time / fused time) at or above this is "faster", at or below its inverse "slower",
#: anything between "about the same speed": timings on a shared machine move by a few percent
SAME_SPEED = 1.05


def speed_verdict(speedup: float) -> str:
    """``"faster"`` (speedup ≥ :data:`SAME_SPEED`), ``"slower"`` (≤ 1 / SAME_SPEED) or ``"about the same"``.

    The one rule every timing sentence of lesson 03 uses, so a speedup of 1.03 is never called a win
    in one sentence and "about the same speed" in the next.

    >>> speed_verdict(1.2), speed_verdict(1.03), speed_verdict(0.97), speed_verdict(0.5)
    ('faster', 'about the same', 'about the same', 'slower')

    Taught in: 03_deepthin
    """
    if speedup >= SAME_SPEED:
        return "faster"
    if speedup <= 1 / SAME_SPEED:
        return "slower"
    return "about the same"


def _fits(nbytes, level, caches):
    size = caches.get(level)
    return f"the size of {level} unknown" if size is None else (
        f"{'within' if nbytes <= size else 'beyond'} {level} ({teach.human_bytes(size)})")


def _x(speedup: float) -> str:
    """The speedup (dense time / fused time) and what it means, by :func:`speed_verdict`.

    >>> _x(3.2)
    '3.20x: the fused product is faster'
    >>> _x(1.03)
    '1.03x: about the same speed'
    >>> _x(0.41)
    '0.41x: the fused product is slower'
    """
    verdict = speed_verdict(speedup)
    return f"{speedup:.2f}x: " + ("about the same speed" if verdict == "about the same" else
                                  f"the fused product is {verdict}")


def _us(v: float) -> str:
    return f"{v:,.0f} µs" if v >= 100 else f"{v:.1f} µs"


def timing_notes(paper_rows, tfkaldi_rows, course_rows, *, caches: dict, batches, threads) -> list[str]:
    """Sentences explaining the timings from their numbers: where the fused product wins and loses, and
    why – bytes read, reuse over a batch, caches, small layers, threads.

    ``paper_rows``/``tfkaldi_rows`` come from :func:`thinlab.experiments.timing.layer_timing`,
    ``course_rows`` from :func:`timing.inference_timing` (with ``factor``; its ``hidden.1`` and ``all``
    rows are used when present). Every word of direction (faster / slower / about the same, rises /
    falls, within / beyond a cache) is chosen from the numbers by one rule (:func:`speed_verdict`), so
    no speedup can contradict a sentence. Byte counts are decimal (:func:`thinlab.teach.human_bytes`,
    as in the lesson's tables), and so is GB/s.

    Taught in: 03_deepthin
    """
    hb = teach.human_bytes
    at = lambda rows, B: next(r for r in rows if r["batch"] == B)   # noqa: E731
    b_lo, b_hi = min(batches), max(batches)
    big1, bigB, tf1 = at(paper_rows, b_lo), at(paper_rows, b_hi), at(tfkaldi_rows, b_lo)
    shape = f"{big1['Q']} x {big1['R']}"
    labelled = [(f"the {shape} layer", r) for r in paper_rows] + [("the TFKaldi network", r) for r in tfkaldi_rows]
    labelled += [(f"the course DNN at 1/{r['factor']}" if "factor" in r else "the course DNN", r)
                 for r in course_rows if r["layer"] == "all"]
    groups = {v: ", ".join(f"{w} at batch {r['batch']} ({r['speedup']:.2f}x)" for w, r in labelled
                           if speed_verdict(r["speedup"]) == v) or "nowhere"
              for v in ("faster", "about the same", "slower")}
    notes = [f"Where it wins (dense time / fused time ≥ {SAME_SPEED:.2f}, above the y = 1 rule): {groups['faster']}; "
             f"where it is about the same speed (within {SAME_SPEED - 1:.0%} of y = 1): {groups['about the same']}; "
             f"where it does not (≤ 1/{SAME_SPEED:.2f} = {1 / SAME_SPEED:.2f}, slower): {groups['slower']}."]
    gbs = big1["dense_bytes"] / (big1["dense_us"] * 1e-6) / 1e9                 # decimal GB/s
    paid = {"faster": "Reading far fewer bytes paid for the extra work.",
            "about the same": "Reading far fewer bytes about paid for the extra work: neither side is clearly faster.",
            "slower": "Reading far fewer bytes did not pay for the extra work on this machine."}
    notes.append(
        f"Bytes: at batch {b_lo} the dense {shape} product reads {hb(big1['dense_bytes'])} of weights for "
        f"{b_lo} row(s), streaming them at {gbs:.1f} GB/s; the fused one reads {hb(big1['stored_bytes'])} "
        f"({big1['dense_bytes'] / big1['stored_bytes']:.0f}x less) plus its input, and pays for a correlation instead: "
        f"{_us(big1['dense_us'])} against {_us(big1['fused_us'])}, {_x(big1['speedup'])}. "
        + paid[speed_verdict(big1["speedup"])]
        + (f" ({gbs:.1f} GB/s is far below what a memory bus delivers, often 10 GB/s or more: the machine was busy "
           "or the BLAS threads waited on each other, which slows the dense side; rerun with THREADS = 1 on an idle "
           "machine to compare.)" if gbs < 2 else ""))
    d1, dB = big1["dense_us"] / b_lo, bigB["dense_us"] / b_hi
    f1, fB = big1["fused_us"] / b_lo, bigB["fused_us"] / b_hi
    if b_hi > b_lo:
        trend = {"faster": "rises", "slower": "falls",
                 "about the same": "stays about the same"}[speed_verdict(bigB["speedup"] / big1["speedup"])]
        notes.append(
            f"Reuse and batch: from batch {b_lo} to {b_hi} the dense product's time per row goes from {_us(d1)} to "
            f"{_us(dB)} ({d1 / dB:.1f}x less: it reads each weight once and reuses it for all {b_hi} rows), the "
            f"fused product's from {_us(f1)} to {_us(fB)} ({f1 / fB:.1f}x less: it reads X^f once per batch but "
            f"redoes the correlation for every row), so the speedup {trend}: {big1['speedup']:.2f}x to "
            f"{bigB['speedup']:.2f}x. "
            + ("The dense product gained more from the batch, as reuse predicts." if d1 / dB > f1 / fB else
               "Here the fused product gained at least as much from the batch (its correlation also runs as "
               "GEMMs or threaded FFTs over the rows)."))
    sized = sorted([(f"the {shape} layer", big1), ("the TFKaldi network", tf1)]
                   + [(w, r) for w, r in labelled if w.startswith("the course") and r["batch"] == b_lo],
                   key=lambda t: t[1]["dense_bytes"])
    grows = all(a[1]["speedup"] <= b[1]["speedup"] for a, b in zip(sized, sized[1:]))
    notes.append(
        f"Caches: at batch {b_lo}, " + "; ".join(
            f"{w}: {hb(r['dense_bytes'])} of dense weights ({_fits(r['dense_bytes'], 'L2', caches)}, "
            f"{_fits(r['dense_bytes'], 'L3', caches)}), {r['speedup']:.2f}x" for w, r in sized)
        + f". The fused factors are far smaller (the TFKaldi network's {hb(tf1['stored_bytes'])}, "
        f"{_fits(tf1['stored_bytes'], 'L2', caches)}). "
        + ("Here the speedup grows with the dense bytes, as a product bound by reading its weights predicts."
           if grows and len(sized) > 1 else
           "Here the speedup does not simply grow with the dense bytes: besides the bytes, the correlation's "
           "cost, the layer shapes and the machine's load set it."))
    small = [r for r in course_rows if r["layer"] == "hidden.1" and r["batch"] == b_lo]
    if small:
        s = small[0]
        why_small = {
            "slower": "With the weights in cache there is little reading to save, and the fused product's fixed "
                      "costs (its correlation and a few dozen numpy calls) are what is left.",
            "about the same": "With the weights in cache there is little reading to save: the fused product's "
                              "fixed costs (its correlation and a few dozen numpy calls) about cancel the "
                              "multiply-adds it avoids.",
            "faster": f"Even so, its {s['Q'] * s['R']:,} multiply-adds per row cost more than the fused product's "
                      f"combination of {s['stored_bytes'] // 4:,} stored numbers plus its correlation."}
        notes.append(
            f"Small layers: the course DNN's hidden.1 ({s['Q']} x {s['R']}) has {hb(s['dense_bytes'])} of "
            f"weights, {_fits(s['dense_bytes'], 'L2', caches)}; dense takes {_us(s['dense_us'])} at batch {b_lo} and "
            f"the fused product {_us(s['fused_us'])} ({_x(s['speedup'])}). " + why_small[speed_verdict(s["speedup"])])
    nets = [r for r in tfkaldi_rows if r.get("path") == "compiled"]
    split = [r for r in nets if r.get("fused_threads", 1) > 1]
    notes.append(
        f"Threads: both sides ran on {threads} thread(s). numpy's dense product splits one GEMM over them; the fused "
        "product splits a single layer's FFTs over a batch's rows, and a whole network (from batch 2 on: one "
        "compiled call that runs every layer) gives each thread its own rows"
        + (", so at one thread neither side could split its work." if threads == 1 else
           f"; it measured that this pays at batch {', '.join(str(r['batch']) for r in split)}" if split else
           "; here it measured that one thread was as fast, so it kept one (the cores' caches and the BLAS "
           "library's own waiting threads can eat the gain)."))
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
