"""Which data a lesson runs on, said plainly.

``resolve_source`` turns ``"auto"``, ``"synthetic"``, ``"test-v2"`` / ``"v1"`` / ``"v2"`` (already
downloaded) or a folder path into a :class:`DataSource` whose ``message`` the notebook prints.
``"auto"`` picks, in order: the folder named by ``$THINLAB_DATA``; real data already downloaded
into the cache (v2, then v1, then the test set); then, when ``download=True`` and the host answers
within a few seconds, the light real tier (the official 112 MB 12-class test archive) downloaded now
with its progress bar; else the offline synthetic set, with a loud banner that says why and how to
get real data. A missing network never raises: it is one of the reasons in the banner.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import os
import socket
import urllib.parse
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
    fallback: str = ""      # for "auto" that ended on synthetic data: why no real data was used

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
        text = (f"Data: SYNTHETIC speech ({self.description}) at {self.path}. Fine for learning the mechanics; "
                "accuracies will NOT match published Speech Commands results. " + HOW_TO_GET_REAL)
        if not self.fallback:
            return text
        bar = "!" * 78
        return f"{bar}\n!! NO REAL SPEECH: {self.fallback}\n{bar}\n{text}"


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


#: seconds the download host has to accept a connection before "auto" falls back to synthetic data
PROBE_TIMEOUT = 4.0


def host_answers(url: str, *, timeout: float = PROBE_TIMEOUT) -> str:
    """``""`` when the host of ``url`` accepts a TCP connection within ``timeout`` seconds, else why not.

    Taught in: 00_speech_commands
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"the download URL {url!r} is not an http(s) URL (check THINLAB_DOWNLOAD_URL)"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return ""
    except socket.timeout:
        return f"{parts.hostname} did not answer within {timeout:g} s (no network, or a firewall)"
    except OSError as exc:
        return f"{parts.hostname} cannot be reached ({exc.strerror or exc})"


def _download_light_tier(*, progress: bool, verbose: bool, probe_timeout: float) -> tuple[DataSource | None, str]:
    """Download the light real tier (``test-v2``) if its host answers; ``(source, "")`` or ``(None, why not)``."""
    from .downloader import ARCHIVES, base_url, download

    url = base_url() + ARCHIVES["test-v2"].filename
    why = host_answers(url, timeout=probe_timeout)
    if why:
        return None, f"could not download the real test set: {why}"
    if verbose:
        print(f"No real Speech Commands data in the cache: downloading the official 12-class test set "
              f"({ARCHIVES['test-v2'].size / 1e6:.0f} MB, once) from {base_url()} …", flush=True)
    try:
        download("test-v2", progress=progress, verbose=verbose)
    except (DataError, OSError) as exc:
        return None, f"the download of the real test set failed: {exc}"
    found = _downloaded("test-v2")
    return (found, "") if found is not None else (None, "the downloaded test set is incomplete")


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
                   verbose: bool = True, download: bool = False,
                   probe_timeout: float = PROBE_TIMEOUT) -> DataSource:
    """Resolve ``source`` to a data folder in the Speech Commands layout.

    Parameters
    ----------
    source : str, Path or DataSource
        ``"auto"``: ``$THINLAB_DATA``, else downloaded real data, else (``download=True``) the light
        real tier downloaded now, else synthetic with a banner saying why.
        ``"synthetic"``: the offline espeak-ng set (generated on first use, then reused).
        ``"test-v2"``, ``"v1"``, ``"v2"``: real data already downloaded (``make data``).
        Anything else: a folder path.
    synth_kwargs : dict, optional
        Passed to :func:`thinlab.data.synthesize` (e.g. ``n_speakers``, ``seed``).
    download : bool
        For ``"auto"`` only: may the light real tier (112 MB) be downloaded when no real data is
        cached? Lessons pass their ``DOWNLOAD`` parameter (default True); library calls default to
        False so nothing large is fetched by surprise.
    probe_timeout : float
        Seconds the download host has to answer before falling back to synthetic data.

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
        why = ""
        if source == "auto":
            for which in REAL_SETS:
                found = _downloaded(which)
                if found is not None:
                    return found
            if download:
                found, why = _download_light_tier(progress=progress, verbose=verbose, probe_timeout=probe_timeout)
                if found is not None:
                    return found
            else:
                why = "no real data in the cache, and downloading it is switched off (DOWNLOAD=False)"
        from .synth import synthesize

        src = _folder(synthesize(progress=progress, verbose=verbose, **(synth_kwargs or {})), "synthetic")
        return DataSource(src.path, src.kind, src.description, fallback=why) if why else src
    if isinstance(source, str) and source in REAL_SETS:
        found = _downloaded(source)
        if found is None:
            make = "make data" + ("" if source == "test-v2" else f" WHICH={source}")
            raise DataError(f"source={source!r}: {REAL_SETS[source]} is not downloaded yet (no complete folder at "
                            f"{downloaded_dir(source)}). Run `{make}` (or python -m thinlab.data download {source}), "
                            "or use source='auto'.")
        return found
    return _folder(source, "given path")
