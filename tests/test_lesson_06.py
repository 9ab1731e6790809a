"""Lesson 06 (the full pipeline) runs end to end with its CI parameters and its numbers behave."""
from __future__ import annotations

import numpy as np
import pytest

from thinlab import course


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_06(run_lesson_fast, data):
    res, nb, out = run_lesson_fast("06", data)
    fast = course.FAST_PARAMS["06"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")

    stages = res["stages"]
    assert [s["stage"] for s in stages] == ["dense", "prune", "factorize", "quantize"]
    b = [s["bytes"] for s in stages]
    assert b == sorted(b, reverse=True) and b[0] == res["teacher"]["bytes"] > 6_000_000
    # factors are honest ratios of bytes, and multiply to the total
    assert all(np.isclose(s["stage_factor"], b0 / b1) for s, b0, b1 in zip(stages[1:], b, b[1:]))
    assert np.isclose(np.prod([s["stage_factor"] for s in stages]), res["total_factor"])
    assert np.isclose(res["total_factor"], b[0] / b[-1]) and res["total_factor"] > 30
    assert all(0 <= s[k] <= 1 for s in stages for k in ("acc_post", "acc_ft"))
    t = res["targets"]
    assert np.isclose(t["lost_points"], 100 * (res["teacher"]["acc"] - stages[-1]["acc_ft"]))
    assert [v["met"] for v in t["verdicts"]] == [res["total_factor"] >= v["factor_at_least"] and
                                                  t["lost_points"] <= v["lost_at_most"] for v in t["verdicts"]]

    kd = res["distillation"]
    assert kd["bytes"] == b[-1] and kd["epochs"] == fast["DISTILL_EPOCHS"]
    assert 0 <= kd["acc_alone"] <= 1 and 0 <= kd["acc_distilled"] <= 1

    pts = res["pareto"]["points"]
    methods = {p["method"] for p in pts}
    assert set(fast["PARETO_METHODS"]) <= methods and {"pipeline", "distilled", "alone", "dense"} <= methods
    assert {f"quant: {m}" for m in fast["QUANT_METHODS"]} <= methods
    assert all(p["bytes"] > 0 and 0 <= p["acc"] <= 1 for p in pts)
    front = res["pareto"]["front"]
    assert front and all(any(p["method"] == m and p["detail"] == d for p in pts) for m, d in front)

    sv = res["saved"]
    assert sv["same_predictions"] and sv["max_logit_diff"] < 1e-4
    assert sv["report_bytes"] == b[-1] and 0 < sv["overhead_bytes"] < 20_000
    assert all(v > 0 for v in res["timing_ms"].values()) and len(res["timing_ms"]) == 3

    for name in ("stage_factors", "distillation_loss"):
        assert f"✓ {name} is right" in out["text"]
    assert "the forum post expected" in out["text"] and "target ≥ 50x" in out["text"]
    assert len(out["charts"]) >= 4 and all("image/svg+xml" in o["data"] for o in out["charts"])
    assert res["peak_memory_mb"] < 2000
