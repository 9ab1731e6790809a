"""thinlab.experiments.pareto (lesson 06's study): the stage table and its verdicts on exact toy numbers,
and the model-level helpers on a tiny synthetic DNN (seconds, no data set)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from thinlab import train
from thinlab.experiments import pareto, pipeline as pl
from thinlab.models import build_model

ROWS = [{"stage": "dense", "bytes": 1200, "acc_post": 0.9, "acc_ft": 0.9},
        {"stage": "prune", "bytes": 400, "acc_post": 0.8, "acc_ft": 0.88},
        {"stage": "factorize", "bytes": 100, "acc_post": 0.6, "acc_ft": 0.87},
        {"stage": "quantize", "bytes": 10, "acc_post": 0.5, "acc_ft": 0.86}]


def test_stage_table_adds_the_byte_ratios_and_refuses_wrong_factors():
    rows = pareto.stage_table(ROWS, [3, 4, 10])
    assert [r["stage_factor"] for r in rows] == [1.0, 3.0, 4.0, 10.0]
    assert [r["factor"] for r in rows] == [1.0, 3.0, 12.0, 120.0]
    assert "stage_factor" not in ROWS[1]                          # the input rows are left alone
    with pytest.raises(ValueError, match="bytes before / bytes after"):
        pareto.stage_table(ROWS, [1 / 3, 1 / 4, 1 / 10])
    with pytest.raises(ValueError, match="one per stage"):
        pareto.stage_table(ROWS, [3, 4])


def test_forum_check_places_each_factor_in_or_outside_its_range():
    rows = pareto.stage_table(ROWS, [3, 4, 10])
    got = {r["stage"]: r for r in pareto.forum_check(rows)}
    assert [got[s]["where"] for s in ("prune", "factorize", "quantize", "total")] == ["inside", "inside", "above",
                                                                                   "inside"]
    assert got["total"]["measured"] == 120 and "expected 30-120x" in got["total"]["text"]
    assert pareto.forum_check(rows[:2], {"prune": (4, 5)})[0]["where"] == "below"


@pytest.mark.parametrize("total, lost, met", [(120, 1.0, [True, True]), (60, 3.0, [False, False]),
                                              (120, 3.0, [False, True]), (40, -1.0, [False, False])])
def test_target_verdicts(total, lost, met):
    v = pareto.target_verdicts(total, lost)
    assert [x["met"] for x in v] == met
    assert all(("MET" if x["met"] else "not met") in x["text"] for x in v)
    if total < 50:
        assert "the factor is 1.25x short" in v[0]["text"]


def test_targets_study_measures_loss_noise_and_near_chance():
    rows = pareto.stage_table(ROWS, [3, 4, 10])
    spk = np.repeat(np.arange(10), 5)
    teacher = np.ones(50, bool)
    final = teacher.copy()
    final[:20] = False                                             # 40 points worse, on 4 of 10 speakers
    rec, lines = pareto.targets_study(rows, final, teacher, spk, n_classes=10)
    assert np.isclose(rec["lost_points"], 100 * (0.9 - 0.86)) and np.isclose(rec["lost_points_post_training"], 40)
    assert rec["vs_teacher"]["verdict"] == "worse" and rec["noise_points"] > 0 and not rec["near_chance"]
    assert [v["met"] for v in rec["verdicts"]] == [False, True]
    rec, lines = pareto.targets_study(rows, teacher, teacher, spk, n_classes=2)   # teacher 0.9 < 2 × 0.5
    assert rec["near_chance"] and any(l.startswith("CAUTION") for l in lines)


def test_chart_rows_points_and_best_at_factor():
    rows = pareto.stage_table(ROWS, [3, 4, 10])
    assert [r["stage"] for r in pareto.waterfall_rows(rows)] == ["0 dense", "1 prune", "2 factorize", "3 quantize"]
    acc = pareto.accuracy_rows(rows)
    assert len(acc) == 8 and {a["track"] for a in acc} == {"post-training", "fine-tuned"}
    pts = pareto.with_factors(pareto.run_points(rows, {"bytes": 10, "acc_alone": 0.5, "acc_distilled": 0.7}), 1200)
    assert [p["method"] for p in pts] == ["dense", "pipeline", "pipeline", "pipeline", "distilled", "alone"]
    assert pts[-1]["factor"] == 120
    best = pareto.best_at_factor(pts, 100)
    assert best["method"] == "pipeline" and best["acc"] == 0.86
    assert pareto.best_at_factor(pts, 1000) is None
    lines = pareto.summary_lines(rows, pareto.target_verdicts(120, 4.0), {"acc_alone": 0.5, "acc_distilled": 0.7})
    assert "1,200 to 10 bytes (120x)" in lines[0] and "prune 3.0x, factorize 4.0x, quantize 10.0x" in lines[0]


# ---------------------------------------------------------------- on a tiny model

@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    n, F, M, C = 60, 8, 6, 3
    y = np.arange(n) % C
    X = (rng.normal(size=(n, F, M)) + 3.0 * y[:, None, None]).astype(np.float32)   # separable classes
    spk = np.array([f"s{i % 12}" for i in range(n)])
    ds = SimpleNamespace(X_train=X[:36], y_train=y[:36], X_val=X[36:48], y_val=y[36:48], X_test=X[48:],
                         y_test=y[48:], speakers_train=spk[:36], speakers_val=spk[36:48], speakers_test=spk[48:],
                         files_train=spk[:36], files_val=spk[36:48], files_test=np.array([f"f{i}" for i in range(12)]),
                         labels=["a", "b", "c"])
    train.seed_everything(0)
    teacher = build_model("dnn", C, n_frames=F, n_mels=M, hidden=(32, 32))
    train.fit(teacher, ds.X_train, ds.y_train, epochs=40, seed=0, progress=False)
    return ds, teacher.eval()


def test_eval_set_concatenates_the_named_splits(toy):
    ds, _ = toy
    ev = pareto.eval_set(ds, ["val", "test"])
    assert ev["X"].shape == (24, 8, 6) and ev["X"].dtype == np.float32 and len(ev["speakers"]) == 24
    assert np.array_equal(ev["y"], np.concatenate([ds.y_val, ds.y_test])) and ev["splits"] == ["val", "test"]
    with pytest.raises(ValueError, match="not in the data set"):
        pareto.eval_set(ds, ["tset"])
    with pytest.raises(ValueError, match="at least one split"):
        pareto.eval_set(ds, [])


def test_teacher_record_and_stage_table_on_a_tiny_dnn(toy, tmp_path):
    ds, teacher = toy
    ev = pareto.eval_set(ds, ["val", "test"])
    T = pareto.teacher_record(teacher, ev)
    assert T["widths"] == [32, 32] and T["in_features"] == 4 * 6 and T["n_classes"] == 3
    assert np.isclose(T["first_share"], 24 * 32 / (24 * 32 + 32 * 32 + 32 * 3))
    assert T["acc"] > 2 / 3 and T["bytes"] == pl.model_bytes(teacher)          # it learned the toy classes
    S = pareto.StageTable(teacher, ev, ds.X_train, ds.y_train, finetune_epochs=1)
    S.add("prune", lambda m: pl.stage_prune(m, keep=16))
    S.add("quantize", lambda m: pl.stage_quantize(m, n_bits=8))
    assert [r["stage"] for r in S.rows] == ["dense", "prune", "quantize"]
    assert S.rows[0]["bytes"] > S.rows[1]["bytes"] > S.rows[2]["bytes"] == pl.model_bytes(S.final)
    assert S.rows[2]["acc_ft"] >= T["acc"] - 0.25                     # mild settings keep most of the accuracy
    with pytest.raises(ValueError, match="already in the table"):
        S.add("prune", lambda m: m)
    rec, reloaded = pareto.save_and_time(S.final, teacher, tmp_path / "m.npz", ev["X"])
    assert rec["same_predictions"] and rec["report_bytes"] == S.rows[-1]["bytes"]
    assert rec["overhead_bytes"] == rec["file_bytes"] - rec["report_bytes"] > 0
    assert set(rec["timing_ms"]) == {"dense teacher", "compressed, as stored", "compressed, decoded once"}


def test_method_and_quant_points_on_a_tiny_dnn(toy):
    ds, teacher = toy
    ev = pareto.eval_set(ds, ["test"])
    pts = pareto.method_points(teacher, ds, ev, methods=["lowrank", "narrow"], fractions=[0.5], finetune_epochs=1,
                               epochs=1)
    assert [p["method"] for p in pts] == ["lowrank", "narrow"]
    assert pts[0]["bytes"] < pl.model_bytes(teacher) and pts[1]["detail"].startswith("width ")
    q = pareto.quant_points(teacher, ev, methods=["uniform_sym_channel"], bits=[8])
    assert q[0]["method"] == "quant: uniform_sym_channel" and q[0]["detail"] == "8 bits"
    assert abs(q[0]["acc"] - pl.accuracy(teacher, ev["X"], ev["y"])) <= 2 / len(ev["y"])   # 8 bits: all but lossless


def test_distillation_study_trains_two_students_of_the_final_structure(toy):
    ds, teacher = toy
    ev = pareto.eval_set(ds, ["test"])
    rec, hist, models = pareto.distillation_study(teacher, ds, ev, keep=16, method="lowrank", size_fraction=0.5,
                                                  n_bits=8, epochs=2, T=4.0, alpha=0.7)
    assert rec["bytes"] == pl.model_bytes(models["alone"]) == pl.model_bytes(models["distilled"])
    assert {h["run"] for h in hist} == {"alone", "distilled"} and len(hist) == 4
    assert rec["vs_alone"]["verdict"] in ("better", "worse", "within noise")
    assert np.isclose(rec["acc_alone"], pl.accuracy(models["alone"], ev["X"], ev["y"]))
