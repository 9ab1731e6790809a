"""The install story: pyproject, environment.yml and binder/ name the same packages, and the
top-level widgets/ folder ships as thinlab.widgets in editable and normal installs."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(_norm(d) for d in deps)


def _pip_lines(lines) -> dict:
    return dict(_norm(l) for l in lines if l.strip() and not l.strip().startswith(("#", "-")))


def test_binder_requirements_match_pyproject():
    lines = (REPO / "binder" / "requirements.txt").read_text().splitlines()
    assert _pip_lines(lines) == _pyproject()


def test_environment_yml_matches_pyproject():
    text = (REPO / "environment.yml").read_text()
    pip_block = text.split("- pip:", 1)[1]
    items = [l.strip()[2:] for l in pip_block.splitlines() if l.strip().startswith("- ")]
    assert _pip_lines(items) == _pyproject()
    assert re.search(r"^\s*- python=3\.11\s*$", text, re.M)


def test_torch_is_pinned_to_the_cpu_wheel_everywhere():
    assert _pyproject()["torch"] == "==2.13.0"
    makefile = (REPO / "Makefile").read_text()
    assert makefile.index("tools/install_torch.py") < makefile.index('-e ".[dev]"'), "torch must be installed first"
    import sys
    sys.path.insert(0, str(REPO / "tools"))
    import install_torch

    assert install_torch.torch_requirement() == "torch==2.13.0"             # the pin it installs is pyproject's
    for f in ("environment.yml", "binder/requirements.txt"):                # no GPU there: the CPU wheel's index
        assert install_torch.CPU_INDEX in (REPO / f).read_text(), f


def test_binder_postbuild_installs_the_package():
    post = (REPO / "binder" / "postBuild")
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert re.search(r"pip install .*\s\.\s*$", post.read_text(), re.M)


def test_widgets_importable_in_this_editable_install():
    import thinlab.widgets

    assert Path(thinlab.widgets.__file__).resolve().parent == REPO / "widgets"


def test_widgets_ship_in_a_normal_install(tmp_path):
    """Build the wheel, install it into a bare folder, and import thinlab.widgets from there only."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(REPO)], check=True)
    (wheel,) = (tmp_path / "wheel").glob("thinlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "thinlab/widgets/__init__.py" in names and "thinlab/__init__.py" in names
    for init in (REPO / "thinlab").rglob("__init__.py"):  # every subpackage ships
        rel = init.relative_to(REPO).as_posix()
        assert rel in names, f"{rel} is missing from the wheel: add its package to pyproject.toml"
    for mod in (REPO / "widgets").glob("*.py"):
        assert f"thinlab/widgets/{mod.name}" in names
    assert not any(n.startswith("widgets/") for n in names), "widgets/ must ship only as thinlab.widgets"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    import sysconfig

    # -S: no .pth files, so the editable install's finder is off; the venv's packages come after the target
    purelib = sysconfig.get_paths()["purelib"]
    code = (f"import sys; sys.path.insert(0, {str(target)!r}); sys.path.append({purelib!r}); "
            "import thinlab.widgets, thinlab, thinlab.nn, thinlab.data; print(thinlab.widgets.__file__)")
    out = subprocess.run([sys.executable, "-S", "-c", code], check=True, capture_output=True, text=True).stdout
    assert Path(out.strip()).is_relative_to(target)


@pytest.mark.parametrize("target", ["lessons", "test", "lab", "bench", "data"])
def test_makefile_targets_bootstrap_the_venv(target):
    makefile = (REPO / "Makefile").read_text()
    assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.M), f"`make {target}` must depend on the venv stamp"


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_lesson_table_is_the_course():
    """The README's lesson table is generated from thinlab.course.LESSONS (python -m thinlab.course list
    --markdown) and every row names a notebook and a test file that exist."""
    from thinlab import course

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- lessons:start -->", 1)[1].split("<!-- lessons:end -->", 1)[0].strip()
    assert block == course.markdown_table(), "regenerate with: python -m thinlab.course list --markdown"
    for l in course.LESSONS:
        assert (REPO / "lessons" / l.notebook).is_file()
        assert (REPO / l.test.split("::")[0]).is_file()
        for m in l.modules:
            assert (REPO / "thinlab" / m).exists() or (REPO / "thinlab" / f"{m}.py").exists() or m == "widgets"


def test_readme_shows_the_commands():
    readme = (REPO / "README.md").read_text()
    for cmd in ("make lessons", "make test", "make lab", "make data", "FAST=1"):
        assert cmd in readme
