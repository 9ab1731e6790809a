"""Lesson 03's experiment functions (thinlab.experiments.deepthin_study) on tiny inputs: the layout
rows and their ranks, floors and plans, the rank curves' contrast, the initialisation's spread, the
budgets, a one-size run grid, the verdict sentences and the timing tables."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from thinlab import deepthin, lowrank
from thinlab.experiments import compare
from thinlab.experiments import deepthin_study as study

DNN = {"hidden.0": (2000, 512), "hidden.1": (512, 512), "hidden.2": (512, 512)}


def test_position_rows():
    pos = np.arange(6).reshape(2, 3)
    rows = study.position_rows(pos, 2, 5)
    assert rows[0] == {"row": 0, "column": 0, "t": 0, "W_aux row": "0"}
    assert [r["W_aux row"] for r in rows] == ["0", "0", "1", "1", "2", "unused"]


def test_layouts_rank_and_offsets():
    rows, mats = study.layouts(16, 16, (8, 17), rank=1, seed=0)
    by = {r["n"]: r for r in rows}
    assert by[8]["gcd(n, Q)"] == 8 and by[8]["rank(W)"] <= 1 * 16 // 8      # n | Q: block-wise rank r
    assert by[17]["gcd(n, Q)"] == 1 and by[17]["rank(W)"] > 2                # coprime: far above r
    assert by[17]["offsets (your n_alignments)"] == 16 and len(mats) == 2
    with pytest.raises(AssertionError, match="n_alignments"):
        study.layouts(16, 16, (8,), rank=1, n_alignments=lambda Q, R, n: 99)


def test_floors_and_plans():
    fl = study.floors(DNN)
    assert fl["deepthin"] < fl["lowrank"] and fl["deepthin_1024_wide"] < fl["deepthin"]
    assert fl["lowrank"] == pytest.approx(sum(lowrank.lowrank_bytes(s, 1) for s in DNN.values())
                                          / sum(4 * q * r for q, r in DNN.values()))
    plans = study.plan_rows(DNN, [20, 350])
    assert len(plans) == 6 and all(p["gcd(n, Q)"] == math.gcd(p["n"], DNN[p["layer"]][0]) for p in plans)
    assert {p["low-rank r"] for p in plans if p["factor"] == 350} == {"—"}   # below rank factorisation's floor
    assert study.floor_layers([{"factor": 5, "layer": "a", "gcd(n, Q)": 4}, {"factor": 5, "layer": "b", "gcd(n, Q)": 1}]) \
        == [(5, "a")]


def test_rank_curves_contrast():
    curves = study.rank_curves(DNN, ["hidden.0", "hidden.1"], points=60)
    c0, c1 = study.rank_contrast(curves, "hidden.0"), study.rank_contrast(curves, "hidden.1")
    assert c0["at_least"] and c0["beyond"] > 0 and c0["shared"] > 0     # non-square: DeepThin reaches further
    assert c1["same"]                                                    # square: the same rank as low rank
    fake = [{"compression": 5, "rank": 2, "method": "DeepThin", "layer": "x"},
            {"compression": 5, "rank": 3, "method": "low rank", "layer": "x"}]
    assert study.rank_contrast(fake, "x") == {"same": False, "at_least": False, "higher": 0, "shared": 1, "beyond": 0}


def test_init_study_keeps_the_spread():
    rows, entries = study.init_study(64, 48, (1, 8), seed=0)
    assert [r["n"] for r in rows] == [63, 63] and all(abs(r["std / σ"] - 1) < 0.15 for r in rows)
    assert rows[0]["excess kurtosis"] > rows[1]["excess kurtosis"]      # heavier tails at rank 1
    assert entries[1].shape == (64 * 48,)


def test_budgets_and_reachable():
    b = study.budgets(DNN, ["dense", "deepthin", "lowrank"], [20, 350])
    assert b[350]["lowrank"] is None and b[20]["lowrank"] is not None and "dense" not in b[20]
    assert not study.reachable("lowrank", DNN, 350) and study.reachable("deepthin", DNN, 350)


@pytest.fixture(scope="module")
def grid():
    g = np.random.default_rng(0)

    def split(n):
        y = g.integers(0, 3, n)
        X = g.normal(size=(n, 8, 6)).astype(np.float32)
        X[:, :, :3] += 1.5 * (y[:, None, None] == np.arange(3)).astype(np.float32)
        return X, y

    (Xtr, ytr), (Xva, yva), (Xte, yte) = split(64), split(20), split(20)
    ds = SimpleNamespace(X_train=Xtr, y_train=ytr, X_val=Xva, y_val=yva, X_test=Xte, y_test=yte,
                         speakers_test=np.array([f"s{i % 5}" for i in range(20)]), labels=["a", "b", "c"])
    logged = []
    runs, kept, seconds = study.run_grid(ds, factors=[20], methods=["dense", "deepthin", "lowrank"], seeds=[0],
                                         epochs=1, log=logged.append)
    return runs, kept, seconds, logged


def test_run_grid(grid):
    runs, kept, seconds, logged = grid
    assert [r["method"] for r in runs] == ["dense", "deepthin", "lowrank"] and seconds > 0 and len(logged) == 3
    assert set(kept) == {20}
    wf = study.whole_model_factor(runs)
    assert set(wf) == {"deepthin 1/20", "lowrank 1/20"} and all(v > 1 for v in wf.values())
    done = study.rank1_runs(runs)
    assert len(done) == 1 and done[0]["rank"] == "1" and done[0]["factor"] == 20


def test_trained_timing_equals_dense(grid):
    rows = study.trained_timing(grid[1], batches=(1,), min_seconds=0.001)
    assert rows and all(r["factor"] == 20 and r["max_rel_diff"] < 1e-4 for r in rows)


def test_verdict_sentences():
    summary = [{"method": "deepthin", "factor": 20, "acc_mean": 0.8}, {"method": "lowrank", "factor": 20, "acc_mean": 0.7},
               {"method": "prune", "factor": 20, "acc_mean": 0.85}, {"method": "dense", "factor": 1, "acc_mean": 0.9}]
    rel = [{"method": "lowrank", "factor": 20, "verdict": "better"}, {"method": "prune", "factor": 20, "verdict": "worse"}]
    (line,) = study.verdict_lines(rel, summary, [20, 100], ["dense", "deepthin", "lowrank", "prune"])
    assert line.startswith("1/20: DeepThin 0.800; best here: prune 0.850")
    assert "DeepThin better than lowrank" in line and "DeepThin worse than prune" in line
    wl = study.wins_and_losses(rel, [20], n_speakers=7)
    assert wl[0].startswith("At every size some method beats DeepThin") and "prune at 1/20" in wl[1]
    assert study.wins_and_losses(rel[:1], [20], n_speakers=7)[0].startswith("At 1/20 no method beats")
    (note,) = study.floor_notes([(20, "hidden.1")], summary)
    assert note.startswith("At 1/20, hidden.1 sit at their floor") and "nan" in note   # no shuffled run


def _trow(batch, dense_us, fused_us, layer="x", Q=2048, R=2048):
    return {"batch": batch, "layer": layer, "Q": Q, "R": R, "dense_bytes": 4 * Q * R, "stored_bytes": 40_000,
            "dense_us": dense_us, "fused_us": fused_us, "speedup": dense_us / fused_us, "method": "fft"}


def test_timing_table_and_notes():
    paper = [_trow(1, 1000.0, 100.0), _trow(32, 3200.0, 3200.0)]
    course = [_trow(1, 10.0, 20.0, layer="hidden.1", Q=512, R=512)]
    table = study.timing_table({"paper": paper})
    assert table[0]["dense MB read"] == pytest.approx(16.0) and table[1]["speedup"] == 1.0
    notes = study.timing_notes(paper, paper, course, caches={"L2": 2**20, "L3": None}, batches=(1, 32), threads=2)
    assert notes[0].startswith("Bytes: at batch 1 the dense 2048 x 2048 product reads 16 MB") and "10.0x" in notes[0]
    assert "beyond L2 (1.0 MB)" in notes[2] and "the size of L3 unknown" in notes[2]
    assert notes[3].startswith("Small layers") and notes[-1].startswith("Threads: both sides ran on 2")
    assert len(study.timing_notes(paper, paper, [], caches={}, batches=(1, 32), threads=1)) == 4


def test_projection_rows_score_the_projection():
    W = np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32)
    rows = study.projection_rows(W, (4, 20), evaluate=lambda w: float(w.shape == W.shape))
    assert [r["accuracy"] for r in rows] == [1.0, 1.0]
    assert rows[0]["relative error"] < rows[1]["relative error"] < 1.0 + 1e-6
    s = deepthin.deepthin_size(64, 48, size_fraction=1 / 4)
    assert (rows[0]["m"], rows[0]["n"], rows[0]["r"], rows[0]["bytes"]) == (s.m, s.n, s.r, s.bytes)
    assert rows[0]["bytes"] <= 4 * 64 * 48 / 4 and compare is not None
