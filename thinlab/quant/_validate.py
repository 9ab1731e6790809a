"""Input checks shared by the quantisation kernels (private).

Every message says what was expected, what came, and how to fix it.
"""
from __future__ import annotations

import numbers

import numpy as np


def as_weights(W, *, name: str = "W") -> np.ndarray:
    """``W`` as a finite, non-empty float64 array (a view when it already is one).

    Raises ``TypeError`` for non-numeric / complex / bool input and ``ValueError`` for
    empty input or NaN / inf values.
    """
    a = np.asarray(W)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array (float or int); got dtype {a.dtype}; "
                        f"convert it with np.asarray({name}, dtype=np.float32)")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}); pass at least one weight")
    a = a.astype(np.float64, copy=False)
    finite = np.isfinite(a)
    if not finite.all():
        bad = np.flatnonzero(~finite.ravel())
        raise ValueError(f"{name} has {bad.size} NaN/inf value(s) (first at flat index {bad[0]}: "
                         f"{a.ravel()[bad[0]]}); quantisation needs finite weights: check the "
                         "training run for divergence, or drop those entries first")
    return a


def check_int(value, *, name: str, lo: int, hi: int, hint: str = "") -> int:
    """``value`` as a Python int in ``[lo, hi]`` (bools and non-integral floats are rejected)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok or not lo <= int(value) <= hi:
        msg = f"{name}={value!r} must be an integer in [{lo}, {hi}]"
        raise ValueError(msg + (f"; {hint}" if hint else ""))
    return int(value)


def check_axis(axis, ndim: int) -> int | None:
    """Normalise a channel ``axis`` (``None`` = per tensor; negative counts from the end)."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis!r} must be None (per tensor) or an integer in [{-ndim}, {ndim - 1}] "
                         f"for a {ndim}-D W; e.g. axis=0 for one scale per output row of a torch weight")
    return int(axis) % ndim


def check_codes(codes, *, n_bits: int, name: str = "codes") -> np.ndarray:
    """Integer ``codes`` with every value in ``[0, 2**n_bits)``; returned as uint64."""
    c = np.asarray(codes)
    if c.dtype == bool or not np.issubdtype(c.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array; got dtype {c.dtype}; "
                        f"round and cast first, e.g. {name}.astype(np.uint16)")
    if c.size and (c.min() < 0 or c.max() >= 2 ** n_bits):
        raise ValueError(f"{name} must lie in [0, {2 ** n_bits - 1}] for n_bits={n_bits}; got values in "
                         f"[{c.min()}, {c.max()}]; offset signed codes by 2**(n_bits-1) or raise n_bits")
    return c.astype(np.uint64, copy=False)


def uint_dtype(n_bits: int) -> np.dtype:
    """Smallest unsigned dtype holding ``n_bits``-bit codes (1..64 bits)."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if n_bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    raise ValueError(f"n_bits={n_bits} exceeds 64")


def int_dtype(n_bits: int) -> np.dtype:
    """Smallest signed dtype holding ``n_bits``-bit two's-complement codes (1..64 bits)."""
    for dt in (np.int8, np.int16, np.int32, np.int64):
        if n_bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    raise ValueError(f"n_bits={n_bits} exceeds 64")
