"""Argument checks shared by the DeepThin modules: each error says what was expected, what came,
and how to fix it.

Taught in: 03_deepthin
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def check_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as a Python int, or raise if it is not an integer ≥ ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ≥ {minimum}, got {value!r} "
                        f"({type(value).__name__}); pass a whole number such as {max(minimum, 1)}")
    if int(value) < minimum:
        raise ValueError(f"{name}={int(value)} is below {minimum}; {name} must be an integer ≥ {minimum}")
    return int(value)


def check_fraction(size_fraction) -> float:
    """Return ``size_fraction`` as a float in (0, 1], or raise with the fix."""
    if isinstance(size_fraction, (bool, np.bool_)) or not isinstance(size_fraction, numbers.Real):
        raise TypeError(f"size_fraction must be a real number in (0, 1] (compressed / dense bytes), "
                        f"got {size_fraction!r}; e.g. size_fraction=0.01 for 100x")
    value = float(size_fraction)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"size_fraction={value} must be > 0 (compressed / dense bytes); "
                         f"e.g. size_fraction=0.01 for 100x")
    if value > 1:
        raise ValueError(f"size_fraction={value} is above 1: a DeepThin layer may not be larger "
                         f"than the dense layer it replaces; use a value ≤ 1 (or keep W dense)")
    return value


def check_matrix(name: str, value, *, shape=None) -> np.ndarray:
    """Return ``value`` as a 2-D float32 array, checking an optional expected ``shape``."""
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}; "
                         f"reshape it to ({name} rows, {name} columns)")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}; cast with .astype(np.float32)")
    if shape is not None:
        for got, want, axis in zip(arr.shape, shape, ("rows", "columns"), strict=True):
            if want is not None and got != want:
                raise ValueError(f"{name} has shape {arr.shape} but {want} {axis} were expected "
                                 f"(expected {tuple('?' if w is None else w for w in shape)}); "
                                 f"check that {name} belongs to this layer")
    return arr.astype(np.float32, copy=False)


def check_layout(layout: str) -> str:
    """Return ``layout`` if it is one of the solver's layout rules."""
    choices = ("coprime", "aligned", "any")
    if layout not in choices:
        raise ValueError(f"layout={layout!r} is not a DeepThin layout rule; use one of {choices} "
                         "('coprime' is the paper's LCM rule)")
    return layout


def ceil_sig(value: float, digits: int = 2) -> float:
    """``value`` rounded *up* to ``digits`` significant digits, so that advice such as
    "use ≥ 0.00098" names a value that really works."""
    if value <= 0:
        return value
    scale = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return math.ceil(value / scale - 1e-9) * scale
