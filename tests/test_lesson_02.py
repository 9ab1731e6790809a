"""Lesson 02 (low rank) executed with its CI parameters on the synthetic set and on the real sample;
its JSON results must show the behaviour the lesson teaches."""
from __future__ import annotations

import numpy as np
import pytest

from thinlab import course, lowrank, stats, teach
from thinlab.experiments import lowrank_study as study
from thinlab.models import build_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_02(data, run_lesson_fast):
    res, nb, out = run_lesson_fast("02", data)
    fast = course.FAST_PARAMS["02"]
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    base = res["baseline"]
    chance = 1 / (12 if res["task"] == "12class" else 10)
    # CI trains the baseline 8 epochs (FAST_PARAMS): measured 0.2-0.3 on the synthetic set, chance 0.1
    assert base["test_acc"] >= chance + 0.06, f"the baseline did not learn: {base['test_acc']:.3f}"
    assert base["interval"][0] <= base["test_acc"] <= base["interval"][1] and base["se"] > 0

    # the spectrum: shapes, energy ranks and break-even ranks of the three hidden layers
    shapes = {n: tuple(s["shape"]) for n, s in res["spectrum"].items()}
    assert list(shapes) == ["hidden.0", "hidden.1", "hidden.2"]
    for n, s in res["spectrum"].items():
        Q, R = shapes[n]
        assert 1 <= s["rank_90"] <= s["rank_99"] <= min(Q, R)
        assert s["break_even_rank"] == pytest.approx(Q * R / (Q + R))
        assert s["s_1"] > 0 and 0 < s["init_energy_share"]

    # truncated SVD sweep: bytes are exactly the dense model minus the hidden layers plus their factors
    dense_hidden = sum(4 * Q * R for Q, R in shapes.values())
    sweep = res["svd_sweep"]
    assert [r["rank"] for r in sweep] == fast["RANKS"]
    def model_bytes(ranks):       # the dense model minus the hidden layers plus their factors
        return base["bytes"] - dense_hidden + sum(lowrank.lowrank_bytes(shapes[n], k) for n, k in ranks.items())

    for r in sweep:
        assert r["bytes"] == model_bytes({n: r["rank"] for n in shapes})
        for n, s in res["spectrum"].items():      # the energy the sweep kept agrees with the spectrum's rank_90
            assert (r["energy"][n] >= 0.9) == (r["rank"] >= s["rank_90"]), (n, r["rank"])
    assert all(a["bytes"] < b["bytes"] for a, b in zip(sweep, sweep[1:]))
    for n in shapes:
        energies = [r["energy"][n] for r in sweep]
        assert all(0 < e <= 1 for e in energies) and energies == sorted(energies)
    assert sweep[0]["bytes"] < base["bytes"] / 100, "rank 1 of every hidden layer is > 100x smaller"

    # the rank for a byte budget, and the energy rule
    b = res["budget"]
    assert b["ranks"] == {n: lowrank.rank_for_budget(s, size_fraction=b["size_fraction"]) for n, s in shapes.items()}
    assert b["bytes"] == model_bytes(b["ranks"])
    e = res["energy_rule"]
    assert e["ranks"] == {n: s["rank_90"] for n, s in res["spectrum"].items()} and e["bytes"] == model_bytes(e["ranks"])
    # mild compression (90% of the energy in every layer) keeps most of what the baseline learned above chance
    assert e["test_acc"] - chance >= 0.5 * (base["test_acc"] - chance), (e["test_acc"], base["test_acc"])
    acc_at = {r["rank"]: r["test_acc"] for r in sweep}
    assert sweep[-1]["test_acc"] > sweep[0]["test_acc"], "the largest swept rank keeps more than rank 1"

    # same bytes: SVD (+ fine-tuning), from scratch, and a thin dense net that fits
    matched = res["matched_bytes"]
    assert [m["rank"] for m in matched] == fast["FINETUNE_RANKS"]
    for m in matched:
        assert m["bytes"] == base["bytes"] - dense_hidden + sum(lowrank.lowrank_bytes(s, m["rank"]) for s in shapes.values())
        assert m["thin_dense_bytes"] <= m["bytes"] and m["thin_dense_width"] >= 1
        if m["rank"] in acc_at:                   # the same truncation scored twice gives the same number
            assert m["svd_acc"] == acc_at[m["rank"]]
        trained = {"SVD + fine-tune": m["finetuned_acc"], "factorized from scratch": m["scratch_acc"],
                   "thin dense": m["thin_dense_acc"]}
        assert trained[m["highest"]] == max(trained.values()) and set(m["verdicts"]) == set(trained) - {m["highest"]}
        assert set(m["energy"]) == set(shapes)
    assert set(res["energy_at_chosen_ranks"]) == {str(k) for k in fast["FINETUNE_RANKS"]}
    n_clips = res["data"]["n_test"]
    for m in matched:                            # every trained model once per seed, the seeds averaged per clip
        assert m["seeds"] == fast["SEEDS"] and all(len(v) == len(fast["SEEDS"]) for v in m["per_seed"].values())
        assert m["finetuned_acc"] == pytest.approx(np.mean(m["per_seed"]["SVD + fine-tune"]))
        assert m["thin_dense_acc"] == pytest.approx(np.mean(m["per_seed"]["thin dense"]))
        for name, cmp in m["comparisons"].items():
            c = stats.Comparison(**cmp)
            assert c.a == "SVD + fine-tune" and c.b == name and c.n_clips == n_clips
            assert c.acc_a == pytest.approx(m["finetuned_acc"])
            assert (c.verdict == "within noise") == (c.low <= 0 <= c.high)
            assert c.verdict != "better" or c.diff > 0
            sentence = teach.interpret(c, expected="better", reasons=study.MATCHED_REASONS[name],
                                       claim=f"rank {m['rank']}, SVD + fine-tune against {name}")
            assert sentence in out["text"]       # printed, and its words follow the numbers:
            assert ("ahead" in sentence) == (c.diff > 0) and ("behind" in sentence) == (c.diff < 0)
            assert ("within noise" in sentence) == (c.verdict == "within noise")
            assert ("It can go either way" in sentence) == (c.verdict != "better")

    # rank 1: every row a scaled copy of one row
    cos = res["rank1"]["mean_abs_row_cos"]
    assert cos["rank 1"] == pytest.approx(1.0, abs=1e-6)
    assert cos["W"] < cos["rank 8"] < cos["rank 1"]

    # the explorer agrees with the plain calls
    ex = res["explorer"]
    Q, R = shapes[ex["layer"]]
    assert all(r["bytes"] == lowrank.lowrank_bytes((Q, R), r["rank"]) for r in ex["rows"])
    errors = [r["relative_error"] for r in ex["rows"]]
    assert errors == sorted(errors, reverse=True)
    assert res["peak_memory_mb"] < 2048

    # the three baselines at byte budgets: bytes recomputed from the library, the winners from the points
    mb = res["models_at_budgets"]
    assert {p["model"] for p in mb["points"]} == set(fast.get("MODELS", ["dnn", "cnn", "lstm"]))
    n_classes = 12 if res["task"] == "12class" else 10
    for name in {p["model"] for p in mb["points"]}:
        targets = study.lowrank_targets(build_model(name, n_classes))
        pts = [p for p in mb["points"] if p["model"] == name]
        dense = next(p for p in pts if p["rank"] == "dense")
        if name == "dnn":
            assert dense["bytes"] == base["bytes"] and dense["test_acc"] == base["test_acc"]
        for p in pts:
            if p["rank"] == "dense":
                continue
            k = p["rank"]           # factorized exactly where rank k's factors (shapes counted) are smaller than dense
            assert p["ranks"] == {n: k for n, (Q, R) in targets.items()
                                  if k <= min(Q, R) and lowrank.lowrank_bytes((Q, R), k) < 4 * Q * R}
            assert p["bytes"] == dense["bytes"] + sum(lowrank.lowrank_bytes(targets[n], k) - 4 * Q * R
                                                      for n, (Q, R) in targets.items() if n in p["ranks"])
    budgets = [1000 * kb for kb in fast.get("BUDGETS_KB", [32, 64, 128, 256, 512])]   # the parameters cell's
    assert [w["budget"] for w in mb["winners"]] == budgets
    for w in mb["winners"]:
        fits = [p for p in mb["points"] if p["bytes"] <= w["budget"]]
        picks = {}
        for name in {p["model"] for p in fits}:
            mine = [p for p in fits if p["model"] == name]
            picks[name] = max(mine, key=lambda p: (p["val_acc"], -p["bytes"]))
        assert {n: r["bytes"] for n, r in picks.items()} == {n: r["bytes"] for n, r in w["picks"].items() if r}
        if picks:
            assert picks[w["winner"]]["test_acc"] == max(r["test_acc"] for r in picks.values())
        assert w["sentence"] in out["text"]
        if w["comparison"]:
            c = w["comparison"]
            assert ("beyond noise" in w["sentence"]) == (c["verdict"] == "better")
            assert c["a"] == w["winner"] and c["b"] == w["runner_up"] and c["diff"] >= 0

    # the design challenge: with SOLUTIONS the reference plan passes; the naive plan would not
    ch = res["challenge"]

    def plan_bytes(plan):         # layers absent from the plan stay dense
        return base["bytes"] + sum(lowrank.lowrank_bytes(shapes[n], k) - 4 * shapes[n][0] * shapes[n][1]
                                   for n, k in plan.items() if k is not None)
    assert ch["plan"] == ch["reference"]["plan"] and ch["passed"]
    assert ch["bytes"] == plan_bytes(ch["plan"]) <= ch["size_limit"] and ch["acc"] >= ch["accuracy_bar"]
    naive = ch["naive"]
    assert naive["bytes"] == plan_bytes(naive["plan"])
    assert not teach.challenge("x", bytes_=naive["bytes"], accuracy=naive["acc"], size_limit=ch["size_limit"],
                               accuracy_bar=ch["accuracy_bar"]).passed
    assert ch["size_limit"] < base["bytes"] and set(ch["plan"]) <= set(shapes)
    assert "✓ challenge met" in out["text"] and "LEADERBOARD | 02 rank per layer | you | " in out["text"]
    assert f"your plan on the test speakers: {ch['test_acc']:.3f}" in out["text"]    # targets on validation, test once
    scan = res["challenge_scan"]
    assert all(r["bytes"] == plan_bytes({r["layer"]: r["rank"]}) for r in scan)
    assert all(r["rank"] < shapes[r["layer"]][0] * shapes[r["layer"]][1] / sum(shapes[r["layer"]]) for r in scan)
    assert 0 < res["energy_16"] < 1 and f"rank 16 keeps {res['energy_16']:.0%}" in out["text"]

    # the printed summary is the JSON's numbers
    assert "truncated SVD, no retraining: " + ", ".join(f"rank {r['rank']} {r['test_acc']:.3f}" for r in sweep) in out["text"]
    for name in ("truncated_svd", "lowrank_bytes", "rank_for_budget"):
        assert f"✓ {name} is right" in out["text"]
    assert len(out["charts"]) >= 6 and all("image/svg+xml" in o["data"] for o in out["charts"])
    assert out["widgets"], "the rank explorer should be displayed"
    assert not np.isnan(res["rank1"]["test_acc_rank1"])
