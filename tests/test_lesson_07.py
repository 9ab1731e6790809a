"""Lesson 07 (deployment) runs end to end with its CI parameters on both data sets and its numbers behave.
Latencies are measured and checked for consistency, never against a speed target."""
from __future__ import annotations

import numpy as np
import pytest

from thinlab import charts, course, deploy
from thinlab.experiments import deploy_study as study

#: on the CI run (2 epochs, 24 clips per word, 10 words) the FP32 DNN beats chance (1/10) by at least this much on
#: real speech (0.267 measured on the shared sample); on the synthetic set it is still at chance (0.105 measured)
CHANCE_MARGIN = {"synthetic": None, "shared": 0.1}
#: k-means 4-bit (post-training, a mild setting) keeps this share of the FP32 DNN's accuracy
KEEP_SHARE = 0.8


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_07(run_lesson_fast, data):
    res, nb, out = run_lesson_fast("07", data)
    fast = course.FAST_PARAMS["07"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    assert res["latency_repeats"] == fast["LATENCY_REPEATS"] and res["latency_threads"] == 1
    models = ("dnn", "lstm", "cnn")
    assert res["data"]["n_eval"] == res["data"]["n_test"]          # EVAL_SPLITS is ["test"] by default
    acc32 = res["fp32"]["dnn"]["acc"]
    if CHANCE_MARGIN[data] is not None:
        assert acc32 >= 0.1 + CHANCE_MARGIN[data], f"the DNN did not learn: {acc32:.3f}"

    for m in models:                                      # FP32 exports match torch on every evaluation clip
        e = res["export"][m]
        assert e["max_rel_diff"] <= deploy.FP32_RTOL and e["agreement"] == 1.0 and e["n"] == res["data"]["n_eval"]
        q = res["int8"][m]
        assert q["mode"] == ("static" if m == "cnn" else "dynamic") and q["int8_share"] > 0.9
        assert q["bytes"] < 0.35 * e["bytes"]
        # accuracies of two models differ by at most the share of clips where they disagree
        assert abs(q["acc"] - res["fp32"][m]["acc"]) <= 1 - q["agreement"] + 1e-9
        assert q["agreement"] >= 0.9 and q["max_rel_diff"] < 0.25
    assert "DynamicQuantizeLSTM" in out["text"] and "QuantizeLinear" in out["text"]

    rows = res["table"]
    formats = {(r["model"], r["format"]) for r in rows}
    for m in models:
        assert {(m, "torch FP32"), (m, "ONNX FP32")} <= formats
    assert {"pipeline (06) .npz", "k-means 4-bit .npz", "DeepThin .npz", "DeepThin .npz, fused (torch)",
            "DeepThin .npz, fused (numpy)", "pipeline (06) → ONNX int8"} <= {f for m, f in formats if m == "dnn"}
    assert {r["runtime"] for r in rows} == {"torch eager", "onnxruntime FP32", "onnxruntime int8",
                                            "thinlab: decode + run", "thinlab: fused torch", "thinlab: fused numpy"}
    dt = [r for r in rows if r["format"].startswith("DeepThin .npz")]   # one model run three ways: same answers
    assert len(dt) == 3 and max(r["accuracy"] for r in dt) - min(r["accuracy"] for r in dt) <= 1 / res["data"]["n_eval"]
    for m in models:                  # the table's numbers are the ones measured above; ONNX FP32 picks torch's word
        assert np.isclose(study.row(rows, m, "torch FP32")["accuracy"], res["fp32"][m]["acc"])
        assert np.isclose(study.row(rows, m, "ONNX FP32")["accuracy"], res["fp32"][m]["acc"])
        assert study.row(rows, m, "ONNX int8")["bytes"] == res["int8"][m]["bytes"]
    if acc32 >= 0.2:                                      # a DNN that learned something: mild k-means keeps most of it
        assert study.row(rows, "dnn", "k-means 4-bit .npz")["accuracy"] >= KEEP_SHARE * acc32
    for r in rows:
        assert r["bytes"] > 0 and r["ms_b1"] > 0 and r["ms_b32"] > 0
        ref = next(x for x in rows if x["model"] == r["model"] and x["format"] == "torch FP32")
        assert np.isclose(r["speedup_b1"], ref["ms_b1"] / r["ms_b1"]) and np.isclose(r["size_factor"],
                                                                                     ref["bytes"] / r["bytes"])
    st = res["stored"]
    assert all(0 < st[k]["report_bytes"] <= st[k]["bytes"] < st[k]["report_bytes"] + 20_000 for k in st)
    assert st["pipeline"]["bytes"] < st["deepthin"]["bytes"] < st["kmeans"]["bytes"] < res["export"]["dnn"]["bytes"]
    assert st["pipeline"]["onnx_check"]["max_rel_diff"] <= deploy.FP32_RTOL
    assert st["deepthin"]["fused_max_rel_diff"] < 1e-4

    c = res["comparison"]["lstm"]["b1"]                   # the runtime and precision factors multiply
    again = study.runtime_vs_precision(rows, models)      # recomputed from the table
    assert all(res["comparison"][m][b] == pytest.approx(again[m][b]) for m in models for b in ("b1", "b32"))
    assert np.isclose(c["runtime_x"] * c["int8_x"], c["total_x"])
    assert res["thesis"]["speedup"] == pytest.approx(0.054 / 0.0026)
    assert f"The thesis quoted {res['thesis']['speedup']:.1f}x" in out["text"]
    assert res["headline"] == study.headline(rows, models)
    assert res["exercise"]["agreement"] >= 0.9 and "✓ export_int8 is right" in out["text"]
    assert len(out["charts"]) >= 1 and all("image/svg+xml" in o["data"] for o in out["charts"])
    for o in out["charts"]:
        spec = o["data"]["application/vnd.vegalite.v5+json"]
        assert not charts.lint(spec), charts.lint(spec)
    assert res["peak_memory_mb"] < 2000


@pytest.mark.parametrize("runtime_x, int8_x, words", [
    (3.0, 1.5, "Most of ours comes from the runtime (3.00x), less from the 8-bit arithmetic (1.50x)"),
    (1.2, 4.0, "Most of ours comes from the 8-bit arithmetic (4.00x)"),
    (2.0, 2.0, "about equally"),
    (3.0, 0.8, "All of ours comes from the runtime (3.00x); the 8-bit arithmetic slowed it down (0.80x)"),
    (0.9, 1.05, "no speedup at all"), (0.5, 0.5, "no speedup at all")])
def test_the_speedup_attribution_follows_its_numbers(runtime_x, int8_x, words):
    assert words in study.attribution(runtime_x, int8_x)
    with pytest.raises(ValueError, match="must be positive"):
        study.attribution(0.0, 1.0)
