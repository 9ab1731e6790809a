"""Lesson 02's experiment functions (thinlab.experiments.lowrank_study) on tiny synthetic inputs:
the spectrum table's numbers, Eckart–Young in the truncation rows, the rank sweep's bytes, the
byte-matched controls, and the rank-1 row geometry."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from thinlab import lowrank, stats
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


def test_matched_bytes_runs_the_svd_once_per_rank_with_the_same_results(ds, monkeypatch):
    """The truncation is computed once per rank and copied for every seed's fine-tuning: the SVD runs
    once, and the fine-tuned accuracies are those of a fresh truncation fine-tuned with each seed."""
    from thinlab import train
    from thinlab.nn.lowrank import factorize
    model = _dnn(1)
    train.fit(model, ds.X_train, ds.y_train, epochs=2, seed=0, progress=False)
    hidden = [n for n in layer_weights(model) if n.startswith("hidden")]
    S = {n: lowrank.singular_values(w) for n, w in layer_weights(model).items() if n in hidden}
    L = Lesson(source=None, ds=ds, device="cpu", seed=0, epochs=1)
    svd_calls = []

    def counting(m, k, **kw):
        if kw.get("init", "svd") != "random":
            svd_calls.append(k)
        return factorize(m, k, **kw)
    monkeypatch.setattr(study, "factorize", counting)
    (row,) = study.matched_bytes(L, model, [3], layers=hidden, epochs=1, finetune_epochs=1, S=S, seeds=[0, 1])
    assert svd_calls == [3]                                   # once for the rank, not once more per seed
    want = []
    for s in (0, 1):                                          # the old way: a fresh SVD per seed
        m = factorize(model, 3, layers=hidden)
        train.finetune(m, ds.X_train, ds.y_train, epochs=1, seed=s, progress=False)
        want.append(float(L.test_hits(m).mean()))
    assert row["per_seed"]["SVD + fine-tune"] == want
    assert row["svd_acc"] == L.test_acc(factorize(model, 3, layers=hidden))
    assert layer_ranks(model) == {}


def test_break_even_rank_counts_the_shape_bytes():
    assert study.break_even_rank((3, 3)) == 0                 # rank 1: 24 + 16 = 40 bytes > 36 dense
    assert lowrank.lowrank_bytes((3, 3), 1) > 4 * 9
    assert study.break_even_rank((6, 32)) == 4 < 6 * 32 / 38  # rank 5 would be 776 bytes > 768
    for Q in range(1, 30):
        for R in range(1, 30):
            saving = [k for k in range(1, min(Q, R) + 1) if lowrank.lowrank_bytes((Q, R), k) < 4 * Q * R]
            assert study.break_even_rank((Q, R)) == max(saving, default=0), (Q, R)
            assert saving == list(range(1, study.break_even_rank((Q, R)) + 1))


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


# ---------------------------------------------------------------- every baseline at a byte budget, the challenge

def _tiny(name, seed=0):
    import torch
    torch.manual_seed(seed)
    kw = {"lstm": dict(hidden_size=8, dense=6), "cnn": dict(channels=(2, 4), hidden=(16, 8)),
          "dnn": dict(hidden=(32, 32))}[name]
    return build_model(name, 3, n_frames=8, n_mels=6, **kw)


def test_lowrank_targets_name_every_matrix_but_the_output():
    assert study.lowrank_targets(_tiny("dnn")) == {"hidden.0": (24, 32), "hidden.1": (32, 32)}
    assert study.lowrank_targets(_tiny("lstm")) == {"lstm.weight_ih_l0": (6, 32), "lstm.weight_hh_l0": (8, 32),
                                                     "fc1": (8, 6)}
    assert list(study.lowrank_targets(_tiny("cnn"))) == ["fc1", "fc2"]


def test_truncate_lstm_counts_the_factors_and_keeps_rank_k():
    from thinlab.nn import size_report
    model = _tiny("lstm")
    dense = size_report(model).total_bytes
    ranks = {"lstm.weight_ih_l0": 2, "lstm.weight_hh_l0": 3, "fc1": 1}
    m, n_bytes = study.truncate(model, ranks)
    targets = study.lowrank_targets(model)
    want = dense + sum(lowrank.lowrank_bytes(targets[n], k) - 4 * np.prod(targets[n]) for n, k in ranks.items())
    assert n_bytes == want == study.truncate_bytes(model, ranks)
    assert np.linalg.matrix_rank(m.lstm.weight_hh_l0.detach().numpy(), tol=1e-5) == 3
    assert np.linalg.matrix_rank(m.lstm.weight_ih_l0.detach().numpy(), tol=1e-5) == 2
    assert layer_ranks(m) == {"fc1": 1}
    W = model.lstm.weight_hh_l0.detach().numpy().T               # the best rank-3 fit of the trained matrix
    A, B = lowrank.truncated_svd(W, rank=3)
    np.testing.assert_allclose(m.lstm.weight_hh_l0.detach().numpy(), (A @ B).T, atol=1e-6)
    assert not np.allclose(model.lstm.weight_hh_l0.detach().numpy(), m.lstm.weight_hh_l0.detach().numpy())
    with pytest.raises(ValueError, match="does not act on"):
        study.truncate(model, {"fc2": 1})
    with pytest.raises(ValueError, match="min"):
        study.truncate(model, {"fc1": 7})


def test_model_sweep_factorizes_only_below_break_even_and_budget_winners():
    models = {"dnn": _tiny("dnn"), "lstm": _tiny("lstm")}
    rows = study.model_sweep(models, [2, 5, 14, 40], score=lambda m: (0.5, np.ones(6, bool)))
    lstm = {r["rank"]: r for r in rows if r["model"] == "lstm"}
    assert set(lstm) == {"dense", 2, 5}
    # shapes counted: ih (6, 32) saves bytes up to rank 4 (rank 5: 38·5·4 + 16 = 776 > 768 dense), although
    # 6·32/38 ≈ 5.05; hh (8, 32) up to 6, fc1 (8, 6) up to 3
    assert lstm[2]["ranks"] == {"lstm.weight_ih_l0": 2, "lstm.weight_hh_l0": 2, "fc1": 2}
    assert lstm[5]["ranks"] == {"lstm.weight_hh_l0": 5}
    targets = {**study.lowrank_targets(models["dnn"]), **study.lowrank_targets(models["lstm"])}
    for r in rows:                                           # every factorized matrix is smaller than dense
        assert all(lowrank.lowrank_bytes(targets[n], k) < 4 * targets[n][0] * targets[n][1]
                   for n, k in r["ranks"].items())
    assert lstm[5]["bytes"] == study.truncate_bytes(models["lstm"], lstm[5]["ranks"]) < lstm["dense"]["bytes"]
    dnn = {r["rank"]: r for r in rows if r["model"] == "dnn"}
    assert set(dnn) == {"dense", 2, 5, 14} and dnn[14]["ranks"] == {"hidden.1": 14}

    def pt(model, nbytes, val, hits):
        return {"model": model, "rank": 1, "bytes": nbytes, "val_acc": val, "test_acc": float(np.mean(hits)),
                "hits": np.array(hits, bool)}
    pts = [pt("a", 100, 0.9, [1, 1, 1, 1, 0, 0]), pt("a", 50, 0.2, [1, 1, 1, 1, 1, 1]),
           pt("b", 60, 0.5, [1, 0, 0, 0, 0, 0]), pt("b", 500, 0.9, [1, 1, 1, 1, 1, 1])]
    speakers = np.array(["s1", "s2", "s3", "s4", "s5", "s6"])
    compare = lambda x, y, **kw: stats.paired_compare(x, y, speakers, **kw)   # noqa: E731
    w40, w70, w200 = study.budget_winners(pts, [40, 70, 200], compare=compare)
    assert w40["winner"] is None and "no model fits" in study.winner_sentence(w40)
    assert w70["picks"]["a"]["bytes"] == 50 and w70["picks"]["b"]["bytes"] == 60      # the only ones that fit
    assert w70["winner"] == "a" and w70["runner_up"] == "b"
    assert w200["picks"]["a"]["bytes"] == 100                   # chosen on validation, not on test
    s = study.winner_sentence(w70)
    assert s.startswith("at ≤ 70 B: a wins: a (rank 1, 50 B) 1.000 against b (rank 1, 60 B) 0.167")
    assert ("beyond noise" in s) == (w70["comparison"].verdict == "better")
    assert study.winner_sentence(w40) == "at ≤ 40 B: no model fits, not even at rank 1."
    big = dict(w70, budget=64_000, picks={"a": dict(w70["picks"]["a"], bytes=51_200), "b": w70["picks"]["b"]})
    assert study.winner_sentence(big).startswith("at ≤ 64.0 KB: a wins: a (rank 1, 51.2 KB) 1.000")


def test_challenge_reference_passes_and_even_split_does_not():
    from thinlab import teach
    model = _tiny("dnn")
    hidden = ["hidden.0", "hidden.1"]

    def score(m):       # hidden.0 needs rank ≥ 8, hidden.1 is insensitive
        return 0.9 if layer_ranks(m).get("hidden.0", 99) >= 8 else 0.5
    scan = study.layer_scan(model, [1, 2, 4, 8, 16], layers=hidden, score=score)
    assert [(r["layer"], r["rank"]) for r in scan] == [("hidden.0", k) for k in (1, 2, 4, 8)] + [
        ("hidden.1", k) for k in (1, 2, 4, 8)]                  # 16 is above both break-even ranks
    assert study.plan_from_scan(scan, dense_acc=0.9, tolerance=0.0) == {"hidden.0": 8, "hidden.1": 1}
    t = study.challenge_targets(model, scan, layers=hidden, dense_val=0.9, tolerance=0.0, score=score)
    ref, naive = t["reference"], t["naive"]
    assert ref["plan"] == {"hidden.0": 8, "hidden.1": 1} and ref["bytes"] == study.truncate_bytes(model, ref["plan"])
    assert ref["bytes"] <= t["size_limit"] < ref["bytes"] + 1000 and t["size_limit"] % 1000 == 0
    assert len(set(naive["plan"].values())) == 1 and naive["bytes"] <= t["size_limit"]
    assert teach.challenge("t", bytes_=ref["bytes"], accuracy=ref["acc"], size_limit=t["size_limit"],
                           accuracy_bar=t["accuracy_bar"]).passed
    assert not teach.challenge("t", bytes_=naive["bytes"], accuracy=naive["acc"], size_limit=t["size_limit"],
                               accuracy_bar=t["accuracy_bar"]).passed
    assert study.evaluate_plan(model, {"hidden.0": None}, score=score)["bytes"] == size_report(model).total_bytes
    with pytest.raises(TypeError, match="dict"):
        study.evaluate_plan(model, [8, 1], score=score)


def test_challenge_when_spending_evenly_is_as_good_says_so_from_the_numbers():
    model = _tiny("dnn")
    hidden = ["hidden.0", "hidden.1"]

    def score(m):       # every plan scores the same: no tolerance separates the reference from the even split
        return 0.7
    scan = study.layer_scan(model, [1, 2, 4, 8], layers=hidden, score=score)
    fallback = {"hidden.0": None, "hidden.1": None}
    t = study.challenge_targets(model, scan, layers=hidden, dense_val=0.7, tolerance=0.0, score=score,
                                fallback=fallback)
    assert t["accuracy_bar"] == t["reference"]["acc"] == 0.7
    assert "scores 0.700, level with the reference" in t["note"] and "as well as" not in t["note"]
    assert t["note"].endswith(f"the default below is {fallback}") and t["naive"]["plan"] == fallback
