"""Progress bars: text when headless (saved notebooks, logs), widgets only where a person watches live.

``thinlab._progress.progress`` is the one factory; ``THINLAB_HEADLESS=1`` (set for the kernel by the course
runner and the classroom grader) or no Jupyter kernel means headless.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import tqdm.auto
import tqdm.std

from thinlab import _progress
from thinlab._progress import headless, headless_env, progress

REPO = Path(__file__).resolve().parents[1]


def test_headless_follows_the_environment(monkeypatch):
    monkeypatch.delenv("THINLAB_HEADLESS", raising=False)
    assert headless()   # pytest is no Jupyter kernel: nobody could see a widget
    for value, want in (("1", True), ("true", True), ("0", False), ("no", False)):
        monkeypatch.setenv("THINLAB_HEADLESS", value)
        assert headless() is want, value
    monkeypatch.setenv("THINLAB_HEADLESS", "maybe")
    with pytest.raises(ValueError, match="THINLAB_HEADLESS='maybe'.*expected 1"):
        headless()


def test_headless_env_sets_and_restores(monkeypatch):
    monkeypatch.setenv("THINLAB_HEADLESS", "0")
    with headless_env():
        assert headless()
    assert not headless()
    monkeypatch.delenv("THINLAB_HEADLESS")
    with headless_env():
        assert _progress.os.environ["THINLAB_HEADLESS"] == "1"
    assert "THINLAB_HEADLESS" not in _progress.os.environ


def test_progress_is_a_text_bar_when_headless(monkeypatch, capsys):
    monkeypatch.setenv("THINLAB_HEADLESS", "1")
    with progress(total=300, desc="features", unit="clip") as bar:
        assert type(bar) is tqdm.std.tqdm and bar.mininterval == _progress.HEADLESS_MININTERVAL
        bar.update(300)
    err = capsys.readouterr().err
    assert "features: 100%" in err and "300/300" in err.split("\r")[-1]
    assert list(progress(range(3), disable=True)) == [0, 1, 2]
    monkeypatch.setenv("THINLAB_HEADLESS", "0")
    with progress(total=1, mininterval=0.5) as bar:
        assert type(bar) is tqdm.auto.tqdm and bar.mininterval == 0.5


def test_every_progress_bar_goes_through_the_factory():
    """No module imports tqdm itself (it would pick a widget bar in a headless kernel)."""
    offenders = []
    for path in [*(REPO / "thinlab").rglob("*.py"), *(REPO / "widgets").rglob("*.py")]:
        if path.name == "_progress.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from\s+tqdm\b|import\s+tqdm\b)", line):
                offenders.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not offenders, "use `from thinlab._progress import progress`:\n" + "\n".join(offenders)


def _run(cells, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return [o for c in nb.cells for o in c.outputs]


BAR_CELL = "from thinlab._progress import progress\nfor _ in progress(range(300), desc='work'):\n    pass"


def test_a_headless_kernel_saves_a_text_bar_and_a_live_one_a_widget(tmp_path, monkeypatch):
    """The same cell in a kernel: under THINLAB_HEADLESS=1 the saved output is the finished text bar; with
    the variable unset the kernel counts as a live front end and tqdm draws its widget."""
    monkeypatch.delenv("THINLAB_HEADLESS", raising=False)
    with headless_env():
        outs = _run([BAR_CELL], tmp_path)
    assert not [o for o in outs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
    assert "300/300" in text.split("\r")[-1] and "work: 100%" in text
    live = _run([BAR_CELL], tmp_path)
    assert [o for o in live if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]


def test_the_course_runner_and_the_grader_run_kernels_headless(tmp_path, monkeypatch):
    """Both papermill callers set THINLAB_HEADLESS=1 for the kernel they start (read at the call, the
    kernel inherits the environment), and the course runner restores the caller's environment after."""
    import papermill

    from thinlab import course
    from thinlab.classroom import _runner

    seen = []

    def fake_execute(inp, out, parameters=None, **kw):
        seen.append(_progress.os.environ.get("THINLAB_HEADLESS"))
        if "RESULTS" in (parameters or {}):
            Path(parameters["RESULTS"]).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setenv("THINLAB_HEADLESS", "0")   # monkeypatch restores the test's own value afterwards
    course.run_lesson("00", fast=True, out_dir=tmp_path, progress=False)
    assert seen == ["1"] and _progress.os.environ["THINLAB_HEADLESS"] == "0"
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"input": "in.ipynb", "output": "out.ipynb", "cwd": str(tmp_path), "parameters": {},
                               "cell_timeout": 10}))
    assert _runner.main(["_runner", str(job)]) == 0
    assert seen == ["1", "1"]
    assert json.loads(job.with_suffix(".status.json").read_text()) == {"ok": True}
