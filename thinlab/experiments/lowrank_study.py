"""Lesson 02's experiments as library calls: the spectrum table, rank sweeps, byte-matched controls.

Each function returns plain rows (dicts) that the lesson displays, charts and writes to its JSON;
numpy does the linear algebra, torch models are touched only through :mod:`thinlab.nn`.

Taught in: 02_svd
"""
from __future__ import annotations

import numpy as np

from thinlab import lowrank, stats, train
from thinlab.nn import size_report
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
        Q·R/(Q+R) and ``init_energy_share`` ‖W_init‖² / ‖W‖².
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


def matched_bytes(lesson, model, ranks, *, layers, epochs: int, finetune_epochs: int, S: dict) -> list[dict]:
    """At each rank: SVD, SVD + fine-tuning, factorized from scratch, and a thin dense net of the same bytes.

    ``lesson`` is a :class:`thinlab.experiments.setup.Lesson` (data, device, seed, paired comparisons).
    The controls train ``epochs``; the SVD model is fine-tuned ``finetune_epochs`` after the truncation.
    Returns one row per rank with ``bytes``, ``svd_acc``, ``finetuned_acc``, ``scratch_acc``,
    ``thin_dense_width/bytes/acc``, ``highest`` (the best trained model) and paired ``verdicts``
    of the best against the others, ``energy`` kept per layer.

    Taught in: 02_svd
    """
    ds, seed, out = lesson.ds, lesson.seed, []
    for k in ranks:
        svd_model = factorize(model, k, layers=layers)
        n_bytes, acc_svd = int(size_report(svd_model).total_bytes), lesson.test_acc(svd_model)
        train.finetune(svd_model, ds.X_train, ds.y_train, epochs=finetune_epochs, seed=seed, desc=f"fine-tune rank {k}")
        scratch = factorize(model, k, layers=layers, init="random", seed=seed)
        train.fit(scratch, ds.X_train, ds.y_train, epochs=epochs, seed=seed, desc=f"from scratch rank {k}",
                  device=lesson.device)
        thin, width = thin_dnn(model, n_bytes=n_bytes)
        train.fit(thin, ds.X_train, ds.y_train, epochs=epochs, seed=seed, desc=f"thin dense width {width}",
                  device=lesson.device)
        assert size_report(scratch).total_bytes == n_bytes and size_report(thin).total_bytes <= n_bytes
        hits = {"SVD + fine-tune": lesson.test_hits(svd_model), "factorized from scratch": lesson.test_hits(scratch),
                "thin dense": lesson.test_hits(thin)}
        best = max(hits, key=lambda name: hits[name].mean())
        verdicts = {name: lesson.compare(hits[best], h, a=best, b=name).as_dict() for name, h in hits.items()
                    if name != best}
        out.append({"rank": int(k), "bytes": n_bytes, "size_fraction": n_bytes / size_report(model).total_bytes,
                    "svd_acc": acc_svd, "finetuned_acc": float(hits["SVD + fine-tune"].mean()),
                    "scratch_acc": float(hits["factorized from scratch"].mean()), "thin_dense_width": int(width),
                    "thin_dense_bytes": int(size_report(thin).total_bytes),
                    "thin_dense_acc": float(hits["thin dense"].mean()), "highest": best, "verdicts": verdicts,
                    "energy": {n: float(lowrank.energy(S[n])[k - 1]) for n in layers}})
    return out


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
