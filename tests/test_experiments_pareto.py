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
    assert "(inside its range, at the top)" in got["prune"]["text"]            # 3.00x of 2-3x: the top is inside
    assert "(inside its range, at the top)" in got["total"]["text"]
    assert pareto.forum_check(rows[:2], {"prune": (4, 5)})[0]["where"] == "below"


@pytest.mark.parametrize("value, where, words", [
    (3.0, "inside", "at the top"), (3.004, "inside", "at the top"),     # shown as 3.00: the top of the range
    (3.006, "above", "above"), (2.0, "inside", "at the bottom"), (1.996, "inside", "at the bottom"),
    (1.994, "below", "below"), (2.5, "inside", "inside its range"), (12.0, "above", "above")])
def test_place_in_range_decides_on_the_printed_value_with_both_ends_included(value, where, words):
    got, text = pareto.place_in_range(value, 2, 3, digits=2)
    assert got == where and words in text
    shown = float(f"{value:.2f}")
    assert (got == "inside") == (2 <= shown <= 3)          # the words never contradict the printed number


def test_forum_check_text_agrees_with_its_printed_number():
    for f in (2.999, 3.0, 3.004, 3.006, 1.995, 5.0001, 8.2):
        rows = pareto.stage_table([ROWS[0], dict(ROWS[1], bytes=1200 / f)], [f])
        r = pareto.forum_check(rows, {"prune": (2, 3)})[0]
        printed = float(r["text"].split("we measured ")[1].split("x")[0])
        assert r["where"] == ("below" if printed < 2 else "above" if printed > 3 else "inside")
        assert f"({r['where']}" in r["text"] or r["where"] in r["text"]


def test_place_in_range_refuses_a_reversed_range():
    with pytest.raises(ValueError, match="lo <= hi"):
        pareto.place_in_range(1.0, 3, 2, digits=2)


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
    assert [p["method"] for p in pts] == ["baseline: dnn", "pipeline", "pipeline", "pipeline", "distilled", "alone"]
    assert pts[-1]["factor"] == 120
    best = pareto.best_at_factor(pts, 100)
    assert best["method"] == "pipeline" and best["acc"] == 0.86
    assert pareto.best_at_factor(pts, 1000) is None
    kd = {"acc_alone": 0.5, "acc_distilled": 0.7, "seeds": [0, 1, 2], "vs_alone": {"verdict": "within noise"}}
    lines = pareto.summary_lines(rows, pareto.target_verdicts(120, 4.0), kd)
    assert "1,200 to 10 bytes (120x)" in lines[0] and "prune 3.0x, factorize 4.0x, quantize 10.0x" in lines[0]
    assert "mean of 3 seeds; within noise" in lines[-1]


def _pt(method, family, nbytes, acc, detail="d"):
    return {"method": method, "family": family, "bytes": nbytes, "acc": acc, "detail": detail}


def test_ship_answer_picks_the_most_accurate_point_under_the_budget():
    pts = [_pt("baseline: lstm", pareto.BASELINE_FAMILY, 384_000, 0.80),
           _pt("baseline: lstm quantised", "baselines, quantised", 55_000, 0.75, "4 bits"),
           _pt("pipeline", pareto.PIPELINE_FAMILY, 57_000, 0.61, "quantize"),
           _pt("lowrank", "factors, hashing", 64_000, 0.62),            # exactly at the budget: it fits
           _pt("prune", "pruning", 64_001, 0.99)]                        # one byte over: it does not
    rec, lines = pareto.ship_answer(pts, 64_000)
    assert rec["best"]["method"] == "baseline: lstm quantised"
    assert rec["baseline_beats_pipeline"] is None and rec["baseline_vs_pipeline"] is None   # no hits: no verdict
    assert "No baseline fits as trained: the smallest, baseline: lstm, takes 384 KB" in lines[1]
    assert "the baseline is 14.0 points ahead of the pipeline" in lines[2] and "no verdict on noise" in lines[2]
    assert "±10.0" not in lines[2]
    rec, lines = pareto.ship_answer(pts[2:], 64_000)
    assert rec["best"]["method"] == "lowrank" and rec["baseline_beats_pipeline"] is None
    assert "No form of the baselines fits" in lines[-1]
    rec, lines = pareto.ship_answer(pts, 1_000)
    assert rec["best"] is None and "No model of this run fits" in lines[0]
    rec, lines = pareto.ship_answer([pts[1], dict(pts[2], acc=0.76)], 64_000)
    assert rec["baseline_beats_pipeline"] is None and "1.0 points behind the pipeline" in lines[-1]
    rec, lines = pareto.ship_answer([pts[1], dict(pts[2], acc=0.7499)], 64_000)
    assert "the baseline is 0.01 points ahead of the pipeline" in lines[-1]           # not "0.0 points ahead"
    with pytest.raises(ValueError, match="positive number of bytes"):
        pareto.ship_answer(pts, 0)


def _hits_pair(n_speakers=40, per=10, *, base_only, pipe_only, seed=0):
    """Per-clip hits of a baseline and a pipeline point on the same n_speakers·per clips: both right on 60 %
    of the clips, then the baseline alone right on ``base_only`` more and the pipeline alone on ``pipe_only``
    more (random clips, so spread over the speakers)."""
    rng = np.random.default_rng(seed)
    n = n_speakers * per
    order = rng.permutation(n)
    both = order[: int(0.6 * n)]
    b_only, p_only = order[len(both): len(both) + base_only], order[len(both) + base_only:][:pipe_only]
    base, pipe = np.zeros(n, bool), np.zeros(n, bool)
    base[both] = pipe[both] = True
    base[b_only], pipe[p_only] = True, True
    return base, pipe, np.repeat(np.arange(n_speakers), per)


def test_ship_answer_judges_the_gap_by_its_own_paired_comparison():
    """The gap between the best baseline and the pipeline is judged by paired_compare on their own hits,
    not by the half-width of another pair's interval: here the two disagree both ways."""
    from thinlab import stats

    def answer(base_hits, pipe_hits, spk):
        base_pt = _pt("baseline: cnn quantised", "baselines, quantised", 50_000, float(base_hits.mean()), "4 bits")
        pipe_pt = _pt("pipeline", pareto.PIPELINE_FAMILY, 57_000, float(pipe_hits.mean()), "quantize")
        pts = [dict(base_pt, hits=base_hits), dict(pipe_pt, hits=pipe_hits)]
        return pareto.ship_answer(pts, 64_000, speakers=spk)

    # 3 points ahead on 12 clips where only the baseline is right: a consistent gap, beyond noise, although
    # it is smaller than a ±5-point interval of compressed vs teacher (the old code said "within")
    base, pipe, spk = _hits_pair(base_only=12, pipe_only=0)
    rec, lines = answer(base, pipe, spk)
    want = stats.paired_compare(base, pipe, spk, a="the baseline", b="the pipeline")
    assert want.verdict == "better" and rec["baseline_vs_pipeline"] == want.as_dict()
    assert rec["baseline_beats_pipeline"] is True
    assert want.text() in lines[-1] and "the baseline is better" in lines[-1] and "within" not in lines[-1]
    assert f"Paired on the same {len(base)} clips" in lines[-1]
    # the same 3 points as 60 clips won against 48 lost: within noise, although larger than a ±0.5-point
    # interval of compressed vs teacher (the old code said "beyond" and recorded True)
    base, pipe, spk = _hits_pair(base_only=60, pipe_only=48)
    assert np.isclose(base.mean() - pipe.mean(), 0.03)
    rec, lines = answer(base, pipe, spk)
    assert rec["baseline_vs_pipeline"]["verdict"] == "within noise" and rec["baseline_beats_pipeline"] is None
    assert "within noise, so this run cannot tell them apart" in lines[-1] and "beyond" not in lines[-1]
    # the pipeline ahead beyond noise: recorded as False
    pipe, base, spk = _hits_pair(base_only=12, pipe_only=0)
    rec, lines = answer(base, pipe, spk)
    assert rec["baseline_vs_pipeline"]["verdict"] == "worse" and rec["baseline_beats_pipeline"] is False
    assert "the baseline is worse" in lines[-1]
    # the record keeps the points, not their hits; without speakers there is no paired verdict
    assert all("hits" not in rec[k] for k in ("best", "best_pipeline", "best_baseline"))
    pts = [dict(_pt("baseline: cnn quantised", "baselines, quantised", 50_000, 0.6), hits=base),
           dict(_pt("pipeline", pareto.PIPELINE_FAMILY, 57_000, 0.6), hits=pipe)]
    rec, lines = pareto.ship_answer(pts, 64_000)
    assert rec["baseline_vs_pipeline"] is None and "the two score the same; without" in lines[-1]


def test_points_keep_hits_for_paired_comparisons_but_not_in_charts():
    rows = pareto.stage_table(ROWS, [3, 4, 10])
    hits = {r["stage"]: np.arange(100) < round(100 * r["acc_ft"]) for r in ROWS}
    pts = pareto.run_points(rows, hits=hits)
    assert [p["hits"].mean() for p in pts] == pytest.approx([r["acc_ft"] for r in ROWS])
    assert "hits" not in pareto.run_points(rows)[0]                           # hits only where given
    all_rows, front = pareto.chart_points(pts, pts[:1])
    assert all("hits" not in r for r in all_rows + front) and all("hits" in p for p in pts)
    assert pareto.without_hits(pts)[1] == {k: v for k, v in pts[1].items() if k != "hits"}


def test_chart_points_name_every_point_and_refuse_too_many_families():
    pts = [_pt("m", f"family {i}", 100 + i, 0.5) for i in range(8)]
    rows, front = pareto.chart_points(pts, pts[:2])
    assert rows[0]["name"] == "m, d" and len(front) == 2 and all("name" in r for r in front)
    with pytest.raises(ValueError, match="at most 8"):
        pareto.chart_points(pts + [_pt("m", "family 9", 1, 0.1)], [])


def test_distillation_reasons_quote_the_run():
    rec = {"T": 4.0, "alpha": 0.7, "acc_alone": 0.60, "epochs": 20, "bytes": 57_000, "seeds": [0, 1, 2],
           "n_speakers": 7}
    r = pareto.distillation_reasons(rec, teacher_acc=0.63)
    assert "T = 4 and alpha = 0.7" in r[0] and "only 3.0 points above" in r[1] and "20 epochs" in r[2]
    assert "57,000 bytes" in r[3] and "3 seed(s) and 7 test speakers" in r[4]
    assert "leads the student trained alone by 20.0 points" in pareto.distillation_reasons(rec, 0.80)[1]
    assert "below the student" in pareto.distillation_reasons(rec, 0.55)[1]


def test_capstone_limits():
    lim = pareto.capstone_limits(0.63, size_limit=64_000)
    assert lim["size_limit"] == 64_000 and np.isclose(lim["accuracy_bar"], 0.58) and lim["max_lost"] == 5.0
    assert pareto.capstone_limits(0.02)["accuracy_bar"] == 0.0


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
    assert list(S.hits) == ["dense", "prune", "quantize"]                # per-clip hits, for paired comparisons
    assert all(S.hits[r["stage"]].shape == ev["y"].shape and np.isclose(S.hits[r["stage"]].mean(), r["acc_ft"])
               for r in S.rows)
    assert np.array_equal(S.hits["quantize"], train.predict(S.final, ev["X"]) == ev["y"])
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
                                                  n_bits=8, epochs=2, T=4.0, alpha=0.7, seeds=[0, 1])
    assert rec["bytes"] == pl.model_bytes(models["alone"]) == pl.model_bytes(models["distilled"])
    assert {h["run"] for h in hist} == {"alone, seed 0", "distilled, seed 0", "alone, seed 1", "distilled, seed 1"}
    assert len(hist) == 8 and [r["seed"] for r in rec["per_seed"]] == [0, 1]
    assert np.isclose(rec["acc_alone"], np.mean([r["alone"] for r in rec["per_seed"]]))   # seeds averaged per clip
    assert np.isclose(rec["vs_alone"]["diff"], rec["acc_distilled"] - rec["acc_alone"])
    with pytest.raises(ValueError, match="distinct seeds"):
        pareto.distillation_study(teacher, ds, ev, keep=16, method="lowrank", size_fraction=0.5, n_bits=8, epochs=1,
                                  T=4.0, alpha=0.7, seeds=[0, 0])
    v = rec["vs_alone"]                                              # the verdict follows its own interval
    assert v["verdict"] == ("better" if v["low"] > 0 else "worse" if v["high"] < 0 else "within noise")
    assert np.isclose(rec["per_seed"][0]["alone"], pl.accuracy(models["alone"], ev["X"], ev["y"]))


def test_capstone_runs_a_choice_and_refuses_bad_ones(toy):
    ds, teacher = toy
    ev = pareto.eval_set(ds, ["test"])
    choice = {"prune_factor": 2, "factor_method": "lowrank", "factor_fraction": 0.5, "n_bits": 8}
    nbytes = pareto.capstone_bytes(teacher, choice)
    assert nbytes < pl.model_bytes(teacher) / 2
    r = pareto.capstone_run(teacher, ds, ev, choice, finetune_epochs=1)
    assert r["bytes"] == nbytes and [x["stage"] for x in r["rows"]] == ["dense", "prune", "factorize", "quantize"]
    assert np.isclose(r["acc"], r["rows"][-1]["acc_ft"])
    only_bits = dict(choice, prune_factor=1, factor_fraction=None)
    assert pareto.capstone_bytes(teacher, only_bits) < pl.model_bytes(teacher)
    for bad, msg in ((dict(choice, prune_factor=0.5), "prune_factor"), (dict(choice, factor_fraction=1.5), "factor_fraction"),
                     (dict(choice, n_bits=1), "n_bits"), ({"prune_factor": 2}, "exactly the keys"),
                     (dict(choice, prune_factor=1, factor_fraction=None, n_bits=None), "compresses nothing")):
        with pytest.raises(ValueError, match=msg):
            pareto.capstone_bytes(teacher, bad)


def test_quantize_all_weights_covers_conv_and_lstm_gates():
    import torch
    for name in ("cnn", "lstm"):
        train.seed_everything(0)
        m = build_model(name, 3, n_frames=16, n_mels=8)
        dense = pl.model_bytes(m)
        q8, b8 = pareto.quantize_all_weights(m, n_bits=8)
        q4, b4 = pareto.quantize_all_weights(m, n_bits=4)
        assert b4 < b8 < dense / 3                              # every weight matrix shrinks, 4 bits below 8
        x = torch.randn(5, 16, 8)
        with torch.no_grad():
            ref, out8 = m.eval()(x), q8.eval()(x)
        assert torch.allclose(ref, out8, atol=0.05 * float(ref.abs().max()))   # 8 bits: close to the float model
        changed = [n for (n, p), (_, p8) in zip(m.named_parameters(), q8.named_parameters()) if not torch.equal(p, p8)]
        assert all(m.get_parameter(n).dim() >= 2 for n in changed) and len(changed) >= 3
    pts = pareto.baseline_points({"lstm": m}, {"X": np.zeros((4, 16, 8), np.float32), "y": np.zeros(4, int)}, bits=[4])
    assert [p["method"] for p in pts] == ["baseline: lstm", "baseline: lstm quantised"]
    assert pts[1]["bytes"] == pareto.quantize_all_weights(m, n_bits=4)[1] and pts[0]["family"] == pareto.BASELINE_FAMILY
    assert all(p["hits"].shape == (4,) and np.isclose(p["hits"].mean(), p["acc"]) for p in pts)


def test_quantize_all_weights_is_quant_sweep_on_every_weight_matrix():
    """One home for post-training quantisation of a whole model: quant_sweep's weight_tensors,
    quantize_weights, with_weights and model_bytes, with quant_sweep's rules (a codebook no smaller
    than a tiny W leaves that W float32)."""
    import torch

    from thinlab.experiments import quant_sweep as qs

    want = {("cnn", 8): 136_304, ("cnn", 4): 70_604, ("lstm", 8): 103_984, ("lstm", 4): 56_560}   # as before
    for (name, bits), nbytes in want.items():
        train.seed_everything(0)
        m = build_model(name, 10)
        q, got = pareto.quantize_all_weights(m, n_bits=bits)
        qz = qs.quantize_weights(qs.weight_tensors(m), method="uniform_sym_channel", n_bits=bits)
        assert got == nbytes == qs.model_bytes(m, qz)
        ref = qs.with_weights(m, qz)
        assert all(torch.equal(a, b) for a, b in zip(q.state_dict().values(), ref.state_dict().values()))
    train.seed_everything(0)
    cnn = build_model("cnn", 3, n_frames=16, n_mels=8)
    q, got = pareto.quantize_all_weights(cnn, method="kmeans", n_bits=8)   # the 3x3 first conv: 72 weights < 256
    tiny = "features.0.weight"
    assert torch.equal(q.get_parameter(tiny), cnn.get_parameter(tiny))             # left float32
    qz = qs.quantize_weights(qs.weight_tensors(cnn), method="kmeans", n_bits=8)
    assert tiny not in qz and got == qs.model_bytes(cnn, qz) < pl.model_bytes(cnn)
