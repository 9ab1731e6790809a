"""Lesson 02 (low rank) executed with its CI parameters on the synthetic set and on the real sample;
its JSON results must show the behaviour the lesson teaches."""
from __future__ import annotations

import numpy as np
import pytest

from thinlab import course, lowrank

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

    # the printed summary is the JSON's numbers
    assert "truncated SVD, no retraining: " + ", ".join(f"rank {r['rank']} {r['test_acc']:.3f}" for r in sweep) in out["text"]
    for name in ("truncated_svd", "lowrank_bytes", "rank_for_budget"):
        assert f"✓ {name} is right" in out["text"]
    assert len(out["charts"]) >= 6 and all("image/svg+xml" in o["data"] for o in out["charts"])
    assert out["widgets"], "the rank explorer should be displayed"
    assert not np.isnan(res["rank1"]["test_acc_rank1"])
