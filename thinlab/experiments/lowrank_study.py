"""Lesson 02's experiments as library calls: the spectrum table, rank sweeps, byte-matched controls.

Each function returns plain rows (dicts) that the lesson displays, charts and writes to its JSON;
numpy does the linear algebra, torch models are touched only through :mod:`thinlab.nn`.

Taught in: 02_svd
"""
from __future__ import annotations

import copy

import numpy as np

from thinlab import lowrank, stats, teach, train
from thinlab.nn import size_report
from thinlab.size import dense_bytes
from thinlab.nn.lowrank import factorize, thin_dnn


def chart_ranks(n: int, points: int = 80) -> np.ndarray:
    """About ``2 * points`` ranks in 1 … n, log- and linearly spaced, for a light spectrum chart.

    Returns sorted unique ints; both ends included.

    Taught in: 02_svd
    """
    at = np.r_[np.geomspace(1, n, points).astype(int), np.linspace(1, n, points).astype(int)]
    return np.unique(np.clip(at, 1, n))


def spectrum_table(W: dict, fresh: dict, *, energy: float = 0.9) -> tuple[list, list, list]:
    """Singular values and energy of trained layers beside freshly initialised ones of the same shape.

    Parameters
    ----------
    W, fresh : dict name → array (Q, R)
        Trained weights and a fresh initialisation with the same names and shapes.
    energy : float
        The share of Σ s² for the energy-rule column.

    Returns
    -------
    table : list of dict
        One row per layer: ``layer``, ``shape``, ``s_1``, ``s_1_init``, ``median_s_ratio``,
        ``rank_energy`` (smallest rank holding ``energy``), ``rank_99``, ``break_even_rank``
        Q·R/(Q+R) (the values-only break-even; with the shapes' bytes counted, the ranks that save bytes
        are 1 … :func:`break_even_rank`) and ``init_energy_share`` ‖W_init‖² / ‖W‖².
    spec_rows, energy_rows : list of dict
        Chart rows ``{i, s_i, layer, weights}`` and ``{k, E(k), layer, weights}`` at ~150 ranks.

    Taught in: 02_svd
    """
    table, spec_rows, energy_rows = [], [], []
    for name, w in W.items():
        s, s0 = lowrank.singular_values(w), lowrank.singular_values(fresh[name])
        at = chart_ranks(len(s))
        for kind, sv in (("trained", s), ("fresh init", s0)):
            e = lowrank.energy(sv)
            spec_rows += [{"i": int(i), "s_i": float(v), "layer": name, "weights": kind} for i, v in zip(at, sv[at - 1])]
            energy_rows += [{"k": int(k), "E(k)": float(v), "layer": name, "weights": kind} for k, v in zip(at, e[at - 1])]
        Q, R = w.shape
        table.append({"layer": name, "shape": [int(Q), int(R)], "s_1": float(s[0]), "s_1_init": float(s0[0]),
                      "median_s_ratio": float(np.median(s) / np.median(s0)),
                      "rank_energy": lowrank.rank_for_energy(s, energy=energy),
                      "rank_99": lowrank.rank_for_energy(s, energy=0.99), "break_even_rank": Q * R / (Q + R),
                      "init_energy_share": float((s0 ** 2).sum() / (s ** 2).sum())})
    return table, spec_rows, energy_rows


def truncation_errors(W, truncated_svd, ranks, S=None) -> list[dict]:
    """Rank-k reconstructions of W with a given ``truncated_svd(W, k)`` and their relative errors.

    Asserts Eckart–Young: ‖W − A·B‖_F equals √(Σ_{i>k} s_i²) (rtol 1e-4, atol 1e-5·‖W‖), so a wrong exercise
    answer fails here. Returns rows ``{rank, A_shape, B_shape, relative_error, W_k}`` with ``W_k``
    the (Q, R) float64 reconstruction.

    Taught in: 02_svd
    """
    W64 = np.asarray(W, dtype=np.float64)
    S = lowrank.singular_values(W64) if S is None else np.asarray(S)
    rows = []
    for k in ranks:
        A, B = truncated_svd(W, k)
        Wk = np.asarray(A, dtype=np.float64) @ np.asarray(B, dtype=np.float64)        # (Q, R), rank k
        err = float(np.linalg.norm(W64 - Wk))
        tail = np.sqrt((S[k:] ** 2).sum())                  # atol: float32 round-off at full rank
        assert np.isclose(err, tail, rtol=1e-4, atol=1e-5 * np.linalg.norm(W64)), f"rank {k}: error is not the dropped tail"
        rows.append({"rank": int(k), "A_shape": tuple(A.shape), "B_shape": tuple(B.shape),
                     "relative_error": err / float(np.linalg.norm(W64)), "W_k": Wk})
    return rows


def rank_sweep(model, ranks, *, layers, score, S: dict) -> list[dict]:
    """Every hidden layer at rank k (one k for all), no retraining: bytes, score and energy kept.

    ``score(model) → accuracy``; ``S`` maps each layer to its singular values. Ranks above a layer's
    min(Q, R) are skipped. Returns rows ``{rank, bytes, test_acc, energy: {layer: E(k)}}``.

    Taught in: 02_svd
    """
    max_rank = min(len(S[n]) for n in layers)
    rows = []
    for k in [k for k in ranks if k <= max_rank]:
        m = factorize(model, k, layers=layers)
        rows.append({"rank": int(k), "bytes": int(size_report(m).total_bytes), "test_acc": float(score(m)),
                     "energy": {n: float(lowrank.energy(S[n])[k - 1]) for n in layers}})
    return rows


def energy_rule(model, S: dict, *, energy: float, score) -> dict:
    """Each layer at the smallest rank keeping ``energy`` of Σ s²: ranks, bytes, score.

    Taught in: 02_svd
    """
    ranks = {n: lowrank.rank_for_energy(s, energy=energy) for n, s in S.items()}
    m = factorize(model, ranks)
    return {"energy": energy, "ranks": ranks, "bytes": int(size_report(m).total_bytes), "test_acc": float(score(m))}


def smallest_close_rank(sweep: list[dict], *, base_acc: float, se: float) -> dict | None:
    """The first sweep row whose accuracy is within one standard error of the baseline (None if none).

    Taught in: 02_svd
    """
    return next((r for r in sweep if r["test_acc"] >= base_acc - se), None)


def matched_bytes(lesson, model, ranks, *, layers, epochs: int, finetune_epochs: int, S: dict,
                  seeds=None) -> list[dict]:
    """At each rank: SVD, SVD + fine-tuning, factorized from scratch, and a thin dense net of the same bytes.

    ``lesson`` is a :class:`thinlab.experiments.setup.Lesson` (data, device, seed, paired comparisons).
    The controls train ``epochs``; the SVD model is fine-tuned ``finetune_epochs`` after the truncation.
    Every trained model is trained once per seed in ``seeds`` (default: the lesson's seed): the seed sets
    the fine-tuning order, the random factors and the thin net's initialisation and training order.
    Returns one row per rank with ``bytes``, ``svd_acc``, ``finetuned_acc``, ``scratch_acc``,
    ``thin_dense_width/bytes/acc`` (accuracies averaged over the seeds), ``per_seed`` (each model's
    accuracy per seed), ``highest`` (the best trained model), ``verdicts`` (paired comparisons of the
    best against the others) and ``comparisons`` (SVD + fine-tune against each control), both
    :meth:`thinlab.stats.Comparison.as_dict` with the seeds averaged per clip, and ``energy`` kept per layer.

    Taught in: 02_svd
    """
    ds, out = lesson.ds, []
    seeds = [lesson.seed] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds=[]: pass at least one seed, e.g. [0, 1, 2]")
    for k in ranks:
        truncated = factorize(model, k, layers=layers)
        n_bytes, acc_svd = int(size_report(truncated).total_bytes), lesson.test_acc(truncated)
        hits = {"SVD + fine-tune": [], "factorized from scratch": [], "thin dense": []}
        for s in seeds:
            svd_model = copy.deepcopy(truncated)                   # the same SVD start for every seed
            train.finetune(svd_model, ds.X_train, ds.y_train, epochs=finetune_epochs, seed=s,
                           desc=f"fine-tune rank {k} seed {s}")
            scratch = factorize(model, k, layers=layers, init="random", seed=s)
            train.fit(scratch, ds.X_train, ds.y_train, epochs=epochs, seed=s, desc=f"from scratch rank {k} seed {s}",
                      device=lesson.device)
            train.seed_everything(s)                               # the thin net's initial weights
            thin, width = thin_dnn(model, n_bytes=n_bytes)
            train.fit(thin, ds.X_train, ds.y_train, epochs=epochs, seed=s, desc=f"thin dense width {width} seed {s}",
                      device=lesson.device)
            assert size_report(scratch).total_bytes == n_bytes and size_report(thin).total_bytes <= n_bytes
            for name, m in (("SVD + fine-tune", svd_model), ("factorized from scratch", scratch), ("thin dense", thin)):
                hits[name].append(lesson.test_hits(m))
        hits = {name: np.stack(h) for name, h in hits.items()}            # (seeds, N test clips)
        best = max(hits, key=lambda name: hits[name].mean())
        verdicts = {name: lesson.compare(hits[best], h, a=best, b=name).as_dict() for name, h in hits.items()
                    if name != best}
        comparisons = {name: lesson.compare(hits["SVD + fine-tune"], h, a="SVD + fine-tune", b=name).as_dict()
                       for name, h in hits.items() if name != "SVD + fine-tune"}
        out.append({"rank": int(k), "bytes": n_bytes, "size_fraction": n_bytes / size_report(model).total_bytes,
                    "seeds": seeds, "svd_acc": acc_svd, "finetuned_acc": float(hits["SVD + fine-tune"].mean()),
                    "scratch_acc": float(hits["factorized from scratch"].mean()), "thin_dense_width": int(width),
                    "thin_dense_bytes": int(size_report(thin).total_bytes),
                    "thin_dense_acc": float(hits["thin dense"].mean()),
                    "per_seed": {name: [float(x) for x in h.mean(axis=1)] for name, h in hits.items()},
                    "highest": best, "verdicts": verdicts, "comparisons": comparisons,
                    "energy": {n: float(lowrank.energy(S[n])[k - 1]) for n in layers}})
    return out


#: known reasons the byte-matched comparison can go either way (quoted by ``teach.interpret``)
MATCHED_REASONS = {
    "thin dense": (
        "the thin net spends every byte on full-rank narrow layers and learns its own features, while rank k "
        "squeezes full-width layers through k directions, so neither shape is better at every budget",
        "the SVD path starts from the trained DNN and trains EPOCHS + FINETUNE_EPOCHS epochs, the thin net "
        "EPOCHS from scratch: a head start that a short fine-tune may or may not turn into accuracy",
        "at a low rank the truncation can lose more than a few fine-tuning epochs recover",
        "few test speakers: a handful of voices moves the accuracy by points"),
    "factorized from scratch": (
        "the same factorized shape either way: only the starting point differs, and enough epochs from random "
        "factors can reach what the SVD start gives",
        "a short fine-tune may not recover what the truncation lost at a low rank",
        "few test speakers: a handful of voices moves the accuracy by points"),
}


MATCHED_MODELS = {"svd_acc": "SVD, no retraining", "finetuned_acc": "SVD + fine-tune",
                  "scratch_acc": "factorized from scratch", "thin_dense_acc": "thin dense"}


def matched_chart_rows(matched: list[dict]) -> list[dict]:
    """Long rows ``{rank, model, test accuracy}`` of :func:`matched_bytes` for a grouped bar chart.

    Taught in: 02_svd
    """
    return [{"rank": m["rank"], "model": name, "test accuracy": m[key]} for m in matched
            for key, name in MATCHED_MODELS.items()]


def mean_abs_row_cos(M) -> float:
    """Mean |cosine| between two different rows of M (Q, R): 1 when every row is a scaled copy of one row.

    Taught in: 02_svd
    """
    M = np.asarray(M, dtype=np.float64)
    N = M / np.maximum(np.linalg.norm(M, axis=1, keepdims=True), 1e-12)   # (Q, R) unit rows
    G = np.abs(N @ N.T)                                                     # (Q, Q) |cos| of every pair
    return float((G.sum() - np.trace(G)) / (G.size - len(G)))


def spread_rows(a, quantiles=(0, 0.25, 0.5, 0.75, 1)) -> list[int]:
    """Indices of the entries of ``a`` at the given quantiles of its sorted order (rows by their scale).

    Taught in: 02_svd
    """
    order = np.argsort(np.asarray(a))
    return sorted({int(order[round(q * (len(order) - 1))]) for q in quantiles})


def row_lines(matrices: dict, rows, columns: int) -> list[dict]:
    """Long rows ``{column, weight, row, matrix}``: the first ``columns`` entries of the chosen rows.

    Taught in: 02_svd
    """
    return [{"column": j, "weight": float(M[i, j]), "row": f"row {i}", "matrix": name}
            for name, M in matrices.items() for i in rows for j in range(min(columns, M.shape[1]))]


def explorer_rows(W, ranks, *, evaluate, dtype=None) -> list[dict]:
    """:func:`thinlab.lowrank.ranks_sweep` rows with ``val accuracy``: ``evaluate`` of each truncation.

    Taught in: 02_svd
    """
    W = np.asarray(W)
    rows = lowrank.ranks_sweep(W, ranks=[k for k in ranks if k <= min(W.shape)])
    for r in rows:
        A, B = lowrank.truncated_svd(W, rank=r["rank"])
        r["val accuracy"] = float(evaluate((A @ B).astype(dtype or W.dtype)))
    return rows


# ---------------------------------------------------------------- every baseline at a byte budget (CNN, LSTM)

def lowrank_targets(model) -> dict[str, tuple[int, int]]:
    """Every matrix of ``model`` that low rank can act on, as name → paper shape (Q, R) = (in, out).

    The ``nn.Linear`` layers except the last one (the output layer: its rank is at most the number of
    classes, already tiny), and each ``nn.LSTM``'s input and recurrent matrices
    (``"lstm.weight_ih_l0"`` (n_mels, 4·hidden), ``"lstm.weight_hh_l0"`` (hidden, 4·hidden): the four
    gates stacked). Convolutions are left out (small here, and a kernel is not one matrix of the input).

    Taught in: 02_svd
    """
    from torch import nn

    from thinlab.nn.compress import compressible_layers

    mods = dict(model.named_modules())
    linear = compressible_layers(model)[:-1]
    out = {}
    for name, mod in mods.items():
        if isinstance(mod, nn.LSTM):
            for pname, p in mod.named_parameters():
                if pname.startswith("weight_"):                       # torch (4H, in) → paper (in, 4H)
                    out[f"{name}.{pname}"] = (int(p.shape[1]), int(p.shape[0]))
        elif name in linear:
            out[name] = (int(mod.weight.shape[1]), int(mod.weight.shape[0]))
    return out


def truncate(model, ranks: dict) -> tuple[object, int]:
    """A copy of ``model`` with each named matrix at its rank (the truncated SVD, no retraining), and its bytes.

    ``ranks``: name → rank for names of :func:`lowrank_targets`. Linear layers become
    :class:`thinlab.nn.LowRank` factors (``factorize``), which :func:`thinlab.nn.size_report` counts.
    ``nn.LSTM`` takes no parametrization, so its matrices are overwritten by the rank-k product A·B
    (what the stored factors compute) and the bytes are ``size_report`` with each such matrix's dense
    float32 bytes replaced by :func:`thinlab.lowrank.lowrank_bytes` of its factors.

    Returns ``(model, n_bytes)``.

    Taught in: 02_svd
    """
    import copy

    import torch

    targets = lowrank_targets(model)
    bad = [n for n in ranks if n not in targets]
    if bad:
        raise ValueError(f"ranks name {bad}, which low rank does not act on in this model; choose from {list(targets)}")
    for n, k in ranks.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= min(targets[n]):
            raise ValueError(f"ranks[{n!r}]={k!r}: expected an int rank in 1 … min(Q, R) = {min(targets[n])}")
    linear = {n: int(k) for n, k in ranks.items() if not n.rsplit(".", 1)[-1].startswith("weight_")}
    m = factorize(model, linear) if linear else copy.deepcopy(model)
    mods, correction = dict(m.named_modules()), 0
    for n, k in ranks.items():
        if n in linear:
            continue
        mod_name, pname = n.rsplit(".", 1)
        p = getattr(mods[mod_name], pname)
        W = p.detach().cpu().numpy().astype(np.float32).T                   # torch (4H, in) → paper W (in, 4H)
        A, B = lowrank.truncated_svd(W, rank=int(k))                        # A (in, k), B (k, 4H)
        with torch.no_grad():
            p.copy_(torch.from_numpy(np.ascontiguousarray((A @ B).T)).to(p.dtype))   # back to (4H, in)
        correction += lowrank.lowrank_bytes(W.shape, int(k)) - 4 * W.size
    return m, int(size_report(m).total_bytes) + correction


def break_even_rank(shape, *, dtype="float32") -> int:
    """The largest rank whose factors take fewer bytes than the dense matrix (0 if not even rank 1 does).

    The library's byte accounting (:func:`thinlab.lowrank.lowrank_bytes`: values and both shapes)
    against the dense ``Q·R`` values: rank k saves bytes exactly when ``1 ≤ k ≤ break_even_rank(shape)``.
    Just below Q·R / (Q + R), the values-only break-even, the shapes' bytes can tip the balance: a
    (3, 3) matrix at rank 1 takes 40 bytes against 36 dense, so its break-even rank is 0, not 1.

    Taught in: 02_svd
    """
    Q, R = (int(d) for d in shape)
    try:
        return lowrank.rank_for_budget((Q, R), max_bytes=dense_bytes((Q, R), dtype=dtype) - 1, dtype=dtype)
    except ValueError:                                              # rank 1 is not smaller than dense
        return 0


def model_sweep(models: dict, ranks, *, score) -> list[dict]:
    """Each model dense, then at every rank k with k in every matrix where it saves bytes, no retraining.

    ``models``: label → trained model; ``score(model) → (val_acc, test_hits)``. At rank k a matrix
    (Q, R) is factorized only when k < Q·R / (Q + R) (below that break-even the factors are smaller);
    a rank where no matrix qualifies is skipped. Returns rows ``{model, rank ("dense" or k), ranks,
    bytes, val_acc, test_acc, hits}`` (``hits``: per-clip correctness on the test split).

    Taught in: 02_svd
    """
    rows = []
    for label, model in models.items():
        targets = lowrank_targets(model)
        val, hits = score(model)
        rows.append({"model": label, "rank": "dense", "ranks": {}, "bytes": int(size_report(model).total_bytes),
                     "val_acc": float(val), "test_acc": float(np.mean(hits)), "hits": np.asarray(hits)})
        for k in ranks:
            plan = {n: int(k) for n, shape in targets.items() if k <= break_even_rank(shape)}
            if not plan:
                continue
            m, n_bytes = truncate(model, plan)
            val, hits = score(m)
            rows.append({"model": label, "rank": int(k), "ranks": plan, "bytes": n_bytes, "val_acc": float(val),
                         "test_acc": float(np.mean(hits)), "hits": np.asarray(hits)})
    return rows


def budget_winners(rows: list[dict], budgets, *, compare) -> list[dict]:
    """At each byte budget, each model's best point that fits (chosen on validation), and the winner on test.

    ``rows`` from :func:`model_sweep`; ``compare(hits_a, hits_b, a=..., b=...)`` a paired comparison
    (``Lesson.compare``). Returns per budget ``{budget, picks: {model: row or None}, winner, runner_up,
    comparison}`` where ``winner`` has the highest test accuracy among the picks, ``comparison`` is the
    paired :class:`thinlab.stats.Comparison` of winner against runner-up (None with fewer than two picks).

    Taught in: 02_svd
    """
    out = []
    for budget in budgets:
        picks = {}
        for label in dict.fromkeys(r["model"] for r in rows):
            fit = [r for r in rows if r["model"] == label and r["bytes"] <= budget]
            picks[label] = max(fit, key=lambda r: (r["val_acc"], -r["bytes"])) if fit else None
        ranked = sorted((r for r in picks.values() if r is not None), key=lambda r: -r["test_acc"])
        cmp = (compare(ranked[0]["hits"], ranked[1]["hits"], a=ranked[0]["model"], b=ranked[1]["model"])
               if len(ranked) > 1 else None)
        out.append({"budget": int(budget), "picks": picks, "winner": ranked[0]["model"] if ranked else None,
                    "runner_up": ranked[1]["model"] if len(ranked) > 1 else None, "comparison": cmp})
    return out


def _point(r) -> str:
    how = "dense" if r["rank"] == "dense" else f"rank {r['rank']}"
    return f"{r['model']} ({how}, {teach.human_bytes(r['bytes'])}) {r['test_acc']:.3f}"


def winner_sentence(w: dict) -> str:
    """One sentence from a :func:`budget_winners` entry: who wins at that budget, by how much, beyond noise or not.

    Taught in: 02_svd
    """
    head = f"at ≤ {teach.human_bytes(w['budget'])}: "
    if w["winner"] is None:
        return head + "no model fits, not even at rank 1."
    missing = [m for m, r in w["picks"].items() if r is None]
    miss = f" ({', '.join(missing)}: nothing fits)" if missing else ""
    win = w["picks"][w["winner"]]
    if w["comparison"] is None:
        return head + f"only {_point(win)} fits{miss}."
    c, run = w["comparison"], w["picks"][w["runner_up"]]
    if c.diff == 0:
        return head + f"{_point(win)} and {_point(run)} tie{miss}."
    noise = ("beyond noise" if c.verdict == "better" else
             f"within noise (paired interval {c.bounds_text()} points)")
    return head + f"{w['winner']} wins: {_point(win)} against {_point(run)}, {noise}{miss}."


# ---------------------------------------------------------------- the design challenge: a rank per layer

def layer_scan(model, ranks, *, layers, score) -> list[dict]:
    """Sensitivity scan: each layer alone at each rank that saves bytes (k ≤ :func:`break_even_rank`; the
    others dense), no retraining.

    ``score(model) → accuracy`` (validation: the scan is for choosing). Returns rows
    ``{layer, rank, layer_bytes, bytes, val_acc}``: the layer's factor bytes and the whole model's.

    Taught in: 02_svd
    """
    W = {n: tuple(s) for n, s in lowrank_targets(model).items() if n in layers}
    rows = []
    for n in layers:
        Q, R = W[n]
        for k in [k for k in ranks if k <= break_even_rank((Q, R))]:
            m, n_bytes = truncate(model, {n: int(k)})
            rows.append({"layer": n, "rank": int(k), "layer_bytes": lowrank.lowrank_bytes((Q, R), int(k)),
                         "bytes": n_bytes, "val_acc": float(score(m))})
    return rows


def plan_from_scan(scan: list[dict], *, dense_acc: float, tolerance: float) -> dict:
    """Per layer, the smallest scanned rank whose validation accuracy stays within ``tolerance`` of dense.

    A layer where no scanned rank does is left out of the plan (it stays dense).

    Taught in: 02_svd
    """
    plan = {}
    for n in dict.fromkeys(r["layer"] for r in scan):
        ok = [r["rank"] for r in scan if r["layer"] == n and r["val_acc"] >= dense_acc - tolerance]
        if ok:
            plan[n] = min(ok)
    return plan


def evaluate_plan(model, plan: dict, *, score) -> dict:
    """A rank per layer (``None`` or absent: dense) → ``{plan, bytes, acc}``, bytes from ``size_report``.

    Taught in: 02_svd
    """
    if not isinstance(plan, dict):
        raise TypeError(f"plan={plan!r}: expected a dict layer → rank, e.g. {{'hidden.0': 32, 'hidden.1': 16}}")
    ranks = {n: k for n, k in plan.items() if k is not None}
    m, n_bytes = truncate(model, ranks) if ranks else (model, int(size_report(model).total_bytes))
    return {"plan": dict(plan), "bytes": int(n_bytes), "acc": float(score(m))}


def uniform_plan(model, layers, *, size_limit: int) -> dict | None:
    """The same rank in every layer of ``layers``, the largest whose model fits ``size_limit`` bytes (None if none).

    Taught in: 02_svd
    """
    targets = lowrank_targets(model)
    best = None
    for k in range(1, min(min(targets[n]) for n in layers) + 1):
        if truncate_bytes(model, {n: k for n in layers}) > size_limit:
            break
        best = {n: k for n in layers}
    return best


def truncate_bytes(model, ranks: dict) -> int:
    """The bytes :func:`truncate` would report, from the shapes alone (no SVD). Taught in: 02_svd"""
    targets = lowrank_targets(model)
    return int(size_report(model).total_bytes) + sum(
        lowrank.lowrank_bytes(targets[n], int(k)) - 4 * targets[n][0] * targets[n][1] for n, k in ranks.items())


def challenge_targets(model, scan: list[dict], *, layers, dense_val: float, tolerance: float, score,
                      fallback: dict | None = None) -> dict:
    """The design challenge's size limit and accuracy bar, computed from this run so that it can be met.

    The **reference** plan is read off the scan (:func:`plan_from_scan` at ``tolerance``; then at 0.5x,
    2x, 0 and 4x that tolerance); its bytes rounded up to the next 1,000 are the **size limit**. The
    **naive** plan spends that limit evenly (:func:`uniform_plan`: one rank in every layer). The first
    tolerance at which the reference scores higher than the naive plan (``score``: lesson 02 passes the
    validation accuracy, so the targets and the student's choice never see the test speakers) sets
    the **accuracy bar** half-way between the two, so the reference passes and the naive plan does not.
    If no tolerance separates them, spending evenly is as good here: the bar is the reference's accuracy
    and the naive plan becomes ``fallback`` (e.g. the energy rule's ranks), which ``note`` says.

    Returns ``{size_limit, accuracy_bar, reference: {plan, bytes, acc}, naive: {plan, bytes, acc},
    tolerance, note}``.

    Taught in: 02_svd
    """
    import math

    if not scan:
        raise ValueError("scan=[]: run layer_scan with ranks below the layers' break-even ranks first")
    tried, first = [], None
    for tol in dict.fromkeys([tolerance, tolerance / 2, 2 * tolerance, 0.0, 4 * tolerance]):
        plan = plan_from_scan(scan, dense_acc=dense_val, tolerance=tol)
        if not plan or plan in [t[1] for t in tried]:
            continue
        ref = evaluate_plan(model, plan, score=score)
        limit = 1000 * math.ceil(ref["bytes"] / 1000)
        uplan = uniform_plan(model, layers, size_limit=limit)
        naive = evaluate_plan(model, uplan, score=score) if uplan else None
        tried.append((tol, plan))
        first = first or (tol, ref, limit, naive)
        if naive is not None and ref["acc"] > naive["acc"]:
            return {"size_limit": limit, "accuracy_bar": (ref["acc"] + naive["acc"]) / 2, "reference": ref,
                    "naive": naive, "tolerance": tol,
                    "note": (f"reference plan {ref['plan']} ({ref['acc']:.3f}); one rank everywhere under the limit "
                             f"{naive['plan']} scores {naive['acc']:.3f}: the bar lies between them")}
    if first is None:
        raise ValueError(f"no layer stays within any tried tolerance of the dense validation accuracy {dense_val:.3f}; "
                         "scan higher ranks or raise the tolerance")
    tol, ref, limit, naive = first
    alt = evaluate_plan(model, fallback, score=score) if fallback else naive
    return {"size_limit": limit, "accuracy_bar": ref["acc"], "reference": ref, "naive": alt, "tolerance": tol,
            "note": (f"reference plan {ref['plan']} ({ref['acc']:.3f}); " + (
                f"in this run one rank everywhere under the limit ({naive['plan']}) scores {naive['acc']:.3f}, "
                + ("above" if round(naive["acc"], 3) > round(ref["acc"], 3) else "level with")
                + " the reference: spending evenly works here, so the bar is the reference's accuracy"
                if naive else "no single rank for every layer fits the limit")
                + (f"; the default below is {fallback}" if fallback else ""))}
