"""Orphans (issue 12, finding 3): a writer killed with kill -9 leaves a recognizable temporary file or
partial folder, never taken as valid, and the next process sweeps it; a live writer's files are never
touched, nor are a download's ``.part`` file (kept for resume) or anything thinlab did not name."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from data_helpers import speech_archive

import thinlab
from thinlab import _io

REPO = Path(thinlab.__file__).resolve().parents[1]


def _spawn(code: str, cache: Path, *args) -> subprocess.Popen:
    env = dict(os.environ, THINLAB_CACHE=str(cache), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.poll() is not None else "")


def _kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _run(code: str, cache: Path, *args) -> str:
    proc = _spawn(code, cache, *args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


HOLD_A_WRITE = """
    import sys, time
    from thinlab._io import atomic_file, cache_root
    with atomic_file(cache_root() / "features" / sys.argv[1], "wb") as f:
        f.write(b"x" * 100_000)
        f.flush()
        print("ready", flush=True)
        time.sleep(600)
"""
NEXT_START = "from thinlab._io import cache_root; cache_root()"


def test_killed_feature_write_is_swept_at_the_next_start_but_a_live_one_is_kept(tmp_path):
    cache = tmp_path / "cache"
    dead = _spawn(HOLD_A_WRITE, cache, "a.npz")
    _wait_ready(dead)
    _kill9(dead)
    (orphan,) = [p.name for p in (cache / "features").iterdir()]
    assert re.fullmatch(rf"\.a\.npz\.tmp-{dead.pid}-[0-9a-f]{{6}}-\w+", orphan), orphan  # the owner is in the name
    assert not (cache / "features" / "a.npz").exists()  # never renamed into place
    live = _spawn(HOLD_A_WRITE, cache, "b.npz")  # the next start: it sweeps the orphan as it begins
    try:
        _wait_ready(live)
        (mine,) = [p.name for p in (cache / "features").iterdir()]
        assert mine.startswith(f".b.npz.tmp-{live.pid}-")
        _run(NEXT_START, cache)  # yet another process: the live writer's file stays
        assert [p.name for p in (cache / "features").iterdir()] == [mine]
    finally:
        _kill9(live)
    _run(NEXT_START, cache)
    assert list((cache / "features").iterdir()) == []


EXTRACT_SLOWLY = """
    import shutil, sys, time
    from thinlab.data.extract import extract_archive
    real, n = shutil.copyfileobj, [0]
    def slow(src, dst, length=0):
        real(src, dst, length)
        n[0] += 1
        if n[0] == 6:
            dst.flush()
            print("ready", flush=True)
            time.sleep(600)
    shutil.copyfileobj = slow
    extract_archive(sys.argv[1], sys.argv[2], progress=False)
"""
EXTRACT = """
    import sys
    from thinlab.data.extract import extract_archive
    print(extract_archive(sys.argv[1], sys.argv[2], progress=False))
"""


def test_killed_extraction_leaves_a_partial_folder_that_the_rerun_sweeps(tmp_path):
    cache = tmp_path / "cache"
    arc = tmp_path / "test.tar.gz"
    arc.write_bytes(speech_archive(words=("yes", "no", "up", "down"), n_speakers=4))
    dest = cache / "speech_commands" / "test-v2"
    proc = _spawn(EXTRACT_SLOWLY, cache, arc, dest)
    _wait_ready(proc)
    _kill9(proc)
    (partial,) = list(dest.parent.iterdir())
    assert partial.name.startswith(f".test-v2.partial-{proc.pid}-") and any(partial.rglob("*.wav"))
    assert not dest.exists()  # never renamed into place: a folder without its marker is never valid
    _run(EXTRACT, cache, arc, dest)  # the rerun, in a new process, sweeps the orphan and extracts afresh
    assert [p.name for p in dest.parent.iterdir()] == ["test-v2"]
    assert (dest / ".thinlab-complete.json").is_file() and len(list(dest.glob("*/*.wav"))) == 4 * 4 + 1


def test_sweep_rules(tmp_path, monkeypatch):
    """What is swept and what is kept, name by name (ages set with os.utime)."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    old = time.time() - 2 * _io.FOREIGN_MAX_AGE
    host = _io._HOST
    other = "0" * 6 if host != "000000" else "1" * 6

    def make(name, *, age=None, folder=False):
        p = tmp_path / name
        if folder:
            p.mkdir()
            (p / "inside.wav").write_bytes(b"x")
        else:
            p.write_bytes(b"x")
        if age is not None:
            os.utime(p, (age, age))
        return p

    before_run = _io.RUN_START - 10
    swept = [make(f".a.npz.tmp-{dead_pid}-{host}-abcdefgh", age=before_run),            # dead owner
             make(f".test-v2.partial-{dead_pid}-{host}-abcdefgh", age=before_run, folder=True),
             make(f".x.old-{dead_pid}-{host}-abcdefgh", age=before_run, folder=True),
             make(f".b.npz.tmp-{os.getppid()}-{other}-abcdefgh", age=old),              # another host, old
             make(".c.npz.abcdefgh.tmp", age=old),                                      # names before pids, old
             make(".v2.partial-abcdefgh", age=old, folder=True)]
    kept = [make(f".d.npz.tmp-{os.getpid()}-{host}-abcdefgh", age=old),                  # this process: alive
            make(f".e.npz.tmp-{os.getppid()}-{host}-abcdefgh", age=before_run),          # parent: alive
            make(f".f.npz.tmp-{dead_pid}-{host}-abcdefgh"),                              # newer than this run
            make(f".g.npz.tmp-{dead_pid}-{other}-abcdefgh"),                             # another host, recent
            make(".h.npz.abcdefgh.tmp"),                                                 # old-style name, recent
            make("speech_commands_v0.02.tar.gz.part", age=old),                          # a download to resume
            make(".thinlab-complete.json", age=old), make(".hidden-note", age=old), make("data.npz", age=old)]
    removed = _io.sweep_orphans(tmp_path)
    assert sorted(removed) == sorted(swept)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in swept)


def test_a_failed_write_leaves_nothing_and_the_target_untouched(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _io.atomic_file(target, "w") as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]
