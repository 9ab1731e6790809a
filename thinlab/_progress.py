"""The one progress-bar factory, and whether this run is headless.

A headless run (papermill / nbclient executing a lesson, the classroom grader, a script, CI) keeps
what it prints in the saved notebook or the log, where a widget bar (``tqdm.auto`` in a kernel)
reads "0%| | 0/300" once the notebook is reopened: its state lives in a widget nobody renders. So
:func:`progress` gives tqdm's text bar (``tqdm.std``) when headless and ``tqdm.auto``'s (a widget
in Jupyter) when a person watches.

Headless means: the environment variable ``THINLAB_HEADLESS`` is ``1`` (set for the kernel by
:func:`thinlab.course.run_lesson`, the classroom grader and the lesson tests, see
:func:`headless_env`), or no interactive front end could be showing widgets (no Jupyter kernel, or
ipywidgets missing). ``THINLAB_HEADLESS=0`` forces the interactive bars.

The explorers (``thinlab.widgets``) use :func:`headless` too: headless runs also save a static
image of each explorer's last state.
"""
from __future__ import annotations

import contextlib
import os
import sys

ENV = "THINLAB_HEADLESS"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
#: a headless text bar redraws at most this often (seconds): each redraw is kept in the saved output
HEADLESS_MININTERVAL = 10.0


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (IPython talking to a front end over ZMQ) that has ipywidgets."""
    if "ipykernel.zmqshell" not in sys.modules:   # a script, pytest, plain IPython: no front end
        return False
    shell = sys.modules["IPython"].get_ipython()
    if type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def headless() -> bool:
    """Whether no person is watching widgets live: ``THINLAB_HEADLESS=1``, or not in a Jupyter kernel."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected 1 (headless) or 0 (interactive), or unset")
    return not _in_kernel()


@contextlib.contextmanager
def headless_env():
    """Context: ``THINLAB_HEADLESS=1`` in this process's environment (so kernels started inside inherit
    it), restored afterwards."""
    old = os.environ.get(ENV)
    os.environ[ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def progress(iterable=None, **kwargs):
    """A tqdm progress bar: tqdm's text bar when :func:`headless`, else ``tqdm.auto``'s (a widget in Jupyter).

    Takes tqdm's arguments (``total``, ``desc``, ``unit``, ``disable``, ``leave``, ...). Headless, it
    redraws at most every ``HEADLESS_MININTERVAL`` seconds (unless ``mininterval`` is given), so the
    saved output and logs stay short; the final state is always drawn when the bar closes.
    """
    if headless():
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", HEADLESS_MININTERVAL)
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)
