"""Lesson 05 (FP16 and transfer) runs end to end with its CI parameters and its numbers behave: the
FP32 CNN beats chance, casting it to 16 bits keeps its predictions, loss scaling rescues the
gradients that underflow, the learner's loss-scale rule replays the FP16 run step by step, and the
JSON's numbers agree with each other, with the library's format facts and with the printed summary."""
from __future__ import annotations

import math

import pytest

from thinlab import charts, course, precision

CHANCE_MARGIN = 0.05     # the CI CNN baseline beats chance by at least this much


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_05(run_lesson_fast, data):
    res, nb, out = run_lesson_fast("05", data)
    fast = course.FAST_PARAMS["05"]
    n_test = res["data"]["n_test"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    assert res["baseline"]["test_acc"] >= 1 / res["baseline"]["n_classes"] + CHANCE_MARGIN, "the CNN should beat chance"
    assert res["baseline"]["test_acc"] == res["cast"]["fp32"]

    for f in ("float16", "bfloat16", "float32"):     # the JSON's facts are the library's
        facts = vars(precision.format_facts(f))
        assert res["formats"][f] == {k: v for k, v in facts.items() if k != "name"}
    f16, bf16, f32 = (res["formats"][f] for f in ("float16", "bfloat16", "float32"))
    assert (f16["epsilon"], f16["max"], f16["smallest_subnormal"]) == (2.0 ** -10, 65504.0, 2.0 ** -24)
    assert bf16["exponent_bits"] == f32["exponent_bits"] == 8 and bf16["epsilon"] == 2.0 ** -7
    assert res["one_plus_1e-4"]["float16"] == 1.0 and res["one_plus_1e-4"]["float32"] > 1.0

    # casting the trained CNN to 16 bits changes at most a couple of test predictions
    for k in ("fp16 (cast)", "bf16 (cast)"):
        assert abs(res["cast"][k] - res["cast"]["fp32"]) <= 2 / n_test, k

    ls = res["loss_scaling"]  # real gradients of the trained CNN: some underflow, scaling rescues them
    assert ls["n_gradients"] > 10_000
    assert 0 < ls["underflow_without"] < 0.1
    assert ls["underflow_with"] < ls["underflow_without"] and ls["overflow_with"] == 0
    assert ls["underflow_bf16_without"] == 0 and ls["subnormal_with"] < ls["subnormal_without"]
    lost = res["updates_lost"]  # a coarser format swallows more small updates
    assert lost["float32"] < lost["float16"] < lost["bfloat16"]

    assert "adam_step_default_eps" in res["probe_failures"]["float16"]
    assert not {"conv2d", "linear", "cross_entropy_backward"} & set(res["probe_failures"]["bfloat16"])

    assert res["thesis"] == {"fp32": 0.882, "fp16": 0.861}  # quoted, never measured
    prec, budget = res["precision"], res["precision_budget"]
    assert set(prec) == {"fp32", "fp16", "bf16"} and budget["epochs"] == fast["HALF_EPOCHS"]
    assert budget["n_train"] == min(res["data"]["n_train"], 1500)
    for p in prec.values():           # an accuracy over the test clips, and the time per epoch of its run
        assert p["test_acc"] * n_test == pytest.approx(round(p["test_acc"] * n_test))
        assert p["s_per_epoch"] == pytest.approx(p["seconds"] / budget["epochs"]) and p["seconds"] > 0
    assert prec["fp32"]["skipped_steps"] == prec["bf16"]["skipped_steps"] == 0   # float32's range: no overflow
    replay = res["loss_scale_replay"]     # the learner's rule replayed every step of the FP16 run
    assert replay["n_steps"] == budget["epochs"] * math.ceil(budget["n_train"] / 64)
    assert replay["n_skipped"] == prec["fp16"]["skipped_steps"]
    vs = res["fp32_vs_fp16"]
    assert vs["diff"] == pytest.approx(prec["fp32"]["test_acc"] - prec["fp16"]["test_acc"])

    tr = res["transfer"]
    fractions = [str(f) for f in tr["fractions"]]
    assert set(tr["from_fp32"]) == set(tr["from_scratch"]) == set(fractions) and len(fractions) == 5
    assert set(tr["from_fp32_mixed"]) == set(fractions)  # TRANSFER_MIXED is on by default
    key = {"from FP32": "from_fp32", "from scratch": "from_scratch", "from FP32, mixed": "from_fp32_mixed"}
    for r in tr["runs"]:
        if r["fraction"] == 0:
            assert r["n_train"] == 0 and r["test_acc"] == pytest.approx(res["cast"]["fp16 (cast)"])
        else:
            assert r["n_train"] == max(1, round(r["fraction"] * budget["n_train"]))
            assert tr[key[r["start"]]][str(r["fraction"])] == r["test_acc"]
    assert tr["cast_only"] == res["cast"]["fp16 (cast)"]

    for name in ("float_spacing", "underflows", "loss_scale_update"):
        assert f"✓ {name} is right" in out["text"]
    assert "your rule reproduces every step" in out["text"]
    assert "same budget: " + ", ".join(f"{p} {prec[p]['test_acc']:.3f} ({prec[p]['s_per_epoch']:.2f} s/epoch)"
                                       for p in ("fp32", "fp16", "bf16")) in out["text"]
    assert len(out["charts"]) >= 6 and all("image/svg+xml" in o["data"] for o in out["charts"])
    for o in out["charts"]:
        assert not charts.lint(o["data"]["application/vnd.vegalite.v5+json"])
    assert res["peak_memory_mb"] < 2000
