"""Errors, the cache root and atomic writes shared by every ``thinlab.data`` module.

Nothing here is half-written: a file is written to a temporary name in the same folder,
flushed, fsynced and renamed over the target with :func:`os.replace`; a folder is built
under a temporary name and renamed into place only when complete (with a marker file
written last, so a folder without its marker is never taken as valid).

Taught in: 00_speech_commands
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

#: name of the marker written last into a complete downloaded / synthesized folder
COMPLETE_MARKER = ".thinlab-complete.json"


class DataError(ValueError):
    """Bad or missing data: the message says what was expected, what came, and the fix."""


class AudioError(DataError):
    """An audio file that cannot be read as a WAV clip."""


class DownloadError(DataError):
    """A download that failed or was interrupted (a partial ``.part`` file is kept for resume)."""


class ChecksumError(DownloadError):
    """A downloaded archive whose size or sha256 differs from the published one."""


class ArchiveError(DataError):
    """A corrupt, truncated or unsafe archive."""


class UnsafeArchiveError(ArchiveError):
    """An archive member that would escape the target folder or is not a plain file."""


def cache_root() -> Path:
    """The on-disk cache: ``$THINLAB_CACHE`` or ``~/.cache/thinlab``.

    Returns
    -------
    Path
        The cache folder (not created here).

    Taught in: 00_speech_commands
    """
    return Path(os.environ.get("THINLAB_CACHE") or Path.home() / ".cache" / "thinlab")


@contextmanager
def atomic_file(path, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.

    Parameters
    ----------
    path : str or Path
        The final file name.
    mode : str
        ``"wb"`` or ``"w"``.

    Taught in: 00_speech_commands
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (see :func:`atomic_file`).

    Taught in: 00_speech_commands
    """
    with atomic_file(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def read_marker(folder) -> dict | None:
    """The completion marker of ``folder`` as a dict, or ``None`` when absent or unreadable.

    Taught in: 00_speech_commands
    """
    try:
        return json.loads((Path(folder) / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def temp_dir_beside(dest) -> Path:
    """A fresh empty folder next to ``dest`` (same file system, so a rename is atomic).

    Taught in: 00_speech_commands
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))


def check_replaceable(dest) -> None:
    """Raise :class:`DataError` if ``dest`` holds something thinlab did not write.

    Only a missing folder, an empty one, or one with a :data:`COMPLETE_MARKER` may be replaced:
    a user's own folder passed as a destination by mistake is never deleted.

    Taught in: 00_speech_commands
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and read_marker(dest) is None)):
        raise DataError(f"refusing to replace {dest}: it exists and was not written by thinlab (no "
                        f"{COMPLETE_MARKER}); choose a new or empty folder, or move it away yourself.")


def swap_into_place(tmp, dest, marker: dict) -> Path:
    """Write ``marker`` into the finished folder ``tmp`` and rename it to ``dest``.

    An existing ``dest`` is moved aside first and removed only after the new folder is in
    place, so a failure at any point leaves either the old or the new folder, never a mix.

    Parameters
    ----------
    tmp, dest : Path
        The finished temporary folder and its final name (same parent folder).
    marker : dict
        What the folder holds; written last as :data:`COMPLETE_MARKER`.

    Returns
    -------
    Path
        ``dest``.

    Taught in: 00_speech_commands
    """
    tmp, dest = Path(tmp), Path(dest)
    check_replaceable(dest)
    write_json_atomic(tmp / COMPLETE_MARKER, marker)
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.rename(dest, old / "x")
    os.rename(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest
