"""Papermill execution of every lesson with its CI-size parameters, checking the JSON it writes.

Lesson 00 runs twice: on the offline synthetic set and on the real Speech Commands sample in
../shared (speaker-disjoint split by the data set's hash rule).
"""
from __future__ import annotations

import json
import os

import nbformat
import pytest

from thinlab import course

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def lesson_cache(tmp_path_factory):
    """One cache for the whole lesson run (baselines trained by one lesson are reused by the next)."""
    path = tmp_path_factory.mktemp("lesson-cache")
    old = os.environ.get("THINLAB_CACHE")
    os.environ["THINLAB_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("THINLAB_CACHE", None)
    else:
        os.environ["THINLAB_CACHE"] = old


def _run(key, tmp_path, data):
    res = course.run_lesson(key, fast=True, data=data, out_dir=tmp_path, progress=False)
    nb = nbformat.read(tmp_path / course.lesson(key).notebook, as_version=4)
    nbformat.validate(nb)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    return res, nb


def test_lessons_are_committed_without_outputs():
    for l in course.LESSONS:
        nb = nbformat.read(course.LESSON_DIR / l.notebook, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{l.notebook}: first code cell must be tagged"
        assert not any(c.outputs or c.execution_count for c in code), f"{l.notebook} has stored outputs"
        assert len(nb.cells) <= 45, f"{l.notebook} has {len(nb.cells)} cells; keep lessons short"


@pytest.mark.parametrize("data", ["synthetic", "shared"])
def test_lesson_00(data, tmp_path, lesson_cache, shared_sample):
    src = str(shared_sample) if data == "shared" else "synthetic"
    res, nb = _run("00", tmp_path, src)
    assert res["data"]["kind"] == ("folder" if data == "shared" else "synthetic")
    assert res["data"]["n_train"] > 0 and res["data"]["n_test"] > 0
    assert set(res["models"]) == {"cnn", "lstm", "dnn"}
    for name, m in res["models"].items():
        assert 0.0 <= m["test accuracy"] <= 1.0
        assert m["FP32 bytes"] == 4 * m["parameters"]
    assert 0 <= res["leak"]["random_split_acc"] <= 1 and 0 <= res["leak"]["speaker_split_acc"] <= 1
    assert res["leak"]["leaked_test_speakers"] > 0, "a random file-level split should share speakers"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "✓ speaker_overlap is right" in text and "✓ accuracy_from_confusion is right" in text
    charts = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "application/vnd.vegalite.v5+json" in o.get("data", {})]
    assert len(charts) >= 5 and all("image/svg+xml" in o["data"] for o in charts)
