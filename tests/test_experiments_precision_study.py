"""Unit tests of lesson 05's experiment functions (tiny synthetic inputs and a tiny CNN)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from thinlab import checks, precision
from thinlab.experiments import precision_study as ps
from thinlab.experiments.setup import Lesson


def _spacing(x, m, e_min):
    return 2.0 ** (max(np.floor(np.log2(abs(x))), e_min) - m)


def test_spacing_layout_and_relative_gaps():
    assert ps.spacing_layout("float16") == (10, -14) and ps.spacing_layout("bfloat16") == (7, -126)
    rows = ps.relative_gaps(_spacing, formats=["float16"], grid=[1e-9, 1.0, 1000.0])
    assert [r["|x|"] for r in rows] == [1.0, 1000.0]            # 1e-9 is below float16's smallest subnormal
    assert rows[0]["ulp / |x|"] == 2.0 ** -10 and rows[1]["ulp / |x|"] == np.spacing(np.float16(1000)) / 1000


def test_histogram_limits_and_shares():
    g = np.array([2.0 ** -30, 2.0 ** -20, 2.0 ** -20, 0.5, 0.0])
    h = {r["log2 |g|"]: r["gradients"] for r in ps.log2_histogram(g)}
    assert h == {-30.0: 1, -20.0: 2, -1.0: 1}
    lim = ps.limits_log2("float16")
    assert lim["smallest subnormal"] == -24 and lim["smallest normal"] == -14 and 15.9 < lim["max"] < 16
    v = np.array([2.0 ** -30, 2.0 ** -20, 1.0, 1.0])            # one underflows, one subnormal
    assert ps.subnormal_share(v) == pytest.approx(0.25)


def test_loss_scale_sweep_choice_and_summary():
    g = np.array([2.0 ** -30, 2.0 ** -10, 1.0])
    rows = ps.loss_scale_sweep(g, log2_scales=[0, 8, 20])
    at = {(r["log2 S"], r["what"]): r["% of gradients"] for r in rows}
    assert at[(0, "underflow to 0")] == pytest.approx(100 / 3) and at[(8, "underflow to 0")] == 0
    assert at[(20, "overflow to inf")] == pytest.approx(100 / 3)
    best, safe = ps.choose_loss_scale(g, log2_scales=[0, 8, 20])
    assert (best, safe) == (8, [8])
    s = ps.loss_scaling_summary(g, log2_scale=best)
    assert s["underflow_with"] == 0 < s["underflow_without"] and s["overflow_with"] == 0
    assert s["underflow_bf16_without"] == 0 and s["n_gradients"] == 3


def test_updates_lost_and_adam():
    params = np.array([1.0, 1.0, 1e-3])
    G = np.array([[1e-3, 1e-1, 0.0]])                           # lr·g = 3e-6 (lost in 16 bits), 3e-4, zero
    lost = ps.updates_lost(params, G, lr=3e-3)
    assert lost["float32"] == 0.0 and lost["float16"] == 0.5 and lost["bfloat16"] == 1.0
    ad = ps.adam_state_loss(np.array([1e-4, 1.0]))
    assert ad["share"] == 0.5 and ad["g_limit"] == pytest.approx(np.sqrt(2.0 ** -25 / 1e-3))


def test_shares_are_nested_and_subset_sorted():
    keep = ps.half_subset(50, 20, seed=0)
    assert len(keep) == 20 and np.all(np.diff(keep) > 0)
    assert len(ps.half_subset(10, 20)) == 10
    sh = ps.nested_shares(40, [0.1, 0.5], seed=0)
    assert len(sh[0.1]) == 4 and len(sh[0.5]) == 20 and set(sh[0.1]) <= set(sh[0.5])


def test_replay_loss_scale_accepts_the_rule_and_names_a_wrong_step():
    rule = checks.SOLUTIONS["loss_scale_update"]
    scaler, log = precision.DynamicLossScaler(growth_interval=2), []
    for inf in (False, False, True, False, False, False):
        log.append({"step": len(log), "scale": scaler.scale_})
        log[-1]["skipped"] = bool(scaler.update(inf))
    out = ps.replay_loss_scale(log, rule, growth_interval=2)
    assert out["n_steps"] == 6 and out["n_skipped"] == 1 and out["first_scale"] == log[0]["scale"]
    never_grow = lambda s, g, inf, growth_interval: (s / 2, 0, True) if inf else (s, g + 1, False)
    with pytest.raises(AssertionError, match="step 2"):
        ps.replay_loss_scale(log, never_grow, growth_interval=2)
    assert ps.replay_loss_scale([], rule, growth_interval=2)["n_steps"] == 0


@pytest.fixture()
def tiny():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 16, 8)).astype(np.float32)
    y = np.arange(24) % 3
    ds = SimpleNamespace(X_train=X, y_train=y, X_val=X[:6], y_val=y[:6], X_test=X[:12], y_test=y[:12],
                         speakers_test=np.repeat(np.arange(4), 3), labels=["a", "b", "c"])
    return Lesson(source=None, ds=ds, device=torch.device("cpu"), seed=0, epochs=1)


def test_gradients_train_in_and_transfer(tiny):
    ds = tiny.ds
    init = ps.init_cnn(ds, seed=0)
    G = ps.gradients(init, ds.X_train, ds.y_train, n_batches=3, batch_size=10)
    assert G.shape == (3, sum(p.numel() for p in init.parameters()))     # the last batch has 4 clips
    with pytest.raises(ValueError, match="choose one of"):
        ps.train_in("fp8", init, ds.X_train, ds.y_train, epochs=1)
    m, h, log = ps.train_in("fp16", init, ds.X_train, ds.y_train, epochs=1)
    assert next(m.parameters()).dtype == torch.float16 and len(log) > 0
    assert all({"step", "scale", "skipped"} <= set(r) for r in log)
    m32, _, log32 = ps.train_in("fp32", init, ds.X_train, ds.y_train, epochs=1)
    assert log32 == [] and next(m32.parameters()).dtype == torch.float32
    runs = ps.precision_runs(init, ds.X_train, ds.y_train, tiny, precisions=["fp32", "bf16"], epochs=1)
    assert set(runs) == {"fp32", "bf16"} and all(r["s_per_epoch"] > 0 for r in runs.values())
    rows, hits = ps.transfer_runs(init, init, ds.X_train, ds.y_train, tiny, fractions=[0.25, 0.5], epochs=1)
    assert rows[0]["share"] == 0.0 and [r["clips"] for r in rows[1:]] == [6, 6, 6, 12, 12, 12]
    assert all(r["test accuracy"] == pytest.approx(hits[(r["share"], r["start"])].mean()) for r in rows)
