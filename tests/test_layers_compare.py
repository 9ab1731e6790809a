"""The DeepThin paper's experiment driver (thinlab.experiments.compare) and the fused-product timing
(thinlab.experiments.timing): every method lands within its byte budget, the trained model stores
exactly the planned bytes, low rank and narrow networks are sized honestly, gradual pruning ends at
the CSR target, runs repeat with a seed, the summary and Table-1 arithmetic are right, and the fused
product equals the dense one."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from thinlab import deepthin, hashednet, lowrank, prune
from thinlab.nn import compress, size_report
from thinlab.experiments import compare, timing
from thinlab.models import build_model

DNN_SHAPES = {"hidden.0": (2000, 512), "hidden.1": (512, 512), "hidden.2": (512, 512)}
SMALL = {"hidden": (32, 32)}          # in_dim = (8 // 2) · 6 = 24: hidden.0 (24, 32), hidden.1 (32, 32)


@pytest.fixture(scope="module")
def ds():
    """A learnable 3-class toy set in the dataset's attribute layout (X (N, frames, mels), y)."""
    g = np.random.default_rng(0)

    def split(n):
        y = g.integers(0, 3, n)
        X = g.normal(size=(n, 8, 6)).astype(np.float32)
        X[:, :, :3] += 1.5 * (y[:, None, None] == np.arange(3)).astype(np.float32)
        return X, y

    (Xtr, ytr), (Xva, yva), (Xte, yte) = split(96), split(30), split(30)
    return SimpleNamespace(X_train=Xtr, y_train=ytr, X_val=Xva, y_val=yva, X_test=Xte, y_test=yte,
                           labels=["a", "b", "c"])


def test_narrow_width_is_the_widest_that_fits():
    for budget in [200, 1433, 10_000, 61_931, 309_657, 6_193_152]:
        in_dim = 2000 if budget > 4 * 2000 else 24
        h = compare.narrow_width(budget, in_dim=in_dim, n_hidden=3)
        assert 4 * (in_dim * h + 2 * h * h) <= budget < 4 * (in_dim * (h + 1) + 2 * (h + 1) ** 2)
    assert compare.narrow_width(4 * 2000 * 7, in_dim=2000, n_hidden=1) == 7
    assert compare.narrow_width(6_193_152, in_dim=2000, n_hidden=3) == 512   # the DNN itself
    with pytest.raises(ValueError, match="one hidden unit"):
        compare.narrow_width(100, in_dim=2000, n_hidden=3)


def test_lowrank_ranks_fit_pin_and_refuse():
    dense = sum(4 * q * r for q, r in DNN_SHAPES.values())
    for F in (20, 100, 250, 300):
        ranks = compare.lowrank_ranks(DNN_SHAPES, size_fraction=1 / F)
        used = sum(lowrank.lowrank_bytes(DNN_SHAPES[k], r) for k, r in ranks.items())
        assert used <= dense / F and all(r >= 1 for r in ranks.values())
        step = 4 * (2000 + 512)                                 # one more rank of the largest layer
        assert dense / F - used < step, "the slack should go to the largest layer"
    pinned = compare.lowrank_ranks(DNN_SHAPES, size_fraction=1 / 300)
    assert pinned["hidden.1"] == pinned["hidden.2"] == 1        # 512 x 512 cannot go below 1/255 alone
    one = {"w": (300, 200)}
    assert compare.lowrank_ranks(one, size_fraction=0.1)["w"] == lowrank.rank_for_budget((300, 200), size_fraction=0.1)
    with pytest.raises(ValueError, match="rank 1 everywhere"):
        compare.lowrank_ranks(DNN_SHAPES, size_fraction=1 / 400)


@pytest.mark.parametrize("F", [20, 100, 350])
def test_plan_every_method_within_budget(F):
    dense = sum(4 * q * r for q, r in DNN_SHAPES.values())
    budget = dense / F
    for method in compare.METHODS[1:]:
        if method == "lowrank" and F == 350:
            with pytest.raises(ValueError, match="below what rank factorisation"):
                compare.plan(method, DNN_SHAPES, size_fraction=1 / F)
            continue
        p = compare.plan(method, DNN_SHAPES, size_fraction=1 / F)
        assert p["bytes"] <= budget and math.isclose(p["size_fraction"], p["bytes"] / dense)
        if method != "narrow":                                  # integer widths are coarse, the rest fill it
            assert p["bytes"] > 0.97 * budget, (method, p["bytes"], budget)
    dt = compare.plan("deepthin", DNN_SHAPES, size_fraction=1 / F)
    assert dt["bytes"] == deepthin.plan_network(DNN_SHAPES, size_fraction=1 / F).total_bytes
    hashed = compare.plan("hashed", DNN_SHAPES, size_fraction=1 / F)["detail"]
    assert hashed["hidden.1"]["buckets"] == hashednet.buckets_for_size_fraction(512, 512, size_fraction=1 / F)
    pr = compare.plan("prune", DNN_SHAPES, size_fraction=1 / F)["detail"]
    for k, (q, r) in DNN_SHAPES.items():                        # the largest nnz whose CSR fits
        nnz = pr[k]["nnz"]
        assert prune.csr_bytes((r, q), nnz) <= 4 * q * r / F < prune.csr_bytes((r, q), nnz + 1)
    assert compare.plan("dense", DNN_SHAPES, size_fraction=1 / F) == {"bytes": dense, "size_fraction": 1.0,
                                                                       "detail": {}}


def test_plan_rejects_unknown_method():
    with pytest.raises(ValueError, match="choose one of"):
        compare.plan("svd", DNN_SHAPES, size_fraction=0.1)


@pytest.mark.parametrize("method", [m for m in compare.METHODS if m != "dense"])
def test_train_compressed_stores_the_planned_bytes(ds, method):
    r = compare.train_compressed(ds, method=method, size_fraction=0.2, seed=0, epochs=2, model_kwargs=SMALL,
                                 eval_splits=("val", "test"), keep_model=True)
    shapes = {"hidden.0": (24, 32), "hidden.1": (32, 32)}
    p = compare.plan(method, shapes, size_fraction=0.2)
    model = r["model"]
    if method == "narrow":       # sized to the same WHOLE-model budget as the others: the widest that fits it
        from thinlab.models import build_model

        dense_hidden = 4 * (24 * 32 + 32 * 32)
        full = size_report(build_model("dnn", len(ds.labels), n_frames=8, n_mels=6, **SMALL)).total_bytes
        budget, w = r["detail"]["whole_model_budget"], r["detail"]["width"]
        assert budget == int(0.2 * dense_hidden) + full - dense_hidden
        assert [l.out_features for l in model.hidden] == [w] * 2 and r["total_bytes"] <= budget
        wider = build_model("dnn", len(ds.labels), n_frames=8, n_mels=6, **{**SMALL, "hidden": (w + 1, w + 1)})
        assert size_report(wider).total_bytes > budget
    else:
        assert r["bytes"] == p["bytes"] <= 0.2 * 4 * (24 * 32 + 32 * 32)
    assert r["method"] == method and r["size_fraction"] == 0.2 and r["seed"] == 0
    assert 0.0 <= r["acc"] <= 1.0 and r["n_eval"] == 60 and len(r["hits"]) == 60
    assert r["total_bytes"] == size_report(model).total_bytes
    if method == "prune":                                       # gradual pruning ends exactly at the CSR target
        mods = dict(model.named_modules())
        for k, d in p["detail"].items():
            assert int(mods[k].parametrizations.weight[0].mask.sum()) == d["nnz"]


def test_dense_reference_and_learning(ds, tmp_cache):
    dense = compare.train_compressed(ds, method="dense", seed=0, epochs=15, model_kwargs=SMALL)
    assert dense["size_fraction"] == 1.0 and dense["bytes"] == 4 * (24 * 32 + 32 * 32)
    assert dense["acc"] > 0.6, "the toy task is easy: the dense reference must learn it"
    again = compare.train_compressed(ds, method="dense", seed=0, epochs=15, model_kwargs=SMALL)
    assert again["acc"] == dense["acc"]                         # the baseline cache


def test_runs_repeat_with_a_seed_and_differ_across_seeds(ds):
    kw = dict(method="deepthin_shuffled", size_fraction=0.2, epochs=2, model_kwargs=SMALL, keep_model=True)
    a, b, c = (compare.train_compressed(ds, seed=s, **kw) for s in (0, 0, 1))
    wa, wb, wc = (x["model"].hidden[0].weight.detach() for x in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_train_compressed_rejects_bad_input(ds):
    with pytest.raises(ValueError, match="choose one of"):
        compare.train_compressed(ds, method="svd", size_fraction=0.1)
    with pytest.raises(ValueError, match="dnn"):
        compare.train_compressed(ds, method="deepthin", size_fraction=0.1, model="cnn")
    with pytest.raises(ValueError, match="lower bound|below"):
        compare.train_compressed(ds, method="deepthin", size_fraction=0.01, model_kwargs=SMALL, epochs=1)


def _rows():
    rows = []
    for seed, accs in enumerate([(0.80, 0.60, 0.70), (0.82, 0.50, 0.71), (0.78, 0.55, 0.69)]):
        for method, acc in zip(("deepthin", "lowrank", "hashed"), accs):
            rows.append({"method": method, "size_fraction": 0.01, "seed": seed, "acc": acc, "bytes": 100})
    return rows


def test_summarize_mean_and_std_over_seeds():
    s = {r["method"]: r for r in compare.summarize(_rows())}
    assert s["deepthin"]["acc_mean"] == pytest.approx(0.80) and s["deepthin"]["n_seeds"] == 3
    assert s["lowrank"]["acc_std"] == pytest.approx(np.std([0.60, 0.50, 0.55], ddof=1))
    assert s["hashed"]["factor"] == 100 and s["hashed"]["bytes"] == 100
    one = compare.summarize(_rows()[:3])
    assert all(r["acc_std"] == 0.0 and r["n_seeds"] == 1 for r in one)


def test_relative_improvement_is_the_papers_table_1():
    rel = {r["method"]: r for r in compare.relative_improvement(compare.summarize(_rows()))}
    assert set(rel) == {"lowrank", "hashed"}
    assert rel["lowrank"]["relative_improvement"] == pytest.approx((0.45 - 0.20) / 0.45)
    assert rel["lowrank"]["acc_diff"] == pytest.approx(0.25) and rel["lowrank"]["verdict"] == "better"
    assert rel["hashed"]["verdict"] == "better"
    close = [dict(r, acc=r["acc"] + (0.1 if r["method"] == "hashed" else 0.0)) for r in _rows()]
    verdict = {r["method"]: r["verdict"] for r in compare.relative_improvement(compare.summarize(close))}
    assert verdict["hashed"] == "within noise"
    worse = [dict(r, acc=0.3 if r["method"] == "deepthin" else r["acc"]) for r in _rows()]
    assert all(r["verdict"] == "worse" for r in compare.relative_improvement(compare.summarize(worse)))


@pytest.fixture(scope="module")
def thin_model():
    torch.manual_seed(0)
    base = build_model("dnn", 3, n_frames=8, n_mels=6, hidden=(64, 48))
    return compress(base, method="deepthin", size_fraction=0.3, layers=["hidden.0", "hidden.1"], init="random")


def test_deepthin_factors_rebuild_the_torch_weight(thin_model):
    f = timing.deepthin_factors(thin_model)
    assert list(f) == ["hidden.0", "hidden.1"]
    for name, (Xf, Wf, Q, R) in f.items():
        w = dict(thin_model.named_modules())[name].weight.detach().numpy()     # torch (R, Q)
        np.testing.assert_allclose(deepthin.reconstruct(Xf, Wf, Q=Q, R=R), w.T, rtol=1e-5, atol=1e-6)
    shuffled = compress(build_model("dnn", 3, n_frames=8, n_mels=6, hidden=(64, 48)), method="deepthin_shuffled",
                        size_fraction=0.3, layers=["hidden.0", "hidden.1"])
    assert timing.deepthin_factors(shuffled) == {}      # no fused path for the shuffled variant


def test_inference_timing_rows_and_exactness(thin_model):
    rows = timing.inference_timing(thin_model, batches=(1, 4), min_seconds=0.001, repeat=2)
    assert [(r["layer"], r["batch"]) for r in rows] == [(l, b) for b in (1, 4) for l in ("hidden.0", "hidden.1", "all")]
    for r in rows:
        assert r["max_rel_diff"] < 1e-4 and r["dense_us"] > 0 and r["fused_us"] > 0
        assert r["speedup"] == pytest.approx(r["dense_us"] / r["fused_us"])
        if r["layer"] != "all":
            assert r["gcd"] == math.gcd(r["n"], r["Q"])
    with pytest.raises(ValueError, match="no .*DeepThin layer"):
        timing.inference_timing(build_model("dnn", 3, n_frames=8, n_mels=6, hidden=(8,)))


def test_share_budget_pins_layers_whose_floor_is_above_the_common_share():
    from thinlab.size import share_budget

    dense = {"big": 1000, "mid": 500, "tiny": 10}
    floor = {"big": 5, "mid": 5, "tiny": 8}                 # tiny's floor is 80% of it
    common, pinned = share_budget(dense, floor, budget=158)
    assert pinned == {"tiny"} and common == pytest.approx(150 / 1500)
    assert all(floor[k] <= common * dense[k] for k in dense if k not in pinned)
    common, pinned = share_budget(dense, floor, budget=1510)   # everything fits at full size
    assert pinned == set() and common == pytest.approx(1510 / 1510)
    # pinning one layer can push another below its floor: both end up pinned
    common, pinned = share_budget({"a": 100, "b": 100, "c": 10}, {"a": 1, "b": 12, "c": 9}, budget=30)
    assert pinned == {"b", "c"} and common == pytest.approx(9 / 100)
