"""Lesson 06 (the full pipeline) runs end to end with its CI parameters and its numbers behave: the teacher
learned, a mild stage keeps most of its accuracy, and every number the JSON reports agrees with the others and
with what the library recomputes from them."""
from __future__ import annotations

import numpy as np
import pytest

from thinlab import charts, course
from thinlab.experiments import pareto, pipeline as pl

#: on the CI run (2 epochs, 24 clips per word) the teacher beats chance (1/10) by at least this much on real speech
#: (0.267 measured on the shared sample); on the synthetic set it is still at chance after 2 epochs (0.105 measured),
#: and there the lesson must say so
CHANCE_MARGIN = {"synthetic": None, "shared": 0.1}
#: the fine-tuned prune stage (the mildest: PRUNE_FACTOR 3, then fine-tuned) keeps this share of the teacher's accuracy
KEEP_SHARE = 0.6


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_06(run_lesson_fast, data):
    res, nb, out = run_lesson_fast("06", data)
    fast = course.FAST_PARAMS["06"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    assert res["data"]["n_eval"] == res["data"]["n_test"]          # EVAL_SPLITS is ["test"] by default

    teacher = res["teacher"]
    n_classes = teacher["n_classes"]
    if CHANCE_MARGIN[data] is not None:
        assert teacher["acc"] >= 1 / n_classes + CHANCE_MARGIN[data], f"the teacher did not learn: {teacher['acc']:.3f}"
    assert ("CAUTION: the teacher scores" in out["text"]) == (teacher["acc"] < 2 / n_classes)
    assert teacher["interval"][0] <= teacher["acc"] <= teacher["interval"][1]
    n_w = [teacher["in_features"] * teacher["widths"][0]] + [a * b for a, b in zip(teacher["widths"],
                                                                                    teacher["widths"][1:])]
    n_w.append(teacher["widths"][-1] * n_classes)
    assert np.isclose(teacher["first_share"], n_w[0] / sum(n_w))   # the printed share is the shapes' share

    stages = res["stages"]
    assert [s["stage"] for s in stages] == ["dense", "prune", "factorize", "quantize"]
    b = [s["bytes"] for s in stages]
    assert b == sorted(b, reverse=True) and b[0] == teacher["bytes"] > 6_000_000
    # factors are honest ratios of bytes, and multiply to the total
    assert all(np.isclose(s["stage_factor"], b0 / b1) for s, b0, b1 in zip(stages[1:], b, b[1:]))
    assert np.isclose(np.prod([s["stage_factor"] for s in stages]), res["total_factor"])
    assert np.isclose(res["total_factor"], b[0] / b[-1]) and res["total_factor"] > 30
    assert stages[0]["acc_ft"] == stages[0]["acc_post"] and np.isclose(stages[0]["acc_ft"], teacher["acc"])
    learned = teacher["acc"] >= 2 / n_classes                     # a teacher with something to keep
    assert not learned or stages[1]["acc_ft"] >= KEEP_SHARE * teacher["acc"], "a mild stage lost most of the accuracy"
    assert stages[1]["factor"] >= 3 - 1e-9 and res["keep_units"] < teacher["widths"][0]
    assert [f["where"] for f in res["forum"]] == [f["where"] for f in pareto.forum_check(stages)]

    t = res["targets"]
    assert np.isclose(t["lost_points"], 100 * (teacher["acc"] - stages[-1]["acc_ft"]))
    assert np.isclose(t["lost_points_post_training"], 100 * (teacher["acc"] - stages[-1]["acc_post"]))
    assert [v["met"] for v in t["verdicts"]] == [v["met"] for v in pareto.target_verdicts(res["total_factor"],
                                                                                          t["lost_points"])]
    vs = t["vs_teacher"]
    assert np.isclose(vs["diff"], -t["lost_points"] / 100) and vs["low"] <= vs["diff"] <= vs["high"]
    assert t["near_chance"] == (teacher["acc"] < 2 / n_classes)

    kd = res["distillation"]
    assert kd["bytes"] == b[-1] and kd["epochs"] == fast["DISTILL_EPOCHS"]
    assert kd["acc_pipeline"] == stages[-1]["acc_ft"]
    assert np.isclose(kd["vs_alone"]["diff"], kd["acc_distilled"] - kd["acc_alone"])

    pts = res["pareto"]["points"]
    methods = {p["method"] for p in pts}
    assert set(fast["PARETO_METHODS"]) <= methods and {"pipeline", "distilled", "alone", "dense"} <= methods
    assert {f"quant: {m}" for m in fast["QUANT_METHODS"]} <= methods
    assert all(p["bytes"] > 0 and np.isclose(p["factor"], b[0] / p["bytes"]) for p in pts)
    dense = next(p for p in pts if p["method"] == "dense")
    assert np.isclose(dense["acc"], teacher["acc"]) and dense["bytes"] == b[0]
    assert sorted(p["bytes"] for p in pts if p["method"] == "pipeline") == sorted(b[1:])
    front = [tuple(f) for f in res["pareto"]["front"]]
    assert front == [(p["method"], p["detail"]) for p in pl.pareto_front(pts)]
    q4 = [p for p in pts if p["method"] == "quant: uniform_sym_channel"]   # 4-bit per-channel: a mild quantiser
    assert q4 and (not learned or all(p["acc"] >= KEEP_SHARE * teacher["acc"] for p in q4))

    sv = res["saved"]
    assert sv["same_predictions"] and sv["max_logit_diff"] < 1e-4
    assert sv["report_bytes"] == b[-1] and 0 < sv["overhead_bytes"] == sv["file_bytes"] - sv["report_bytes"] < 20_000
    assert set(res["timing_ms"]) == {"dense teacher", "compressed, as stored", "compressed, decoded once"}
    assert all(v > 0 for v in res["timing_ms"].values())
    assert all(r["max_rel_diff"] < 1e-3 for r in res["deepthin_torch_fused"])

    s = res["summary"]
    assert s["factor"] == res["total_factor"] and s["lost_points"] == t["lost_points"]
    for name in ("stage_factors", "distillation_loss"):
        assert f"✓ {name} is right" in out["text"]
    assert "the forum post expected" in out["text"] and f"target ≥ {pareto.TARGETS[0][0]}x" in out["text"]
    assert f"the first holds {teacher['first_share']:.0%} of the Linear weights" in out["text"]
    assert len(out["charts"]) >= 4 and all("image/svg+xml" in o["data"] for o in out["charts"])
    for o in out["charts"]:
        spec = o["data"]["application/vnd.vegalite.v5+json"]
        assert not charts.lint(spec), charts.lint(spec)
    assert res["peak_memory_mb"] < 2000
