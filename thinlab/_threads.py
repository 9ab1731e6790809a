"""The one thread-control helper: how many threads torch and the BLAS / OpenMP pools may use.

:func:`set_threads` sets them for the rest of the process (a lesson's ``THREADS``);
:func:`limited_threads` limits them inside a ``with`` block and restores them after (timing, the
explorers' mid-sized LAPACK calls, feature workers). torch is touched only when it is already
imported, so the numpy-only kernels and widgets never pull it in. Without threadpoolctl the BLAS
pools keep their own defaults.

Taught in: 00_speech_commands (THREADS), 03_deepthin and 07_deploy (timing)
"""
from __future__ import annotations

import contextlib
import sys


def _blas_limits(n: int, user_api: str | None):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                                   # pragma: no cover - comes with scikit-learn / librosa
        return contextlib.nullcontext()
    return threadpool_limits(n, user_api=user_api)


def set_threads(n: int) -> None:
    """Set torch's (when imported) and the BLAS pools' thread counts to ``n`` for the rest of the process."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    _blas_limits(n, None)                                 # threadpool_limits also applies when not used as a context


@contextlib.contextmanager
def limited_threads(n: int | None, *, blas_only: bool = False):
    """Within the block, torch (unless ``blas_only`` or not imported) and the BLAS pools use ``n``
    threads (``None``: leave them as they are); both are restored afterwards."""
    if n is None:
        yield
        return
    torch = None if blas_only else sys.modules.get("torch")
    old = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(n)
        with _blas_limits(n, "blas" if blas_only else None):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)
