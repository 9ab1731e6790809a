"""The student edition: ``python -m thinlab.course release OUT [--only 00,01] [--points 1]``.

For every lesson (or those named) it writes ``OUT/<notebook>``: outputs cleared, ``SOLUTIONS = False``,
each exercise cell as it is minus its ``if SOLUTIONS: ...`` switch (the student edition has no way to
ask for the reference answers), a first markdown cell with instructions; plus ``OUT/manifest.json`` (the
exercises per lesson: name, check, points; edit the points there before grading) and ``OUT/README.md``
(for the class: how to run, how the checks work, how to submit). Lesson folders such as ``img/`` are
copied. Before anything is written the release is searched for the reference solutions' code
(:func:`solution_leaks`); a lesson that contains one is refused.

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import copy
import inspect
import json
import re
import shutil
import textwrap
from pathlib import Path

from thinlab._io import atomic_file
from thinlab.classroom import exercises as ex

MANIFEST = "manifest.json"
LAYOUT = "SUBMISSIONS/<student>/<notebook>"
_KEEP_CELL_META = ("tags",)
_ASSET_DIRS = ("img",)


def instructions(lesson, items: list) -> str:
    """The first markdown cell of a student notebook."""
    total = sum(e.points for e in items)
    listing = "\n".join(f"- `{e.name}` ({_pts(e.points)}), checked by `checks.{e.check}`" for e in items) \
        or "- (this lesson has no graded exercises)"
    return textwrap.dedent("""\
        # Student edition · lesson {key}: {title}

        **How to run.** Open this notebook in JupyterLab (`make lab` in the course folder, or on Binder) and
        choose *Run → Run All Cells*. The first code cell holds the parameters: leave it as it is (the grader
        puts the original back and runs every notebook at the course's small CI size).

        **Your turn ({total} in all).** Each exercise is a function whose body is
        `raise NotImplementedError("your turn: ...")`. Replace that line with your code; keep the function's
        name and arguments. The line under it, `print(checks.check_<name>(<name>))`, runs the course's
        check: it prints ✓ when your function is right, and otherwise raises an `AssertionError` that says
        what went wrong, followed by a hint.

        {listing}

        **How you are graded.** The grader runs your notebook top to bottom, then calls the course's own
        checks on your functions again in a separate, clean process. From your cells it takes only the
        `import` lines, the `def` and `class` definitions and `NAME = <number, string, list…>` assignments,
        so your function must not depend on other variables of the notebook. An exercise earns its points
        when its cell ran in your notebook and that check passes. Changing the checks earns nothing; a
        function that runs for more than a few seconds on the check's tiny inputs fails. While grading, the
        notebook may not write outside its own folder, start other programs or use the network.

        **How to submit.** Save the notebook with its outputs or without (both are fine), keep its name
        `{notebook}`, and hand it in as `<your name>/{notebook}`: one folder per student.
        """).format(key=lesson.key, title=lesson.title, total=_pts(total), listing=listing, notebook=lesson.notebook)


def _pts(p: float) -> str:
    p = int(p) if float(p).is_integer() else p
    return f"{p} point" + ("" if p == 1 else "s")


def student_edition(nb, lesson, items: list):
    """A student copy of a lesson notebook (a new ``nbformat`` node; ``nb`` is left as it is)."""
    import nbformat

    nb = copy.deepcopy(nb)
    by_cell = {e.cell: e for e in items}
    for i, cell in enumerate(nb.cells):
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in _KEEP_CELL_META}
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        src = ex.source(cell)
        if "parameters" in cell.metadata.get("tags", []):
            src = re.sub(r"(?m)^SOLUTIONS\s*=.*$",
                         "SOLUTIONS = False        # the student edition holds no reference answers", src)
        else:
            src = ex.strip_solution_switch(src)
        cell.source = src
        if i in by_cell:
            e = by_cell[i]
            cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | {"exercise"})
            cell.metadata["thinlab"] = {"exercise": e.name, "check": e.check, "points": e.points}
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["thinlab"] = {"lesson": lesson.key, "edition": "student"}
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(instructions(lesson, items)))
    nb.nbformat, nb.nbformat_minor = 4, max(5, nb.get("nbformat_minor", 5))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"thinlab-{i:03d}"
    nbformat.validate(nb)
    return nb


def _norm(line: str) -> str:
    return re.sub(r"\s+", "", line)


def _reference_bodies() -> dict:
    """``{exercise: (reference function name, [normalised body lines])}`` for every reference solution."""
    from thinlab import checks

    out = {}
    for name, fn in checks.SOLUTIONS.items():
        tree = ex.parse(textwrap.dedent(inspect.getsource(fn)))
        node = tree.body[0]
        body = ex._body_without_docstring(node)
        src = textwrap.dedent(inspect.getsource(fn)).splitlines()
        lines = [_norm(l) for stmt in body for l in src[stmt.lineno - 1:stmt.end_lineno]]
        out[name] = (fn.__name__, [l for l in lines if len(l) >= 12 and not l.startswith("#")])
    return out


def solution_leaks(texts: dict) -> list:
    """Where the reference solutions show in ``texts`` (``{label: text}``): any line of a reference
    function's body (12+ characters, whitespace ignored), the reference's name, or ``SOLUTIONS[``.
    Returns readable findings; an empty list means none were found."""
    refs = _reference_bodies()
    found = []
    for label, text in texts.items():
        lines = {_norm(l) for l in text.splitlines()}
        if "SOLUTIONS[" in text:
            found.append(f"{label}: indexes SOLUTIONS (the reference answers)")
        for name, (ref_name, body) in refs.items():
            if ref_name in text:
                found.append(f"{label}: names {ref_name}, the reference solution of {name!r}")
            hits = [l for l in body if l in lines]
            if hits:
                found.append(f"{label}: holds {len(hits)} line(s) of {ref_name}, e.g. {hits[0]!r}")
    return found


def _notebook_text(nb) -> str:
    return "\n".join(ex.source(c) for c in nb.cells)


def release(out, only=None, *, lessons=None, lesson_dir=None, points: float = 1.0) -> dict:
    """Write the student edition of ``lessons`` (default: the course's, filtered by ``only``) into ``out``;
    returns the manifest. Raises ``ValueError`` for an unknown lesson key or a lesson that shows a
    reference solution."""
    import nbformat

    from thinlab import course

    lessons = list(lessons if lessons is not None else course.LESSONS)
    lesson_dir = Path(lesson_dir or course.LESSON_DIR)
    keys = [l.key for l in lessons]
    if only:
        wanted = [k.strip() for k in (only.split(",") if isinstance(only, str) else only) if str(k).strip()]
        unknown = [k for k in wanted if k not in keys]
        if unknown:
            raise ValueError(f"--only {','.join(wanted)}: no lesson {', '.join(map(repr, unknown))}; the lessons are "
                             f"{', '.join(keys)}")
        lessons = [l for l in lessons if l.key in wanted]
    out = Path(out).resolve()
    if out == lesson_dir.resolve() or lesson_dir.resolve() in out.parents:
        raise ValueError(f"release OUT={out} lies in the lessons folder {lesson_dir}; pick a folder outside it, "
                         "e.g. build/release")
    if not float(points) > 0:
        raise ValueError(f"points={points!r}: each exercise needs a positive number of points, e.g. 1")
    editions, manifest = {}, {"course": "thinlab", "format": 1, "submission_layout": LAYOUT, "lessons": []}
    for l in lessons:
        nb = nbformat.read(lesson_dir / l.notebook, as_version=4)
        items = ex.find_exercises(nb, points=float(points))
        student = student_edition(nb, l, items)
        leaks = solution_leaks({l.notebook: _notebook_text(student)})
        if leaks:
            raise ValueError(f"lesson {l.key} would hand out reference solution code: " + "; ".join(leaks)
                             + ". Take it out of the lesson (the answers live in thinlab/checks/) and release again")
        editions[l.notebook] = student
        manifest["lessons"].append({
            "key": l.key, "notebook": l.notebook, "title": l.title,
            "exercises": [{"name": e.name, "check": e.check, "points": e.points, "cell": e.cell + 2}
                          for e in items],
            "max_points": sum(e.points for e in items)})
    out.mkdir(parents=True, exist_ok=True)
    for name, nb in editions.items():
        with atomic_file(out / name, "w") as f:
            f.write(nbformat.writes(nb))
    for d in _ASSET_DIRS:
        if (lesson_dir / d).is_dir():
            shutil.copytree(lesson_dir / d, out / d, dirs_exist_ok=True)
    with atomic_file(out / MANIFEST, "w") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    with atomic_file(out / "README.md", "w") as f:
        f.write(class_readme(manifest))
    return manifest


def class_readme(manifest: dict) -> str:
    rows = "\n".join(f"| {l['key']} | `{l['notebook']}` | {len(l['exercises'])} | {l['max_points']:g} |"
                     for l in manifest["lessons"])
    return textwrap.dedent("""\
        # thinlab: student edition

        Open each notebook in JupyterLab and run it top to bottom (*Run → Run All Cells*). The first cell of
        each notebook explains the exercises, how the checks work and how you are graded.

        **Submit** each notebook under its own name in a folder named after you, e.g.
        `alice/00_speech_commands.ipynb`. Your instructor grades the folders with
        `python -m thinlab.course grade SUBMISSIONS --release <this folder> --out gradebook.csv`.

        | lesson | notebook | exercises | points |
        |---|---|---|---|
        """) + rows + "\n"


def load_manifest(release_dir) -> dict:
    """Read ``release_dir/manifest.json``, or raise a ``ValueError`` that says how to make one."""
    path = Path(release_dir) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path} is missing: --release must name a folder written by "
                         "`python -m thinlab.course release OUT`")
    try:
        manifest = json.loads(path.read_text())
        for l in manifest["lessons"]:
            for e in l["exercises"]:
                if not (isinstance(e["points"], (int, float)) and e["points"] >= 0):
                    raise ValueError(f"points of {e['name']!r} is {e['points']!r}, not a number ≥ 0")
                e["name"], e["check"] = str(e["name"]), str(e["check"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a thinlab release manifest ({exc}); write a fresh one with "
                         "`python -m thinlab.course release OUT` and edit only the points") from None
    return manifest
