"""Shared plumbing for exercise checks: call the student's function, fail with a hint."""
from __future__ import annotations


def fail(what: str, hint: str):
    """Raise the ``AssertionError`` a check gives: what went wrong, then a hint."""
    raise AssertionError(f"{what}\nHint: {hint}")


def call(fn, *args, **kwargs):
    """Call the student's function; an unwritten one (``NotImplementedError``) fails with its name."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise AssertionError(f"{getattr(fn, '__name__', 'your function')} is not written yet: {exc}") from None
