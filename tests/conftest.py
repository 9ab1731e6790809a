"""Shared fixtures: the in-repo real fixture, the larger real sample beside the repo, an isolated cache.

* ``real_fixture``: ``tests/data/speech_commands_mini`` (110 real clips, CC BY 4.0), always present, so the
  suite passes on a fresh clone with no other data.
* ``shared_sample``: ``../shared/speech_commands_sample`` (about 1,700 real clips). Tests that need it skip
  when it is missing, saying how to get real data, except under ``CI=true``, where a missing sample fails:
  CI always has it, and a silent skip there would hide a broken setup.
* ``real_folder``: parametrized over both, for tests that hold on any real Speech Commands folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "speech_commands_mini"
SHARED_SAMPLE = Path(os.environ.get("THINLAB_SHARED_SAMPLE", REPO.parent / "shared" / "speech_commands_sample"))
HOW_TO_GET_REAL = ("the real Speech Commands sample is not at {path}; these tests run on it when thinlab is cloned "
                   "beside ../shared (or THINLAB_SHARED_SAMPLE names a Speech Commands folder). To run them on "
                   "your own real data: `make data` downloads the official 12-class test archive, then "
                   "THINLAB_SHARED_SAMPLE=~/.cache/thinlab/speech_commands/test-v2 make test")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def shared_sample_or_skip() -> Path:
    """The shared sample's path; skip (fail under ``CI=true``) when it is missing."""
    if SHARED_SAMPLE.is_dir():
        return SHARED_SAMPLE
    msg = HOW_TO_GET_REAL.format(path=SHARED_SAMPLE)
    if _in_ci():
        pytest.fail("CI=true but " + msg, pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def real_fixture() -> Path:
    """The in-repo real fixture (tests/data/speech_commands_mini, CC BY 4.0; see its README)."""
    assert FIXTURE.is_dir(), f"the in-repo fixture {FIXTURE} is missing: the checkout is incomplete"
    return FIXTURE


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """Real Speech Commands clips (CC BY 4.0) in ../shared: skipped when absent, required in CI."""
    return shared_sample_or_skip()


@pytest.fixture(scope="session", params=["fixture", "shared"])
def real_folder(request) -> Path:
    """A real Speech Commands folder: the in-repo fixture, then the shared sample (skipped when absent)."""
    return FIXTURE if request.param == "fixture" else shared_sample_or_skip()


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """A fresh THINLAB_CACHE for one test, so nothing leaks between tests."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("THINLAB_CACHE", str(cache))
    monkeypatch.delenv("THINLAB_DATA", raising=False)
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


def lesson_data(data: str) -> str:
    """The ``DATA`` value for a lesson test: ``"synthetic"``, ``"fixture"`` (the in-repo clips) or ``"shared"``."""
    if data == "shared":
        return str(shared_sample_or_skip())
    if data == "fixture":
        return str(FIXTURE)
    return data


@pytest.fixture()
def run_lesson_fast(tmp_path, lesson_cache):
    """``run_lesson_fast(key, data)`` executes a lesson with its CI parameters on ``"synthetic"``, ``"fixture"``
    or ``"shared"`` (the real sample; skipped when absent) and returns ``(results, executed_notebook,
    outputs)``, where ``outputs`` gathers every code cell's text, chart and widget outputs. Fails on any cell
    error. Lessons never download in tests (``DOWNLOAD=False``)."""
    import nbformat

    from thinlab import course

    def run(key: str, data: str = "synthetic", extra: dict | None = None):
        src = lesson_data(data)
        res = course.run_lesson(key, fast=True, data=src, out_dir=tmp_path, progress=False,
                                extra={"DOWNLOAD": False, **(extra or {})})
        nb = nbformat.read(tmp_path / course.lesson(key).notebook, as_version=4)
        nbformat.validate(nb)
        outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outs if o.output_type == "error"]
        out = {"text": "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outs),
               "charts": [o for o in outs if "application/vnd.vegalite.v5+json" in o.get("data", {})],
               "widgets": [o for o in outs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]}
        return res, nb, out

    return run
