"""Lesson 01's experiment drivers (thinlab.experiments.prune_study) on a tiny DNN and small arrays."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse

from thinlab import models, prune, train
from thinlab.experiments import prune_study as ps
from thinlab.nn import layer_masks, layer_weights, size_report

HIDDEN = ["hidden.0", "hidden.1", "hidden.2"]


def tiny_dnn(seed=0):
    train.seed_everything(seed)
    return models.build_model("dnn", 3, n_frames=8, n_mels=4, hidden=(16, 16, 16))


def tiny_ds(seed=0, n=36):
    rng = np.random.default_rng(seed)
    parts = {}
    for s in ("train", "val", "test"):
        y = np.arange(n) % 3
        X = rng.normal(size=(n, 8, 4)).astype(np.float32)   # (N, frames, mels)
        X[np.arange(n), :, y] += 2.0
        parts.update({f"X_{s}": X, f"y_{s}": y})
    return SimpleNamespace(**parts)


def acc_on(ds):
    return lambda m: train.evaluate(m, ds.X_test, ds.y_test)["accuracy"]


def test_threshold_is_the_largest_pruned_magnitude():
    W = np.array([[0.1, -0.4], [0.3, -0.2]])
    assert ps.threshold(W, 0.5) == pytest.approx(0.2)
    assert ps.threshold(W, 0.0) == 0.0 and ps.threshold(W, 0.75) == pytest.approx(0.3)


def test_layer_and_energy_tables():
    W = {"a": np.array([[3.0, 1.0], [0.0, 0.0]]), "b": np.ones((2, 3))}
    t = ps.layer_table(W)
    assert [r["weights"] for r in t] == [4, 6] and sum(r["share of weights"] for r in t) == pytest.approx(1)
    e = ps.energy_table(W, 0.5)
    assert e[0]["share of energy pruned"] == pytest.approx(0.0)       # the two zeros go first
    assert e[1]["share of energy pruned"] == pytest.approx(0.5) and e[0]["max |w|"] == 3.0


def test_input_keep_map_shape_and_mean():
    W0 = np.random.default_rng(0).normal(size=(12, 5))               # Q = 3 time steps × 4 bands
    m = ps.input_keep_map(W0, 0.6, n_mels=4)
    assert m.shape == (3, 4) and m.mean() == pytest.approx(1 - 0.6, abs=1 / 60)


def test_one_shot_sweep_bytes_fall_and_global_sparsity():
    dnn = tiny_dnn()
    calls = []
    out = ps.one_shot_sweep(dnn, sparsities=[0.0, 0.5, 0.9], layers=HIDDEN, score=lambda m: calls.append(m) or 0.5)
    assert len(out["rows"]) == 6 and len(calls) == 6
    layer = [r["bytes"] for r in out["rows"] if r["scope"] == "layer"]
    assert layer == sorted(layer, reverse=True) and out["dense_bytes"] == size_report(dnn).total_bytes
    assert 0.0 in out["larger"] and 0.9 not in out["larger"]          # CSR of an unpruned layer costs more
    per = ps.global_layer_sparsity(dnn, sparsity=0.8, layers=HIDDEN)
    sizes = {n: w.size for n, w in layer_weights(dnn, layers=HIDDEN).items()}
    assert sum(per[n] * sizes[n] for n in HIDDEN) / sum(sizes.values()) == pytest.approx(0.8, abs=0.002)


def test_layer_sensitivity_finds_the_layer_the_score_depends_on():
    dnn = tiny_dnn()
    score = lambda m: float(np.count_nonzero(layer_weights(m)["hidden.1"]))   # noqa: E731
    out = ps.layer_sensitivity(dnn, sparsities=[0.0, 0.5, 0.9], score=score)
    assert out["most_sensitive"] == "hidden.1"
    assert out["at_max"]["hidden.1"] == pytest.approx(0.1 * 16 * 16, abs=1)
    assert np.count_nonzero(layer_weights(dnn)["hidden.1"]) == 256      # the model itself is untouched


def test_layer_scorer_loads_only_that_layer():
    dnn = tiny_dnn()
    W = layer_weights(dnn)
    f = ps.layer_scorer(dnn, W, "hidden.2", lambda m: layer_weights(m)["hidden.2"].sum())
    assert f(np.zeros_like(W["hidden.2"])) == 0.0 and f(W["hidden.2"]) == pytest.approx(W["hidden.2"].sum(), rel=1e-5)


def test_scipy_csr_bytes_matches_scipy():
    W = prune.magnitude_prune(np.random.default_rng(1).normal(size=(7, 9)), sparsity=0.7).astype(np.float32)
    sp = scipy.sparse.csr_matrix(W)
    assert ps.scipy_csr_bytes(W.shape, sp.nnz) == sp.data.nbytes + sp.indices.nbytes + sp.indptr.nbytes


def test_csr_costs_break_even_by_brute_force():
    shape = (6, 10)
    c = ps.csr_costs(shape, n_grid=61)
    fits = [k for k in range(61) if prune.csr_bytes(shape, k) <= 4 * 60]
    assert c["break_even_density"] == pytest.approx(max(fits) / 60)
    fits32 = [k for k in range(61) if ps.scipy_csr_bytes(shape, k) <= 4 * 60]
    assert c["break_even_density_int32"] == pytest.approx(max(fits32) / 60)
    d = c["bitmask_beats_csr_above_density"]
    assert prune.masked_bytes(shape, round(d * 60)) < prune.csr_bytes(shape, round(d * 60))
    assert len(c["curve"]) == 4 * 61 and c["col_index_bytes"] == 1
    assert all(r["CSR scipy (× 1/N)"] > r["CSR thinlab (× 1/N)"] for r in c["per_N"])


def test_ms_per_batch_is_positive():
    assert ps.ms_per_batch(tiny_dnn(), tiny_ds().X_test[:8], reps=2) > 0


def test_structured_vs_unstructured_same_bytes():
    dnn, ds = tiny_dnn(), tiny_ds()
    out = ps.structured_vs_unstructured(dnn, ds, neuron_sparsity=0.75, layers=HIDDEN, finetune_epochs=1,
                                        score=acc_on(ds), progress=False)
    assert out["hidden"] == ([16, 16, 16], [4, 4, 4])
    assert out["un_bytes"] <= out["bytes"] == size_report(out["structured"]).total_bytes
    assert 0 < out["un_sparsity"] < 1 and set(out["ms"]) == {"dense", "unstructured (masked)", "structured"}
    assert set(out["acc"]) == {(k, s) for k in ("structured", "unstructured") for s in ("after pruning", "fine-tuned")}
    assert out["acc"][("structured", "fine-tuned")] == pytest.approx(acc_on(ds)(out["structured"]))


def test_gradual_vs_one_shot_same_bytes_and_target():
    dnn, ds = tiny_dnn(), tiny_ds()
    out = ps.gradual_vs_one_shot(dnn, ds, target_sparsity=0.8, finetune_epochs=2, layers=HIDDEN, score=acc_on(ds),
                                 progress=False)
    assert out["bytes"] == size_report(out["one_shot"]).total_bytes < size_report(dnn).total_bytes
    masks = layer_masks(out["gradual"])
    assert 1 - sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values()) == pytest.approx(0.8, abs=0.01)
    assert {r["run"] for r in out["curves"]} == {"one shot + fine-tune", "gradual"}
    assert out["acc_grad"] == pytest.approx(acc_on(ds)(out["gradual"]))


def test_explorer_table_bytes_and_scores():
    W = np.random.default_rng(2).normal(size=(10, 8))
    rows = ps.explorer_table(W, sparsities=[0.9, 0.5, 0.9], evaluate=lambda w: float(np.count_nonzero(w)))
    assert [r["sparsity"] for r in rows] == [0.5, 0.9]
    assert [r["val accuracy"] for r in rows] == [40.0, 8.0]
    assert rows[1]["CSR bytes"] == prune.csr_bytes(W.shape, 8) and rows[1]["bitmask bytes"] == prune.masked_bytes(W.shape, 8)


# ── issue #17: three models, seeds, energy sentence, design challenge ──────────────────────────────────

def tiny_lstm(seed=0):
    train.seed_everything(seed)
    return models.build_model("lstm", 3, n_frames=8, n_mels=4, hidden_size=6, dense=5)


def test_linear_lstm_gives_the_same_outputs_and_bytes():
    import torch

    m = tiny_lstm().eval()
    lin = ps.linear_lstm(m).eval()
    x = torch.randn(5, 8, 4)
    assert torch.allclose(m(x), lin(x), atol=1e-6)
    assert size_report(lin).total_bytes == size_report(m).total_bytes
    assert ps.prunable_layers(lin) == ["lstm.ih", "lstm.hh", "fc1"]           # the output layer stays dense
    assert isinstance(ps.linear_lstm(tiny_dnn()).hidden[0], torch.nn.Linear)  # other models: a plain copy
    with pytest.raises(ValueError, match="one-layer"):
        ps.LinearLSTM(torch.nn.LSTM(4, 3, num_layers=2, batch_first=True))


def test_prunable_layers_of_the_cnn_include_convolutions_not_the_output():
    cnn = models.build_model("cnn", 3)
    layers = ps.prunable_layers(cnn)
    assert layers[0].startswith("features.") and "fc1" in layers and "fc3" not in layers


def test_model_sweep_bytes_and_fine_tuning():
    ds = tiny_ds()
    out = ps.model_sweep({"dnn": tiny_dnn(), "lstm": tiny_lstm()}, sparsities=[0.0, 0.5, 0.9], score=acc_on(ds),
                         ds=ds, finetune_epochs=1, progress=False)
    rows = out["rows"]
    assert [(r["model"], r["sparsity"]) for r in rows] == [(m, s) for m in ("dnn", "lstm") for s in (0.0, 0.5, 0.9)]
    for m in ("dnn", "lstm"):
        b = [r["bytes"] for r in rows if r["model"] == m]
        assert b[0] == size_report(tiny_dnn() if m == "dnn" else tiny_lstm()).total_bytes and b[1] > b[2]
    assert all(r["test accuracy"] == r["fine-tuned"] for r in rows)        # with fine-tuning: its score is reported
    plain = ps.model_sweep({"dnn": tiny_dnn()}, sparsities=[0.0, 0.9], score=acc_on(ds), ds=ds, finetune_epochs=0,
                           progress=False)["rows"]                          # without: the one-shot score, no fine-tuned key
    assert all("fine-tuned" not in r and r["test accuracy"] == r["one shot"] for r in plain)
    assert plain[1]["one shot"] == next(r["one shot"] for r in rows if r["model"] == "dnn" and r["sparsity"] == 0.9)
    assert {"lstm.ih", "lstm.hh"} <= set(out["layers"]["lstm"])
    with pytest.raises(ValueError, match="needs ds="):
        ps.model_sweep({"dnn": tiny_dnn()}, sparsities=[0.5], score=acc_on(ds), finetune_epochs=1)


def test_best_under_budgets_and_winners_text():
    rows = [{"model": "a", "sparsity": 0.0, "test accuracy": 0.9, "bytes": 1000},
            {"model": "a", "sparsity": 0.5, "test accuracy": 0.7, "bytes": 500},
            {"model": "b", "sparsity": 0.0, "test accuracy": 0.8, "bytes": 400},
            {"model": "b", "sparsity": 0.9, "test accuracy": 0.3, "bytes": 50}]
    best = ps.best_under_budgets(rows, [1000, 10, 600])
    assert [b["budget"] for b in best] == [10, 600, 1000]
    assert best[0]["winner"] is None
    assert best[1]["winner"] == "b" and best[1]["a"] == 0.7 and best[2]["winner"] == "a"
    text = ps.winners_text(best)
    assert "under 10 bytes: no model fits" in text
    assert "under 600 bytes: b dense (400 bytes) scores 0.800, ahead of a 0.700" in text
    tie = ps.best_under_budgets(rows + [{"model": "c", "sparsity": 0.0, "test accuracy": 0.8, "bytes": 450}], [600])
    assert tie[0]["winner"] == "b"                                        # the smaller of two equal scores
    assert ps.winners_text(tie).endswith("scores 0.800, level with c 0.800 (b is named for its fewer bytes), "
                                         "ahead of a 0.700")               # never "ahead of c 0.800"
    assert tie[0]["model bytes"] == {"a": 500, "b": 400, "c": 450}       # each model's best row that fits


def test_winners_text_names_fewer_bytes_only_when_the_winner_has_them():
    row = lambda m, acc, b: {"model": m, "sparsity": 0.0, "test accuracy": acc, "bytes": b}   # noqa: E731
    # the review's case: dnn wins on accuracy by 0.0003 with MORE bytes; both print 0.812
    best = ps.best_under_budgets([row("dnn", 0.8124, 200_000), row("cnn", 0.8121, 100_000)], [250_000])
    text = ps.winners_text(best)
    assert best[0]["winner"] == "dnn" and best[0]["model bytes"] == {"cnn": 100_000, "dnn": 200_000}
    assert text.endswith("scores 0.812, level with cnn 0.812 (dnn is ahead by less than 0.001)")
    assert "fewer bytes" not in text
    # ahead by less than 0.001 AND fewer bytes: the parenthesis may name the bytes
    best = ps.best_under_budgets([row("dnn", 0.8124, 100_000), row("cnn", 0.8121, 200_000)], [250_000])
    assert ps.winners_text(best).endswith("level with cnn 0.812 (dnn is named for its fewer bytes)")
    # an exact tie in accuracy and bytes: neither reason holds
    best = ps.best_under_budgets([row("dnn", 0.8, 100), row("cnn", 0.8, 100)], [250])
    assert ps.winners_text(best).endswith("level with cnn 0.800 (the same accuracy and bytes as dnn)")
    # two level models with different reasons: each gets its own
    best = ps.best_under_budgets([row("dnn", 0.8124, 200), row("cnn", 0.8121, 100), row("lstm", 0.8124, 300)],
                                 [250, 400])
    assert ps.winners_text(best[:1]).endswith("level with cnn 0.812 (dnn is ahead by less than 0.001)")
    assert ps.winners_text(best[1:]).endswith("level with cnn 0.812 (dnn is ahead by less than 0.001), "
                                              "lstm 0.812 (dnn is named for its fewer bytes)")


def test_energy_text_words_follow_the_numbers():
    rows = lambda *pruned: [{"share of energy pruned": p} for p in pruned]   # noqa: E731
    assert "carries most of the energy." in ps.energy_text(rows(0.2, 0.4), 0.95)
    assert "not most of it" in ps.energy_text(rows(0.7, 0.68), 0.95)
    assert "in others they do not" in ps.energy_text(rows(0.3, 0.7), 0.95)
    assert "hold 30% to 32%" in ps.energy_text(rows(0.7, 0.68), 0.95)


def test_gradual_vs_one_shot_seeds_averages_per_clip():
    dnn, ds = tiny_dnn(), tiny_ds()
    hits = lambda m: train.predict(m, ds.X_test) == ds.y_test                 # noqa: E731
    out = ps.gradual_vs_one_shot_seeds(dnn, ds, seeds=[0, 1], hits=hits, target_sparsity=0.8, finetune_epochs=1,
                                       layers=HIDDEN, score=acc_on(ds), progress=False)
    assert out["hits_grad"].shape == (2, len(ds.y_test)) == out["hits_one"].shape
    assert out["acc_grad"] == pytest.approx(out["hits_grad"].mean())
    assert [r["seed"] for r in out["per_seed"]] == [0, 1]
    assert {r["run"] for r in out["curves"]} == {"one shot + fine-tune", "gradual"}
    with pytest.raises(ValueError, match="seeds is empty"):
        ps.gradual_vs_one_shot_seeds(dnn, ds, seeds=[], hits=hits, target_sparsity=0.8, finetune_epochs=1,
                                     layers=HIDDEN, score=acc_on(ds))


def test_plan_bytes_match_size_report_and_plans_fit():
    dnn = tiny_dnn()
    plan = {"hidden.0": 0.9, "hidden.1": 0.5, "hidden.2": 0.0}
    assert ps.plan_bytes(dnn, plan) == size_report(ps.apply_plan(dnn, plan)).total_bytes
    limit = int(0.5 * size_report(dnn).total_bytes)
    uni = ps.uniform_plan(dnn, HIDDEN, size_limit=limit)
    assert len(set(uni.values())) == 1 and ps.plan_bytes(dnn, uni) <= limit
    assert ps.plan_bytes(dnn, {n: next(iter(uni.values())) - 0.001 for n in HIDDEN}) > limit   # the lowest that fits
    # a scan where hidden.1 costs nothing: the plan prunes it hardest
    scan = [{"layer": n, "sparsity": s, "score": 1.0 if n == "hidden.1" else 1.0 - s}
            for n in HIDDEN for s in (0.0, 0.5, 0.9)]
    ref = ps.plan_from_scan(dnn, scan, size_limit=limit)
    assert ps.plan_bytes(dnn, ref) <= limit and ref["hidden.1"] == max(ref.values())
    with pytest.raises(ValueError, match="cannot reach"):
        ps.plan_from_scan(dnn, scan, size_limit=100)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        ps.plan_bytes(dnn, {"hidden.0": 1.5})
    with pytest.raises(ValueError, match="non-empty dict"):
        ps.apply_plan(dnn, {})


def test_challenge_check_counts_bytes_and_fine_tunes():
    dnn, ds = tiny_dnn(), tiny_ds()
    plan = {"hidden.0": 0.9, "hidden.1": 0.9, "hidden.2": 0.9}
    limit = ps.plan_bytes(dnn, plan)
    ch, pruned = ps.challenge_check(dnn, plan, score=acc_on(ds), size_limit=limit, accuracy_bar=0.0, name="t",
                                    ds=ds, finetune_epochs=1, progress=False)
    assert ch.passed and ch.bytes == limit == size_report(pruned).total_bytes
    assert ch.accuracy == pytest.approx(acc_on(ds)(pruned))
    ch2, _ = ps.challenge_check(dnn, plan, score=acc_on(ds), size_limit=limit - 1, accuracy_bar=0.0, name="t")
    assert not ch2.passed


def test_budget_race_chooses_on_validation_and_compares_on_test():
    """Each model's sparsity is picked by validation accuracy; the winner is the best of those picks on
    test, and the verdict pairs its per-clip hits with the runner-up's."""
    from thinlab import stats

    n = 40
    h = lambda k: np.arange(n) % k == 0                                      # noqa: E731
    rows = [dict(model="a", sparsity=0.0, bytes=300, **{"val accuracy": 0.9, "test accuracy": 0.5}, hits=h(2)),
            dict(model="a", sparsity=0.5, bytes=150, **{"val accuracy": 0.6, "test accuracy": 0.9}, hits=h(1)),
            dict(model="b", sparsity=0.0, bytes=200, **{"val accuracy": 0.7, "test accuracy": 0.25}, hits=h(4))]
    on_test = ps.best_under_budgets(rows, [400])[0]
    assert on_test["winner"] == "a" and on_test["sparsity"] == 0.5           # the test split picked a's sparsity
    best = ps.best_under_budgets(rows, [400, 250], choose="val accuracy")
    assert (best[1]["winner"], best[1]["sparsity"], best[1]["a"], best[1]["b"]) == ("a", 0.0, 0.5, 0.25)
    assert best[1]["chosen on"] == "val accuracy" and best[1]["model bytes"] == {"a": 300, "b": 200}
    assert (best[0]["budget"], best[0]["winner"], best[0]["a"]) == (250, "a", 0.9)   # a's 150-byte form, b's too
    assert np.array_equal(best[1]["model hits"]["a"], h(2)) and "model hits" not in ps.winners_text(best)
    speakers = np.arange(n) % 8
    v = ps.budget_verdicts(best, lambda x, y, **kw: stats.paired_compare(x, y, speakers, **kw))
    assert [(r["budget"], r["winner"], r["runner_up"]) for r in v] == [(250, "a", "b"), (400, "a", "b")]
    want = stats.paired_compare(h(2), h(4), speakers, a="a", b="b")
    assert v[1]["comparison"] == want.as_dict() and v[1]["sentence"].startswith("under 400 B: ")
    one = ps.best_under_budgets(rows[:2], [400], choose="val accuracy")
    assert ps.budget_verdicts(one, lambda *a, **k: None) == []              # one model fits: nothing to compare


def test_model_sweep_records_validation_and_hits_when_asked():
    ds = tiny_ds()
    val = lambda m: 0.5                                                       # noqa: E731
    hits = lambda m: train.predict(m, ds.X_test) == ds.y_test                 # noqa: E731
    out = ps.model_sweep({"dnn": tiny_dnn()}, sparsities=[0.0, 0.8], score=acc_on(ds), select=val, hits=hits)
    for r in out["rows"]:
        assert r["val accuracy"] == 0.5 and r["hits"].shape == ds.y_test.shape
        assert r["test accuracy"] == pytest.approx(r["hits"].mean())          # the hits behind the reported score
    assert all("hits" not in r for r in ps.model_sweep({"dnn": tiny_dnn()}, sparsities=[0.8], score=acc_on(ds))["rows"])
