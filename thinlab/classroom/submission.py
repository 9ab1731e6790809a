"""One submitted notebook, read as the grader sees it: prepared for the run (:func:`prepare`), its exercises
classified before anything runs (:func:`classify`), and its run summed up in words (:func:`summarize_run`).

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from thinlab.classroom import exercises as ex, guard
from thinlab.classroom.sandbox_run import Limits

PASS, FAIL, NOT_ATTEMPTED = "pass", "fail", "not attempted"
_MAX_COPY = 50 * 1024 * 1024  # files of a student's folder larger than this are not copied into the sandbox


def prepare(path: Path, lesson: dict):
    """The notebook as the grader runs it, the student's cell sources, and notes for the feedback."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    notes, code = [], [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    tagged = [i for i in code if "parameters" in c_tags(nb.cells[i])]
    if lesson["params"] is not None:
        if not code:
            nb.cells.insert(0, nbformat.v4.new_code_cell(lesson["params"]))
            code, notes = [0], notes + ["your notebook had no code cells"]
        at = tagged[0] if tagged else code[0]
        cell = nb.cells[at]
        if ex.source(cell) != lesson["params"] or not tagged:
            notes.append(f"your parameters cell (cell {at + 1}) was changed or untagged; the grader ran the "
                         "original one")
            cell.source = lesson["params"]
        cell.metadata["tags"] = sorted(set(c_tags(cell)) | {"parameters"})
    cells = []
    for i, cell in enumerate(nb.cells):
        cell.metadata["thinlab_cell"] = i
        cells.append(ex.source(cell) if cell.cell_type == "code" else "")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, cells, notes


def c_tags(cell) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def classify(cells: list, lesson: dict) -> dict:
    """Per exercise, before running anything: ``{"status": ..., "hint": ...}`` or ``{"cell": k}`` (to check)."""
    trees, errors = {}, {}
    for k, src in enumerate(cells):
        if src:
            trees[k], errors[k] = ex.try_parse(src)
    out = {}
    released = set(lesson["stubs"])
    for e in lesson["exercises"]:
        name = e["name"]
        where = [k for k, t in trees.items() if t is not None and name in ex.top_level_defs(t)]
        if not where:
            bad = [k for k, err in errors.items() if err is not None and re.search(rf"def\s+{re.escape(name)}\s*\(",
                                                                                 cells[k])]
            if bad:
                err = errors[bad[-1]]
                out[name] = {"status": FAIL, "hint": f"cell {bad[-1] + 1} does not parse: SyntaxError: {err.msg} (line "
                                                     f"{err.lineno}); fix it so the cell runs"}
            else:
                new = sorted({n for t in trees.values() if t is not None for n in ex.top_level_defs(t)} - released)
                seen = f" (your notebook defines {', '.join(new[:4])})" if new else ""
                out[name] = {"status": FAIL, "hint": f"no function named `{name}` in your notebook{seen}: the check "
                                                     f"calls it by that name, so keep `def {name}(...)` as released"}
            continue
        k = where[-1]
        fn = ex.top_level_defs(trees[k])[name]
        if ex.is_unchanged_stub(fn, lesson["stubs"].get(name)):
            out[name] = {"status": NOT_ATTEMPTED, "hint": "the function is still the released stub "
                                                          "(raise NotImplementedError)"}
        elif ex.uses_reference(fn):
            out[name] = {"status": FAIL, "hint": "your function uses the course's reference answers (SOLUTIONS or a "
                                                 "*_reference function); write it yourself"}
        else:
            out[name] = {"cell": k}
    return out


def summarize_run(executed, run: dict, cells: list, limits: Limits) -> dict:
    """What happened in the run: which student cells ran, their errors, where it stopped, in words."""
    ran, errors, printed = set(), [], {}
    for cell in (executed.cells if executed is not None else []):
        k = cell.get("metadata", {}).get("thinlab_cell")
        if k is None or cell.cell_type != "code":
            continue
        if cell.get("execution_count") is not None or cell.get("outputs"):
            ran.add(k)
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        printed[k] = text
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                errors.append((k, o.get("ename", "Error"), str(o.get("evalue", "")).splitlines()[0:1]))
    code_cells = [k for k, src in enumerate(cells) if src.strip()]
    not_run = [k for k in code_cells if k not in ran]
    where = f"cell {not_run[0] + 1} (`{ex.first_line(cells[not_run[0]])}`)" if not_run else "the end"
    if run.get("timed_out"):
        stop = f"the notebook was stopped by its {limits.timeout} s time limit at {where}"
    elif run.get("error") == "DeadKernelError":
        stop = f"the kernel died at {where} (a crash, an exit call, or over the {limits.memory_mb} MB memory limit)"
    elif run.get("error"):
        stop = f"the notebook could not run: {run['error']}: {str(run.get('message', ''))[:200]}"
    elif not_run:
        stop = f"the notebook stopped at {where}"
    else:
        stop = ""
    lines = [f"cell {k + 1} (`{ex.first_line(cells[k])}`) raised {n}: {v[0][:200] if v else ''}" for k, n, v in errors]
    blocked = [l for l in lines if guard.REFUSED in l]
    return {"ran": ran, "printed": printed, "stop": stop, "errors": lines, "blocked": blocked,
            "summary": stop or ("ran to the end" + (f", {len(errors)} cell(s) raised" if errors else ""))}


def copy_folder(src: Path, dst: Path) -> None:
    """Copy a student's folder into the sandbox: regular files only (no links, nothing over 50 MB)."""
    for p in src.rglob("*"):
        if p.is_symlink() or not p.is_file() or p.stat().st_size > _MAX_COPY:
            continue
        target = dst / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
