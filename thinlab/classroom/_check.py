"""The trusted check process of the grader: ``python -I -m thinlab.classroom._check`` with a job on stdin.

It imports :mod:`thinlab.checks` and keeps its own references to the check functions *before* any
student code exists in the process, installs the sandbox guard, then replays the submission's cells
(imports, definitions and literal assignments only; see :func:`thinlab.classroom.exercises.replayable`)
and, after the cell that defines each exercise, calls the course's check on the student's function.
Results go back as JSON lines on a private copy of stdout, each stamped with the job's nonce; what the
student's code prints goes nowhere.

Job: ``{"nonce", "root", "cells": [source, ...], "exercises": [{"name", "check", "cell"}, ...]}``.
Lines: ``{"ready": true}``, then ``{"name", "status": "pass"|"fail", "message", "seconds"}`` per exercise,
``{"note": ...}`` for a replayed statement that failed, and ``{"done": true}``.

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import ast
import io
import json
import os
import sys
import time
import traceback

MAX_MESSAGE = 1500


def _where(exc) -> str:
    """`` (cell 9, line 3)``: the last frame of the student's code in the traceback, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell ")]
    if not frames:
        return ""
    f = frames[-1]
    return f" ({f.filename.strip('<>')}, line {f.lineno})"


def main() -> int:
    job = json.loads(sys.stdin.read())
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    nonce = job.pop("nonce")

    def send(**msg):
        proto.write(json.dumps({"nonce": nonce, **msg}) + "\n")
        proto.flush()

    import thinlab.checks as trusted  # before any student code: these references are the ones called
    from thinlab.classroom import exercises as ex, guard

    checks, missing = {}, []
    for e in job["exercises"]:
        fn = getattr(trusted, e["check"], None)
        if callable(fn) and e["check"].startswith("check_"):
            checks[e["name"]] = fn
        else:
            missing.append(e)
    reference_ids = {id(f) for f in trusted.SOLUTIONS.values()}
    reference_codes = {getattr(f, "__code__", None) for f in trusted.SOLUTIONS.values()}

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = io.StringIO()
    guard.install([job["root"]])
    send(ready=True)
    for e in missing:
        send(name=e["name"], status="fail", seconds=0.0,
             message=f"the manifest names {e['check']!r}, which thinlab.checks does not have; the instructor "
                     "should release again with this version of thinlab")
    at_cell: dict = {}
    for e in job["exercises"]:
        if e["name"] in checks:
            at_cell.setdefault(e["cell"], []).append(e)
    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    for i, src in enumerate(job["cells"]):
        tree, err = ex.try_parse(src)
        if tree is not None:
            for node in ex.replayable(tree):
                try:
                    code = compile(ast.Module(body=[node], type_ignores=[]), f"<cell {i + 1}>", "exec")
                    exec(code, ns)
                except BaseException as exc:  # noqa: BLE001 - a student's statement may raise anything
                    send(note=f"cell {i + 1}, line {getattr(node, 'lineno', '?')}: "
                              f"{type(exc).__name__}: {str(exc)[:300]} (while replaying "
                              f"`{ex.first_line(ast.unparse(node))}`)")
        for e in at_cell.get(i, []):
            send(start=e["name"])
            send(**_check_one(e["name"], ns, checks[e["name"]], reference_ids, reference_codes))
    send(done=True)
    return 0


def _check_one(name, ns, check, reference_ids, reference_codes) -> dict:
    fn = ns.get(name)
    t0 = time.perf_counter()
    if not callable(fn):
        return dict(name=name, status="fail", seconds=0.0,
                    message=f"`{name}` is not a function when your cells' definitions are replayed; define it "
                            f"with `def {name}(...)` and keep the name the check calls")
    if id(fn) in reference_ids or getattr(fn, "__code__", None) in reference_codes:
        return dict(name=name, status="fail", seconds=0.0,
                    message="this is the course's reference solution, not your own code; write the function yourself")
    try:
        msg = check(fn)
        status = "pass"
    except AssertionError as exc:
        status, msg = "fail", str(exc) or "the check failed"
    except BaseException as exc:  # noqa: BLE001 - the student's function may raise anything, SystemExit included
        status = "fail"
        msg = f"your function raised {type(exc).__name__}: {str(exc)[:300]}{_where(exc)}"
    msg = str(msg)
    if len(msg) > MAX_MESSAGE:
        msg = msg[:MAX_MESSAGE] + " …"
    return dict(name=name, status=status, message=msg, seconds=round(time.perf_counter() - t0, 3))


if __name__ == "__main__":
    sys.exit(main())
