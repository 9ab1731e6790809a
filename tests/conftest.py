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
