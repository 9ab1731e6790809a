"""Input checks shared by the numpy kernels (``prune``, ``lowrank``, ``hashednet``).

Every message says what was expected, what came, and how to fix it.
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def as_weight(W, *, name: str = "W", ndim: int | None = None, hint: str = "") -> np.ndarray:
    """Return ``W`` as a finite, non-empty float ndarray (no copy), or raise a helpful error.

    Parameters
    ----------
    W : array_like
        The weights to check.
    name : str
        How the message refers to the argument.
    ndim : int, optional
        Required number of dimensions (any when None).
    hint : str
        The expected shape and how to get it, quoted in the ndim error, e.g.
        ``"(Q, R) = (in, out); transpose a torch Linear.weight first"``.
    """
    W = np.asarray(W)
    if W.dtype.kind != "f":
        raise TypeError(f"{name} has dtype {W.dtype}; expected a float array (float16/32/64); "
                        f"cast it with {name}.astype(np.float32)")
    if ndim is not None and W.ndim != ndim:
        raise ValueError(f"{name} has shape {W.shape} ({W.ndim}-D); expected a {ndim}-D array {hint}")
    if W.size == 0:
        raise ValueError(f"{name} has shape {W.shape} with no elements; pass a non-empty weight array")
    if not np.isfinite(W).all():
        n_nan, n_inf = int(np.isnan(W).sum()), int(np.isinf(W).sum())
        raise ValueError(f"{name} contains {n_nan} NaN and {n_inf} inf values; expected finite weights; "
                         "check the training run that produced them (e.g. lower the learning rate)")
    return W


def check_real(value, *, name: str, low: float, high: float = math.inf, low_open: bool = False,
               high_open: bool = False, hint: str) -> float:
    """Return ``value`` as a float if it is a real number in the given interval, else raise with ``hint``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a real number; {hint}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}={value} must be in {interval}; {hint}")
    return value


def check_int(value, *, name: str, low: int, high: int | None = None, hint: str) -> int:
    """Return ``value`` as an int if it is an integer in ``[low, high]``, else raise with ``hint``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an integer; {hint}")
    value = int(value)
    if value < low or (high is not None and value > high):
        interval = f"[{low}, {high}]" if high is not None else f"≥ {low}"
        raise ValueError(f"{name}={value} must be {'in ' if high is not None else ''}{interval}; {hint}")
    return value


def check_sparsity(sparsity, *, name: str = "sparsity") -> float:
    """A sparsity is the fraction of weights set to zero, in [0, 1)."""
    return check_real(sparsity, name=name, low=0.0, high=1.0, high_open=True,
                      hint="pass the fraction of weights to zero, e.g. 0.9")


def round_up(x: float, *, digits: int = 3) -> float:
    """``x`` rounded up to ``digits`` significant digits, for "use ≥ …" advice that really suffices."""
    if x <= 0:
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return math.ceil(x / step) * step
