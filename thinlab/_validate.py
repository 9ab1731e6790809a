"""Argument checks shared by the numpy kernels (``prune``, ``lowrank``, ``hashednet``, ``quant``,
``deepthin``) and the widgets (private).

Every message says what was expected, what came, and how to fix it.

Three integer checks, each with its own contract (exception types and wording differ):

* :func:`check_int` – ``TypeError`` for a non-integer, ``ValueError`` outside ``[low, high]``;
* :func:`check_int_range` – ``ValueError`` for both (the quantisation kernels' contract);
* :func:`check_count` – ``check_count(name, value)``, an integer ≥ ``minimum`` (DeepThin's shapes).
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def _is_int(value) -> bool:
    """True for a Python / numpy integer, False for bools (``True`` is not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    """True for a Python / numpy real number, False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_real_dtype(dtype) -> bool:
    """True for a float or integer dtype (not bool, complex or object)."""
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)


# ----------------------------------------------------------------------------------------- weights

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
    check_finite(W, name=name)
    return W


def check_finite(a, *, name: str = "W", what: str = "weights") -> None:
    """The NaN / inf policy of every kernel: refuse non-finite input, saying where and how many.

    Raises ``ValueError`` naming ``name`` (a layer's name where there is one), the count of NaN and
    of ±inf entries and the first position, with the fix.
    """
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        return
    finite = np.isfinite(a)
    if finite.all():
        return
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    first = np.unravel_index(int(np.flatnonzero(~finite.ravel())[0]), a.shape) if a.ndim else ()
    raise ValueError(f"{name} contains {n_nan} NaN and {n_inf} inf values; expected finite {what} (the first bad one "
                     f"is at index {tuple(map(int, first))}); check the training run that produced them (e.g. lower the "
                     "learning rate) or replace them first, e.g. with np.nan_to_num")


def as_float64_weights(W, *, name: str = "W") -> np.ndarray:
    """``W`` as a finite, non-empty float64 array (a view when it already is one); ints are accepted.

    Raises ``TypeError`` for non-numeric / complex / bool input and ``ValueError`` for
    empty input or NaN / inf values.
    """
    a = np.asarray(W)
    if a.dtype == bool or not _is_real_dtype(a.dtype):
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


def check_matrix(name: str, value, *, shape=None) -> np.ndarray:
    """Return ``value`` as a 2-D float32 array, checking an optional expected ``shape``."""
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}; "
                         f"reshape it to ({name} rows, {name} columns)")
    if not _is_real_dtype(arr.dtype):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}; cast with .astype(np.float32)")
    if arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape} with no elements; pass a non-empty matrix")
    check_finite(arr, name=name)
    if shape is not None:
        for got, want, axis in zip(arr.shape, shape, ("rows", "columns"), strict=True):
            if want is not None and got != want:
                raise ValueError(f"{name} has shape {arr.shape} but {want} {axis} were expected "
                                 f"(expected {tuple('?' if w is None else w for w in shape)}); "
                                 f"check that {name} belongs to this layer")
    with np.errstate(over="ignore"):  # reported below as a clear error
        out = arr.astype(np.float32, copy=False)
    if not np.isfinite(out).all():  # finite before, so the cast overflowed
        raise ValueError(f"{name} holds magnitudes up to {np.abs(arr).max():.3g}, beyond float32's "
                         f"{np.finfo(np.float32).max:.3g}; rescale it first")
    return out


# ----------------------------------------------------------------------------------------- numbers

#: the default exception types of the checks below: (wrong type, wrong value)
ERRORS = (TypeError, ValueError)


def check_real(value, *, name: str, low: float, high: float = math.inf, low_open: bool = False,
               high_open: bool = False, hint: str, errors=ERRORS) -> float:
    """Return ``value`` as a float if it is a finite real number in the given interval, else raise
    with ``hint``.

    ``errors = (type error class, value error class)``: a string such as ``"0.2"`` or a bool is a
    type error; NaN, ±inf and values outside the interval are value errors.
    """
    type_error, value_error = errors
    if not _is_real(value):
        raise type_error(f"{name}={value!r} must be a real number, not a {type(value).__name__}; {hint}")
    value = float(value)
    interval = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if not math.isfinite(value):
        raise value_error(f"{name}={value} must be {interval} (a finite number); {hint}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise value_error(f"{name}={value} must be {interval}; {hint}")
    return value


def check_int(value, *, name: str, low: int, high: int | None = None, hint: str, errors=ERRORS) -> int:
    """Return ``value`` as an int if it is an integer in ``[low, high]``, else raise with ``hint``.

    ``TypeError`` for a non-integer (or a bool), ``ValueError`` for one out of range (or the
    classes given as ``errors``).
    """
    type_error, value_error = errors
    if not _is_int(value):
        raise type_error(f"{name}={value!r} must be an integer, not a {type(value).__name__}; {hint}")
    value = int(value)
    if value < low or (high is not None and value > high):
        interval = f"[{low}, {high}]" if high is not None else f"≥ {low}"
        raise value_error(f"{name}={value} must be {'in ' if high is not None else ''}{interval}; {hint}")
    return value


def check_bool(value, *, name: str, errors=ERRORS) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (a numpy bool too), else raise a type error."""
    if not isinstance(value, (bool, np.bool_)):
        raise errors[0](f"{name}={value!r} ({type(value).__name__}) must be True or False; pass {name}=True "
                        f"or {name}=False")
    return bool(value)


def check_choice(value, *, name: str, choices, hint: str = "", errors=ERRORS) -> str:
    """Return ``value`` if it is one of the strings ``choices``, else raise naming them all."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise errors[0](f"{name}={value!r} ({type(value).__name__}) must be a string, one of {choices}"
                        + (f"; {hint}" if hint else ""))
    if value not in choices:
        close = [c for c in choices if c.lower() == value.strip().lower()]
        fix = f"did you mean {close[0]!r}?" if close else f"use one of {choices}"
        raise errors[1](f"{name}={value!r} is not one of {choices}; {fix}" + (f" ({hint})" if hint else ""))
    return value


def check_names(value, *, name: str, example, errors=ERRORS, allow_empty: bool = False) -> list:
    """Return ``value`` as a list of distinct strings (a list, tuple or other iterable of str).

    List versus string: a single string is refused (``"yes,no"`` would otherwise become the
    "words" ``y``, ``e``, ``s``, …), and so are duplicates (one name, one entry), non-string
    items and, unless ``allow_empty``, an empty list. ``example`` is shown in the fix.
    """
    type_error, value_error = errors
    if isinstance(value, (str, bytes)):
        parts = [p.strip() for p in (value.decode(errors="replace") if isinstance(value, bytes) else value)
                 .split(",") if p.strip()]
        raise type_error(f"{name}={value!r} is one string; pass a list of names such as {list(parts) or example!r}")
    try:
        items = list(value)
    except TypeError:
        raise type_error(f"{name}={value!r} ({type(value).__name__}) is not a list; pass a list of names such as "
                         f"{example!r}") from None
    bad = [v for v in items if not isinstance(v, str)]
    if bad:
        raise type_error(f"{name} holds {bad[0]!r} ({type(bad[0]).__name__}), not a string; pass a list of names "
                         f"such as {example!r}")
    if not items and not allow_empty:
        raise value_error(f"{name} is empty; pass at least one name, e.g. {example!r}")
    seen, dups = set(), []
    for v in items:
        if v in seen and v not in dups:
            dups.append(v)
        seen.add(v)
    if dups:
        raise value_error(f"{name}={items!r} names {dups} more than once; list each name once, e.g. "
                          f"{list(dict.fromkeys(items))!r}")
    return items


def check_path(value, *, name: str, errors=ERRORS):
    """Return ``value`` as a :class:`pathlib.Path` if it is a ``str`` or ``os.PathLike``."""
    import os
    from pathlib import Path

    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        if isinstance(value, str) and not value.strip():
            raise errors[1](f"{name}={value!r} is an empty path; pass a file or folder name")
        return Path(value)
    raise errors[0](f"{name}={value!r} ({type(value).__name__}) is not a path; pass a str or pathlib.Path")


def check_int_range(value, *, name: str, lo: int, hi: int, hint: str = "") -> int:
    """``value`` as a Python int in ``[lo, hi]`` (bools and non-integral floats are rejected).

    ``ValueError`` both for a non-integer and for one out of range.
    """
    if not _is_int(value) or not lo <= int(value) <= hi:
        msg = f"{name}={value!r} must be an integer in [{lo}, {hi}]"
        raise ValueError(msg + (f"; {hint}" if hint else ""))
    return int(value)


def check_count(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as a Python int, or raise if it is not an integer ≥ ``minimum``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer ≥ {minimum}, got {value!r} "
                        f"({type(value).__name__}); pass a whole number such as {max(minimum, 1)}")
    if int(value) < minimum:
        raise ValueError(f"{name}={int(value)} is below {minimum}; {name} must be an integer ≥ {minimum}")
    return int(value)


def check_sparsity(sparsity, *, name: str = "sparsity") -> float:
    """A sparsity is the fraction of weights set to zero, in [0, 1)."""
    return check_real(sparsity, name=name, low=0.0, high=1.0, high_open=True,
                      hint="pass the fraction of weights to zero, e.g. 0.9")


def check_fraction(size_fraction) -> float:
    """Return ``size_fraction`` as a float in (0, 1], or raise with the fix (DeepThin's wording)."""
    if not _is_real(size_fraction):
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


def check_layout(layout: str) -> str:
    """Return ``layout`` if it is one of the DeepThin solver's layout rules."""
    choices = ("coprime", "aligned", "any")
    if layout not in choices:
        raise ValueError(f"layout={layout!r} is not a DeepThin layout rule; use one of {choices} "
                         "('coprime' is the paper's LCM rule)")
    return layout


def round_up(x: float, *, digits: int = 3, slack: float = 0.0) -> float:
    """``x`` rounded up to ``digits`` significant digits, for "use ≥ …" advice that really suffices.

    ``slack`` (in units of the last kept digit) is subtracted before rounding up, so that a value
    already at ``digits`` digits but for float noise is not pushed one step higher.
    """
    if x <= 0:
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return math.ceil(x / step - slack) * step


def ceil_sig(value: float, digits: int = 2) -> float:
    """DeepThin's advice rounding: :func:`round_up` to ``digits`` (2) significant digits, ignoring
    float noise of 1e-9 of the last digit, so that "use ≥ 0.00098" names a value that really works."""
    return round_up(value, digits=digits, slack=1e-9)


# ------------------------------------------------------------------------------- quantisation codes

def check_axis(axis, ndim: int) -> int | None:
    """Normalise a channel ``axis`` (``None`` = per tensor; negative counts from the end)."""
    if axis is None:
        return None
    if not _is_int(axis) or not -ndim <= axis < ndim:
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


def _smallest_dtype(n_bits: int, dtypes) -> np.dtype:
    for dt in dtypes:
        if n_bits <= 8 * np.dtype(dt).itemsize:
            return np.dtype(dt)
    raise ValueError(f"n_bits={n_bits} exceeds 64")


def uint_dtype(n_bits: int) -> np.dtype:
    """Smallest unsigned dtype holding ``n_bits``-bit codes (1..64 bits)."""
    return _smallest_dtype(n_bits, (np.uint8, np.uint16, np.uint32, np.uint64))


def int_dtype(n_bits: int) -> np.dtype:
    """Smallest signed dtype holding ``n_bits``-bit two's-complement codes (1..64 bits)."""
    return _smallest_dtype(n_bits, (np.int8, np.int16, np.int32, np.int64))
