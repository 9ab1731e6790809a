"""Lesson 04 (quantization) runs with its CI parameters on synthetic and on real speech, and its JSON
results show the behaviour the lesson teaches: the int8 cast zeroes every weight, bytes fall with
bits, errors rise as bits fall, OMSE never loses to the min/max range, honest Huffman bytes sit
above the entropy bound, and fake-quant fine-tuning starts from the matching post-training model."""
from __future__ import annotations

import math

import pytest

from thinlab import course
from thinlab.experiments import quant_sweep as qm


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_04(data, run_lesson_fast):
    res, nb, out = run_lesson_fast("04", data)
    params = course.FAST_PARAMS["04"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    base = res["baseline"]
    assert 0.0 <= base["test_acc"] <= 1.0 and base["bytes"] == base["weight_bytes"] + base["other_bytes"]
    assert base["weight_bytes"] == 4 * base["n_weights"]

    # the thesis's two quoted figures, and no invented table
    assert res["thesis"]["float_acc"] == 0.916 and res["thesis"]["int8_cast_acc"] == 0.143
    assert res["thesis"]["fixed_point_table"] is None
    assert res["int8_cast"]["zero_share"] > 0.99 and res["int8_cast"]["n_predicted_words"] <= 2

    # fixed point: the thesis's word lengths, bytes and error monotone in bits, 16 bits ≈ float
    fixed = res["fixed_point"]
    assert [r["bits"] for r in fixed] == [16, 8, 6, 4, 3, 2]
    assert all(a["bytes"] > b["bytes"] for a, b in zip(fixed, fixed[1:]))
    assert all(a["relative_error"] < b["relative_error"] for a, b in zip(fixed, fixed[1:]))
    assert fixed[0]["relative_error"] < 1e-6
    assert abs(fixed[0]["test_acc"] - base["test_acc"]) <= 1.5 / res["data"]["n_test"]
    assert all(set(r["best_F"]) == {"hidden.0", "hidden.1", "hidden.2", "out"} for r in fixed)

    # the sweep: every quantiser at every bit width it takes, bytes ≈ bits/32 of the weights
    rows = {(r["method"], r["bits"]): r for r in res["sweep"]}
    for method, (_, lo, hi) in qm.METHODS.items():
        want = [b for b in params["BITS"] if lo <= b <= hi]
        assert sorted(b for m, b in rows if m == method) == want
        errs = [rows[(method, b)]["relative_error"] for b in want]
        assert all(a > b for a, b in zip(errs, errs[1:])), f"{method}: error must fall as bits grow"
        for b in want:
            r = rows[(method, b)]
            assert 0.0 <= r["accuracy"] <= 1.0
            packed = base["weight_bytes"] * b / 32
            assert packed < r["bytes"] - base["other_bytes"] < packed * 1.02 + 4096, (method, b)
    for b in params["BITS"]:
        if b >= 2:
            assert rows[("omse", b)]["relative_error"] <= rows[("uniform_sym", b)]["relative_error"] + 1e-12
    assert rows[("int8_cast", 8)]["relative_error"] == pytest.approx(1.0)
    assert res["acc_vs_bits"]["int8_cast"] == {"8": res["int8_cast"]["test_acc"]}

    # bytes on disk
    p = res["packing"]
    assert p["3-bit codes, packed"] == math.ceil(3 * p["3-bit codes, one per uint8"] / 8)
    assert p["float32"] > p["3-bit codes, one per uint8"] > p["packed + scale, zero point, shape"] \
        > p["3-bit codes, packed"]
    huff = {(r["quantiser"], r["bits"], r["coding"]): r for r in res["huffman"]}
    for (quantiser, b, coding), r in huff.items():
        if coding == "Huffman":
            assert huff[(quantiser, b, "entropy bound")]["bytes"] <= r["bytes"]
            assert r["bits per weight"] >= 1.0

    # fake-quant fine-tuning: one row per bit width, same bytes as the post-training model
    ft = res["finetune"]
    assert [r["bits"] for r in ft["rows"]] == params["FINETUNE_BITS"]
    for r in ft["rows"]:
        assert 0.0 <= r["fine-tuned"] <= 1.0
        if ("uniform_sym_channel", r["bits"]) in rows:
            assert r["bytes"] == rows[("uniform_sym_channel", r["bits"])]["bytes"]
            assert r["post-training"] == pytest.approx(rows[("uniform_sym_channel", r["bits"])]["accuracy"])

    # the exercises, the charts and the explorer
    for name in ("best_frac_bits", "symmetric_quantize", "packed_bytes"):
        assert f"✓ {name} is right" in out["text"]
    assert "not available" in out["text"] and "0.916" in out["text"]
    assert len(out["charts"]) >= 11 and all("image/svg+xml" in o["data"] for o in out["charts"])
    assert out["widgets"], "the bits explorer should be displayed"
    assert res["explorer_plain"]["layer"] == "hidden.1" and len(res["explorer_plain"]["rows"]) == 4
    assert res["peak_memory_mb"] < 2048
