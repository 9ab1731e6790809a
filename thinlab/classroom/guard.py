"""The sandbox a submission runs in: its folders and environment, resource limits, a Python audit hook that
refuses writes outside those folders, subprocesses and network connections, and the clean-up that ends
every process a submission started.

What it stops: the ordinary ways a notebook can do harm or reach out (``open(..., "w")``, ``os.remove``,
``shutil.rmtree``, ``os.rename``, ``os.system``, ``subprocess``, sockets to anything but this machine's
loopback), runaway memory (``RLIMIT_DATA``, the memory a process writes to; not ``RLIMIT_AS``: the V8
engine inside vl-convert reserves a terabyte of address space it never uses, and crashes under that
cap), huge output files (``RLIMIT_FSIZE``), and processes left behind
(each run carries a random token in its environment; every process holding it is killed afterwards).
What it cannot stop: Python-level guards can be dodged by code written for that purpose (``ctypes``,
reaching into the interpreter). For a class you do not trust, run the grader itself as an unprivileged
user or in a container without network (``docker run --network none``).

Taught in: the classroom tools (``python -m thinlab.course grade``), not a lesson
"""
from __future__ import annotations

import os
import resource
import signal
import sys
import time
from pathlib import Path

#: what a refused action says, so the feedback can point at it
REFUSED = "thinlab grader"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.remove": "deleting", "os.rmdir": "deleting", "shutil.rmtree": "deleting",
                "os.truncate": "truncating", "os.chmod": "changing permissions of", "os.chown": "changing the owner of",
                "os.mkdir": "creating a folder at", "os.utime": "touching"}
_TWO_PATH_EVENTS = {"os.rename": "moving", "os.link": "linking"}
_SPAWN_EVENTS = {"os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn"}
_NET_EVENTS = {"socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname",
               "socket.gethostbyname_ex"}
_WATCHED = frozenset({"open", "os.symlink"} | set(_PATH_EVENTS) | set(_TWO_PATH_EVENTS) | _SPAWN_EVENTS | _NET_EVENTS)
_LOOPBACK = ("127.", "::1", "localhost", "0:0:0:0:0:0:0:1")
#: the sandbox's sub-folders: the submission's working folder, a home, the isolated cache, a temp folder
SUBDIRS = ("work", "home", "cache", "tmp")
PROXY = "http://127.0.0.1:9"  # the discard port: nothing answers there


def install(roots) -> None:
    """Add the audit hook to this process (it cannot be removed). ``roots``: the folders writes may go to."""
    allowed = tuple(os.path.realpath(str(r)) for r in roots) + ("/dev",)
    busy = []

    def inside(path, dir_fd=None) -> bool:
        if isinstance(path, int) or path is None:
            return True                                 # an open file descriptor: checked when it was opened
        path = os.fsdecode(path)
        if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(path):
            base = os.readlink(f"/proc/self/fd/{dir_fd}")
        else:
            base = os.getcwd()
        full = os.path.realpath(os.path.join(base, path))
        return any(full == r or full.startswith(r + os.sep) for r in allowed)

    def refuse(what: str, path) -> None:
        raise PermissionError(f"{REFUSED}: {what} {os.fsdecode(path) if not isinstance(path, int) else path!r} "
                              "is not allowed while grading: a submission may only write inside its own folder")

    def hook(event: str, args) -> None:
        if event not in _WATCHED or busy:  # the fast path: most events (builtins.id, compile, ...) are not ours
            return
        busy.append(1)
        try:
            if event == "open":
                path, mode, flags = (tuple(args) + (None, None))[:3]
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                          (isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
                if writing and not inside(path):
                    refuse("writing to", path)
            elif event in _PATH_EVENTS:
                dir_fd = args[-1] if event in ("os.remove", "os.rmdir", "os.mkdir") and len(args) > 1 else None
                if not inside(args[0], dir_fd if isinstance(dir_fd, int) else None):
                    refuse(_PATH_EVENTS[event], args[0])
            elif event in _TWO_PATH_EVENTS:
                for p in args[:2]:
                    if isinstance(p, (str, bytes, os.PathLike)) and not inside(p):
                        refuse(_TWO_PATH_EVENTS[event], p)
            elif event == "os.symlink" and not inside(args[1]):  # (target, link): the link is what is written
                refuse("linking", args[1])
            elif event in _SPAWN_EVENTS:
                raise PermissionError(f"{REFUSED}: starting another program ({event}) is not allowed while grading")
            elif event in ("socket.connect", "socket.sendto"):
                address = args[1] if event == "socket.connect" else args[-1]
                if isinstance(address, tuple) and not str(address[0]).startswith(_LOOPBACK):
                    raise PermissionError(f"{REFUSED}: network access ({address[0]}) is not allowed while grading")
            elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
                host = args[0]
                host = host.decode() if isinstance(host, bytes) else host
                if host and not str(host).startswith(_LOOPBACK):
                    raise PermissionError(f"{REFUSED}: network access ({host}) is not allowed while grading")
        finally:
            busy.pop()

    sys.addaudithook(hook)


def guard_cell(root) -> str:
    """The code cell the grader puts first in a submission: installs the hook before any student code."""
    return ("# added by the thinlab grader: writes outside this submission's folder, other programs and the\n"
            "# network are refused from here on\n"
            f"import thinlab.classroom.guard as _g; _g.install([{str(root)!r}]); del _g")


def make_sandbox(root: Path) -> dict:
    """Create ``root/{work,home,cache,tmp}``; returns their paths."""
    dirs = {name: Path(root) / name for name in SUBDIRS}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def sandbox_env(root: Path, token: str) -> dict:
    """The environment of a sandboxed process: home, cache, temp and Jupyter folders inside ``root``, proxies
    pointing nowhere, no inherited data folder, and the token that marks its processes."""
    root = Path(root)
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "OMP_NUM_THREADS",
                                       "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    env = dict(keep, HOME=str(root / "home"), THINLAB_CACHE=str(root / "cache"), TMPDIR=str(root / "tmp"),
               IPYTHONDIR=str(root / "home" / ".ipython"), MPLCONFIGDIR=str(root / "tmp"),
               NUMBA_CACHE_DIR=str(root / "tmp"), XDG_CACHE_HOME=str(root / "home" / ".cache"),
               JUPYTER_RUNTIME_DIR=str(root / "tmp" / "jupyter"), JUPYTER_CONFIG_DIR=str(root / "home" / ".jupyter"),
               JUPYTER_PLATFORM_DIRS="1", PYTHONDONTWRITEBYTECODE="1", PYDEVD_DISABLE_FILE_VALIDATION="1",
               THINLAB_GRADE_TOKEN=token, NO_PROXY="", no_proxy="")
    env.setdefault("PATH", os.defpath)
    for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[k] = PROXY
    return env


def limiter(memory_mb: int, cpu_seconds: int, file_mb: int = 2048):
    """A ``preexec_fn`` that caps the data memory, CPU time and file size of the child (and what it starts)."""
    def apply():
        os.setsid()  # its own process group, so a time-out can signal everything it started
        mem = int(memory_mb) * 1024 * 1024
        for what, value in ((resource.RLIMIT_DATA, mem), (resource.RLIMIT_CPU, int(cpu_seconds)),
                            (resource.RLIMIT_FSIZE, int(file_mb) * 1024 * 1024), (resource.RLIMIT_CORE, 0)):
            soft, hard = resource.getrlimit(what)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(what, (value, value if hard == resource.RLIM_INFINITY else hard))
    return apply


def tagged_pids(token: str) -> list[int]:
    """Processes whose environment holds ``THINLAB_GRADE_TOKEN=token`` (Linux ``/proc``)."""
    marker = f"THINLAB_GRADE_TOKEN={token}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_tagged(token: str, group: int | None = None) -> int:
    """SIGKILL the process group ``group`` and every process carrying ``token``; returns how many were found."""
    if group is not None:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    n = 0
    for _ in range(5):  # a process may fork while we look
        pids = tagged_pids(token) if os.path.isdir("/proc") else []
        if not pids:
            break
        n += len(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.1)
    return n

