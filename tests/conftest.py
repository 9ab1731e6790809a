"""Shared fixtures: the real Speech Commands sample beside the repo, and an isolated cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "speech_commands_sample"


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """Real Speech Commands clips (CC BY 4.0) in ../shared; required in CI."""
    if not SHARED_SAMPLE.is_dir():
        pytest.fail(f"expected the real Speech Commands sample at {SHARED_SAMPLE}; "
                    "clone thinlab beside ../shared as the README says")
    return SHARED_SAMPLE


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """A fresh THINLAB_CACHE for one test, so nothing leaks between tests."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("THINLAB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def lesson_cache(tmp_path_factory):
    """One THINLAB_CACHE for the whole lesson run (a baseline trained by one lesson is reused by the next)."""
    path = tmp_path_factory.mktemp("lesson-cache")
    old = os.environ.get("THINLAB_CACHE")
    os.environ["THINLAB_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("THINLAB_CACHE", None)
    else:
        os.environ["THINLAB_CACHE"] = old


@pytest.fixture()
def run_lesson_fast(tmp_path, lesson_cache, shared_sample):
    """``run_lesson_fast(key, data)`` executes a lesson with its CI parameters on ``"synthetic"`` or
    ``"shared"`` (the real sample) and returns ``(results, executed_notebook, outputs)``, where
    ``outputs`` gathers every code cell's text, chart and widget outputs. Fails on any cell error."""
    import nbformat

    from thinlab import course

    def run(key: str, data: str = "synthetic"):
        src = str(shared_sample) if data == "shared" else data
        res = course.run_lesson(key, fast=True, data=src, out_dir=tmp_path, progress=False)
        nb = nbformat.read(tmp_path / course.lesson(key).notebook, as_version=4)
        nbformat.validate(nb)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outs if o.output_type == "error"]
        out = {"text": "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outs),
               "charts": [o for o in outs if "application/vnd.vegalite.v5+json" in o.get("data", {})],
               "widgets": [o for o in outs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]}
        return res, nb, out

    return run
