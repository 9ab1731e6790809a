"""Fixed-point weights: the seed thesis's int8 "clipping" cast and W/F two's-complement fixed point.

A W/F fixed-point number has a word of ``word_bits`` bits, ``frac_bits`` of them after the binary
point: it stores the integer code ``q = clip(round(w * 2**F), -2**(W-1), 2**(W-1) - 1)`` and means
``q * 2**-F``. Out-of-range values saturate (clip) instead of wrapping around. The plain int8 cast
is the special case W=8, F=0: with no scaling every weight in (-0.5, 0.5) becomes 0, which is how
the seed thesis's int8 experiment fell from 91.6 % to 14.3 % accuracy.

Rounding is to nearest, ties to even (``np.rint``), everywhere.

Taught in: 04_quantization
"""
from __future__ import annotations

import math

import numpy as np

from thinlab._validate import as_float64_weights, check_int_range, int_dtype
from thinlab.size import packed_bits_bytes, shape_bytes

#: range of frac_bits accepted (F may exceed W for tiny weights, or be negative for large ones)
FRAC_MIN, FRAC_MAX = -64, 64
#: bytes to record frac_bits beside the codes (one int8)
FRAC_BITS_BYTES = 1


def cast_int8(W) -> np.ndarray:
    """Round and clip to int8 with **no scaling**: what the seed thesis did.

    Parameters
    ----------
    W : float array, any shape.

    Returns
    -------
    int8 array, same shape: ``clip(rint(W), -128, 127)``. Trained weights are ≪ 1, so nearly all
    become 0. Equal to ``fixed_point_codes(W, word_bits=8, frac_bits=0)``.

    Taught in: 04_quantization
    """
    a = as_float64_weights(W)
    return np.clip(np.rint(a), -128, 127).astype(np.int8)


def cast_int8_dequantized(W) -> np.ndarray:
    """The float32 view of :func:`cast_int8`: the weights the int8-cast model actually uses.

    Taught in: 04_quantization
    """
    return cast_int8(W).astype(np.float32)


def _check_wf(word_bits, frac_bits) -> tuple[int, int]:
    word_bits = check_int_range(word_bits, name="word_bits", lo=2, hi=32,
                                hint="two's complement needs a sign bit plus at least one more; e.g. word_bits=8")
    frac_bits = check_int_range(frac_bits, name="frac_bits", lo=FRAC_MIN, hi=FRAC_MAX,
                                hint="use best_frac_bits(W, word_bits=...) to pick it")
    return word_bits, frac_bits


def _codes(a: np.ndarray, word_bits: int, frac_bits: int) -> np.ndarray:
    lo, hi = -(2 ** (word_bits - 1)), 2 ** (word_bits - 1) - 1
    with np.errstate(over="ignore"):  # huge w * 2**F → inf, which saturates below
        return np.clip(np.rint(np.ldexp(a, frac_bits)), lo, hi)


def fixed_point_codes(W, *, word_bits: int, frac_bits: int) -> np.ndarray:
    """Two's-complement W/F codes with saturation.

    Parameters
    ----------
    W : float array, any shape.
    word_bits : total bits W including the sign, 2..32.
    frac_bits : fraction bits F, -64..64 (F > W is allowed and useful for weights ≪ 1).

    Returns
    -------
    array of W's shape in the smallest signed dtype holding ``word_bits`` bits:
    ``clip(rint(W * 2**F), -2**(word_bits-1), 2**(word_bits-1) - 1)``.

    Taught in: 04_quantization
    """
    word_bits, frac_bits = _check_wf(word_bits, frac_bits)
    return _codes(as_float64_weights(W), word_bits, frac_bits).astype(int_dtype(word_bits))


def fixed_point(W, *, word_bits: int, frac_bits: int) -> np.ndarray:
    """W/F fixed-point quantise-dequantise: ``fixed_point_codes(W, ...) * 2**-frac_bits``.

    Returns a float64 array of W's shape (float64 holds every W/F value exactly).

    Taught in: 04_quantization
    """
    word_bits, frac_bits = _check_wf(word_bits, frac_bits)
    return np.ldexp(_codes(as_float64_weights(W), word_bits, frac_bits), -frac_bits)


def fixed_point_codes_reference(W, *, word_bits: int, frac_bits: int) -> np.ndarray:
    """Slow, obviously correct :func:`fixed_point_codes` (one Python number at a time).

    Taught in: 04_quantization
    """
    lo, hi = -(2 ** (word_bits - 1)), 2 ** (word_bits - 1) - 1
    flat = [min(max(round(w * 2.0 ** frac_bits), lo), hi) for w in np.ravel(W).tolist()]
    return np.array(flat, dtype=np.int64).reshape(np.shape(W))  # (N,) → W's shape


def fixed_point_range(*, word_bits: int, frac_bits: int) -> tuple[float, float, float]:
    """``(smallest value, largest value, step)`` representable in W/F fixed point.

    Taught in: 04_quantization
    """
    word_bits, frac_bits = _check_wf(word_bits, frac_bits)
    step = 2.0 ** -frac_bits
    return -(2 ** (word_bits - 1)) * step, (2 ** (word_bits - 1) - 1) * step, step


def _frac_window(a: np.ndarray, word_bits: int) -> range:
    """Candidate F: from F* (the largest F that saturates nothing) up to F* + word_bits + 8.

    Any F < F* saturates nothing either and its grid is a subset of F*'s grid, so no weight gets
    closer to a level: it can never have a lower MSE. Each step above F* halves the clipping
    range, so far above the window nearly every weight saturates.
    """
    max_abs = float(np.max(np.abs(a)))
    if max_abs == 0.0:
        return range(word_bits - 1, word_bits)
    qmax = 2 ** (word_bits - 1) - 1
    f_star = math.floor(math.log2(qmax) - math.log2(max_abs))  # log2 of each: max_abs may be subnormal
    while math.ldexp(max_abs, f_star) > qmax:  # fix a log2 rounding at exact powers of two
        f_star -= 1
    while math.ldexp(max_abs, f_star + 1) <= qmax:
        f_star += 1
    f_star = min(max(f_star, FRAC_MIN), FRAC_MAX)
    return range(f_star, min(f_star + word_bits + 8, FRAC_MAX) + 1)


def fixed_point_mse(W, *, word_bits: int, frac_bits: int) -> float:
    """Mean squared error of W/F fixed point on ``W``. Taught in: 04_quantization"""
    a = as_float64_weights(W)
    return float(np.mean((a - fixed_point(a, word_bits=word_bits, frac_bits=frac_bits)) ** 2))


def best_frac_bits(W, *, word_bits: int, frac_range=None) -> int:
    """The fraction bits F that minimise the MSE of W/F fixed point on ``W``.

    Parameters
    ----------
    W : float array, any shape.
    word_bits : total bits, 2..32.
    frac_range : optional iterable of candidate F. By default F* .. F* + word_bits + 8, where F* is
        the largest F with no saturation (smaller F can never win; see the module notes).

    Returns
    -------
    int F (ties go to the smallest F, i.e. the widest range). All-zero W gives ``word_bits - 1``.

    Taught in: 04_quantization
    """
    word_bits = check_int_range(word_bits, name="word_bits", lo=2, hi=32)
    a = as_float64_weights(W).ravel()  # (N,)
    cands = list(_frac_window(a, word_bits) if frac_range is None else frac_range)
    if not cands:
        raise ValueError("frac_range is empty; pass candidate fraction bits, e.g. range(0, 16)")
    for f in cands:
        check_int_range(f, name="frac_range entry", lo=FRAC_MIN, hi=FRAC_MAX)
    mses = [np.mean((a - np.ldexp(_codes(a, word_bits, f), -f)) ** 2) for f in cands]  # a few F
    return int(cands[int(np.argmin(mses))])


def best_frac_bits_reference(W, *, word_bits: int) -> int:
    """Brute force over every F in [-64, 64] (smallest F on ties). Taught in: 04_quantization"""
    best_f, best = None, math.inf
    for f in range(FRAC_MIN, FRAC_MAX + 1):
        mse = fixed_point_mse(W, word_bits=word_bits, frac_bits=f)
        if mse < best:
            best_f, best = f, mse
    return best_f


def fixed_point_bytes(shape, *, word_bits: int) -> int:
    """Bytes of W/F fixed point: packed ``word_bits``-bit codes + one int8 for F + the shape.

    Taught in: 04_quantization
    """
    word_bits = check_int_range(word_bits, name="word_bits", lo=2, hi=32)
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
        raise TypeError(f"shape={shape!r} must be a tuple of ints such as W.shape")
    shape = tuple(check_int_range(d, name="each dimension of shape", lo=0, hi=2 ** 40, hint="pass W.shape")
                  for d in shape)
    n = int(np.prod(shape, dtype=np.int64))
    return packed_bits_bytes(n, word_bits) + FRAC_BITS_BYTES + shape_bytes(shape)
