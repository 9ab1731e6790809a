"""Lesson 05 (FP16 and transfer) runs end to end with its CI parameters and its numbers behave."""
from __future__ import annotations

import pytest

from thinlab import course


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_05(run_lesson_fast, data):
    res, nb, out = run_lesson_fast("05", data)
    fast = course.FAST_PARAMS["05"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")

    f16, bf16, f32 = (res["formats"][f] for f in ("float16", "bfloat16", "float32"))
    assert (f16["epsilon"], f16["max"], f16["smallest_subnormal"]) == (2.0 ** -10, 65504.0, 2.0 ** -24)
    assert bf16["exponent_bits"] == f32["exponent_bits"] == 8 and bf16["epsilon"] == 2.0 ** -7
    assert res["one_plus_1e-4"]["float16"] == 1.0 and res["one_plus_1e-4"]["float32"] > 1.0

    ls = res["loss_scaling"]  # real gradients of the trained CNN: some underflow, scaling rescues them
    assert ls["n_gradients"] > 10_000
    assert 0 < ls["underflow_without"] < 0.1
    assert ls["underflow_with"] < ls["underflow_without"] and ls["overflow_with"] == 0
    assert ls["underflow_bf16_without"] == 0
    lost = res["updates_lost"]  # a coarser format swallows more small updates
    assert lost["float32"] < lost["float16"] < lost["bfloat16"]

    assert "adam_step_default_eps" in res["probe_failures"]["float16"]
    assert not {"conv2d", "linear", "cross_entropy_backward"} & set(res["probe_failures"]["bfloat16"])

    assert res["thesis"] == {"fp32": 0.882, "fp16": 0.861}  # quoted, never measured
    prec = res["precision"]
    assert set(prec) == {"fp32", "fp16", "bf16"}
    for p in prec.values():
        assert 0.0 <= p["test_acc"] <= 1.0 and p["s_per_epoch"] > 0 and p["skipped_steps"] >= 0
    assert res["precision_budget"]["epochs"] == fast["HALF_EPOCHS"]

    tr = res["transfer"]
    fractions = [str(f) for f in tr["fractions"]]
    assert set(tr["from_fp32"]) == set(tr["from_scratch"]) == set(fractions) and len(fractions) == 5
    assert set(tr["from_fp32_mixed"]) == set(fractions)  # TRANSFER_MIXED is on by default
    assert all(0.0 <= v <= 1.0 for d in (tr["from_fp32"], tr["from_scratch"], tr["from_fp32_mixed"])
               for v in d.values())
    sizes = [r["n_train"] for r in tr["runs"] if r["start"] == "from scratch"]
    assert sizes == sorted(sizes) and sizes[0] >= 1
    assert tr["cast_only"] == res["cast"]["fp16 (cast)"]
    assert abs(res["cast"]["fp16 (cast)"] - res["cast"]["fp32"]) <= 0.05  # casting a trained model costs little

    for name in ("float_spacing", "underflows", "loss_scale_update"):
        assert f"✓ {name} is right" in out["text"]
    assert "your rule reproduces every step" in out["text"]
    assert "not available to us" in out["text"]
    assert len(out["charts"]) >= 6 and all("image/svg+xml" in o["data"] for o in out["charts"])
    assert res["peak_memory_mb"] < 2000


