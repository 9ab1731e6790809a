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

from thinlab._io import CacheError, temp_prefix, write_json_atomic

#: name of the marker written last into a complete downloaded / synthesized folder
COMPLETE_MARKER = ".thinlab-complete.json"


class DataError(ValueError):
    """Bad or missing data: the message says what was expected, what came, and the fix."""


class DataTypeError(DataError, TypeError):
    """A parameter of the wrong type (a string where a list is expected, ``"0.2"`` for a number …)."""


#: (type error, value error) for the :mod:`thinlab._validate` checks used by ``thinlab.data``
ERRORS = (DataTypeError, DataError)


class AudioError(DataError):
    """An audio file that cannot be read as a WAV clip."""


class AudioWarning(UserWarning):
    """A clip that loads but is probably not what was meant (e.g. stereo channels that cancel out)."""


class DownloadError(DataError):
    """A download that failed or was interrupted (a partial ``.part`` file is kept for resume)."""


class ChecksumError(DownloadError):
    """A downloaded archive whose size or sha256 differs from the published one."""


class ArchiveError(DataError):
    """A corrupt, truncated or unsafe archive."""


class UnsafeArchiveError(ArchiveError):
    """An archive member that would escape the target folder or is not a plain file."""


__all__ = ["COMPLETE_MARKER", "DataError", "DataTypeError", "AudioError", "AudioWarning", "DownloadError",
           "ChecksumError", "ArchiveError", "UnsafeArchiveError", "CacheError", "read_marker", "marker_problems",
           "folder_contents", "check_replaceable", "swap_into_place"]


def _load_marker(folder) -> tuple:
    """``(state, marker)``: ``("missing", None)``, ``("corrupt", None)`` or ``("ok", dict)``."""
    path = Path(folder) / COMPLETE_MARKER
    if not path.exists():
        return "missing", None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "corrupt", None
    return ("ok", marker) if isinstance(marker, dict) else ("corrupt", None)


def folder_contents(folder) -> dict:
    """What a complete folder holds, as its marker records it: ``{"<top folder>": n_files, …}`` and
    ``{".": [root file names]}`` (hidden names and the marker itself left out).

    Taught in: 00_speech_commands
    """
    out, root_files = {}, []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                with os.scandir(e.path) as sub:
                    out[e.name] = sum(1 for f in sub if not f.name.startswith("."))
            else:
                root_files.append(e.name)
    out["."] = sorted(root_files)
    return out


def marker_problems(folder, marker: dict) -> list:
    """What ``folder`` lost of what its completion ``marker`` recorded: a missing folder or file, a
    folder with fewer files (empty when nothing is missing; files added since do not count).

    Markers record ``contents`` (see :func:`folder_contents`); older ones only a total ``files``
    count, which is checked instead.

    Taught in: 00_speech_commands
    """
    folder = Path(folder)
    recorded = marker.get("contents")
    try:
        if isinstance(recorded, dict):
            now = folder_contents(folder)
            problems = []
            for top, n in recorded.items():
                if top == ".":
                    gone = sorted(set(n) - set(now.get(".", [])))
                    if gone:
                        problems.append(f"{', '.join(gone)} missing")
                elif top not in now:
                    problems.append(f"{top}/ missing")
                elif now[top] < n:  # more is the user's own business: never a reason to replace the folder
                    problems.append(f"{top}/ holds {now[top]} files, {n} were extracted")
            return problems
        if isinstance(marker.get("files"), int):  # markers written before contents were recorded
            n = sum(len([f for f in files if not f.startswith(".")]) for _, _, files in os.walk(folder))
            if n < marker["files"]:
                return [f"{n} files left of the {marker['files']} extracted"]
    except OSError as exc:
        return [f"it cannot be read ({exc.strerror or exc})"]
    return []


def read_marker(folder, *, verify: bool = True) -> dict | None:
    """The completion marker of ``folder`` as a dict, or ``None`` when absent, unreadable, or (with
    ``verify``) when the folder no longer holds what the marker recorded (a word folder deleted …).

    Taught in: 00_speech_commands
    """
    _, marker = _load_marker(folder)
    if marker is None or (verify and marker_problems(folder, marker)):
        return None
    return marker


def check_replaceable(dest) -> None:
    """Raise :class:`DataError` if ``dest`` holds something thinlab did not write.

    Only a missing folder, an empty one, or one with a :data:`COMPLETE_MARKER` may be replaced:
    a user's own folder passed as a destination by mistake is never deleted.

    Taught in: 00_speech_commands
    """
    dest = Path(dest)
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir() or dest.is_symlink():
        raise DataError(f"refusing to replace {dest}: it is a {'link' if dest.is_symlink() else 'file'}, not a folder "
                        "thinlab wrote; choose a new or empty folder, or move it away yourself.")
    try:
        empty = not any(dest.iterdir())
    except OSError as exc:
        raise DataError(f"cannot read {dest} ({exc.strerror or exc}); check its permissions or choose another "
                        "folder.") from exc
    if not empty and _load_marker(dest)[0] == "missing":  # a corrupt marker is still thinlab's own name
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
        What the folder holds; written last as :data:`COMPLETE_MARKER`, with the folder's
        :func:`folder_contents` added as ``contents`` (checked by :func:`read_marker`).

    Returns
    -------
    Path
        ``dest``.

    Taught in: 00_speech_commands
    """
    tmp, dest = Path(tmp), Path(dest)
    check_replaceable(dest)
    write_json_atomic(tmp / COMPLETE_MARKER, dict(marker, contents=folder_contents(tmp)))
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=temp_prefix(dest.name, "old"), dir=dest.parent))
        os.rename(dest, old / "x")
    os.rename(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest
