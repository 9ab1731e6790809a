"""Score a model on every clip of a folder: the in-repo real fixture, or any Speech Commands folder.

Lesson 00 uses it to show how far a model trained on synthetic speech carries to real speakers.

Taught in: 00_speech_commands
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .source import DataSource, resolve_source

#: the small real fixture shipped in the repository (tests/data/, CC BY 4.0); absent in an installed wheel
FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "data" / "speech_commands_mini"


def fixture_dir() -> Path | None:
    """The repository's real fixture folder (110 real clips of 10 speakers), or ``None`` when thinlab
    is installed without its repository.

    Taught in: 00_speech_commands
    """
    return FIXTURE if (FIXTURE / "yes").is_dir() else None


@dataclass(repr=False)
class EvalSet:
    """Every clip of one folder as one evaluation set: ``X`` (N, frames, features), ``y`` (N,),
    ``speakers`` and ``files`` (N,), ``labels`` and the :class:`DataSource`."""

    X: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    files: np.ndarray
    labels: list
    source: DataSource

    def __repr__(self) -> str:
        return (f"EvalSet({len(self.y)} clips, {len(set(self.speakers) - {''})} speakers, "
                f"source={self.source.kind!r})")


def load_eval_set(source, *, task: str = "10words", feature="logmel", progress: bool = False) -> EvalSet:
    """All clips of ``source`` (a folder or any :func:`resolve_source` value) for ``task`` as one set.

    No split: nothing here is trained on, so every clip is scored (``_unknown_`` / ``_silence_`` are
    sized as :func:`thinlab.data.plan_task` sizes them for the 12-class task).

    Taught in: 00_speech_commands
    """
    from .dataset import load_dataset

    src = resolve_source(source, progress=progress, verbose=False)
    ds = load_dataset(src, task=task, feature=feature, split="random", progress=progress, verbose=False)
    cat = lambda k: np.concatenate([getattr(ds, f"{k}_{s}") for s in ("train", "val", "test")])  # noqa: E731
    return EvalSet(cat("X"), cat("y"), cat("speakers"), cat("files"), list(ds.labels), src)
