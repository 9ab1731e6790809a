"""Lesson 03's experiment functions (thinlab.experiments.deepthin_study) on tiny inputs: the layout
rows and their ranks, floors and plans, the rank curves' contrast, the initialisation's spread, the
budgets, a one-size run grid, the verdict sentences and the timing tables."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from thinlab import deepthin, lowrank, teach
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
    assert line.startswith("1/20: DeepThin 0.800; highest mean: prune 0.850")
    assert "DeepThin better than lowrank (beyond noise)" in line and "DeepThin worse than prune (beyond noise)" in line
    (note,) = study.floor_notes([(20, "hidden.1")], summary)
    assert note.startswith("At 1/20, hidden.1 sit at their floor") and "nan" in note   # no shuffled run


def _runs(accs: dict, n_spk: int = 12, per: int = 10, seed: int = 0):
    """Fake comparison runs: method → (factor → per-clip accuracy), hits drawn on the same clips."""
    g = np.random.default_rng(seed)
    spk = [f"s{i // per}" for i in range(n_spk * per)]
    return [{"method": m, "size_fraction": 1 / F, "seed": 0, "hits": (g.random(len(spk)) < a).tolist(), "speakers": spk}
            for m, by in accs.items() for F, a in by.items()]


def _same_runs(n_spk: int = 12, per: int = 10):
    """DeepThin and DeepThin-shuffled with the very same per-clip hits (half right, every speaker alike):
    a paired difference of exactly 0 on every resample, so the verdict is "within noise" by construction."""
    spk = [f"s{i // per}" for i in range(n_spk * per)]
    hits = [i % 2 == 0 for i in range(n_spk * per)]
    return [{"method": m, "size_fraction": 1 / 20, "seed": 0, "hits": list(hits), "speakers": spk}
            for m in ("deepthin", "deepthin_shuffled")]


def test_comparisons_and_interpretations_follow_the_numbers():
    runs = _runs({"deepthin": {20: 0.9, 100: 0.5}, "deepthin_shuffled": {20: 0.3, 100: 0.5}, "hashed": {20: 0.9, 100: 0.95}})
    cmps = study.comparisons(runs)
    rel = {(r["method"], r["factor"]): r for r in compare.paired_verdicts(runs)}
    assert set(cmps) == set(rel) and all(cmps[k].verdict == rel[k]["verdict"] for k in rel)   # the same verdicts
    assert cmps[("deepthin_shuffled", 20)].verdict == "better" and cmps[("hashed", 100)].verdict == "worse"
    lines = study.interpretations(cmps, [20, 100], ["dense", "deepthin", "deepthin_shuffled", "hashed"])
    for (m, F), c in cmps.items():
        (s,) = [x for x in lines if x.startswith(f"1/{F}, DeepThin against {study.LABELS[m]}:")]
        assert (f"DeepThin {c.acc_a:.3f} vs {study.LABELS[m]} {c.acc_b:.3f}" if c.diff != 0 else f"both {c.acc_a:.3f}") in s
        assert ("ahead" in s) == (c.diff > 0) and ("behind" in s) == (c.diff < 0)
        assert ("beyond noise" in s) == (c.verdict != "within noise")
    summary = {m: x for m in ("deepthin_shuffled", "hashed") for x in lines if x.startswith(f"→ DeepThin against {study.LABELS[m]}")}
    # shuffled: expected "similar"; beyond noise at 1/20 is against it, so the reasons are printed
    assert "better beyond noise at 1/20;" in summary["deepthin_shuffled"] and "Known reasons" in summary["deepthin_shuffled"]
    assert "within noise at 1/100" in summary["deepthin_shuffled"] and "parameter count" in summary["deepthin_shuffled"]
    assert "worse beyond noise at 1/100" in summary["hashed"] and "2048 wide" in summary["hashed"]
    answer = study.relayout_answer(cmps, [20, 100])
    assert answer.startswith("Does the re-layout buy accuracy") and "Yes at 1/20" in answer
    same = study.comparisons(_same_runs())
    assert same[("deepthin_shuffled", 20)].verdict == "within noise"      # constructed so: identical hits
    assert "Not in this run" in study.relayout_answer(same, [20])
    (line,) = [x for x in study.interpretations(same, [20], ["deepthin_shuffled"]) if x.startswith("→")]
    assert line.endswith("as expected at every size.") and "Known reasons" not in line
    with pytest.raises(ValueError, match="hits"):
        study.comparisons([{"method": "deepthin", "size_fraction": 0.05}])


def test_explorer_start_is_computed():
    rows = [{"factor": 2, "accuracy": 0.8}, {"factor": 10, "accuracy": 0.6}, {"factor": 50, "accuracy": 0.1}]
    F, why = study.explorer_start(rows, baseline=0.85, chance=0.1)
    assert F == 10 and "10x" in why and "0.600" in why                     # 0.6 ≥ 0.1 + 0.5·0.75
    F, why = study.explorer_start([dict(r, accuracy=0.1) for r in rows], baseline=0.85, chance=0.1)
    assert F == 2 and why.startswith("no factor here keeps")
    F, why = study.explorer_start(rows, baseline=0.105, chance=0.1)
    assert F == 2 and "near chance" in why                                  # nothing to keep: the smallest factor
    with pytest.raises(ValueError):
        study.explorer_start([], baseline=0.8, chance=0.1)


def test_explorer_start_is_the_largest_keeping_factor_whatever_the_curve():
    """Not a bisection: with a dip in the middle the largest factor that keeps the bar still wins, and
    opening_factor scores lazily from the top down, stopping there."""
    acc = {2: 0.9, 3: 0.3, 5: 0.3, 7: 0.3, 10: 0.8, 15: 0.1, 20: 0.1}
    F, why = study.explorer_start([{"factor": f, "accuracy": a} for f, a in acc.items()], baseline=0.9, chance=0.1)
    assert F == 10 and "10x" in why and "0.800" in why
    seen = []
    o = deepthin.opening_factor(list(acc), lambda f: seen.append(f) or acc[f], baseline=0.9, chance=0.1)
    assert (o["factor"], o["why"]) == (F, why) and seen == [20, 15, 10]
    assert o["bar"] == pytest.approx(0.5) and o["accuracy"] == 0.8
    with pytest.raises(ValueError, match="keep"):
        deepthin.opening_factor([2], acc.get, baseline=0.9, chance=0.1, keep=1.5)


def test_tables():
    summary = [{"method": "deepthin", "factor": 20, "acc_mean": 0.8, "acc_std": 0.01},
               {"method": "dense", "factor": 1, "acc_mean": 0.9, "acc_std": 0.0}]
    rows = study.accuracy_table(summary, ["dense", "deepthin", "lowrank"])
    assert rows == [{"method": "dense", "full size": "0.900 ± 0.000", "1/20": None},
                    {"method": "deepthin", "full size": None, "1/20": "0.800 ± 0.010"}]
    rel = [{"method": "hashed", "factor": 20, "relative_improvement": 0.1},
           {"method": "hashed", "factor": 100, "relative_improvement": -0.3},
           {"method": "lowrank", "factor": 20, "relative_improvement": 0.2}]
    t = {r["method"]: r for r in study.relative_table(rel, {"hashed": 0.06})}
    assert t["hashed"]["average"] == pytest.approx(-0.1) and t["hashed"]["paper (TFKaldi)"] == 0.06
    assert t["lowrank"]["1/100"] is None and t["lowrank"]["paper (TFKaldi)"] is None


def _trow(batch, dense_us, fused_us, layer="x", Q=2048, R=2048, **kw):
    return {"batch": batch, "layer": layer, "Q": Q, "R": R, "dense_bytes": 4 * Q * R, "stored_bytes": 40_000,
            "dense_us": dense_us, "fused_us": fused_us, "speedup": dense_us / fused_us, "algorithm": "fft", **kw}


def test_timing_table_and_notes():
    paper = [_trow(1, 1000.0, 100.0), _trow(32, 3200.0, 3200.0)]
    course = [_trow(1, 10.0, 20.0, layer="hidden.1", Q=512, R=512, factor=20),
              _trow(1, 30.0, 60.0, layer="all", Q=2000, R=512, factor=20)]
    table = study.timing_table({"paper": paper})
    assert table[0]["dense weights"] == 4 * 2048 * 2048 and table[1]["speedup"] == 1.0
    notes = study.timing_notes(paper, paper, course, caches={"L2": 2**20, "L3": None}, batches=(1, 32), threads=2)
    assert notes[0].startswith("Where it wins") and "the course DNN at 1/20 at batch 1 (0.50x)" in notes[0].split("where it does not")[1]
    # decimal units, as the lesson's table (teach.table(bytes_=...)) prints the same rows: 16,777,216 B = 16.8 MB
    assert notes[1].startswith("Bytes: at batch 1 the dense 2048 x 2048 product reads 16.8 MB of weights")
    assert "the fused one reads 40.0 KB (419x less)" in notes[1] and "10.00x: the fused product is faster" in notes[1]
    assert "16.8 GB/s" in notes[1] and "far below" not in notes[1]          # 16.8 MB in 1 ms
    assert teach.human_bytes(table[0]["dense weights"]) == "16.8 MB"        # the table's cell says the same
    slow = study.timing_notes([_trow(1, 1e5, 100.0), paper[1]], paper, course, caches={}, batches=(1, 32), threads=2)
    assert "0.2 GB/s is far below" in slow[1]                              # 16.8 MB in 100 ms: a busy machine
    assert "speedup falls: 10.00x to 1.00x" in notes[2] and "The dense product gained more" in notes[2]
    assert "beyond L2 (1.0 MB)" in notes[3] and "the size of L3 unknown" in notes[3]
    assert "the 2048 x 2048 layer: 16.8 MB of dense weights" in notes[3] and "network's 40.0 KB" in notes[3]
    assert "hidden.1 (512 x 512) has 1.0 MB of weights" in notes[4]       # 1,048,576 B
    assert notes[4].startswith("Small layers") and "slower" in notes[4] and "little reading to save" in notes[4]
    assert notes[-1].startswith("Threads: both sides ran on 2")
    assert len(study.timing_notes(paper, paper, [], caches={}, batches=(1, 32), threads=1)) == 5


def test_timing_threads_note_follows_the_network_measurement():
    """The threads sentence says whether the whole-network call measured that sharing rows pays."""
    paper = [_trow(1, 1000.0, 100.0), _trow(32, 3200.0, 3200.0)]
    tf = [_trow(1, 9000.0, 900.0, layer="all", path="layers", fused_threads=1),
          _trow(32, 9e4, 9e3, layer="all", path="compiled", fused_threads=1)]
    kept = study.timing_notes(paper, tf, [], caches={}, batches=(1, 32), threads=2)[-1]
    assert "it measured that one thread was as fast, so it kept one" in kept
    tf[1]["fused_threads"] = 2
    split = study.timing_notes(paper, tf, [], caches={}, batches=(1, 32), threads=2)[-1]
    assert "it measured that this pays at batch 32" in split and "kept one" not in split
    one = study.timing_notes(paper, tf, [], caches={}, batches=(1, 32), threads=1)[-1]
    assert one.endswith("so at one thread neither side could split its work.")


@pytest.mark.parametrize("scale", [0.01, 0.3, 1.0, 3.0, 100.0])
def test_timing_notes_never_contradict_their_numbers(scale):
    """At any speedup, every direction word in the notes is the one the numbers give."""
    g = np.random.default_rng(int(scale * 100))
    paper = [_trow(1, 1000.0, 1000.0 / scale), _trow(32, 3200.0 * g.uniform(0.5, 3), 3200.0 / scale * g.uniform(0.5, 3))]
    tf = [_trow(1, 9000.0, 9000.0 / scale * g.uniform(0.5, 2), layer="all"), _trow(32, 9e4, 9e4 / scale, layer="all")]
    course = [_trow(1, 10.0, 10.0 / scale * g.uniform(0.5, 2), layer="hidden.1", Q=512, R=512, factor=20),
              _trow(1, 30.0, 30.0 / scale, layer="all", Q=2000, R=512, factor=20)]
    notes = study.timing_notes(paper, tf, course, caches={"L2": 2**21, "L3": 2**25}, batches=(1, 32), threads=2)
    _check_groups(notes[0], [("the 2048 x 2048 layer", paper), ("the TFKaldi network", tf)])
    b1 = paper[0]
    faster = "the fused product is faster" in notes[1]
    assert faster == (b1["speedup"] >= 1.05) and ("slower" in notes[1]) == (b1["speedup"] <= 1 / 1.05)
    assert ("did not pay" in notes[1]) == (b1["speedup"] <= 1 / 1.05)
    assert ("Reading far fewer bytes paid" in notes[1]) == (b1["speedup"] >= 1.05)
    s1, sB = paper[0]["speedup"], paper[1]["speedup"]
    word = "falls" if sB <= s1 / 1.05 else "rises" if sB >= s1 * 1.05 else "stays about the same"
    assert f"speedup {word}:" in notes[2]
    small = course[0]
    assert ("little reading to save" in notes[4]) == (small["speedup"] < 1.05)
    assert ("Even so" in notes[4]) == (small["speedup"] >= 1.05)


def _check_groups(head: str, named) -> None:
    """Every (label, rows) timing is listed in the group of notes[0] that the one 1.05 rule gives it."""
    wins, rest = head.split("; where it is about the same speed")
    same, losses = rest.split("; where it does not")
    for label, rows in named:
        for r in rows:
            said = f"{label} at batch {r['batch']} ({r['speedup']:.2f}x)"
            want = wins if r["speedup"] >= 1.05 else losses if r["speedup"] <= 1 / 1.05 else same
            assert said in want and sum(said in part for part in (wins, same, losses)) == 1, (said, head)


@pytest.mark.parametrize("speedup", [1.03, 0.97])
def test_timing_notes_use_one_threshold_for_about_the_same(speedup):
    """A speedup within 5 % of 1 is "about the same" everywhere: not a win in the list, not "paid" in the
    bytes sentence, not "faster"/"slower" in the small-layer sentence."""
    paper = [_trow(1, 1000.0 * speedup, 1000.0), _trow(32, 3200.0, 3200.0)]
    course = [_trow(1, 10.0 * speedup, 10.0, layer="hidden.1", Q=512, R=512, factor=20),
              _trow(1, 30.0 * speedup, 30.0, layer="all", Q=2000, R=512, factor=20)]
    notes = study.timing_notes(paper, paper, course, caches={}, batches=(1, 32), threads=2)
    wins, rest = notes[0].split("; where it is about the same speed")
    same, losses = rest.split("; where it does not")
    said = f"the 2048 x 2048 layer at batch 1 ({speedup:.2f}x)"
    assert said in same and said not in wins and said not in losses
    assert "the course DNN at 1/20 at batch 1" in same
    assert f"{speedup:.2f}x: about the same speed." in notes[1]
    assert "Reading far fewer bytes paid" not in notes[1] and "did not pay" not in notes[1]
    assert "neither side is clearly faster" in notes[1]
    assert f"({speedup:.2f}x: about the same speed)" in notes[4] and "about cancel" in notes[4]
    assert "Even so" not in notes[4]


def test_speed_verdict_and_x_docstrings():
    import doctest

    assert [study.speed_verdict(v) for v in (1.05, 1.049, 1 / 1.05, 0.96, 3.0)] == \
        ["faster", "about the same", "slower", "about the same", "faster"]
    for fn in (study._x, study.speed_verdict):
        tests = doctest.DocTestFinder().find(fn, globs={"_x": study._x, "speed_verdict": study.speed_verdict})
        assert sum(len(t.examples) for t in tests) >= 1, f"{fn.__name__}'s docstring shows no example"
        runner = doctest.DocTestRunner()
        for t in tests:
            runner.run(t)
        assert runner.summarize(verbose=False).failed == 0, f"{fn.__name__}'s docstring examples are wrong"


def test_projection_rows_score_the_projection():
    W = np.random.default_rng(0).normal(size=(64, 48)).astype(np.float32)
    rows = study.projection_rows(W, (4, 20), evaluate=lambda w: float(w.shape == W.shape))
    assert [r["accuracy"] for r in rows] == [1.0, 1.0]
    assert rows[0]["relative error"] < rows[1]["relative error"] < 1.0 + 1e-6
    s = deepthin.deepthin_size(64, 48, size_fraction=1 / 4)
    assert (rows[0]["m"], rows[0]["n"], rows[0]["r"], rows[0]["bytes"]) == (s.m, s.n, s.r, s.bytes)
    assert rows[0]["bytes"] <= 4 * 64 * 48 / 4 and compare is not None
