"""The redesign's rules, checked: lessons stay thin narration, every public kernel names its lesson,
and the import picture stays layered (see DESIGN.md)."""
from __future__ import annotations

import ast
import inspect
import json
import pathlib
import statistics

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))

MAX_CELLS, MAX_MEAN_LINES, MAX_LINES = 40, 12, 25   # hints live in their exercise cells; work moves into the library


def _code_lines(nb) -> list[int]:
    """Non-blank source lines of every code cell."""
    return [sum(1 for line in "".join(c["source"]).splitlines() if line.strip())
            for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_lessons():
    assert len(LESSONS) >= 8


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_is_thin_narration(path):
    nb = json.loads(path.read_text())
    lines = _code_lines(nb)
    assert len(nb["cells"]) <= MAX_CELLS, f"{path.name}: {len(nb['cells'])} cells (at most {MAX_CELLS})"
    assert statistics.mean(lines) <= MAX_MEAN_LINES, \
        f"{path.name}: {statistics.mean(lines):.1f} lines per code cell (at most {MAX_MEAN_LINES}); move work into the library"
    long = [(i, n) for i, n in enumerate(lines) if n > MAX_LINES]
    assert not long, f"{path.name}: code cells (index among code cells, lines) over {MAX_LINES} lines: {long}"
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "alt." not in src and "import altair" not in src, f"{path.name} uses raw altair; use thinlab.charts"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_is_committed_clean_with_a_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), f"{path.name}: first code cell not tagged"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name} has outputs"
    ids = [c.get("id") for c in nb["cells"]]
    assert len(set(ids)) == len(ids), f"{path.name}: duplicate cell ids"


KERNELS = ["thinlab.prune", "thinlab.quant", "thinlab.deepthin", "thinlab.lowrank", "thinlab.hashednet",
           "thinlab.size", "thinlab.precision", "thinlab.stats"]
TAUGHT = KERNELS + ["thinlab.nn", "thinlab.experiments", "thinlab.charts"]


def _public_objects(package: str):
    """Public functions and classes defined in ``package`` (and its submodules), with where they live."""
    import importlib
    import pkgutil

    mod = importlib.import_module(package)
    mods = [mod]
    if hasattr(mod, "__path__"):
        mods += [importlib.import_module(f"{package}.{i.name}") for i in pkgutil.iter_modules(mod.__path__)
                 if not i.name.startswith("_")]
    for m in mods:
        for name, obj in vars(m).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) == m.__name__:
                yield f"{m.__name__}.{name}", obj


@pytest.mark.parametrize("package", TAUGHT)
def test_every_public_kernel_names_the_lesson_that_teaches_it(package):
    missing = [where for where, obj in _public_objects(package) if "Taught in" not in (obj.__doc__ or "")]
    assert not missing, f"public objects without a 'Taught in: <lesson>' docstring line: {missing}"


def _imports(path: pathlib.Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _files(*parts):
    for p in parts:
        path = ROOT / "thinlab" / p
        yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))


LAYERS = [
    # (modules, imports they must never make)
    (["prune", "quant", "deepthin", "lowrank.py", "hashednet.py", "size.py", "precision.py"],
     ("torch", "altair", "ipywidgets", "thinlab.nn", "thinlab.experiments", "thinlab.train", "thinlab.charts")),
    (["nn"], ("thinlab.experiments", "thinlab.charts", "altair", "ipywidgets", "thinlab.course")),
    (["data", "models.py", "train.py"], ("thinlab.nn", "thinlab.experiments", "thinlab.charts", "altair")),
    (["charts.py"], ("torch", "thinlab.nn", "thinlab.experiments", "thinlab.train", "thinlab.data")),
    (["experiments"], ("ipywidgets", "thinlab.widgets")),
]


@pytest.mark.parametrize("parts,banned", LAYERS, ids=lambda v: v[0] if isinstance(v, list) else "")
def test_imports_are_layered(parts, banned):
    bad = sorted(f"{f.relative_to(ROOT)} imports {name}" for f in _files(*parts) for name in _imports(f)
                 if any(name == b or name.startswith(b + ".") for b in banned))
    assert not bad, bad
