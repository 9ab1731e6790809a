"""Exercise checks: tiny fixtures with exact answers. Each ``check_*`` calls the student's function,
compares with the reference, and raises ``AssertionError`` with a message that says what went wrong
and a hint. ``SOLUTIONS`` maps each exercise name to its reference (used when a lesson runs with
``SOLUTIONS=True``, so unattended runs pass).

One module per lesson (``speech`` for 00, …, ``deploy`` for 07); every ``check_*`` and every module's ``SOLUTIONS`` are
gathered here, so a lesson writes ``from thinlab import checks; checks.check_x(fn)``.

Taught in: every lesson's "your turn" cells
"""
from __future__ import annotations

import importlib
import pkgutil

SOLUTIONS: dict = {}

for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith("_"):
        continue
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    for _name, _obj in vars(_mod).items():
        if _name.startswith("check_"):
            globals()[_name] = _obj
    for _key, _fn in getattr(_mod, "SOLUTIONS", {}).items():
        if _key in SOLUTIONS:
            raise RuntimeError(f"exercise {_key!r} is defined twice (in {_mod.__name__} and elsewhere)")
        SOLUTIONS[_key] = _fn
