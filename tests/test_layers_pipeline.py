"""The staged pipeline keeps honest bytes, composes prune → factorize → quantize, saves and reloads;
distillation trains; the Pareto front is right."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from thinlab import models
from thinlab.nn import load_compressed, save_compressed, size_report
from thinlab.experiments import pipeline as pl


def _dnn(seed=0, hidden=(32, 32)):
    torch.manual_seed(seed)
    return models.build_model("dnn", 4, n_frames=10, n_mels=6, hidden=hidden)


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10, 6)).astype(np.float32)
    y = (X[:, :, 0].mean(1) > 0).astype(int) + 2 * (X[:, :, 1].mean(1) > 0)
    return X, y


def test_stages_shrink_bytes_and_compose():
    m = _dnn()
    p = pl.stage_prune(m, keep=16)
    assert [l.out_features for l in p.hidden] == [16, 16]
    f = pl.stage_factorize(p, method="lowrank", size_fraction=0.3)
    q = pl.stage_quantize(f, n_bits=4)
    b = [pl.model_bytes(x) for x in (m, p, f, q)]
    assert b == sorted(b, reverse=True) and b[-1] < b[0] / 5
    assert pl.model_bytes(f) == pl.model_bytes(pl.stage_factorize(p, method="lowrank", size_fraction=0.3))
    assert {r.method for r in size_report(q).layers if r.name.endswith("weight")} == {"lowrank", "quant"}
    # stage_quantize leaves its input untouched
    assert all(r.method != "quant" for r in size_report(f).layers)


@pytest.mark.parametrize("factor", [1, 1.5, 2, 3.3])
def test_keep_for_factor_is_the_widest_width_that_reaches_the_factor(factor):
    m = _dnn(hidden=(32, 32))
    keep = pl.keep_for_factor(m, factor)
    dense = pl.model_bytes(m)
    assert dense / pl.model_bytes(pl.stage_prune(m, keep=keep)) >= factor
    if keep < 32:                                            # one more unit would miss the factor
        assert dense / pl.model_bytes(pl.stage_prune(m, keep=keep + 1)) < factor
    widths = [w for w in range(1, 33) if dense / pl.model_bytes(pl.stage_prune(m, keep=w)) >= factor]
    assert keep == max(widths)                               # brute force over every width


def test_keep_for_factor_rejects_bad_factors():
    with pytest.raises(ValueError, match=r"factor=0.5 must be a number ≥ 1"):
        pl.keep_for_factor(_dnn(), 0.5)
    with pytest.raises(ValueError, match=r"even 1 unit per hidden layer"):
        pl.keep_for_factor(_dnn(), 1e6)


def test_quantized_pipeline_saves_and_reloads(tmp_path):
    q = pl.stage_quantize(pl.stage_factorize(pl.stage_prune(_dnn(), keep=16), method="deepthin",
                                             size_fraction=0.3), n_bits=3)
    n = save_compressed(q, tmp_path / "m.npz")
    back = load_compressed(tmp_path / "m.npz")
    X, _ = _data()
    with torch.no_grad():
        assert torch.allclose(q.eval()(torch.tensor(X)), back(torch.tensor(X)), atol=1e-5)
    assert 0 < n - size_report(q).total_bytes < 20_000


def test_stage_quantize_rejects_bad_bits_and_non_dnn():
    with pytest.raises(ValueError, match="quant_bits"):
        pl.stage_quantize(_dnn(), n_bits=1)
    with pytest.raises(ValueError, match="lowrank"):
        pl.stage_factorize(_dnn(), method="hashed", size_fraction=0.1)
    with pytest.raises(TypeError, match="DNN"):
        pl.hidden_layers(torch.nn.Linear(2, 2))


def test_run_pipeline_rows():
    X, y = _data()
    out = pl.run_pipeline(_dnn(), X, y, X, y, keep=16, size_fraction=0.3, n_bits=4, finetune_epochs=1)
    rows = out["rows"]
    assert [r["stage"] for r in rows] == list(pl.STAGES)
    assert np.isclose(np.prod([r["stage_factor"] for r in rows]), rows[-1]["factor"])
    assert all(0 <= r["acc_post"] <= 1 and 0 <= r["acc_ft"] <= 1 for r in rows)


def test_distillation_loss_limits():
    s, t = torch.randn(5, 3), torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 0, 1])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.isclose(pl.distillation_loss(s, t, y, T=3.0, alpha=0.0), ce)
    assert float(pl.distillation_loss(t, t, y, T=3.0, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)  # KL(p‖p) = 0
    with pytest.raises(ValueError, match="T > 0"):
        pl.distillation_loss(s, t, y, T=0.0)


def test_distill_trains_and_keeps_teacher_fixed():
    X, y = _data()
    teacher, student = _dnn(0), _dnn(1, hidden=(8, 8))
    before = [p.clone() for p in teacher.parameters()]
    h = pl.distill(student, teacher, X, y, epochs=3, seed=0)
    assert len(h.train_loss) == 3 and np.isfinite(h.train_loss).all()
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_pareto_front():
    pts = [{"bytes": 10, "acc": 0.5}, {"bytes": 20, "acc": 0.4}, {"bytes": 30, "acc": 0.9}, {"bytes": 5, "acc": 0.2},
           {"bytes": 10, "acc": 0.6}]
    front = pl.pareto_front(pts)
    assert [(p["bytes"], p["acc"]) for p in front] == [(5, 0.2), (10, 0.6), (30, 0.9)]


def test_time_inference_positive():
    assert pl.time_inference(_dnn(), _data()[0], repeats=2) > 0
