"""Lesson 05 (FP16 and transfer) runs end to end with its CI parameters and its numbers behave: the
FP32 CNN beats chance, casting it to 16 bits keeps its predictions, loss scaling rescues the
gradients that underflow, the learner's loss-scale rule replays the FP16 run step by step, and the
JSON's numbers agree with each other, with the library's format facts and with the printed summary."""
from __future__ import annotations

import math

import pytest

from thinlab import charts, course, precision, stats

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
    assert budget["seeds"] == fast["SEEDS"] and budget["steps"] == fast["HALF_EPOCHS"] * math.ceil(budget["n_train"] / 64)
    for p in prec.values():                     # the reported accuracy is the mean over seeds
        assert len(p["seed_accs"]) == len(fast["SEEDS"]) and p["test_acc"] == pytest.approx(sum(p["seed_accs"]) / len(p["seed_accs"]))
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
            assert r["steps"] == tr["epochs"] * math.ceil(r["n_train"] / 64)
            assert r["test_acc"] == pytest.approx(sum(r["seed_accs"]) / len(r["seed_accs"]))
            if r["start"] in key:
                assert tr[key[r["start"]]][str(r["fraction"])] == r["test_acc"]
            else:                                   # the float32 control runs at the smallest share only
                assert r["start"] == "from scratch, FP32" and r["fraction"] == min(tr["fractions"])
    assert tr["cast_only"] == res["cast"]["fp16 (cast)"]
    _check_transfer_explained(res, out["text"], n_classes=res["baseline"]["n_classes"])

    for name in ("float_spacing", "underflows", "loss_scale_update"):
        assert f"✓ {name} is right" in out["text"]
    assert "your rule reproduces every step" in out["text"]
    assert "same budget: " + ", ".join(f"{p} {prec[p]['test_acc']:.3f} ({prec[p]['s_per_epoch']:.2f} s/epoch)"
                                       for p in ("fp32", "fp16", "bf16")) in out["text"]
    assert len(out["charts"]) >= 6 and all("image/svg+xml" in o["data"] for o in out["charts"])
    for o in out["charts"]:
        assert not charts.lint(o["data"]["application/vnd.vegalite.v5+json"])
    assert res["peak_memory_mb"] < 2000


def _check_transfer_explained(res, text, *, n_classes):
    """The interpretation printed under the transfer curve: its direction words agree with its numbers."""
    tr, ex = res["transfer"], res["transfer"]["explained"]
    flat = " ".join(text.split())
    assert ex["chance"] == pytest.approx(1 / n_classes)
    for f, c in ex["pure_vs_cast"].items():        # each verdict agrees with its own interval
        assert c["verdict"] == ("worse" if c["high"] < 0 else "better" if c["low"] > 0 else "within noise")
        assert c["acc_a"] == pytest.approx(tr["from_fp32"][f]) and c["acc_b"] == pytest.approx(tr["cast_only"])
    fell = [float(f) for f, c in ex["pure_vs_cast"].items() if c["verdict"] == "worse"]
    assert ex["fell_below_cast"] == fell
    shown = ", ".join(f"{f:.0%}" for f in fell) or "no share"
    assert f"fell below the cast model (accuracy {tr['cast_only']:.3f}) beyond noise at {shown}" in flat
    for f, c in ex["mixed_vs_pure_where_fell"].items():
        assert c["acc_a"] == pytest.approx(tr["from_fp32_mixed"][f]) and c["acc_b"] == pytest.approx(tr["from_fp32"][f])
    held = [f for f, c in ex["mixed_vs_pure_where_fell"].items() if c["verdict"] == "better"]
    assert ("optimizer state and weights" in flat) == bool(held)
    stuck = [float(f) for f, v in ex["scratch"].items() if v["acc"] <= ex["chance"] + 2 * v["se"]]
    assert ex["scratch_near_chance"] == stuck
    for f, v in ex["scratch"].items():
        assert v["acc"] == pytest.approx(tr["from_scratch"][f])
    if stuck:
        ctrl = ex["scratch_fp32_control"]
        assert ctrl["near_chance"] == (ctrl["acc"] <= ex["chance"] + 2 * ctrl["se"])
        assert (("also near chance" if ctrl["near_chance"] else "well above chance") + "") in flat
    else:
        assert "rose above chance" in flat
    first = tr["first_step"]        # both modes over the same weights: those with a float32 gradient
    assert first["pure"]["weights"] == first["mixed"]["weights"] > 0
    assert first["mixed"]["over_2lr"] == 0 and first["mixed"]["max_over_lr"] < 2   # FP32 masters: Adam moves each by ≈ lr
    if first["v_underflow"] > 0.05:                     # 0.001·g² is 0 in float16: pure FP16 steps lr·g/ε
        assert first["pure"]["over_2lr"] > first["mixed"]["over_2lr"]
    assert "Hint 1 (concept)" in flat and flat.count("Hint 1 (concept)") >= 3
    assert "Pure FP16 retrained from the FP32 CNN on" in flat and "The run measured" in flat   # predict, reveal
    vs = res["fp32_vs_fp16"]                     # teach.interpret's head, with the direction word from the numbers
    way = "ahead" if vs["diff"] > 0 else "behind" if vs["diff"] < 0 else "level"
    assert (f"FP32 {vs['acc_a']:.3f} vs FP16 {vs['acc_b']:.3f}, FP32 {stats.points_text(abs(vs['diff']))[1:]} points {way}" in flat
            if way != "level" else f"both {vs['acc_a']:.3f}" in flat)
