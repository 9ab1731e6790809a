"""The classroom tools: the student release, the trusted check, the sandbox guard, and the autograder on a
planted class of five submissions built from the released lesson 04 (the cheapest lesson to run at CI
size; three exercises: ``best_frac_bits``, ``symmetric_quantize``, ``packed_bytes``).

The planted class (points: 1 per exercise):

* alice: every exercise right (her own code, not the reference);
* bob (wrong answer): a wrong ``best_frac_bits``, ``symmetric_quantize`` left as the stub, a right
  ``packed_bytes``, and a changed, untagged parameters cell (``EPOCHS = 500``, ``SOLUTIONS = True``) that
  the grader must put back;
* carol (crash): a syntax error in the ``best_frac_bits`` cell, then a cell that kills the kernel, so her
  right answers below it never run;
* dave (infinite loop): a ``symmetric_quantize`` that never returns (time limit), the others right;
* erin (tampered check import): replaces ``checks.check_best_frac_bits`` with one that always passes and
  writes a wrong function, renames ``packed_bytes`` to ``packed``, and tries to delete a file outside her
  folder.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from thinlab import checks, course
from thinlab.classroom import exercises as ex
from thinlab.classroom import grade as gr
from thinlab.classroom.release import release, solution_leaks
from thinlab.classroom.sandbox_run import Limits, run_checks

LESSON = "04"
NB = course.lesson(LESSON).notebook

BEST_F = '''def best_frac_bits(W, word_bits):
    """The F with the smallest mean squared error."""
    errors = []
    for F in range(-8, 25):
        W_hat = quant.fixed_point(W, word_bits=word_bits, frac_bits=F)
        errors.append((float(np.mean((W - W_hat) ** 2)), F))
    return min(errors)[1]                         # the smallest error; on a tie, the smallest F
'''
SYMMETRIC = '''def symmetric_quantize(W, scale, n_bits):
    top = 2 ** (n_bits - 1) - 1
    return np.clip(np.round(np.asarray(W) / scale), -top, top) * scale
'''
PACKED = '''def packed_bytes(n, n_bits):
    return (n * n_bits + 7) // 8
'''
WRONG_BEST_F = '''def best_frac_bits(W, word_bits):
    return word_bits // 2                         # half the bits for the fraction: not the best F
'''
LOOPING_SYMMETRIC = '''def symmetric_quantize(W, scale, n_bits):
    q = np.round(W / scale)
    top = 2 ** (n_bits - 1) - 1
    while np.abs(q).max() > top:                  # never shrinks q: an infinite loop
        q = np.round(W / scale)
    return q * scale
'''


def exercise_cell(nb, name: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("thinlab", {}).get("exercise") == name)


def answer(nb, name: str, code: str, check_arg: str | None = None) -> None:
    """Replace the stub of exercise ``name`` with ``code``, keeping the check call (with ``check_arg``)."""
    i = exercise_cell(nb, name)
    call = next(l for l in nb.cells[i].source.splitlines() if l.startswith("print(checks."))
    if check_arg:
        call = call.replace(f"({name})", f"({check_arg})")
    nb.cells[i].source = code.rstrip("\n") + "\n\n" + call


def plant_class(release_dir: Path, root: Path, canary: Path) -> Path:
    """SUBMISSIONS/<student>/04_quantization.ipynb for the five planted students."""
    base = nbformat.read(release_dir / NB, as_version=4)
    subs = root / "submissions"

    def copy():
        return nbformat.from_dict(json.loads(json.dumps(base)))

    def save(student: str, nb) -> None:
        (subs / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, subs / student / NB)

    nb = copy()
    for name, code in (("best_frac_bits", BEST_F), ("symmetric_quantize", SYMMETRIC), ("packed_bytes", PACKED)):
        answer(nb, name, code)
    save("alice", nb)

    nb = copy()
    answer(nb, "best_frac_bits", WRONG_BEST_F)
    answer(nb, "packed_bytes", PACKED)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace("EPOCHS = 20", "EPOCHS = 500")
    params.source = params.source.replace("SOLUTIONS = False", "SOLUTIONS = True")
    assert "EPOCHS = 500" in params.source
    params.metadata["tags"] = []
    save("bob", nb)

    nb = copy()
    no_colon = BEST_F.replace("def best_frac_bits(W, word_bits):", "def best_frac_bits(W, word_bits)")
    answer(nb, "best_frac_bits", no_colon)
    answer(nb, "symmetric_quantize", SYMMETRIC)
    answer(nb, "packed_bytes", PACKED)
    nb.cells.insert(exercise_cell(nb, "best_frac_bits") + 1, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    save("carol", nb)

    nb = copy()
    answer(nb, "best_frac_bits", BEST_F)
    answer(nb, "symmetric_quantize", LOOPING_SYMMETRIC)
    answer(nb, "packed_bytes", PACKED)
    save("dave", nb)

    nb = copy()
    first_code = next(i for i, c in enumerate(nb.cells) if "from thinlab import" in c.source)
    nb.cells.insert(first_code + 1, nbformat.v4.new_code_cell(
        'checks.check_best_frac_bits = lambda f: "✓ best_frac_bits is right"\n'
        f'import os\nos.remove({str(canary)!r})'))
    answer(nb, "best_frac_bits", WRONG_BEST_F)
    answer(nb, "symmetric_quantize", SYMMETRIC)
    answer(nb, "packed_bytes", PACKED.replace("def packed_bytes", "def packed"), check_arg="packed")
    save("erin", nb)
    return subs


# ------------------------------------------------------------------ release


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    manifest = release(out)
    return out, manifest


def test_release_has_every_lesson_exercises_and_instructions(released):
    out, manifest = released
    assert [l["key"] for l in manifest["lessons"]] == [l.key for l in course.LESSONS]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    names = [e["name"] for l in manifest["lessons"] for e in l["exercises"]]
    assert sorted(names) == sorted(checks.SOLUTIONS), "every exercise with a reference answer is in the manifest"
    for l in manifest["lessons"]:
        nb = nbformat.read(out / l["notebook"], as_version=4)
        nbformat.validate(nb)
        assert nb.cells[0].cell_type == "markdown" and "How to submit" in nb.cells[0].source
        assert l["notebook"] in nb.cells[0].source
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.outputs or c.execution_count for c in code)
        params = code[0]
        assert "parameters" in params.metadata["tags"] and "\nSOLUTIONS = False" in "\n" + params.source
        for e in l["exercises"]:
            cell = nb.cells[e["cell"] - 1]
            assert cell.metadata["thinlab"] == {"exercise": e["name"], "check": e["check"], "points": 1.0}
            assert f"def {e['name']}(" in cell.source and ex.STUB_MARK in cell.source
            assert f"checks.{e['check']}({e['name']})" in cell.source
            assert getattr(checks, e["check"]) and e["points"] == 1.0


def test_release_changes_only_the_parameters_and_exercise_cells(released):
    """Every other code cell is the lesson's, byte for byte (the grader recognises them by their source)."""
    out, manifest = released
    for l in manifest["lessons"]:
        lesson = nbformat.read(course.LESSON_DIR / l["notebook"], as_version=4)
        student = nbformat.read(out / l["notebook"], as_version=4)
        a = [c.source for c in lesson.cells]
        b = [c.source for c in student.cells[1:]]                       # after the instructions cell
        changed = {i for i, (x, y) in enumerate(zip(a, b)) if x != y}
        params = next(i for i, c in enumerate(lesson.cells) if "parameters" in c.metadata.get("tags", []))
        exercises = {e["cell"] - 2 for e in l["exercises"]}
        switched = {i for i in changed - exercises - {params} if ex.strip_solution_switch(a[i]) == b[i] != a[i]}
        assert len(a) == len(b) and changed <= {params} | exercises | switched, l["notebook"]


def _reference_bodies():
    """Each reference solution's body (docstring dropped), as its lines with whitespace removed."""
    out = {}
    for name, fn in checks.SOLUTIONS.items():
        src = textwrap.dedent(inspect.getsource(fn))
        node = ex.parse(src).body[0]
        body = ex._body_without_docstring(node)
        lines = src.splitlines()[body[0].lineno - 1:body[-1].end_lineno]
        out[name] = [("".join(l.split())) for l in lines if len("".join(l.split())) >= 12]
    return out


def _release_text(out: Path) -> str:
    """Everything a student gets: every file, notebooks as their cells' text."""
    parts = []
    for p in sorted(out.rglob("*")):
        if p.suffix == ".ipynb":
            parts += [c.source for c in nbformat.read(p, as_version=4).cells]
        elif p.is_file():
            parts.append(p.read_text(errors="replace"))
    return "\n".join(parts)


def test_release_holds_no_reference_solution_code(released):
    out, _ = released
    text = _release_text(out)
    lines = {"".join(l.split()) for l in text.splitlines()}
    flat = "".join(text.split())
    for name, body in _reference_bodies().items():
        fn = checks.SOLUTIONS[name]
        assert body, f"{fn.__name__} has no body line to search for"
        assert fn.__name__ not in text, f"the release names {fn.__name__}"
        assert "".join(body) not in flat, f"the body of {fn.__name__} is in the release"
        for line in body:
            assert line not in lines, f"{fn.__name__}'s line {line!r} is in the release"
    assert "SOLUTIONS[" not in text and "if SOLUTIONS" not in text
    # the same search finds a body when it is there (so the test above can fail)
    planted = text + "\n" + textwrap.dedent(inspect.getsource(checks.SOLUTIONS["stage_factors"]))
    body = _reference_bodies()["stage_factors"]
    assert all(line in {"".join(l.split()) for l in planted.splitlines()} for line in body)


def test_release_refuses_a_lesson_that_shows_a_solution(tmp_path):
    """The release's own scan: a lesson with a reference answer pasted in is refused, saying which."""
    l = course.lesson(LESSON)
    nb = nbformat.read(course.LESSON_DIR / l.notebook, as_version=4)
    ref = checks.SOLUTIONS["packed_bytes"]
    nb.cells.append(nbformat.v4.new_code_cell(inspect.getsource(ref)))
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    nbformat.write(nb, lessons / l.notebook)
    with pytest.raises(ValueError, match=r"lesson 04 would hand out reference solution code.*"
                                         r"packed_bytes_reference"):
        release(tmp_path / "out", lessons=[l], lesson_dir=lessons)
    assert not (tmp_path / "out").exists()
    assert solution_leaks({"x": "    return float(np.trace(cm) / cm.sum())"}), "a body line alone is found too"
    with pytest.raises(ValueError, match="no lesson '99'; the lessons are 00"):
        release(tmp_path / "out", only="04,99")


# ------------------------------------------------------------------ static analysis and the trusted check


def test_replay_keeps_definitions_and_drops_tampering():
    tree = ex.parse("import numpy as np\nfrom thinlab import checks\nK = 3\nchecks.check_x = lambda f: 'ok'\n"
                    "print(1)\ndef f(x):\n    return x\nclass C: pass\ny = f(2)\n%time f(1)\n")
    kept = [type(n).__name__ for n in ex.replayable(tree)]
    assert kept == ["Import", "ImportFrom", "Assign", "FunctionDef", "ClassDef"]
    stub = ex.parse('def g(a):\n    """doc"""\n    raise NotImplementedError("your turn: do it")\n').body[0]
    same = ex.parse('def g(a):\n    # thinking...\n    raise NotImplementedError("your turn: do it")\n').body[0]
    done = ex.parse('def g(a):\n    return a\n').body[0]
    assert ex.is_unchanged_stub(same, stub) and not ex.is_unchanged_stub(done, stub)
    assert ex.uses_reference(ex.parse("def g(a):\n    return checks.SOLUTIONS['g'](a)").body[0])
    stub = 'def f(x):\n    raise NotImplementedError("your turn")\n\n'
    src = stub + 'if SOLUTIONS:\n    f = checks.SOLUTIONS["f"]\nprint(checks.check_f(f))\n'
    assert ex.strip_solution_switch(src) == stub + "print(checks.check_f(f))\n"
    assert ex.strip_solution_switch("x = 1\n\n\n\ny = 2") == "x = 1\n\n\n\ny = 2", "no switch, no change"


def test_trusted_check_ignores_a_replaced_check_and_limits_time(tmp_path):
    """The check process calls the course's own checks, whatever the cells do to theirs."""
    cells = [
        "import numpy as np\nfrom thinlab import checks\n"
        "checks.check_speaker_overlap = lambda f: 'fake pass'\n"
        "import thinlab.checks.speech as s\ns.check_speaker_overlap = lambda f: 'fake pass'\n",
        "def speaker_overlap(a, b):\n    return set()\nprint(checks.check_speaker_overlap(speaker_overlap))\n",
        "def accuracy_from_confusion(cm):\n    cm = np.asarray(cm, dtype=float)\n"
        "    return float(np.diag(cm).sum() / cm.sum())\n",
        "def csr_bytes(shape, nnz):\n    while True:\n        pass\n",
        "def break_even_density(shape):\n    return checks.SOLUTIONS['break_even_density'](shape)\n",
    ]
    exs = [{"name": "speaker_overlap", "check": "check_speaker_overlap", "cell": 1},
           {"name": "accuracy_from_confusion", "check": "check_accuracy_from_confusion", "cell": 2},
           {"name": "csr_bytes", "check": "check_csr_bytes", "cell": 3},
           {"name": "magnitude_prune", "check": "check_no_such_check", "cell": 3}]
    from thinlab.classroom import guard
    guard.make_sandbox(tmp_path / "box")
    res, notes = run_checks(cells, exs, sandbox=tmp_path / "box", limits=Limits(check_timeout=3),
                            log_path=tmp_path / "log.txt")
    assert res["speaker_overlap"]["status"] == "fail"
    assert "expected" in res["speaker_overlap"]["message"] and "Hint:" in res["speaker_overlap"]["message"]
    assert res["accuracy_from_confusion"]["status"] == "pass"
    assert res["csr_bytes"]["status"] == "fail" and res["csr_bytes"]["message"].startswith("time limit")
    assert res["magnitude_prune"]["status"] == "fail" and "check_no_such_check" in res["magnitude_prune"]["message"]


# ------------------------------------------------------------------ the guard


def test_guard_refuses_writes_outside_programs_and_network(tmp_path):
    box, outside = tmp_path / "box", tmp_path / "canary.txt"
    box.mkdir()
    outside.write_text("still here")
    code = textwrap.dedent(f"""
        import os, shutil, socket, subprocess
        from thinlab.classroom import guard
        guard.install([{str(box)!r}])
        def attempt(f):
            try:
                f()
                return "allowed"
            except PermissionError as e:
                return "refused" if guard.REFUSED in str(e) else "other"
        print(attempt(lambda: open("inside.txt", "w").write("ok")),
              attempt(lambda: open({str(outside)!r}).read()),
              attempt(lambda: os.remove("../canary.txt")),
              attempt(lambda: shutil.rmtree({str(tmp_path)!r})),
              attempt(lambda: open({str(outside)!r}, "a")),
              attempt(lambda: os.rename("inside.txt", "../moved.txt")),
              attempt(lambda: subprocess.run(["true"])),
              attempt(lambda: os.system("true")),
              attempt(lambda: socket.create_connection(("192.0.2.1", 80), timeout=1)),
              attempt(lambda: socket.getaddrinfo("example.com", 443)))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=box, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["allowed", "allowed"] + ["refused"] * 8
    assert outside.read_text() == "still here" and (box / "inside.txt").exists()


# ------------------------------------------------------------------ the grader


def test_grader_setup_errors_are_clear(tmp_path, released):
    out, _ = released
    with pytest.raises(gr.GradeSetupError, match="is not a folder; expected one folder per student"):
        gr.grade(tmp_path / "nope", tmp_path / "g.csv", release_dir=out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(gr.GradeSetupError, match="holds no student folders"):
        gr.grade(tmp_path / "empty", tmp_path / "g.csv", release_dir=out)
    (tmp_path / "class" / "alice").mkdir(parents=True)
    with pytest.raises(ValueError, match="manifest.json is missing: --release must name a folder written by"):
        gr.grade(tmp_path / "class", tmp_path / "g.csv", release_dir=tmp_path)
    with pytest.raises(ValueError, match="check_timeout=0: expected a positive whole number"):
        Limits(check_timeout=0)


def test_missing_and_unreadable_notebooks_need_no_run(tmp_path):
    """Students whose notebooks cannot run get clear rows without the grader starting anything."""
    rel = tmp_path / "release"
    release(rel, only=LESSON)
    subs = tmp_path / "subs"
    (subs / "gina").mkdir(parents=True)
    (subs / "gina" / "notes.txt").write_text("I forgot")
    (subs / "hugo").mkdir()
    (subs / "hugo" / NB).write_text("{ this is not json")
    rows = gr.grade(subs, tmp_path / "gb.csv", release_dir=rel, log=lambda *a: None)
    by = {(r["student"], r["exercise"]): r for r in gr.read_csv(tmp_path / "gb.csv")}
    assert by[("gina", "best_frac_bits")]["status"] == "not attempted"
    assert f"no notebook gina/{NB}" in by[("gina", "best_frac_bits")]["hint"]
    assert by[("hugo", "packed_bytes")]["status"] == "fail"
    assert "could not read" in by[("hugo", "packed_bytes")]["hint"]
    assert by[("hugo", "TOTAL")]["points"] == "0" and by[("hugo", "TOTAL")]["max_points"] == "3"
    assert len(rows) == 8
    assert "Total: 0 / 3 points" in (tmp_path / "gb-feedback" / "gina.txt").read_text()


@pytest.mark.slow
def test_planted_class_grades_into_the_expected_gradebook(tmp_path):
    rel = tmp_path / "release"
    release(rel, only=LESSON)
    canary = tmp_path / "do-not-delete.txt"
    canary.write_text("the grader's own files")
    subs = plant_class(rel, tmp_path, canary)
    out = tmp_path / "gradebook.csv"
    done = subprocess.run(
        [sys.executable, "-m", "thinlab.course", "grade", str(subs), "--release", str(rel), "--out", str(out),
         "--timeout", "400", "--cell-timeout", "15", "--check-timeout", "5", "--jobs", "2"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "THINLAB_CACHE": str(tmp_path / "mine")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(out.read_text())
    rows = gr.read_csv(out)
    got = {(r["student"], r["exercise"]): (r["status"], r["points"]) for r in rows}
    P, F, N = ("pass", "1"), ("fail", "0"), ("not attempted", "0")
    assert got == {
        ("alice", "best_frac_bits"): P, ("alice", "symmetric_quantize"): P, ("alice", "packed_bytes"): P,
        ("alice", "TOTAL"): ("3/3 passed", "3"),
        ("bob", "best_frac_bits"): F, ("bob", "symmetric_quantize"): N, ("bob", "packed_bytes"): P,
        ("bob", "TOTAL"): ("1/3 passed", "1"),
        ("carol", "best_frac_bits"): F, ("carol", "symmetric_quantize"): F, ("carol", "packed_bytes"): F,
        ("carol", "TOTAL"): ("0/3 passed", "0"),
        ("dave", "best_frac_bits"): P, ("dave", "symmetric_quantize"): F, ("dave", "packed_bytes"): P,
        ("dave", "TOTAL"): ("2/3 passed", "2"),
        ("erin", "best_frac_bits"): F, ("erin", "symmetric_quantize"): P, ("erin", "packed_bytes"): F,
        ("erin", "TOTAL"): ("1/3 passed", "1"),
    }
    assert [r["student"] for r in rows] == ["alice"] * 4 + ["bob"] * 4 + ["carol"] * 4 + ["dave"] * 4 + ["erin"] * 4
    hint = {(r["student"], r["exercise"]): r["hint"] for r in rows}
    assert "you returned F=4" in hint[("bob", "best_frac_bits")] and "Hint:" in hint[("bob", "best_frac_bits")]
    assert "still the released stub" in hint[("bob", "symmetric_quantize")]
    assert "SyntaxError" in hint[("carol", "best_frac_bits")]
    for name in ("symmetric_quantize", "packed_bytes"):
        assert hint[("carol", name)].startswith("not run: the kernel died at cell"), hint[("carol", name)]
    assert hint[("dave", "symmetric_quantize")].startswith("time limit: your function did not return within 5 s")
    assert "you returned F=4" in hint[("erin", "best_frac_bits")]
    assert "printed a pass" in hint[("erin", "best_frac_bits")]
    assert "no function named `packed_bytes`" in hint[("erin", "packed_bytes")]
    assert "defines packed" in hint[("erin", "packed_bytes")]
    assert canary.read_text() == "the grader's own files", "erin's notebook deleted a file outside its folder"
    assert all(float(r["seconds"]) >= 0 for r in rows)
    totals = {r["student"]: r for r in rows if r["exercise"] == "TOTAL"}
    assert all(float(t["max_points"]) == 3 and float(t["seconds"]) > 0 for t in totals.values())
    run = {r["student"]: r["run"] for r in rows if r["exercise"] == "best_frac_bits"}
    assert run["alice"].startswith("ran to the end") and run["carol"].startswith("the kernel died")

    feedback = out.parent / "gradebook-feedback"
    bob = (feedback / "bob.txt").read_text()
    assert "parameters cell" in bob and "ran the original" in bob and "Total: 1 / 3 points" in bob
    erin = (feedback / "erin.txt").read_text()
    assert "thinlab grader: deleting" in erin and "do-not-delete.txt" in erin
    alice = nbformat.read(feedback / "alice" / NB, as_version=4)
    text = "".join(o.get("text", "") for c in alice.cells if c.cell_type == "code" for o in c.outputs)
    for name in ("best_frac_bits", "symmetric_quantize", "packed_bytes"):
        assert f"✓ {name} is right" in text
    injected = next(c for c in alice.cells if "injected-parameters" in c.metadata.get("tags", []))
    fast_epochs = course.FAST_PARAMS[LESSON]["EPOCHS"]
    assert f"EPOCHS = {fast_epochs}" in injected.source and "SOLUTIONS = False" in injected.source
    bob_nb = nbformat.read(feedback / "bob" / NB, as_version=4)
    assert not any("EPOCHS = 500" in c.source for c in bob_nb.cells)
    assert not (tmp_path / "mine").exists(), "the grader used the instructor's cache instead of an isolated one"
