"""Lesson 04 (quantization) runs with its CI parameters on synthetic and on real speech, and its JSON
results show the behaviour the lesson teaches: the baseline beats chance, the int8 cast zeroes every
weight, bytes fall with bits (and equal the library's own count for each layer shape), errors rise as
bits fall, 8-bit quantisers keep the baseline's accuracy, OMSE never loses to the min/max range, honest
Huffman bytes sit above the entropy bound, and fake-quant fine-tuning starts from the matching
post-training model. The printed summary is the JSON's numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from thinlab import charts, course, teach
from thinlab.experiments import quant_study as qs
from thinlab.experiments import quant_sweep as qm
from thinlab.models import build_model

CHANCE_MARGIN = 0.05     # the CI baseline (2 epochs, 24 clips per word) beats chance by at least this much


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_04(data, run_lesson_fast):
    res, nb, out = run_lesson_fast("04", data)
    params = course.FAST_PARAMS["04"]
    n_test = res["data"]["n_test"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    base = res["baseline"]
    assert base["test_acc"] >= 1 / base["n_classes"] + CHANCE_MARGIN, "the baseline should beat chance"
    assert base["interval"][0] <= base["test_acc"] <= base["interval"][1]
    assert base["bytes"] == base["weight_bytes"] + base["other_bytes"]
    assert base["weight_bytes"] == 4 * base["n_weights"] == 4 * sum(math.prod(s) for s in base["shapes"].values())

    # the thesis's two quoted figures, and no invented table
    assert res["thesis"]["float_acc"] == 0.916 and res["thesis"]["int8_cast_acc"] == 0.143
    assert res["thesis"]["fixed_point_table"] is None
    assert res["int8_cast"]["zero_share"] > 0.99 and res["int8_cast"]["n_predicted_words"] <= 2
    assert res["int8_cast"]["bytes"] == base["other_bytes"] + sum(
        math.prod(s) + 4 * len(s) for s in base["shapes"].values())          # one byte per weight + shape

    # fixed point: the thesis's word lengths, bytes and error monotone in bits, 16 bits = float
    fixed = res["fixed_point"]
    assert [r["bits"] for r in fixed] == params["FIXED_BITS"]
    assert all(a["bytes"] > b["bytes"] for a, b in zip(fixed, fixed[1:]))
    assert all(a["relative_error"] < b["relative_error"] for a, b in zip(fixed, fixed[1:]))
    assert fixed[0]["relative_error"] < 1e-6 and fixed[0]["vs_float32"] != "worse"
    assert abs(fixed[0]["test_acc"] - base["test_acc"]) <= 1.5 / n_test
    assert all(set(r["best_F"]) == set(base["shapes"]) for r in fixed)

    # the sweep: every quantiser at every bit width it takes; bytes are the library's count for these shapes
    rng = np.random.default_rng(0)
    shapes = {n: tuple(s) for n, s in base["shapes"].items()}
    rows = {(r["method"], r["bits"]): r for r in res["sweep"]}
    for method, (_, lo, hi) in qm.METHODS.items():
        want = [b for b in params["BITS"] if lo <= b <= hi]
        assert sorted(b for m, b in rows if m == method) == want
        errs = [rows[(method, b)]["relative_error"] for b in want]
        assert all(a > b for a, b in zip(errs, errs[1:])), f"{method}: error must fall as bits grow"
        for b in want:
            packed = base["weight_bytes"] * b / 32
            assert packed < rows[(method, b)]["bytes"] - base["other_bytes"] < packed * 1.02 + 4096, (method, b)
        if 8 in want:    # a mild setting keeps the baseline's accuracy (within two test clips)
            assert rows[(method, 8)]["accuracy"] >= base["test_acc"] - 2 / n_test, method
            assert rows[(method, 8)]["vs_float32"] != "worse", method
    for method in ("uniform_asym", "fixed"):       # per-tensor bytes depend only on the shapes: recompute them
        for b in [b for b in params["BITS"] if (method, b) in rows]:
            lib = sum(qm.quantize_layer(rng.normal(size=s), method=method, n_bits=b).bytes for s in shapes.values())
            assert rows[(method, b)]["bytes"] == base["other_bytes"] + lib, (method, b)
    for b in params["BITS"]:
        if b >= 2:
            assert rows[("omse", b)]["relative_error"] <= rows[("uniform_sym", b)]["relative_error"] + 1e-12
    assert rows[("int8_cast", 8)]["relative_error"] == pytest.approx(1.0)
    assert rows[("int8_cast", 8)]["bytes"] == res["int8_cast"]["bytes"]
    assert res["acc_vs_bits"]["int8_cast"] == {"8": res["int8_cast"]["test_acc"]}
    assert all(res["acc_vs_bits"][m][str(b)] == r["accuracy"] for (m, b), r in rows.items())

    # bytes on disk
    p = res["packing"]
    assert p["3-bit codes, one per uint8"] == math.prod(base["shapes"]["hidden.0"])
    assert p["3-bit codes, packed"] == math.ceil(3 * p["3-bit codes, one per uint8"] / 8)
    assert p["float32"] > p["3-bit codes, one per uint8"] > p["packed + scale, zero point, shape"] \
        > p["3-bit codes, packed"]
    huff = {(r["quantiser"], r["bits"], r["coding"]): r for r in res["huffman"]}
    for (quantiser, b, coding), r in huff.items():
        assert r["bits per weight"] == pytest.approx(8 * r["bytes"] / base["n_weights"], abs=8 / base["n_weights"])
        if coding == "Huffman":
            assert huff[(quantiser, b, "entropy bound")]["bytes"] <= r["bytes"]
            assert r["bits per weight"] >= 1.0
    assert qs.huffman_text(res["huffman"], bits=params["BITS"]) in out["text"]      # its sentences, from the JSON

    # fake-quant fine-tuning: one row per bit width, starting from the sweep's model, same bytes
    ft = res["finetune"]
    assert [r["bits"] for r in ft["rows"]] == params["FINETUNE_BITS"]
    for r in ft["rows"]:
        assert r["tuned_bytes"] == r["bytes"]
        if ("uniform_sym_channel", r["bits"]) in rows:
            assert r["matches_sweep"] is True
            assert r["bytes"] == rows[("uniform_sym_channel", r["bits"])]["bytes"]
            assert r["post-training"] == pytest.approx(rows[("uniform_sym_channel", r["bits"])]["accuracy"])
        lo, hi = r["interval"]
        assert r["verdict"] == ("better" if lo > 0 else "worse" if hi < 0 else "within noise")
        assert ("within noise" in r["sentence"]) == (r["verdict"] == "within noise") and r["sentence"] in out["text"]

    # the explorer's plain rows: finer with bits, and 8 bits on one layer keeps the validation accuracy
    ex = res["explorer_plain"]
    assert ex["layer"] == "hidden.1" and [r["bits"] for r in ex["rows"]] == [2, 3, 4, 8]
    assert all(a["MSE"] > b["MSE"] and a["bytes"] < b["bytes"] for a, b in zip(ex["rows"], ex["rows"][1:]))
    assert abs(ex["rows"][-1]["val accuracy"] - ex["base_val_acc"]) <= 2 / res["data"]["n_val"]

    # the exercises, the printed summary (from the JSON's numbers), the charts and the explorer
    for name in ("best_frac_bits", "symmetric_quantize", "packed_bytes"):
        assert f"✓ {name} is right" in out["text"]
    assert "fixed point, best F: " + ", ".join(f"{r['bits']} bits {r['test_acc']:.3f}" for r in fixed) in out["text"]
    check_lstm_models_and_challenge(res, out, params)
    assert f"int8 cast (no scale): {res['int8_cast']['test_acc']:.3f}" in out["text"]
    assert len(out["charts"]) >= 11 and all("image/svg+xml" in o["data"] for o in out["charts"])
    for o in out["charts"]:
        assert not charts.lint(o["data"]["application/vnd.vegalite.v5+json"])
    assert out["widgets"], "the bits explorer should be displayed"
    assert res["peak_memory_mb"] < 2048


def _fresh(name, res):
    """A fresh model of lesson 00's architecture ``name`` for this data (bytes depend on shapes only)."""
    return build_model(name, res["baseline"]["n_classes"])


def check_lstm_models_and_challenge(res, out, params):
    rng = np.random.default_rng(1)
    # the thesis's fixed-point table on the LSTM: every matrix at each word length, bytes recomputed
    lstm = _fresh("lstm", res)
    W = qm.weight_tensors(lstm)
    other = qm.other_bytes(lstm, layers=list(W))
    lf = res["lstm_fixed_point"]
    assert [r["bits"] for r in lf] == params["FIXED_BITS"]
    for r in lf:
        assert set(r["best_F"]) == set(W) == {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc1.weight", "fc2.weight"}
        assert r["bytes"] == other + sum(qm.quantize_layer(rng.normal(size=w.shape), method="fixed", n_bits=r["bits"]).bytes
                                         for w in W.values())
    assert all(a["bytes"] > b["bytes"] and a["relative_error"] < b["relative_error"] for a, b in zip(lf, lf[1:]))
    assert lf[0]["relative_error"] < 1e-6 and lf[0]["vs_float32"] != "worse"
    assert "LSTM fixed point, best F: " + ", ".join(f"{r['bits']} bits {r['test_acc']:.3f}" for r in lf) in out["text"]

    # the three models: every quantiser of MODEL_QUANTIZERS at each bit it takes; per-tensor bytes recomputed
    rows = res["models"]
    assert {r["model"] for r in rows} == {"dnn", "cnn", "lstm"}
    for name in ("cnn", "lstm"):
        m = _fresh(name, res)
        Wm = qm.weight_tensors(m)
        mine = {(r["method"], r["bits"]): r for r in rows if r["model"] == name}
        assert mine[("float32", 32)]["bytes"] == sum(4 * w.size for w in Wm.values()) + qm.other_bytes(m, layers=list(Wm))
        for method in params["MODEL_QUANTIZERS"]:
            _, lo, hi = qm.METHODS[method]
            assert sorted(b for k, b in mine if k == method) == [b for b in params["BITS"] if lo <= b <= hi]
            for b in [b for k, b in mine if k == method]:
                if method == "uniform_asym_channel":
                    q = qm.quantize_weights({n: rng.normal(size=w.shape) for n, w in Wm.items()}, method=method, n_bits=b)
                    assert mine[(method, b)]["bytes"] == qm.model_bytes(m, q), (name, method, b)
                assert mine[(method, b)]["bytes"] < mine[("float32", 32)]["bytes"]

    # per budget: the validation-best setting that fits; the winner is the best test accuracy among those
    choice, wins = res["budget_choice"], res["budget_winners"]
    assert [w["budget"] for w in wins] == params.get("BUDGETS", [32_000, 64_000, 256_000, 1_000_000])
    for c in choice:
        mine = [r for r in rows if r["model"] == c["model"] and r["bytes"] <= c["budget"]]
        assert c["fits"] == bool(mine)
        if mine:
            assert c["bytes"] <= c["budget"] and c["val accuracy"] == max(r["val_accuracy"] for r in mine)
    for w in wins:
        fit = [c for c in choice if c["budget"] == w["budget"] and c["fits"]]
        assert w["fits"] == [c["model"] for c in fit]          # the models that fit, in the choice's order
        if len(fit) >= 2:
            cmp = w["comparison"]
            assert cmp["verdict"] == ("better" if cmp["low"] > 0 else "worse" if cmp["high"] < 0 else "within noise")
            assert cmp["acc_a"] >= cmp["acc_b"] - 1e-12 and w["n_seeds"] == len(params["SEEDS"])
        assert f"{teach.human_bytes(w['budget'])} {(w['winner'] or 'none').upper()}" in out["text"]
    assert "Which model is most accurate within" in out["text"]

    # the design challenge: the reference plan (SOLUTIONS) passes, the naive default does not
    ch = res["challenge"]
    base = res["baseline"]
    assert ch["plan"] == ch["reference_plan"] and ch["passed"] is True
    assert ch["bytes"] <= ch["size_limit"] == int(base["bytes"] / 12) and ch["accuracy"] >= ch["accuracy_bar"]
    assert ch["naive_bytes"] > ch["size_limit"], "the naive default (4 bits everywhere) must not meet the limit"
    assert ch["bytes"] == qs.plan_bytes(ch["scan"], ch["plan"], total_bytes=base["bytes"])      # scan bytes = size_report
    assert ch["accuracy_bar"] <= ch["base_val_acc"] - 0.02 + 1e-12          # set on the validation speakers
    assert ch["bar_lowered"] == (ch["accuracy_bar"] < ch["wanted_bar"])
    assert qs.challenge_text(ch, base_acc=ch["base_val_acc"], factor=12, drop=0.02) in out["text"]
    assert f"your plan on the test speakers: {ch['test_acc']:.3f}" in out["text"]     # test: reported once
    assert sorted({r["bits"] for r in ch["scan"]}) == params["SCAN_BITS"]
    assert "✓ challenge met" in out["text"] and f"LEADERBOARD | 04 bits per layer | you | {ch['bytes']} |" in out["text"]
