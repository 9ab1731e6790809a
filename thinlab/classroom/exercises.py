"""Reading notebooks as code: where the exercises are, what a student changed, what the grader replays.

An exercise is a lesson code cell that defines a function at top level and calls a course check on it,
``print(checks.check_<x>(<name>))``; the function's name is the exercise's name.

The grader never trusts what a notebook printed. It *replays* a submission in a fresh process that
imported :mod:`thinlab.checks` first: only the top-level ``import`` statements, ``def`` / ``class``
definitions and plain ``NAME = <literal>`` assignments of each code cell, in order (:func:`replayable`),
then calls the course's own check on the function. Everything else in a cell (the check call, any
``checks.check_x = ...`` reassignment, training runs, prints) is not replayed.

Taught in: the classroom tools, not a lesson
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

#: the marker of an unwritten exercise: its stub raises NotImplementedError("your turn: ...")
STUB_MARK = "your turn"


@dataclass(frozen=True)
class Exercise:
    """One "your turn" function of a lesson: ``name`` (the function), ``check`` (its ``thinlab.checks``
    function), ``points`` and ``cell`` (its cell index in the lesson notebook)."""
    name: str
    check: str
    points: float = 1.0
    cell: int = -1


def source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def parse(src: str) -> ast.Module:
    """Parse a code cell, IPython syntax (``%magic``, ``!cmd``) included; raises ``SyntaxError``."""
    try:
        return ast.parse(src)
    except SyntaxError:
        try:
            from IPython.core.inputtransformer2 import TransformerManager
            return ast.parse(TransformerManager().transform_cell(src))
        except SyntaxError:
            raise
        except Exception:  # the transformer itself choked: report the plain parse error
            return ast.parse(src)


def try_parse(src: str):
    """``(tree, None)`` or ``(None, SyntaxError)``."""
    try:
        return parse(src), None
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source
        if not isinstance(exc, SyntaxError):
            exc = SyntaxError(str(exc))
        return None, exc


def top_level_defs(tree: ast.Module) -> dict:
    """``{name: FunctionDef}`` of the functions a cell defines at top level (the last one wins)."""
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def check_calls(tree: ast.Module) -> list:
    """``[(function name, check name)]`` for every ``checks.check_<x>(<name>, ...)`` call in a cell."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "checks"
                and node.func.attr.startswith("check_") and node.args and isinstance(node.args[0], ast.Name)):
            found.append((node.args[0].id, node.func.attr))
    return found


def find_exercises(nb, points: float = 1.0) -> list:
    """The exercises of a lesson notebook, in order: cells that define a function and check it."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        tree, err = try_parse(source(cell))
        if err is not None:
            raise ValueError(f"cell {i + 1} of the lesson does not parse ({err}); fix the lesson first")
        defs = top_level_defs(tree)
        for name, check in check_calls(tree):
            if name in defs:
                out.append(Exercise(name=name, check=check, points=points, cell=i))
    return out


def _mentions(node, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def strip_solution_switch(src: str) -> str:
    """The cell without its top-level ``if SOLUTIONS: ...`` blocks (they point at the reference answers)."""
    tree, err = try_parse(src)
    if err is not None:
        return src
    lines = src.splitlines(keepends=True)
    drop = set()
    for node in tree.body:
        if isinstance(node, ast.If) and _mentions(node.test, "SOLUTIONS"):
            drop.update(range(node.lineno - 1, node.end_lineno))
    if not drop:
        return src
    kept = [line for i, line in enumerate(lines) if i not in drop]
    text = re.sub(r"\n{3,}", "\n\n", "".join(kept))
    return text.rstrip("\n") + ("\n" if src.endswith("\n") else "")


def _body_without_docstring(fn) -> list:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body


def fingerprint(fn) -> str:
    """The function's arguments and body (docstring, comments and formatting ignored), as an AST dump."""
    return ast.dump(fn.args) + "|" + "|".join(ast.dump(n) for n in _body_without_docstring(fn))


def is_unchanged_stub(fn, stub) -> bool:
    """True when ``fn`` is the released stub as it was (only its docstring or comments may differ), or
    any function whose body is just ``raise NotImplementedError("your turn ...")``."""
    if stub is not None and fingerprint(fn) == fingerprint(stub):
        return True
    body = _body_without_docstring(fn)
    return (len(body) == 1 and isinstance(body[0], ast.Raise) and body[0].exc is not None
            and STUB_MARK in ast.unparse(body[0].exc) and "NotImplementedError" in ast.unparse(body[0].exc))


def uses_reference(fn) -> bool:
    """True when the function's code names the reference answers (``SOLUTIONS`` or a ``*_reference``)."""
    for n in ast.walk(fn):
        name = n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else None
        if name and (name == "SOLUTIONS" or name.endswith("_reference")):
            return True
    return False


def _literal(node) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def replayable(tree: ast.Module) -> list:
    """The statements of a cell the grader replays: imports, function and class definitions, and
    ``NAME = <literal>`` assignments. Nothing else (no calls, no attribute assignments)."""
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.append(node)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets) \
                and _literal(node.value):
            keep.append(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None \
                and _literal(node.value):
            keep.append(node)
    return keep


def first_line(src: str, width: int = 60) -> str:
    """The first non-blank line of a cell, shortened: how feedback names a cell."""
    for line in src.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[:width - 1] + "…"
    return "(empty cell)"
