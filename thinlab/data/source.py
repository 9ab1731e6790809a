"""Which data a lesson runs on, said plainly.

``resolve_source`` turns ``"auto"``, ``"synthetic"``, ``"test-v2"`` / ``"v1"`` / ``"v2"`` (already
downloaded) or a folder path into a :class:`DataSource` whose ``message`` the notebook prints.
``"auto"`` picks, in order: the folder named by ``$THINLAB_DATA``; real data already downloaded
into the cache (v2, then v1, then the test set); else the offline synthetic set.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from thinlab._io import cache_root

from ._io import DataError, read_marker

#: the downloadable real data sets, best first (``auto`` prefers the first one present)
REAL_SETS = {"v2": "Speech Commands v0.02 (35 words, 105,829 clips)",
             "v1": "Speech Commands v0.01 (30 words, 64,727 clips)",
             "test-v2": "Speech Commands v0.02 12-class test set (real speech)"}
HOW_TO_GET_REAL = ("For real Speech Commands run `make data` (the 112 MB v0.02 test set; `make data WHICH=v2` for "
                   "the full 2.4 GB set), or set THINLAB_DATA=/path/to/a/speech_commands/folder (for example "
                   "../shared/speech_commands_sample) and rerun.")


@dataclass(frozen=True)
class DataSource:
    """A resolved data folder: ``kind`` is ``"synthetic"``, ``"folder"``, ``"test-v2"``, ``"v1"`` or ``"v2"``."""

    path: Path
    kind: str
    description: str

    @property
    def is_real(self) -> bool:
        """True unless the clips are synthesized speech.

        Taught in: 00_speech_commands
        """
        return self.kind != "synthetic"

    @property
    def message(self) -> str:
        """What a notebook prints: which data this is, and how to get the real data when it is not.

        Taught in: 00_speech_commands
        """
        if self.is_real:
            return f"Data: {self.description} at {self.path}."
        return (f"Data: SYNTHETIC speech ({self.description}) at {self.path}. Fine for learning the mechanics; "
                "accuracies will NOT match published Speech Commands results. " + HOW_TO_GET_REAL)


def downloaded_dir(which: str) -> Path:
    """Where ``python -m thinlab.data download <which>`` extracts to: ``<cache>/speech_commands/<which>``.

    Taught in: 00_speech_commands
    """
    if which not in REAL_SETS:
        raise DataError(f"{which!r} is not a downloadable set; use one of {list(REAL_SETS)}.")
    return cache_root() / "speech_commands" / which


def _downloaded(which: str) -> DataSource | None:
    path = downloaded_dir(which)
    marker = read_marker(path)
    if marker is None or not path.is_dir():
        return None
    words = marker.get("words")
    what = "all words" if words is None else f"words {', '.join(words)}"
    return DataSource(path, which, f"{REAL_SETS[which]}, downloaded ({what})")


def _folder(path, how: str) -> DataSource:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"data folder {path} ({how}) does not exist or is not a folder; expected a Speech Commands "
                        "folder (<word>/<speaker>_nohash_<n>.wav). Fix the path, or use source='auto'.")
    marker = read_marker(path)
    if marker and marker.get("kind") == "synthetic":
        p = marker["params"]
        return DataSource(path, "synthetic", f"espeak-ng voices, {p['n_speakers']} speakers × {len(p['words'])} "
                                             f"words, seed {p['seed']}")
    return DataSource(path, "folder", f"Speech Commands folder ({how})")


def resolve_source(source="auto", *, synth_kwargs: dict | None = None, progress: bool = True,
                   verbose: bool = True) -> DataSource:
    """Resolve ``source`` to a data folder in the Speech Commands layout.

    Parameters
    ----------
    source : str, Path or DataSource
        ``"auto"``: ``$THINLAB_DATA``, else downloaded real data, else synthetic.
        ``"synthetic"``: the offline espeak-ng set (generated on first use, then reused).
        ``"test-v2"``, ``"v1"``, ``"v2"``: real data already downloaded (``make data``).
        Anything else: a folder path.
    synth_kwargs : dict, optional
        Passed to :func:`thinlab.data.synthesize` (e.g. ``n_speakers``, ``seed``).

    Returns
    -------
    DataSource
        ``path``, ``kind``, ``description``; print ``.message`` to tell the student.

    Raises
    ------
    DataError
        A named set that is not downloaded (the message says to run ``make data``), or a missing folder.

    Taught in: 00_speech_commands
    """
    if isinstance(source, DataSource):
        return source
    if isinstance(source, str) and source in ("auto", "synthetic"):
        env = os.environ.get("THINLAB_DATA")
        if source == "auto" and env:
            return _folder(env, f"THINLAB_DATA={env}")
        if source == "auto":
            for which in REAL_SETS:
                found = _downloaded(which)
                if found is not None:
                    return found
        from .synth import synthesize

        return _folder(synthesize(progress=progress, verbose=verbose, **(synth_kwargs or {})), "synthetic")
    if isinstance(source, str) and source in REAL_SETS:
        found = _downloaded(source)
        if found is None:
            make = "make data" + ("" if source == "test-v2" else f" WHICH={source}")
            raise DataError(f"source={source!r}: {REAL_SETS[source]} is not downloaded yet (no complete folder at "
                            f"{downloaded_dir(source)}). Run `{make}` (or python -m thinlab.data download {source}), "
                            "or use source='auto'.")
        return found
    return _folder(source, "given path")
