"""Unit tests of lesson 04's experiment functions (tiny synthetic model and data)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from thinlab import quant
from thinlab.experiments import quant_study as qs
from thinlab.experiments import quant_sweep as qm
from thinlab.experiments.setup import Lesson
from thinlab.models import build_model
from thinlab.nn import layer_weights


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    model = build_model("dnn", 3, n_frames=8, n_mels=4, hidden=(16, 12)).eval()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    ds = SimpleNamespace(X_train=X, y_train=y, X_val=X[:12], y_val=y[:12], X_test=X, y_test=y,
                         speakers_test=np.repeat(np.arange(6), 5), labels=["a", "b", "c"])
    lesson = Lesson(source=None, ds=ds, device=torch.device("cpu"), seed=0, epochs=1)
    return model, layer_weights(model), lesson


def test_lesson_quantiser_names_resolve_in_the_registry():
    from thinlab.nn import methods

    assert methods.get("uniform").name == "uniform_sym" and methods.get("kmeans").name == "kmeans"
    assert all(methods.get(n).name in qm.METHODS for n in ("uniform", "omse", "kmeans", "fixed", "multibit"))
    with pytest.raises(ValueError, match="unknown method 'int4'"):
        methods.get("int4", need="quantize")

def test_int8_cast_zeroes_small_weights(tiny):
    model, W, lesson = tiny
    out = qs.int8_cast_study(model, W, lesson)
    assert out["zero_share"] == 1.0 and out["relative_error"] == pytest.approx(1.0)  # every |w| < 0.5
    assert out["n_predicted_words"] == 1
    assert out["bytes"] == qm.other_bytes(model) + sum(w.size + 4 * w.ndim for w in W.values())
    assert out["test_acc"] == lesson.test_acc(out["model"])


def test_fixed_point_curve_choice_and_table(tiny):
    model, W, lesson = tiny
    w = W["hidden.0"]
    curve = qs.fixed_point_curve(w, word_bits=(4,), frac_bits=range(3))
    assert [r["F"] for r in curve] == [0, 1, 2] and curve[0]["MSE"] == quant.fixed_point_mse(w, word_bits=4, frac_bits=0)
    F = quant.best_frac_bits(w, word_bits=4)
    c = qs.fixed_point_choice(w, word_bits=4, frac_bits=F)
    assert c["hi"] >= np.abs(w).max() or c["clips"]
    assert quant.fixed_point_range(word_bits=4, frac_bits=c["no_clip_F"] + 1)[1] < np.abs(w).max()
    base = lesson.test_hits(model)
    rows = qs.fixed_point_table(model, W, lesson, bits=[16, 4], base_hits=base)
    assert rows[0]["relative_error"] < 1e-6 < rows[1]["relative_error"] and rows[0]["bytes"] > rows[1]["bytes"]
    assert rows[0]["test_acc"] == pytest.approx(float(base.mean())) and set(rows[0]["best_F"]) == set(W)


def test_one_layer_tables(tiny):
    _, W, _ = tiny
    w = W["hidden.0"]
    uni = qs.uniform_variants(w, bits=[2, 4])
    assert len(uni) == 8 and all(r["bytes"] == r["code bytes"] + r["side bytes"] for r in uni)
    per = {(r["bits"], r["key"]): r for r in uni}
    assert per[(4, "uniform_sym_channel")]["side bytes"] > per[(4, "uniform_sym")]["side bytes"]
    km = qs.kmeans_vs_uniform(w, n_bits=3)
    assert len(km["uniform_levels"]) == 8 and km["codebook_bytes"] == 4 * len(km["codebook"]) == 32
    assert km["kmeans_relative_error"] <= km["uniform_relative_error"] + 1e-9
    om = qs.omse_table(w, bits=[2, 4])
    assert all(r["error OMSE"] <= r["error min/max"] + 1e-12 and 0 < r["clip c / max|w|"] <= 1 for r in om)
    mb = {(r["bits"], r["quantiser"]): r["relative error"] for r in qs.multibit_table(w, bits=[1, 2])}
    assert mb[(2, "greedy + least-squares α")] <= mb[(2, "greedy")] + 1e-12 < mb[(1, "greedy")]


def test_sweep_study_verdicts_and_summaries(tiny):
    model, W, lesson = tiny
    base = lesson.test_hits(model)
    cast = qs.int8_cast_study(model, W, lesson)
    rows = qs.sweep_study(model, lesson, bits=[4], base_hits=base, cast=cast)
    assert rows[-1]["method"] == "int8_cast" and rows[-1]["bytes"] == cast["bytes"]
    assert all(r["vs_float32"] in ("better", "worse", "within noise") for r in rows)
    fake = [{"method": "a", "label": "A", "bits": b, "vs_float32": v, "relative_error": e}
            for b, v, e in ((2, "worse", 0.3), (4, "within noise", 0.05), (8, "within noise", 0.001))]
    assert qs.fewest_bits(fake) == {"A": 4}
    assert qs.error_threshold(fake) == {"smallest_costly_error": 0.3, "n_held_below": 2, "n_held": 2}
    assert qs.error_threshold(fake[1:]) is None


def test_packing_and_huffman(tiny):
    _, W, _ = tiny
    p = qs.packing_table(W["hidden.0"], n_bits=3)
    assert p["roundtrip"] and p["packed"] == -(-3 * p["n_codes"] // 8)
    b = {r["storage"]: r["bytes"] for r in p["rows"]}
    assert b["float32"] > b["3-bit codes, one per uint8"] > b["packed + scale, zero point, shape"] > p["packed"]
    rows = qs.huffman_table(W, bits=[1, 3])
    assert {r["bits"] for r in rows} == {3}
    by = {(r["key"], r["coding"]): r for r in rows}
    for k in ("uniform_asym", "kmeans"):
        assert by[(k, "entropy bound")]["bytes"] <= by[(k, "Huffman")]["bytes"]
    gain = qs.huffman_gain(rows, n_bits=3)
    assert set(gain) == {"uniform_asym", "kmeans"} and all(g < 1 for g in gain.values())


def test_finetune_study_and_explorer(tiny):
    model, W, lesson = tiny
    base = lesson.test_hits(model)
    sweep = qs.sweep_study(model, lesson, bits=[2], base_hits=base)
    ft = qs.finetune_study(model, lesson, bits=[2], epochs=1, sweep_rows=sweep)
    r = ft["rows"][0]
    assert r["matches_sweep"] is True and r["bytes"] == r["tuned_bytes"]
    assert 0 <= ft["float_finetuned_acc"] <= 1 and r["verdict"] in ("better", "worse", "within noise")
    ev = qs.layer_evaluator(model, W, "hidden.1", lesson.val_acc)
    assert ev(W["hidden.1"]) == pytest.approx(lesson.val_acc(model))
    rows = qs.explorer_rows(W["hidden.1"], method="uniform", evaluate=ev, bits=(2, 8))
    assert rows[0]["distinct levels"] <= 3 and rows[0]["MSE"] > rows[1]["MSE"] and rows[0]["bytes"] < rows[1]["bytes"]
