"""Exercise checks for lesson 05 (the spacing of a floating-point number, whether a value underflows
float16, the dynamic loss scaler's update rule).

Taught in: 05_fp16_transfer
"""
from __future__ import annotations

import math

import numpy as np

from thinlab.checks._common import call as _call, fail as _fail
from thinlab.precision import DynamicLossScaler, format_facts

#: (mantissa_bits, min_exponent) of the formats the spacing exercise is checked on
_LAYOUTS = {"float16": (10, -14), "bfloat16": (7, -126), "float32": (23, -126)}


def float_spacing_reference(x, mantissa_bits, min_exponent) -> float:
    """Gap between |x| and the next larger number of a binary format with ``mantissa_bits`` stored
    fraction bits whose smallest normal number is 2**min_exponent:

        ulp(x) = 2**(max(floor(log2 |x|), min_exponent) - mantissa_bits)

    (below the smallest normal the gap stays at the subnormal spacing 2**(min_exponent - mantissa_bits)).
    ``x`` is assumed finite and representable; x = 0 gives the subnormal spacing.

    Taught in: 05_fp16_transfer
    """
    x = abs(float(x))
    # frexp: x = f·2**k with f in [0.5, 1), so floor(log2 x) = k - 1
    e = math.frexp(x)[1] - 1 if x > 0 else min_exponent
    return math.ldexp(1.0, max(e, min_exponent) - mantissa_bits)


def check_float_spacing(fn) -> str:
    """Check the student's ``float_spacing(x, mantissa_bits, min_exponent) -> float``. Taught in: 05_fp16_transfer"""
    cases = [(1.0, "float16"), (3.0, "float16"), (1000.0, "float16"), (2048.0, "float16"), (0.1, "float16"),
             (-0.75, "float16"), (1e-6, "float16"), (6.103515625e-05, "float16"), (1.0, "bfloat16"),
             (300.0, "bfloat16"), (1.0, "float32"), (1e-40, "float32")]
    for x, fmt in cases:
        m, e_min = _LAYOUTS[fmt]
        got, want = _call(fn, x, m, e_min), float_spacing_reference(x, m, e_min)
        if np.ndim(got) != 0:
            _fail(f"expected one number, got {type(got).__name__} of shape {np.shape(got)}",
                  "return one float: the gap after the one x you were given")
        if np.isclose(float(got), want, rtol=1e-9, atol=0):
            continue
        e = math.frexp(abs(x))[1] - 1
        if np.isclose(float(got), abs(x) * 2.0 ** -m, rtol=1e-9, atol=0):
            hint = ("|x|·2**-m is the relative gap, exact only at powers of two: the gap is the same for every "
                    "number with the same exponent, 2**(floor(log2 |x|) - m)")
        elif e < e_min and np.isclose(float(got), 2.0 ** (e - m), rtol=1e-9, atol=0):
            hint = (f"{x:g} is below the smallest normal 2**{e_min} of {fmt}: subnormals are evenly spaced, "
                    "so the exponent must not go below min_exponent")
        elif any(np.isclose(float(got), w, rtol=1e-9, atol=0) for w in (2 * want, want / 2)):
            hint = ("off by a factor of two: with m stored fraction bits the gap after 1.0 is 2**-m "
                    "(float16: 2**-10 = 0.000977), and floor(log2 |x|) is the exponent (1.0 → 0, 3.0 → 1)")
        else:
            hint = ("find the exponent of |x| (math.frexp or np.log2), keep it at or above min_exponent, and take "
                    "the gap at that exponent with mantissa_bits fraction bits (the formula above the exercise)")
        _fail(f"for x={x!r} in {fmt} (mantissa_bits={m}, min_exponent={e_min}) you returned {float(got):.6g}, "
              f"expected {want:.6g}", hint)
    return "✓ float_spacing is right"


def underflows_reference(x) -> bool:
    """True when the nonzero ``x`` becomes exactly 0 in float16: |x| ≤ 2**-25, half the smallest
    subnormal 2**-24 (the tie 2**-25 rounds to the even neighbour, 0). Taught in: 05_fp16_transfer"""
    return bool(x != 0 and abs(float(x)) <= 2.0 ** -25)


def check_underflows(fn) -> str:
    """Check the student's ``underflows(x) -> bool`` (float16). Taught in: 05_fp16_transfer"""
    tiny = format_facts("float16").smallest_subnormal  # 2**-24 ≈ 5.96e-08
    cases = [1e-4, 3e-5, 1e-6, tiny, 0.75 * tiny, 0.5 * tiny, 0.4 * tiny, 1e-9, -1e-9, -1e-6, 1e-12, 0.0, 1.0]
    for x in cases:
        got, want = _call(fn, x), underflows_reference(x)
        if not isinstance(got, (bool, np.bool_)):
            _fail(f"for x={x!r} you returned {got!r} ({type(got).__name__}), expected True or False",
                  "return a bool (True or False), not a number")
        if bool(got) == want:
            continue
        if x == 0:
            hint = "0 is exactly 0 in every format: nothing is lost, so it does not underflow (return False)"
        elif tiny / 2 < abs(x) < 6.103515625e-05:
            hint = (f"{x:g} is below float16's smallest normal 6.1e-05 but float16 has subnormals down to "
                    f"{tiny:.3g}, and round-to-nearest takes anything above half of that ({tiny / 2:.3g}) to a "
                    "nonzero subnormal")
        elif abs(x) == tiny / 2:
            hint = (f"{x:g} is exactly half the smallest subnormal: a tie, rounded to the neighbour with an even "
                    "last bit, which is 0 (so it underflows)")
        else:
            hint = ("compare |x| with half of float16's smallest subnormal (2**-24), and mind on which side "
                    "the exact tie falls")
        _fail(f"underflows({x!r}) returned {bool(got)}, expected {want}", hint)
    return "✓ underflows is right"


def loss_scale_update_reference(scale, good_steps, found_inf, *, growth_interval, growth_factor=2.0,
                                backoff_factor=0.5):
    """One step of dynamic loss scaling: ``(new_scale, new_good_steps, skip_step)``.

    Overflow (``found_inf``): skip the step, scale × backoff_factor, good_steps = 0. Otherwise count
    the good step; after ``growth_interval`` good steps in a row scale × growth_factor and good_steps = 0.
    Same rule as :class:`thinlab.precision.DynamicLossScaler` and ``torch.amp.GradScaler``.

    Taught in: 05_fp16_transfer
    """
    if found_inf:
        return scale * backoff_factor, 0, True
    good_steps += 1
    if good_steps >= growth_interval:
        return scale * growth_factor, 0, False
    return scale, good_steps, False


def check_loss_scale_update(fn) -> str:
    """Check the student's ``loss_scale_update(scale, good_steps, found_inf, *, growth_interval, growth_factor,
    backoff_factor) -> (scale, good_steps, skip)`` against :class:`DynamicLossScaler` on a few step sequences.

    Taught in: 05_fp16_transfer
    """
    sequences = [([False] * 7, 3, 2.0, 0.5), ([True, True, False], 2, 2.0, 0.5),
                 ([False, False, True, False, False, False], 3, 2.0, 0.5),
                 ([False] * 4 + [True] + [False] * 4, 4, 4.0, 0.25)]
    for flags, interval, growth, backoff in sequences:
        ref = DynamicLossScaler(init_scale=1024.0, growth_interval=interval, growth_factor=growth,
                                backoff_factor=backoff)
        scale, good = 1024.0, 0
        for step, found_inf in enumerate(flags):
            out = _call(fn, scale, good, found_inf, growth_interval=interval, growth_factor=growth,
                        backoff_factor=backoff)
            if not (isinstance(out, tuple) and len(out) == 3):
                _fail(f"expected a tuple (scale, good_steps, skip), got {out!r}",
                      "return all three: the new scale, the new count of good steps, and whether to skip this step")
            skip_want = ref.update(found_inf)
            want = (ref.scale_, ref.good_steps_, skip_want)
            got = (float(out[0]), int(out[1]), bool(out[2]))
            if got == want:
                scale, good = out[0], out[1]
                continue
            where = (f"at step {step} of {['inf' if f else 'ok' for f in flags]} (growth_interval={interval}, "
                     f"growth_factor={growth}, backoff_factor={backoff}), from scale={scale:g}, good_steps={good}, "
                     f"found_inf={found_inf}: you returned {got}, expected {want}")
            if found_inf and got[1] != 0:
                hint = "an overflow restarts the count: good_steps goes back to 0"
            elif found_inf and not got[2]:
                hint = "on overflow the gradients hold inf/NaN: the step must be skipped (skip=True)"
            elif found_inf:
                hint = "on overflow the scale shrinks, by backoff_factor"
            elif got[2]:
                hint = "a step without overflow is taken (skip=False)"
            elif got[0] > scale and good + 1 < interval:
                hint = f"grow only after growth_interval={interval} good steps in a row, not on every good step"
            else:
                hint = ("without overflow, count the good step; only when the count reaches growth_interval does "
                        "the scale grow (by growth_factor) and the count restart")
            _fail(where, hint)
    return "✓ loss_scale_update is right"


SOLUTIONS = {
    "float_spacing": float_spacing_reference,
    "underflows": underflows_reference,
    "loss_scale_update": loss_scale_update_reference,
}
