"""Errors and complete-folder markers shared by every ``thinlab.data`` module.

A folder is built under a temporary name (:func:`thinlab._io.temp_dir_beside`) and renamed
into place only when complete, with a marker file written last (atomically, by
:func:`thinlab._io.write_json_atomic`), so a folder without its marker is never taken as valid.
The cache root and atomic file writes live in :mod:`thinlab._io`.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from thinlab._io import write_json_atomic

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


def read_marker(folder) -> dict | None:
    """The completion marker of ``folder`` as a dict, or ``None`` when absent or unreadable.

    Taught in: 00_speech_commands
    """
    try:
        return json.loads((Path(folder) / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None


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
