"""Half precision in numpy: what float16 / bfloat16 / float32 can represent, what they lose, and the
dynamic loss scaler that keeps small gradients alive in FP16 training.

numpy has float16 but no bfloat16, so bfloat16 is emulated: a bfloat16 is the top 16 bits of a
float32 (sign, the same 8 exponent bits, 7 fraction bits), so rounding a float32 to bfloat16 is
rounding away its low 16 bits (to nearest, ties to even), done here on the integer bit pattern.
Results are returned as float32 arrays whose values are exactly representable in bfloat16 (the
same values ``torch.bfloat16`` gives). float64 input is rounded to float32 first, as torch does.

The torch side (converting models, half / mixed-precision training steps) is ``thinlab.nn.half``.

Taught in: 05_fp16_transfer
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

#: (exponent bits, stored fraction bits) of each IEEE-style binary format
LAYOUTS = {"float16": (5, 10), "bfloat16": (8, 7), "float32": (8, 23), "float64": (11, 52)}
_ALIASES = {"half": "float16", "fp16": "float16", "bf16": "bfloat16",
            "single": "float32", "fp32": "float32", "double": "float64", "fp64": "float64"}


@dataclass(frozen=True)
class FormatFacts:
    """The numbers that describe a floating-point format (see :func:`format_facts`).

    Taught in: 05_fp16_transfer
    """

    name: str
    bits: int
    exponent_bits: int
    mantissa_bits: int
    epsilon: float
    max: float
    smallest_normal: float
    smallest_subnormal: float
    decimal_digits: int


def format_name(dtype) -> str:
    """Canonical name (``"float16"``, ``"bfloat16"``, ``"float32"``, ``"float64"``) of a dtype given as a
    string, a numpy dtype or a torch dtype (matched by its name; torch is not imported).

    Taught in: 05_fp16_transfer
    """
    name = str(dtype).removeprefix("torch.").removeprefix("<class 'numpy.").removesuffix("'>").lower()
    name = _ALIASES.get(name, name)
    if name not in LAYOUTS:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in LAYOUTS:
        raise ValueError(f"dtype={dtype!r} is not a supported float format; use one of {sorted(LAYOUTS)}")
    return name


def format_facts(dtype) -> FormatFacts:
    """Epsilon, max, smallest normal / subnormal and decimal digits of ``dtype``, from its bit layout.

    With e exponent and m fraction bits, bias = 2**(e-1) - 1 and: epsilon = 2**-m (gap after 1),
    max = (2 - 2**-m)·2**bias, smallest normal = 2**(1 - bias), smallest subnormal = 2**(1 - bias - m),
    decimal digits = floor(m·log10 2). For float16 / float32 these equal ``np.finfo``.

    Example: float16 has epsilon 0.000977, max 65504, smallest normal 6.1e-05, smallest subnormal
    6e-08 and 3 decimal digits; bfloat16 keeps float32's range (max 3.4e38) with only 2 digits.

    Taught in: 05_fp16_transfer
    """
    name = format_name(dtype)
    e, m = LAYOUTS[name]
    bias = 2 ** (e - 1) - 1
    return FormatFacts(name=name, bits=1 + e + m, exponent_bits=e, mantissa_bits=m,
                       epsilon=math.ldexp(1.0, -m), max=math.ldexp(2.0 - math.ldexp(1.0, -m), bias),
                       smallest_normal=math.ldexp(1.0, 1 - bias),
                       smallest_subnormal=math.ldexp(1.0, 1 - bias - m),
                       decimal_digits=math.floor(m * math.log10(2)))


def _as_float_array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array; got dtype {a.dtype}; "
                        f"convert with np.asarray({name}, dtype=np.float32)")
    return a


def to_bfloat16(x) -> np.ndarray:
    """Round to bfloat16 (nearest, ties to even): float32 array of the same shape.

    Vectorised on the float32 bit pattern: add ``0x7FFF + (bit 16)`` and clear the low 16 bits.
    NaN stays NaN; values beyond the bfloat16 max round to ±inf, as in IEEE rounding.

    Taught in: 05_fp16_transfer
    """
    a = _as_float_array(x, "x").astype(np.float32)
    bits = a.view(np.uint32).astype(np.uint64)  # uint64: the carry may pass bit 31
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32)
    return np.where(np.isnan(a), np.float32(np.nan), out)


def to_bfloat16_reference(x) -> np.ndarray:
    """Slow, obviously correct :func:`to_bfloat16`, one Python integer at a time. Taught in: 05_fp16_transfer"""
    a = np.asarray(x, dtype=np.float32)
    out = []
    for b in a.ravel().view(np.uint32).tolist():
        upper, lower = b >> 16, b & 0xFFFF
        if (b & 0x7F800000) == 0x7F800000 and (b & 0x007FFFFF):  # NaN
            out.append(0x7FC00000)
            continue
        if lower > 0x8000 or (lower == 0x8000 and upper & 1):
            upper += 1
        out.append(upper << 16)
    return np.array(out, dtype=np.uint32).view(np.float32).reshape(a.shape)  # (N,) → x's shape


def round_to_format(x, *, dtype) -> np.ndarray:
    """The values of ``x`` rounded to ``dtype`` (nearest, ties to even).

    Returned as float32 for float16 / bfloat16 / float32 (which holds them exactly) and float64 for
    float64, so results can be compared and subtracted without further rounding.

    Taught in: 05_fp16_transfer
    """
    name = format_name(dtype)
    a = _as_float_array(x, "x")
    if name == "float16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16).astype(np.float32)
    if name == "bfloat16":
        return to_bfloat16(a)
    return a.astype(name)


def one_plus_delta(delta: float = 1e-4, *, dtype="float16") -> float:
    """``1 + delta`` computed in ``dtype``: both operands and the sum rounded to it.

    ``one_plus_delta(1e-4) == 1.0``: in float16 the gap after 1 is 2**-10 ≈ 0.000977, so any
    delta below half of it (0.000488) is swallowed; a weight update ``w += lr * grad`` smaller than
    half an ulp of w is lost the same way. ``one_plus_delta(1e-4, dtype="float32")`` is 1.0001.

    Taught in: 05_fp16_transfer
    """
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not math.isfinite(delta):
        raise ValueError(f"delta={delta!r} must be a finite real number, e.g. 1e-4")
    one, d = round_to_format(1.0, dtype=dtype), round_to_format(float(delta), dtype=dtype)
    return float(round_to_format(one + d, dtype=dtype))


def _finite(x, name: str) -> np.ndarray:
    a = _as_float_array(x, name)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(a)))} NaN/inf values; pass the finite float32 "
                         "values before casting (e.g. gradients from an FP32 run)")
    return a


def underflow_fraction(grads, *, dtype="float16") -> float:
    """Fraction of the nonzero values of ``grads`` that become exactly 0 in ``dtype``.

    Parameters
    ----------
    grads : finite float array, any shape (e.g. FP32 gradients; multiply by a loss scale first to
        see what scaling rescues).
    dtype : target format.

    Returns
    -------
    float in [0, 1]; 0.0 when ``grads`` has no nonzero value. In float16 every |g| below 2**-25
    (≈ 3e-8, half the smallest subnormal) flushes to 0.

    Taught in: 05_fp16_transfer
    """
    a = _finite(grads, "grads")
    nonzero = a != 0
    if not nonzero.any():
        return 0.0
    return float(np.mean(round_to_format(a[nonzero], dtype=dtype) == 0))


def overflow_fraction(x, *, dtype="float16") -> float:
    """Fraction of the values of ``x`` that become ±inf in ``dtype`` (float16: |x| ≥ 65520).

    Taught in: 05_fp16_transfer
    """
    a = _finite(x, "x")
    if a.size == 0:
        return 0.0
    return float(np.mean(np.isinf(round_to_format(a, dtype=dtype))))


class DynamicLossScaler:
    """Dynamic loss scaling (Micikevicius et al. 2018), framework-agnostic.

    Multiply the loss by ``scale_`` before backward so small gradients survive float16, divide the
    gradients by it before the step, and call ``update(found_inf)`` once per step: on overflow the
    step must be skipped and the scale shrinks by ``backoff_factor``; after ``growth_interval``
    overflow-free steps in a row it grows by ``growth_factor``. Same rule as ``torch.amp.GradScaler``.

    Parameters (kept as given)
    ----------
    init_scale : starting scale > 0.   growth_factor : > 1.   backoff_factor : in (0, 1).
    growth_interval : overflow-free steps between growths, ≥ 1.

    Fitted attributes: ``scale_`` (current scale), ``good_steps_`` (overflow-free steps since the
    last change), ``n_updates_`` and ``n_skipped_``.

    Taught in: 05_fp16_transfer
    """

    def __init__(self, *, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000):
        checks = [("init_scale", init_scale, 0 < _num(init_scale) < math.inf, "a finite number > 0, e.g. 2**16"),
                  ("growth_factor", growth_factor, 1 < _num(growth_factor) < math.inf, "a finite number > 1, e.g. 2"),
                  ("backoff_factor", backoff_factor, 0 < _num(backoff_factor) < 1, "a number in (0, 1), e.g. 0.5")]
        for name, value, ok, want in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} must be {want}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, numbers.Integral) \
                or growth_interval < 1:
            raise ValueError(f"growth_interval={growth_interval!r} must be an integer ≥ 1, e.g. 2000")
        self.init_scale, self.growth_factor = init_scale, growth_factor
        self.backoff_factor, self.growth_interval = backoff_factor, growth_interval
        self.scale_ = float(init_scale)
        self.good_steps_ = 0
        self.n_updates_ = 0
        self.n_skipped_ = 0

    def update(self, found_inf: bool) -> bool:
        """Record one step; returns True when the step must be skipped (``found_inf``).

        Taught in: 05_fp16_transfer
        """
        if not isinstance(found_inf, (bool, np.bool_)):
            raise TypeError(f"found_inf={found_inf!r} must be a bool; pass e.g. "
                            "bool(not np.isfinite(grads).all()) or bool(torch.isinf(g).any())")
        self.n_updates_ += 1
        if found_inf:
            self.scale_ *= float(self.backoff_factor)
            self.good_steps_ = 0
            self.n_skipped_ += 1
            return True
        self.good_steps_ += 1
        if self.good_steps_ >= self.growth_interval:
            self.scale_ *= float(self.growth_factor)
            self.good_steps_ = 0
        return False

    def __repr__(self) -> str:
        return (f"DynamicLossScaler(scale_={self.scale_:g}, good_steps_={self.good_steps_}, "
                f"n_skipped_={self.n_skipped_}/{self.n_updates_})")


def _num(v) -> float:
    """``v`` as a float, or NaN for non-numbers (so every range check fails)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return math.nan
    return float(v)


def has_inf_or_nan(*arrays) -> bool:
    """True if any of ``arrays`` holds a NaN or ±inf (the overflow check before a step).

    Taught in: 05_fp16_transfer
    """
    return any(not np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays)
