"""Papermill execution of every lesson with its CI-size parameters, checking the JSON it writes.

Lesson 00 runs twice: on the offline synthetic set and on the real Speech Commands sample in
../shared (speaker-disjoint split by the data set's hash rule).
"""
from __future__ import annotations

import nbformat
import pytest

from thinlab import course, models

pytestmark = pytest.mark.slow


def test_lessons_are_committed_without_outputs():
    for l in course.LESSONS:
        nb = nbformat.read(course.LESSON_DIR / l.notebook, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{l.notebook}: first code cell must be tagged"
        assert not any(c.outputs or c.execution_count for c in code), f"{l.notebook} has stored outputs"
        assert len(nb.cells) <= 45, f"{l.notebook} has {len(nb.cells)} cells; keep lessons short"


@pytest.mark.parametrize("data", ["synthetic", "fixture", "shared"])
def test_lesson_00(data, run_lesson_fast):
    res, nb, out = run_lesson_fast("00", data)
    assert res["data"]["kind"] == ("synthetic" if data == "synthetic" else "folder")
    assert "device: cpu" in out["text"]                                   # the parameters' DEVICE, resolved
    gap = res["synthetic_to_real"]                                        # trained on synthetic, scored on real
    assert gap["where"] == ("the repository's real fixture" if data == "synthetic" else "this run's real test split")
    assert gap["real_clips"] == (100 if data == "synthetic" else res["data"]["n_test"]) and gap["real_speakers"] >= 1
    assert [r["model"] for r in gap["rows"]] == ["cnn", "dnn"]
    for r in gap["rows"]:
        assert 0 <= r["real clips"] <= 1 and f"{r['real clips']:.3f} on {gap['real_clips']} real clips" in out["text"]
        if data == "synthetic":
            assert r["synthetic test clips"] == res["models"][r["model"]]["test accuracy"]
        else:
            assert r["trained on real, real clips"] == res["models"][r["model"]]["test accuracy"]
    assert res["data"]["n_train"] > 0 and res["data"]["n_test"] > 0
    assert set(res["models"]) == {"cnn", "lstm", "dnn"}
    for name, m in res["models"].items():
        assert 0.0 <= m["test accuracy"] <= 1.0
        assert m["FP32 bytes"] == models.fp32_bytes(models.build_model(name, len(res["data"]["labels"])))
    assert 0 <= res["leak"]["random_split_acc"] <= 1 and 0 <= res["leak"]["speaker_split_acc"] <= 1
    assert res["leak"]["leaked_test_speakers"] > 0, "a random file-level split should share speakers"
    leak = res["leak"]
    assert len(leak["runs"]) == 2 * len(leak["seeds"]) and leak["noise_points"] > 0
    for split, key in (("random (file-level)", "random_split_acc"), ("speaker-disjoint", "speaker_split_acc")):
        accs = [r["test accuracy"] for r in leak["runs"] if r["split"] == split]
        assert leak[key] == pytest.approx(sum(accs) / len(accs))          # the means the verdict compares
    assert leak["gap_points"] == pytest.approx(100 * (leak["random_split_acc"] - leak["speaker_split_acc"]))
    text, charts = out["text"], out["charts"]
    assert "✓ speaker_overlap is right" in text and "✓ accuracy_from_confusion is right" in text
    assert "two standard errors of that difference" in text
    assert len(charts) >= 5 and all("image/svg+xml" in o["data"] for o in charts)


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_01(data, run_lesson_fast):
    res, nb, out = run_lesson_fast("01", data)
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    assert 0.0 <= res["baseline"]["test_acc"] <= 1.0
    sparsities = course.FAST_PARAMS["01"]["SPARSITIES"]
    for scope in ("layer", "global"):
        rows = sorted((r for r in res["one_shot"] if r["scope"] == scope), key=lambda r: r["sparsity"])
        assert [r["sparsity"] for r in rows] == sparsities
        assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
        assert all(a["bytes"] > b["bytes"] for a, b in zip(rows, rows[1:])), "bytes must fall as sparsity rises"
        assert rows[0]["bytes"] > res["baseline"]["bytes"], "CSR of an unpruned matrix is larger than dense"
    csr = res["csr"]
    assert csr["break_even_density_int32"] < 0.5 < csr["break_even_density"] < 4 / 6  # 8 vs 6 bytes per nonzero
    assert all(r["CSR scipy (× 1/N)"] > 2 for r in csr["cost_of_1_over_N_times_N"])
    assert res["sensitivity"]["most_sensitive"] in res["sensitivity"]["val_acc"]
    assert res["unstructured_same_bytes"]["bytes"] <= res["structured"]["bytes"]
    assert res["structured"]["hidden"] == [128, 128, 128]
    g = res["gradual"]
    assert g["bytes"] < res["baseline"]["bytes"] / 5
    assert all(0.0 <= g[k] <= 1.0 for k in ("one_shot_acc", "one_shot_finetuned_acc", "gradual_acc"))
    text, charts = out["text"], out["charts"]
    for name in ("magnitude_prune", "csr_bytes", "break_even_density"):
        assert f"✓ {name} is right" in text
    assert len(charts) >= 9 and all("image/svg+xml" in o["data"] for o in charts)
    assert out["widgets"], "the prune explorer should be displayed"
