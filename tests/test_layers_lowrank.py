"""torch-side low-rank helpers (thinlab.nn.lowrank): per-layer ranks, SVD projection equals
the numpy truncation, exact bytes, trainable factors, and the byte-matched thin DNN."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from thinlab import lowrank, train
from thinlab.nn import lowrank as lr
from thinlab.nn import layer_weights, size_report
from thinlab.models import build_model

HIDDEN = (16, 12, 8)


@pytest.fixture()
def dnn():
    torch.manual_seed(0)
    return build_model("dnn", 3, n_frames=8, n_mels=4, hidden=HIDDEN).eval()


def test_factorize_projects_each_layer_to_its_rank(dnn):
    ranks = {"hidden.0": 3, "hidden.1": 5}
    f = lr.factorize(dnn, ranks)
    assert lr.layer_ranks(f) == ranks
    assert not parametrize.is_parametrized(dnn.hidden[0], "weight"), "the original must be untouched"
    W, Wf = layer_weights(dnn), layer_weights(f)
    for name, k in ranks.items():
        A, B = lowrank.truncated_svd(W[name], rank=k)
        np.testing.assert_allclose(Wf[name], A @ B, atol=1e-5)
    np.testing.assert_array_equal(Wf["hidden.2"], W["hidden.2"])  # not in ranks: still dense


def test_factorize_bytes_are_the_factor_formula(dnn):
    f = lr.factorize(dnn, 2, layers=["hidden.0", "hidden.1", "hidden.2"])
    rep = {r.name: r.bytes for r in size_report(f).layers}
    for i, (q, r) in enumerate([(16, 16), (16, 12), (12, 8)]):
        assert rep[f"hidden.{i}.weight"] == lowrank.lowrank_bytes((q, r), 2) == 4 * (q + r) * 2 + 16
    assert lr.layer_ranks(f) == {"hidden.0": 2, "hidden.1": 2, "hidden.2": 2}


def test_random_factors_differ_from_the_projection_and_train(dnn):
    proj = lr.factorize(dnn, 2, layers=["hidden.0"])
    rand = lr.factorize(dnn, 2, layers=["hidden.0"], init="random", seed=1)
    w_proj, w_rand = layer_weights(proj)["hidden.0"], layer_weights(rand)["hidden.0"]
    assert not np.allclose(w_proj, w_rand)
    assert np.linalg.matrix_rank(w_rand.astype(np.float64), tol=1e-5) == 2
    g = np.random.default_rng(0)
    X, y = g.normal(size=(32, 8, 4)).astype(np.float32), g.integers(0, 3, 32)
    before = [p.detach().clone() for p in rand.hidden[0].parametrizations.weight.parameters()]
    train.fit(rand, X, y, epochs=1, batch_size=16, progress=False)
    after = list(rand.hidden[0].parametrizations.weight.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after)), "both factors must be trained"
    assert np.linalg.matrix_rank(layer_weights(rand)["hidden.0"].astype(np.float64), tol=1e-5) <= 2


def test_factorize_rejects_bad_ranks(dnn):
    with pytest.raises(ValueError, match="must be an int ≥ 1"):
        lr.factorize(dnn, {"hidden.0": 0})
    with pytest.raises(TypeError, match="dict layer name"):
        lr.factorize(dnn, [2, 3])
    with pytest.raises(ValueError, match="rank"):
        lr.factorize(dnn, {"hidden.0": 99})  # above min(Q, R)
    with pytest.raises(ValueError, match="not found"):
        lr.factorize(dnn, {"nope": 2})


def test_thin_dnn_is_the_widest_that_fits(dnn):
    budget = size_report(lr.factorize(dnn, 2, layers=["hidden.0", "hidden.1", "hidden.2"])).total_bytes
    thin, width = lr.thin_dnn(dnn, n_bytes=budget)
    assert [l.out_features for l in thin.hidden] == [width] * 3
    assert size_report(thin).total_bytes <= budget
    wider = build_model("dnn", 3, n_frames=8, n_mels=4, hidden=(width + 1,) * 3)
    assert size_report(wider).total_bytes > budget
    assert thin(torch.zeros(2, 8, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="below"):
        lr.thin_dnn(dnn, n_bytes=10)
    with pytest.raises(TypeError, match="DNN"):
        lr.thin_dnn(torch.nn.Linear(3, 3), n_bytes=10_000)
