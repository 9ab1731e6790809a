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


def test_n_steps_and_chance_note():
    assert ps.n_steps(150, 3) == 9 and ps.n_steps(64, 2) == 2 and ps.n_steps(65, 1) == 2
    assert ps.near_chance(0.12, 0.02, 0.1) and not ps.near_chance(0.2, 0.02, 0.1)
    note = ps.chance_note({"FP32": 0.09, "FP16": 0.12}, {"FP32": 0.02, "FP16": 0.02}, chance=0.1, steps=8)
    assert "FP32 0.090, FP16 0.120 are all within two standard errors of chance (0.100)" in note and "8 optimizer" in note
    some = ps.chance_note({"FP32": 0.5, "FP16": 0.12}, {"FP32": 0.02, "FP16": 0.02}, chance=0.1, steps=8)
    assert some.startswith("FP16 0.120 is within two standard errors") and "the other above it" in some
    assert "every run scored above chance" in ps.chance_note({"FP32": 0.5}, {"FP32": 0.02}, chance=0.1, steps=8)


def test_first_step_pure_fp16_overshoots_where_adam_state_underflows(tiny):
    ds = tiny.ds
    model = ps.init_cnn(ds, seed=0)
    out = ps.first_step(model, ds.X_train, ds.y_train, lr=1e-3, batch_size=12)
    assert out["mixed"]["over_2lr"] == 0.0            # Adam's first step moves each weight by at most about lr
    assert out["mixed"]["max_over_lr"] < 2
    n = sum(p.numel() for p in model.parameters())
    assert 0 < out["pure"]["weights"] == out["mixed"]["weights"] <= n     # both shares over the same weights
    assert out["mixed"]["lost"] == 0.0                 # float32 masters: every weight with a gradient moves
    assert out["pure"]["lost"] > 0                     # float16: some updates underflow or round away
    assert 0 <= out["v_underflow"] <= 1
    if out["v_underflow"] > 0.05:                      # small gradients: v = 0 in float16, the step is lr·g/ε
        assert out["pure"]["max_over_lr"] > out["mixed"]["max_over_lr"]


def test_first_step_counts_both_modes_over_the_weights_with_a_float32_gradient():
    """One Linear(3 → 8) at zero weights and one clip x = (1, 2e-3, 2^-24) of class 0: the gradient of
    W[:, j] is x_j·(p − onehot), p = 1/8. Column 0 takes a normal Adam step (≈ lr); for column 1 Adam's
    0.001·g² underflows in float16, so its step is lr·g/ε = 2.5 and 17.5 lr; column 2's gradients
    (≈ 7e-9 and 5e-8) underflow in float16, so those 8 weights do not move at all in pure FP16, while
    mixed precision (float32 masters, unscaled in float32) moves them. All 32 weights have a float32
    gradient: every share is over 32 in both modes (pure FP16 must not drop column 2 from its denominator)."""
    from torch import nn

    model = nn.Linear(3, 8)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    X, y = np.array([[1.0, 2e-3, 2.0 ** -24]], np.float32), np.array([0])
    out = ps.first_step(model, X, y, lr=1e-3, batch_size=1)
    assert out["pure"]["weights"] == out["mixed"]["weights"] == 32
    assert out["pure"]["over_2lr"] == pytest.approx(8 / 32)      # column 1, over all 32 (not 8 of 25)
    assert out["pure"]["lost"] == pytest.approx(8 / 32)          # column 2: its float16 gradient underflowed
    assert out["mixed"]["over_2lr"] == 0 and out["mixed"]["lost"] == 0
    assert out["pure"]["over_2lr"] > out["mixed"]["over_2lr"]
    assert out["pure"]["max_over_lr"] == pytest.approx(17.5, rel=0.01) and out["mixed"]["max_over_lr"] < 2
    assert out["v_underflow"] == pytest.approx(16 / 32)           # columns 1 and 2: 0.001·g² is 0 in float16


def _transfer_fixture(pure_acc, mixed_acc, scratch_acc, control_acc, n=200, seeds=3):
    rng = np.random.default_rng(0)
    hit = lambda p: rng.random((seeds, n)) < p                      # noqa: E731
    hits = {(0.0, "from FP32"): np.stack([rng.random(n) < 0.8] * seeds)}
    rows = [{"share": 0.0, "start": "from FP32", "test accuracy": float(hits[(0.0, "from FP32")].mean()),
             "seed accuracies": [0.8] * seeds, "steps": 0, "classes predicted": 10}]
    for start, p in (("from FP32", pure_acc), ("from FP32, mixed", mixed_acc), ("from scratch", scratch_acc),
                     ("from scratch, FP32", control_acc)):
        h = hits[(0.1, start)] = hit(p)
        rows.append({"share": 0.1, "start": start, "test accuracy": float(h.mean()),
                     "seed accuracies": [float(x.mean()) for x in h], "steps": 9, "classes predicted": 1})
    speakers = SimpleNamespace(speakers_test=np.arange(n) % 40)     # 40 speakers: compare and interval use these
    return rows, hits, Lesson(source=None, ds=speakers, device=torch.device("cpu"), seed=0, epochs=1)


def test_explain_transfer_blames_fp16_state_when_mixed_holds_up():
    rows, hits, lesson = _transfer_fixture(pure_acc=0.25, mixed_acc=0.8, scratch_acc=0.05, control_acc=0.05)
    adam = {"share": 0.56, "step_over_lr": 55.0}
    first = {"pure": {"over_2lr": 0.4}, "mixed": {"over_2lr": 0.0}}
    out = ps.explain_transfer(rows, hits, lesson, chance=0.1, adam=adam, first=first)
    text, facts = " ".join(out["lines"]), out["facts"]
    assert facts["fell_below_cast"] == [0.1] and facts["pure_vs_cast"]["0.1"]["verdict"] == "worse"
    assert "fell below the cast model" in text and "beyond noise at 10%" in text
    assert "above pure FP16 beyond noise at 10%" in text and "optimizer state" in text and "55× lr" in text
    assert facts["scratch_near_chance"] == [0.1] and facts["scratch_fp32_control"]["near_chance"]
    assert "also near chance: the budget" in text and "1 distinct class " in text


def test_explain_transfer_words_flip_with_the_numbers():
    rows, hits, lesson = _transfer_fixture(pure_acc=0.8, mixed_acc=0.8, scratch_acc=0.05, control_acc=0.7)
    out = ps.explain_transfer(rows, hits, lesson, chance=0.1)
    text, facts = " ".join(out["lines"]), out["facts"]
    assert facts["fell_below_cast"] == [] and "beyond noise at no share." in text
    assert "Mixed precision" not in text
    assert "well above chance: here float16 itself" in text and not facts["scratch_fp32_control"]["near_chance"]
    rows, hits, lesson = _transfer_fixture(pure_acc=0.8, mixed_acc=0.8, scratch_acc=0.6, control_acc=0.7)
    out = ps.explain_transfer(rows, hits, lesson, chance=0.1)
    assert out["facts"]["scratch_near_chance"] == [] and "rose above chance" in " ".join(out["lines"])


def test_precision_and_transfer_runs_over_seeds(tiny):
    ds = tiny.ds
    init = ps.init_cnn(ds, seed=0)
    runs = ps.precision_runs(init, ds.X_train, ds.y_train, tiny, precisions=["fp32"], epochs=1, seeds=[0, 1])
    r = runs["fp32"]
    assert r["hits"].shape == (2, len(ds.y_test)) and r["test_acc"] == pytest.approx(r["hits"].mean())
    assert r["s_per_epoch"] == pytest.approx(r["seconds"]) and len(r["seed_accs"]) == 2
    with pytest.raises(ValueError, match="seeds is empty"):
        ps.precision_runs(init, ds.X_train, ds.y_train, tiny, precisions=["fp32"], epochs=1, seeds=[])
    rows, hits = ps.transfer_runs(init, init, ds.X_train, ds.y_train, tiny, fractions=[0.25, 0.5], epochs=1,
                                  mixed=False, seeds=[0, 1], scratch_fp32=True)
    starts = {(r["share"], r["start"]) for r in rows}
    assert (0.25, "from scratch, FP32") in starts and (0.5, "from scratch, FP32") not in starts
    for r in rows:
        h = hits[(r["share"], r["start"])]
        assert h.shape == (2, len(ds.y_test)) and r["test accuracy"] == pytest.approx(h.mean())
        assert r["steps"] == ps.n_steps(r["clips"], 1 if r["share"] else 0) and 1 <= r["classes predicted"] <= 3
