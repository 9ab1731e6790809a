"""The two sandboxed processes behind one graded notebook: the papermill run and the trusted check.

:func:`run_notebook` executes a prepared submission (``python -m thinlab.classroom._runner``) in its own
process group with the sandbox's environment and limits, kills it at the wall-clock limit, and always
kills every process that carries the run's token afterwards. :func:`run_checks` feeds the submission's
cells to ``python -I -m thinlab.classroom._check`` and reads its results with a time limit per exercise;
an exercise that runs past it fails and the check process is started again for the ones left.

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from thinlab.classroom import guard


@dataclass(frozen=True)
class Limits:
    """Grading limits: the whole notebook (s), one cell the student wrote or changed (s; the course's own
    cells get ``CELL_FACTOR`` times their time in the reference run, plus ``CELL_SLACK`` s, if that is
    more), one exercise's check (s), memory per process (MB)."""
    timeout: int = 900
    cell_timeout: int = 120
    check_timeout: int = 10
    memory_mb: int = 8192
    #: how long the check process may take to start, or to replay the definitions between two checks
    replay_timeout: int = 120

    CELL_FACTOR = 5
    CELL_SLACK = 30

    def __post_init__(self):
        for name in ("timeout", "cell_timeout", "check_timeout", "memory_mb", "replay_timeout"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ValueError(f"{name}={v!r}: expected a positive whole number (seconds, or MB for memory_mb)")


def run_notebook(nb_path: Path, out_path: Path, *, sandbox: Path, parameters: dict, limits: Limits,
                 log_path: Path, cell_limits: dict | None = None) -> dict:
    """Execute ``nb_path`` into ``out_path`` with cwd ``sandbox/work``. Returns ``{"ok", "timed_out",
    "seconds", "error", "message"}`` (``error`` names the exception that ended the run, if one did)."""
    job_path = out_path.with_name(out_path.stem + ".job.json")
    job_path.write_text(json.dumps({"input": str(nb_path), "output": str(out_path), "cwd": str(sandbox / "work"),
                                    "parameters": parameters, "cell_timeout": limits.cell_timeout,
                                    "cell_limits": cell_limits or {}}))
    token = secrets.token_hex(16)
    cpu = limits.timeout * max(1, os.cpu_count() or 1) + 60
    t0 = time.perf_counter()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "thinlab.classroom._runner", str(job_path)],
                                cwd=sandbox / "work", env=guard.sandbox_env(sandbox, token), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=guard.limiter(limits.memory_mb, cpu))
        timed_out = False
        try:
            proc.wait(timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            guard.kill_tagged(token, group=proc.pid)
            proc.wait()
    result = {"ok": not timed_out, "timed_out": timed_out, "seconds": round(time.perf_counter() - t0, 1)}
    status_path = job_path.with_suffix(".status.json")
    if not timed_out:
        try:
            status = json.loads(status_path.read_text())
        except (OSError, ValueError):
            status = {"ok": False, "error": "RunnerDied",
                      "message": f"the run process ended (exit code {proc.returncode}) without a report"}
        result.update(ok=bool(status.get("ok")), error=status.get("error"), message=status.get("message", ""))
    return result


def _reader(stream, q: queue.Queue) -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def run_checks(cells: list, exercises: list, *, sandbox: Path, limits: Limits, log_path: Path) -> tuple:
    """Check ``exercises`` (``[{"name", "check", "cell"}]``, ``cell`` = index of the defining cell in ``cells``)
    in a trusted process. Returns ``({name: {"status", "message", "seconds"}}, [notes])``."""
    results, notes = {}, []
    pending = sorted(exercises, key=lambda e: e["cell"])
    while pending:
        got, stuck, why = _one_check_process(cells, pending, sandbox=sandbox, limits=limits, log_path=log_path,
                                             notes=notes)
        results.update(got)
        pending = [e for e in pending if e["name"] not in results]
        if not pending:
            break
        first = stuck or pending[0]["name"]
        why = why or "the grader's check process finished without checking this exercise"
        results[first] = {"status": "fail", "seconds": float(limits.check_timeout if why == "time" else 0),
                          "message": why if why != "time" else
                          f"time limit: your function did not return within {limits.check_timeout} s on the check's "
                          "small inputs; look for a loop that never ends"}
        pending = [e for e in pending if e["name"] != first]
    return results, notes


def _one_check_process(cells, pending, *, sandbox, limits, log_path, notes):
    nonce, token = secrets.token_hex(16), secrets.token_hex(16)
    job = {"nonce": nonce, "root": str(sandbox), "cells": cells,
           "exercises": [{"name": e["name"], "check": e["check"], "cell": e["cell"]} for e in pending]}
    cpu = (limits.check_timeout * len(pending) + limits.replay_timeout) * max(1, os.cpu_count() or 1)
    results, current, why = {}, None, None
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-I", "-m", "thinlab.classroom._check"], cwd=sandbox / "work",
                                env=guard.sandbox_env(sandbox, token), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log, preexec_fn=guard.limiter(limits.memory_mb, cpu))
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
            deadline = time.monotonic() + limits.replay_timeout
            while True:
                try:
                    line = q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    why = "time" if current else (
                        f"the grader's check process did not get to this exercise within {limits.replay_timeout} s "
                        "(replaying your imports and definitions took too long: does one of them run forever?)")
                    break
                if line is None:
                    code = proc.wait()
                    why = (f"the grader's check process stopped while {'checking' if current else 'replaying'} "
                           f"this exercise (exit code {code}: a crash, an exit() call, or over the "
                           f"{limits.memory_mb} MB memory limit)")
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict) or msg.get("nonce") != nonce:
                    continue  # not ours: the student's code wrote to the stream
                if msg.get("done"):
                    break
                if "note" in msg:
                    notes.append(str(msg["note"]))
                elif msg.get("ready"):
                    deadline = time.monotonic() + limits.replay_timeout
                elif "start" in msg:
                    current = msg["start"]
                    deadline = time.monotonic() + limits.check_timeout
                elif "name" in msg:
                    results[msg["name"]] = {k: msg.get(k) for k in ("status", "message", "seconds")}
                    current = None
                    deadline = time.monotonic() + limits.replay_timeout
        finally:
            guard.kill_tagged(token, group=proc.pid)
            proc.wait()
    stuck = current if current else next((e["name"] for e in pending if e["name"] not in results), None)
    return results, (stuck if why else None), why
