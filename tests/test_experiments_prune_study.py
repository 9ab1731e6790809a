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
