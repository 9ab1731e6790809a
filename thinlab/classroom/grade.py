"""The autograder: ``python -m thinlab.course grade SUBMISSIONS --release RELEASE --out gradebook.csv``.

Layout: ``SUBMISSIONS/<student>/<notebook>``, one folder per student holding the lesson notebooks under
their released names (``alice/00_speech_commands.ipynb``). The lessons and points graded are those of
``RELEASE/manifest.json`` (without ``--release`` a fresh release of the whole course, 1 point each).

For each student and lesson, never two in one process:

1. **prepare**: read the notebook, put the released parameters cell back if it was changed, clear old
   outputs, and put a guard cell first (:mod:`thinlab.classroom.guard`).
2. **run**: papermill executes it headless with the lesson's CI-size parameters (``course.FAST_PARAMS``,
   ``SOLUTIONS=False``, ``DOWNLOAD=False``) in a sandbox: its own folder, home and temp folder, an
   isolated ``THINLAB_CACHE`` (a copy of one warmed by running the course's own lesson once), proxies
   pointing nowhere, a memory cap and CPU-time cap (``setrlimit``), a time limit for the whole notebook
   and one per cell (``--cell-timeout`` for cells the student wrote or changed; the course's own cells
   get 5x their time in that reference run, plus 30 s). Every cell runs even if one fails.
3. **check**: a fresh process imports ``thinlab.checks`` first, replays the notebook's imports and
   definitions (:mod:`thinlab.classroom.exercises`) and calls the course's check on each function with
   a time limit. What the notebook printed is never trusted: a notebook that replaced a check gets the
   real check's verdict.

An exercise **passes** when its cell ran in step 2 and the check passes in step 3; it is **not
attempted** when the function is still the released stub (or the notebook is missing); otherwise it
**fails**, with the check's message and hint or what went wrong (syntax error, function renamed, not
run because the notebook stopped before it, time limit). The gradebook has one row per student and
exercise (``student, lesson, exercise, check, status, points, max_points, seconds, hint, run``, where
``seconds`` is the check's time and ``run`` sums up the notebook's run) plus a ``TOTAL`` row per
student; ``<out>-feedback/<student>.txt`` explains each row in plain text and
``<out>-feedback/<student>/<notebook>`` is the executed notebook.

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import re
import shutil
import tempfile
import threading
import traceback
from pathlib import Path

from thinlab._io import atomic_file
from thinlab.classroom import exercises as ex, guard
from thinlab.classroom._runner import source_key
from thinlab.classroom.release import load_manifest, release
from thinlab.classroom.sandbox_run import Limits, run_checks, run_notebook
from thinlab.classroom.submission import FAIL, NOT_ATTEMPTED, PASS, copy_folder, classify, prepare, summarize_run

COLUMNS = ["student", "lesson", "exercise", "check", "status", "points", "max_points", "seconds", "hint", "run"]
GUARD_TAG = "thinlab-grader"


class GradeSetupError(RuntimeError):
    """The grader cannot grade fairly (the course's own lesson does not run in its sandbox, bad arguments)."""


def safe_name(name: str) -> str:
    """A file name for a student folder's name; a changed name gets a short hash, so two never collide."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._") or "student"
    return safe if safe == name else f"{safe}-{hashlib.sha1(name.encode('utf-8', 'replace')).hexdigest()[:6]}"


def _released(release_dir: Path) -> tuple:
    import nbformat

    manifest = load_manifest(release_dir)
    lessons = []
    for l in manifest["lessons"]:
        if not l["exercises"]:
            continue
        nb = nbformat.read(release_dir / l["notebook"], as_version=4)
        params = next((ex.source(c) for c in nb.cells if c.cell_type == "code"
                       and "parameters" in c.metadata.get("tags", [])), None)
        stubs = {}
        for c in nb.cells:
            if c.cell_type == "code":
                tree, _ = ex.try_parse(ex.source(c))
                stubs.update(ex.top_level_defs(tree) if tree else {})
        lessons.append(dict(l, params=params, stubs=stubs, path=release_dir / l["notebook"]))
    return manifest, lessons


class Grader:
    def __init__(self, release_dir: Path, *, limits: Limits, data: str, params: dict, workdir: Path, log):
        self.manifest, self.lessons = _released(release_dir)
        params = dict(params)
        data = str(params.pop("DATA", data))  # --param DATA=... means --data
        self.limits, self.data, self.params, self.workdir, self.log = limits, data, params, workdir, log
        self.warm: dict = {}
        self.lock = threading.Lock()

    def parameters(self, key: str, results: Path) -> dict:
        from thinlab import course

        p = dict(course.FAST_PARAMS.get(key, {}))
        p.update(SOLUTIONS=False, DOWNLOAD=False, RESULTS=str(results), DATA=self.data)
        p.update(self.params)
        return p

    def warm_cache(self, lesson: dict) -> tuple:
        """Run the course's own lesson (reference answers on) once in a sandbox; its cache seeds every
        submission's isolated cache, and its cells' times set the time limits of the same cells in the
        submissions. Returns ``(cache folder, {cell source hash: seconds}, DATA for the submissions)``: with
        synthetic data, the set the reference run spoke, at its place, so every submission reads the same
        files and finds their features in its copy of the cache. A lesson that does not run there stops
        the grading."""
        with self.lock:
            key = lesson["key"]
            if key not in self.warm:
                try:
                    self.warm[key] = self._warm(lesson)
                except GradeSetupError as exc:
                    self.warm[key] = exc
            if isinstance(self.warm[key], GradeSetupError):
                raise self.warm[key]
            return self.warm[key]

    def _warm(self, lesson: dict) -> tuple:
        import nbformat

        from thinlab import course

        key = lesson["key"]
        root = self.workdir / f"_warm-{key}"
        sandbox = root / "sandbox"
        dirs = guard.make_sandbox(sandbox)
        known = {l.key: l for l in course.LESSONS}
        own = course.LESSON_DIR / known[key].notebook if key in known else None
        nb = nbformat.read(own if own and own.is_file() else lesson["path"], as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(guard.guard_cell(sandbox)))
        nb_path = dirs["work"] / lesson["notebook"]
        nbformat.write(nb, nb_path)
        params = self.parameters(key, dirs["work"] / "results.json")
        params["SOLUTIONS"] = bool(own and own.is_file())
        self.log(f"== warming the cache: lesson {key} with the reference answers (once)")
        roomy = dataclasses.replace(self.limits, cell_timeout=max(self.limits.cell_timeout, 1800),
                                    timeout=max(self.limits.timeout, 3600))
        run = run_notebook(nb_path, root / "executed.ipynb", sandbox=sandbox, parameters=params,
                           limits=roomy, log_path=root / "log.txt")
        executed = nbformat.read(root / "executed.ipynb", as_version=4) if (root / "executed.ipynb").is_file() else None
        bad = [o for c in (executed.cells if executed else []) for o in c.get("outputs", [])
               if o.get("output_type") == "error" and params["SOLUTIONS"]]
        if not run["ok"] or executed is None or bad:
            what = run.get("message") or (f"{bad[0].get('ename')}: {bad[0].get('evalue')}" if bad else "no output")
            raise GradeSetupError(f"the course's own lesson {key} does not run in the grader's sandbox ({what}); "
                                  f"see {root / 'log.txt'}. Fix that first (does `make lessons FAST=1` pass?)")
        self.log(f"   lesson {key} ran in {run['seconds']:.0f} s")
        limits = {}
        for c in executed.cells:
            took = c.get("metadata", {}).get("papermill", {}).get("duration")
            if c.cell_type == "code" and isinstance(took, (int, float)):
                limit = max(self.limits.cell_timeout, int(Limits.CELL_FACTOR * took + Limits.CELL_SLACK))
                # the student edition drops a design challenge's reference switch: same cell, same limit
                for src in {c.source, ex.strip_solution_switch(c.source)}:
                    limits[source_key(src)] = limit
        data = self.data
        spoken = sorted(p for p in dirs["cache"].glob("synthetic-*") if (p / ".thinlab-complete.json").is_file())
        if self.data in ("synthetic", "auto") and len(spoken) == 1:
            data = str(spoken[0])  # read-only for the submissions: the guard refuses writes outside their sandbox
        return dirs["cache"], limits, data

    def grade_lesson(self, student: str, folder: Path, lesson: dict, feedback: Path) -> tuple:
        """Rows and a feedback section for one student's notebook of one lesson."""
        import nbformat

        key, path = lesson["key"], folder / lesson["notebook"]
        row = lambda e, status, hint, seconds=0.0: {  # noqa: E731
            "student": student, "lesson": key, "exercise": e["name"], "check": e["check"], "status": status,
            "points": e["points"] if status == PASS else 0, "max_points": e["points"], "seconds": round(seconds, 2),
            "hint": hint, "run": ""}
        if not path.is_file():
            others = sorted(p.name for p in folder.glob("*.ipynb"))
            hint = f"no notebook {student}/{lesson['notebook']}" + (f" (found {', '.join(others)})" if others else "")
            return [row(e, NOT_ATTEMPTED, hint) for e in lesson["exercises"]], [hint], "not submitted", 0.0
        try:
            nb, cells, notes = prepare(path, lesson)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the student's row, not a crash
            hint = (f"could not read {lesson['notebook']} as a notebook ({type(exc).__name__}: {str(exc)[:200]}); "
                    "submit the .ipynb file saved by JupyterLab")
            return [row(e, FAIL, hint) for e in lesson["exercises"]], [hint], "unreadable", 0.0
        static = classify(cells, lesson)
        to_check = [dict(e, cell=static[e["name"]]["cell"]) for e in lesson["exercises"] if "cell" in static[e["name"]]]
        root = self.workdir / f"{safe_name(student)}-{key}"
        run_info = {"summary": "not run: no exercise to check", "ran": set(), "printed": {}, "errors": [],
                    "blocked": [], "stop": ""}
        seconds, results, check_notes = 0.0, {}, []
        if to_check:
            cache, cell_limits, data = self.warm_cache(lesson)
            sandbox = root / "sandbox"
            dirs = guard.make_sandbox(sandbox)
            copy_folder(folder, dirs["work"])
            shared = Path(data).name if Path(data).parent == cache else None  # the spoken set stays in place
            shutil.copytree(cache, dirs["cache"], dirs_exist_ok=True,
                            ignore=lambda d, names: [n for n in names if Path(d) == cache and n == shared])
            nb.cells.insert(0, nbformat.v4.new_code_cell(guard.guard_cell(sandbox), metadata={"tags": [GUARD_TAG]}))
            for i, cell in enumerate(nb.cells):
                cell["id"] = f"graded-{i:03d}"
            nb.nbformat_minor = max(nb.nbformat_minor, 5)
            nb_path = dirs["work"] / lesson["notebook"]
            nbformat.write(nb, nb_path)
            out = root / "executed.ipynb"
            self.log(f"   {student}: lesson {key} running")
            params = dict(self.parameters(key, dirs["work"] / "results.json"), DATA=data)
            run = run_notebook(nb_path, out, sandbox=sandbox, parameters=params, limits=self.limits,
                               log_path=root / "log.txt", cell_limits=cell_limits)
            try:
                executed = nbformat.read(out, as_version=4) if out.is_file() else None
            except Exception:  # noqa: BLE001 - a half-written notebook counts as no output
                executed = None
            run_info = summarize_run(executed, run, cells, self.limits)
            if out.is_file():
                (feedback / safe_name(student)).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(out, feedback / safe_name(student) / lesson["notebook"])
            guard.make_sandbox(root / "check")
            results, check_notes = run_checks(cells, to_check, sandbox=root / "check", limits=self.limits,
                                              log_path=root / "check-log.txt")
            seconds = run["seconds"] + sum(float(r.get("seconds") or 0) for r in results.values())
        rows = []
        for e in lesson["exercises"]:
            s = static[e["name"]]
            if "cell" not in s:
                rows.append(row(e, s["status"], s["hint"]))
                continue
            k, r = s["cell"], results.get(e["name"], {"status": FAIL, "message": "not checked", "seconds": 0.0})
            if k not in run_info["ran"]:
                rows.append(row(e, FAIL, f"not run: {run_info['stop'] or 'the notebook stopped'}, before this "
                                         f"exercise's cell {k + 1} ran; make the notebook run top to bottom",
                                r.get("seconds") or 0))
            elif r["status"] == PASS:
                rows.append(row(e, PASS, "", r.get("seconds") or 0))
            else:
                hint = r["message"]
                if "✓" in run_info["printed"].get(k, ""):
                    hint += (" [Your notebook printed a pass here, but the course's own check, run by the grader on "
                             "your function, fails: the check in your notebook was changed or replaced.]")
                rows.append(row(e, FAIL, hint, r.get("seconds") or 0))
        for r in rows:
            r["run"] = run_info["summary"]
        lines = notes + run_info["errors"] + [f"while replaying your definitions: {n}" for n in check_notes]
        return rows, lines, run_info["summary"], seconds


def students_in(submissions: Path) -> list:
    if not submissions.is_dir():
        raise GradeSetupError(f"SUBMISSIONS={submissions} is not a folder; expected one folder per student, "
                              "e.g. SUBMISSIONS/alice/00_speech_commands.ipynb")
    found = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not found:
        raise GradeSetupError(f"{submissions} holds no student folders; expected SUBMISSIONS/<student>/<notebook>, "
                              "e.g. SUBMISSIONS/alice/00_speech_commands.ipynb")
    return found


def grade(submissions, out, *, release_dir=None, feedback_dir=None, limits: Limits | None = None,
          data: str = "synthetic", params: dict | None = None, jobs: int = 1, workdir=None, log=print) -> list:
    """Grade every student folder in ``submissions``; writes the gradebook CSV ``out`` and the feedback
    folder; returns the rows. Raises :class:`GradeSetupError` only for a setup the grader cannot use."""
    submissions, out = Path(submissions), Path(out)
    limits = limits or Limits()
    students = students_in(submissions)
    feedback = Path(feedback_dir) if feedback_dir else out.with_name(out.stem + "-feedback")
    with tempfile.TemporaryDirectory(prefix="thinlab-grade-", dir=workdir) as tmp:
        tmp = Path(tmp)
        if release_dir is None:
            release(tmp / "release")
            release_dir = tmp / "release"
        grader = Grader(Path(release_dir), limits=limits, data=data, params=params or {}, workdir=tmp, log=log)
        if not grader.lessons:
            raise GradeSetupError(f"the release {release_dir} has no exercises to grade")
        feedback.mkdir(parents=True, exist_ok=True)

        def one(folder: Path):
            return folder.name, _grade_student(grader, folder, feedback, log)

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
            done = dict(pool.map(one, students))
    rows = [r for s in students for r in done[s.name]]
    write_csv(out, rows)
    log(f"gradebook: {out} ({len(students)} students); feedback in {feedback}/")
    return rows


def _grade_student(grader: Grader, folder: Path, feedback: Path, log) -> list:
    student, rows, text = folder.name, [], [f"thinlab feedback for {folder.name}", ""]
    total_s = 0.0
    for lesson in grader.lessons:
        try:
            got, lines, summary, seconds = grader.grade_lesson(student, folder, lesson, feedback)
        except GradeSetupError:
            raise  # the course itself does not run here: no row would be fair
        except Exception as exc:  # noqa: BLE001 - the grader's own bug must not sink the class
            log(traceback.format_exc())
            hint = f"the grader failed on this notebook ({type(exc).__name__}: {exc}); tell your instructor"
            got = [{"student": student, "lesson": lesson["key"], "exercise": e["name"], "check": e["check"],
                    "status": FAIL, "points": 0, "max_points": e["points"], "seconds": 0.0, "hint": hint,
                    "run": "grader error"} for e in lesson["exercises"]]
            lines, summary, seconds = [hint], "grader error", 0.0
        rows += got
        total_s += seconds
        text += [f"Lesson {lesson['key']} ({lesson['notebook']}): {summary}"]
        text += [f"  note: {l}" for l in lines]
        for r in got:
            text.append(f"  {r['exercise']}: {r['status'].upper()}  {r['points']:g}/{r['max_points']:g}")
            if r["hint"]:
                text += ["      " + l for l in r["hint"].splitlines()]
        text.append("")
    pts, mx = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
    passed = sum(r["status"] == PASS for r in rows)
    rows.append({"student": student, "lesson": "", "exercise": "TOTAL", "check": "",
                 "status": f"{passed}/{len(rows)} passed",
                 "points": pts, "max_points": mx, "seconds": round(total_s, 1), "hint": "", "run": ""})
    text.append(f"Total: {pts:g} / {mx:g} points ({passed} of {len(rows) - 1} exercises passed)")
    with atomic_file(feedback / f"{safe_name(student)}.txt", "w") as f:
        f.write("\n".join(text) + "\n")
    log(f"   {student}: {pts:g}/{mx:g}")
    return rows


def write_csv(path: Path, rows: list) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})
    with atomic_file(path, "w") as f:
        f.write(buf.getvalue())


def read_csv(path) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
