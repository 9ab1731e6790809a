"""The cache root and atomic writes shared by every thinlab module (private).

Nothing here is half-written: a file is written to a temporary name in the same folder,
flushed, fsynced and renamed over the target with :func:`os.replace`; a folder is built
under a temporary name beside its target (see :func:`temp_dir_beside`), so that renaming it
into place is atomic.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


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


def temp_dir_beside(dest) -> Path:
    """A fresh empty folder next to ``dest`` (same file system, so a rename is atomic).

    Taught in: 00_speech_commands
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
