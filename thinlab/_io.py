"""The cache root, atomic writes and the sweep of orphaned temporary files, shared by every
thinlab module (private).

Nothing here is half-written: a file is written to a temporary name in the same folder,
flushed, fsynced and renamed over the target with :func:`os.replace`; a folder is built
under a temporary name beside its target (see :func:`temp_dir_beside`), so that renaming it
into place is atomic.

Temporary names are recognizable and say who owns them::

    .<target>.<kind>-<pid>-<host>-<random>       kind = tmp (a file) | partial (a folder) | old

A process killed with ``kill -9`` cannot remove its temporary files, so :func:`sweep_orphans`
removes them at the next start (the first time a process touches a folder): a name whose
owner process on this host is gone and which is older than the current run, or one whose
owner cannot be checked (another host, the pre-1.0 names without a pid) after
:data:`FOREIGN_MAX_AGE` seconds. Nothing else is ever touched: a download's ``.part`` file is
kept on purpose, so that the next call resumes it.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

#: when this process started using thinlab: a temporary file older than this, whose owner is gone, is an orphan
RUN_START = time.time()
#: orphans whose owner cannot be checked (another host, a name without a pid) are removed after this many seconds
FOREIGN_MAX_AGE = 24 * 3600
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_KINDS = ("tmp", "partial", "old")
_ORPHAN = re.compile(r"^\.(?P<target>.+)\.(?P<kind>tmp|partial|old)-(?P<pid>\d{1,10})-(?P<host>[0-9a-f]{6})-"
                     r"[a-z0-9_]{6,12}$")
# names written before owners were recorded: ".<name>.<random>.tmp", ".<name>.partial-<random>", ".<name>.old-<random>"
_LEGACY = re.compile(r"^\..+\.(?:[a-z0-9_]{8}\.tmp|(?:partial|old)-[a-z0-9_]{8})$")
_SWEPT: set = set()
_LOCK = threading.Lock()


class CacheError(ValueError):
    """``THINLAB_CACHE`` (or the default cache folder) cannot be used; the message says how to fix it."""


def cache_root() -> Path:
    """The on-disk cache: ``$THINLAB_CACHE`` or ``~/.cache/thinlab``.

    The first call in a process also sweeps the cache's orphaned temporary files (see
    :func:`sweep_orphans`).

    Returns
    -------
    Path
        The cache folder (not created here).

    Raises
    ------
    CacheError
        When the path (or one of its parents) is a file, not a folder.

    Taught in: 00_speech_commands
    """
    env = os.environ.get("THINLAB_CACHE")
    how = f"THINLAB_CACHE={env}" if env else "the default cache folder"
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "thinlab"
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == root else f"lies inside {probe}, which is a file"
        raise CacheError(f"{how}: {root} {what}, not a folder; set THINLAB_CACHE to a folder (it is created when "
                         "needed) or unset it to use ~/.cache/thinlab")
    key = ("cache", str(root))
    if key not in _SWEPT and root.is_dir():
        _SWEPT.add(key)
        sweep_orphans(root)
        for sub in _subfolders(root):
            sweep_orphans(sub)
    return root


def _subfolders(root: Path) -> list:
    try:
        return [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    except OSError:
        return []


def temp_prefix(target: str, kind: str = "tmp") -> str:
    """The recognizable name prefix of a temporary file or folder for ``target``:
    ``.<target>.<kind>-<pid>-<host>-`` (a random suffix is added by :mod:`tempfile`).

    Taught in: 00_speech_commands
    """
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r}; use one of {_KINDS}")
    return f".{target}.{kind}-{os.getpid()}-{_HOST}-"


def _pid_alive(pid: int) -> bool:
    """True if process ``pid`` on this host may still be running (unknown counts as alive)."""
    if pid == os.getpid():
        return True
    if os.name != "posix" or pid <= 0:
        return os.name != "posix"  # elsewhere os.kill(pid, 0) is not a harmless probe: never guess "dead"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except (OverflowError, ValueError, OSError):
        return False
    try:  # a killed but not yet reaped child is a zombie: it writes nothing any more
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def is_orphan(path, *, now: float | None = None) -> bool:
    """True if ``path`` is a thinlab temporary file or folder that no live process owns any more.

    Taught in: 00_speech_commands
    """
    path = Path(path)
    now = time.time() if now is None else now
    try:
        mtime = path.lstat().st_mtime
    except OSError:
        return False
    m = _ORPHAN.match(path.name)
    if m is not None:
        if m["host"] == _HOST and int(m["pid"]) != os.getpid():
            return (not _pid_alive(int(m["pid"])) and mtime < RUN_START) or now - mtime > FOREIGN_MAX_AGE
        return m["host"] != _HOST and now - mtime > FOREIGN_MAX_AGE
    return bool(_LEGACY.match(path.name)) and now - mtime > FOREIGN_MAX_AGE


def sweep_orphans(folder) -> list:
    """Remove the orphaned thinlab temporary files and folders directly inside ``folder``.

    Only names written by :func:`atomic_file`, :func:`temp_dir_beside` and
    :func:`thinlab.data._io.swap_into_place` are considered (see the module notes); each is
    removed when :func:`is_orphan` says so. Errors (a file vanishing meanwhile, no permission)
    are ignored: the sweep never stops the work that triggered it.

    Returns
    -------
    list of Path
        What was removed.

    Taught in: 00_speech_commands
    """
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".")]
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        path = Path(e.path)
        if not is_orphan(path, now=now):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def _sweep_once(folder: Path) -> None:
    key = ("folder", str(folder))
    with _LOCK:
        if key in _SWEPT:
            return
        _SWEPT.add(key)
    sweep_orphans(folder)


@contextmanager
def atomic_file(path, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched; if the
    process is killed instead, the file (named ``.<name>.tmp-<pid>-…``) is swept by the next
    process that writes into that folder.

    Parameters
    ----------
    path : str or Path
        The final file name.
    mode : str
        ``"wb"`` or ``"w"``.

    Taught in: 00_speech_commands
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode={mode!r}; atomic_file writes whole files: use 'wb' or 'w'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
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


def temp_dir_beside(dest, kind: str = "partial") -> Path:
    """A fresh empty folder next to ``dest`` (same file system, so a rename is atomic), named
    ``.<dest>.partial-<pid>-…`` so that a killed run's leftover is recognized and swept.

    Taught in: 00_speech_commands
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(dest.parent)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(dest.name, kind), dir=dest.parent))
