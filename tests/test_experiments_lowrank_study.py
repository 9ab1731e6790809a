"""Lesson 02's experiment functions (thinlab.experiments.lowrank_study) on tiny synthetic inputs:
the spectrum table's numbers, Eckart–Young in the truncation rows, the rank sweep's bytes, the
byte-matched controls, and the rank-1 row geometry."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from thinlab import lowrank
from thinlab.experiments import lowrank_study as study
from thinlab.experiments.setup import Lesson
from thinlab.models import build_model
from thinlab.nn import layer_weights, size_report
from thinlab.nn.lowrank import layer_ranks


@pytest.fixture(scope="module")
def ds():
    """A learnable 3-class toy set (X (N, 8, 6)) with 6 test speakers."""
    g = np.random.default_rng(0)

    def split(n):
        y = g.integers(0, 3, n)
        X = g.normal(size=(n, 8, 6)).astype(np.float32)
        X[:, :, :3] += 1.5 * (y[:, None, None] == np.arange(3)).astype(np.float32)
        return X, y

    (Xtr, ytr), (Xva, yva), (Xte, yte) = split(96), split(30), split(30)
    return SimpleNamespace(X_train=Xtr, y_train=ytr, X_val=Xva, y_val=yva, X_test=Xte, y_test=yte,
                           speakers_test=np.array([f"s{i % 6}" for i in range(30)]), labels=["a", "b", "c"])


def _dnn(seed=0):
    import torch
    torch.manual_seed(seed)
    return build_model("dnn", 3, n_frames=8, n_mels=6, hidden=(32, 32))


def test_chart_ranks_cover_both_ends_sorted():
    at = study.chart_ranks(512)
    assert at[0] == 1 and at[-1] == 512 and np.all(np.diff(at) > 0) and len(at) <= 160
    assert list(study.chart_ranks(3)) == [1, 2, 3]


def test_spectrum_table_numbers():
    g = np.random.default_rng(1)
    W = {"a": g.normal(size=(20, 8)) @ np.diag(np.arange(8, 0, -1.0)), "b": g.normal(size=(8, 8))}
    fresh = {k: g.normal(size=w.shape) for k, w in W.items()}
    table, spec, energy = study.spectrum_table(W, fresh, energy=0.9)
    row = table[0]
    s = np.linalg.svd(W["a"], compute_uv=False)
    assert row["shape"] == [20, 8] and row["s_1"] == pytest.approx(s[0])
    assert row["rank_energy"] == lowrank.rank_for_energy(s, energy=0.9) <= row["rank_99"] <= 8
    assert row["break_even_rank"] == pytest.approx(20 * 8 / 28)
    assert row["init_energy_share"] == pytest.approx((fresh["a"] ** 2).sum() / (W["a"] ** 2).sum())
    last = [r for r in energy if r["layer"] == "a" and r["weights"] == "trained"][-1]
    assert last["k"] == 8 and last["E(k)"] == pytest.approx(1.0)
    assert {r["weights"] for r in spec} == {"trained", "fresh init"}


def test_truncation_errors_are_the_dropped_tail_and_catch_a_wrong_svd():
    W = np.random.default_rng(2).normal(size=(12, 9)).astype(np.float32)
    good = lambda W, k: lowrank.truncated_svd(W, rank=k)   # noqa: E731
    rows = study.truncation_errors(W, good, [1, 4, 9])
    assert [r["A_shape"] for r in rows] == [(12, 1), (12, 4), (12, 9)]
    assert rows[-1]["relative_error"] < 1e-5 and rows[0]["relative_error"] > rows[1]["relative_error"]
    bad = lambda W, k: (np.asarray(W)[:, :k], np.eye(W.shape[1])[:k])   # noqa: E731  not the best rank-k pair
    with pytest.raises(AssertionError, match="dropped tail"):
        study.truncation_errors(W, bad, [2])


def test_rank_sweep_and_energy_rule_bytes():
    model = _dnn()
    W = layer_weights(model)
    hidden = [n for n in W if n.startswith("hidden")]
    S = {n: lowrank.singular_values(W[n]) for n in hidden}
    rows = study.rank_sweep(model, [1, 4, 1000], layers=hidden, score=lambda m: 0.5, S=S)
    assert [r["rank"] for r in rows] == [1, 4]          # ranks above min(Q, R) skipped
    dense = size_report(model).total_bytes
    for r in rows:
        want = dense - sum(4 * W[n].size for n in hidden) + sum(lowrank.lowrank_bytes(W[n].shape, r["rank"])
                                                               for n in hidden)
        assert r["bytes"] == want and set(r["energy"]) == set(hidden)
    rule = study.energy_rule(model, S, energy=0.5, score=lambda m: 0.25)
    assert rule["ranks"] == {n: lowrank.rank_for_energy(S[n], energy=0.5) for n in hidden} and rule["test_acc"] == 0.25


def test_smallest_close_rank():
    sweep = [{"rank": 1, "test_acc": 0.3}, {"rank": 4, "test_acc": 0.78}, {"rank": 8, "test_acc": 0.9}]
    assert study.smallest_close_rank(sweep, base_acc=0.8, se=0.03)["rank"] == 4
    assert study.smallest_close_rank(sweep, base_acc=0.99, se=0.01) is None


def test_matched_bytes_controls_share_the_bytes(ds):
    from thinlab import train
    model = _dnn()
    train.fit(model, ds.X_train, ds.y_train, epochs=3, seed=0)
    W = layer_weights(model)
    hidden = [n for n in W if n.startswith("hidden")]
    S = {n: lowrank.singular_values(W[n]) for n in hidden}
    L = Lesson(source=None, ds=ds, device="cpu", seed=0, epochs=1)
    rows = study.matched_bytes(L, model, [2], layers=hidden, epochs=1, finetune_epochs=1, S=S)
    (m,) = rows
    assert m["bytes"] == size_report(model).total_bytes - sum(4 * W[n].size for n in hidden) + sum(
        lowrank.lowrank_bytes(W[n].shape, 2) for n in hidden)
    assert m["thin_dense_bytes"] <= m["bytes"] and m["thin_dense_width"] >= 1
    accs = {k: m[k] for k in study.MATCHED_MODELS}
    assert m["highest"] in study.MATCHED_MODELS.values() and set(m["verdicts"]) <= set(study.MATCHED_MODELS.values())
    best_key = next(k for k, v in study.MATCHED_MODELS.items() if v == m["highest"])
    assert accs[best_key] == max(v for k, v in accs.items() if k != "svd_acc")
    chart = study.matched_chart_rows(rows)
    assert len(chart) == 4 and {r["model"] for r in chart} == set(study.MATCHED_MODELS.values())
    assert layer_ranks(model) == {}       # the baseline itself is untouched


def test_mean_abs_row_cos_and_rank1_rows():
    a, b = np.array([1.0, -2.0, 3.0]), np.array([0.5, 1.0, -1.0, 2.0])
    assert study.mean_abs_row_cos(np.outer(a, b)) == pytest.approx(1.0)
    assert study.mean_abs_row_cos(np.eye(4)) == pytest.approx(0.0)
    assert study.spread_rows(np.array([5.0, -1.0, 3.0, 0.0, 9.0])) == [0, 1, 2, 3, 4]
    assert study.spread_rows(np.arange(101.0), (0, 1)) == [0, 100]
    rows = study.row_lines({"W": np.arange(12.0).reshape(3, 4)}, [0, 2], 2)
    assert [(r["row"], r["column"], r["weight"]) for r in rows] == [("row 0", 0, 0.0), ("row 0", 1, 1.0),
                                                                    ("row 2", 0, 8.0), ("row 2", 1, 9.0)]


def test_explorer_rows_score_each_truncation():
    W = np.random.default_rng(3).normal(size=(10, 6)).astype(np.float32)
    seen = []
    rows = study.explorer_rows(W, (1, 3, 100), evaluate=lambda w: seen.append(w) or float(np.linalg.matrix_rank(w)))
    assert [r["rank"] for r in rows] == [1, 3] and [r["val accuracy"] for r in rows] == [1.0, 3.0]
    assert all(w.dtype == np.float32 for w in seen)
