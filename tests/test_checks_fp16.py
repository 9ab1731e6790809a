"""Lesson 05's exercise checks pass the reference answers and fail wrong ones with a "Hint:"."""
from __future__ import annotations

import math

import numpy as np
import pytest
from _checks_helpers import assert_fails_with_hint, assert_passes, assert_reference_passes, assert_unwritten_says_so

from thinlab import checks, precision


def _relative_gap(x, m, e_min):  # |x|·2**-m: right only at powers of two
    return abs(x) * 2.0 ** -m


def _no_subnormals(x, m, e_min):  # keeps shrinking below the smallest normal
    return 2.0 ** (math.frexp(abs(x))[1] - 1 - m)


def _off_by_one(x, m, e_min):
    return 2.0 ** (max(math.frexp(abs(x))[1] - 1, e_min) - m + 1)


def _below_smallest_normal(x):  # forgets subnormals
    return x != 0 and abs(x) < precision.format_facts("float16").smallest_normal


def _below_smallest_subnormal(x):  # forgets round-to-nearest
    return x != 0 and abs(x) < precision.format_facts("float16").smallest_subnormal


def _strict_half(x):  # forgets that the tie 2**-25 rounds to even (0)
    return x != 0 and abs(x) < 2.0 ** -25


def _zero_underflows(x):
    return abs(x) <= 2.0 ** -25


def _grow_every_step(scale, good, found_inf, *, growth_interval, growth_factor=2.0, backoff_factor=0.5):
    if found_inf:
        return scale * backoff_factor, 0, True
    return scale * growth_factor, 0, False


def _keep_count_on_overflow(scale, good, found_inf, *, growth_interval, growth_factor=2.0, backoff_factor=0.5):
    if found_inf:
        return scale * backoff_factor, good, True
    good += 1
    return (scale * growth_factor, 0, False) if good >= growth_interval else (scale, good, False)


def _never_skip(scale, good, found_inf, *, growth_interval, growth_factor=2.0, backoff_factor=0.5):
    new_scale, new_good, _ = checks.SOLUTIONS["loss_scale_update"](
        scale, good, found_inf, growth_interval=growth_interval, growth_factor=growth_factor,
        backoff_factor=backoff_factor)
    return new_scale, new_good, False


def _no_backoff(scale, good, found_inf, *, growth_interval, growth_factor=2.0, backoff_factor=0.5):
    if found_inf:
        return scale, 0, True
    good += 1
    return (scale * growth_factor, 0, False) if good >= growth_interval else (scale, good, False)


# (check, a wrong answer, a phrase its hint must contain)
WRONG = [
    (checks.check_float_spacing, _relative_gap, "relative gap"),
    (checks.check_float_spacing, _no_subnormals, "subnormals are evenly spaced"),
    (checks.check_float_spacing, _off_by_one, "factor of two"),
    (checks.check_float_spacing, lambda x, m, e: [2.0 ** -m], "expected one number"),
    (checks.check_underflows, _below_smallest_normal, "has subnormals"),
    (checks.check_underflows, _below_smallest_subnormal, "round-to-nearest"),
    (checks.check_underflows, _strict_half, "a tie"),
    (checks.check_underflows, _zero_underflows, "0 is exactly 0"),
    (checks.check_underflows, lambda x: 1.0, "True or False"),
    (checks.check_loss_scale_update, _grow_every_step, "not on every good step"),
    (checks.check_loss_scale_update, _keep_count_on_overflow, "restarts the count"),
    (checks.check_loss_scale_update, _never_skip, "must be skipped"),
    (checks.check_loss_scale_update, _no_backoff, "scale shrinks"),
    (checks.check_loss_scale_update, lambda *a, **k: 1.0, "expected a tuple"),
]


@pytest.mark.parametrize("name", ["float_spacing", "underflows", "loss_scale_update"])
def test_reference_passes(name):
    assert_reference_passes(name)


@pytest.mark.parametrize("check, wrong, phrase", WRONG, ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in WRONG])
def test_wrong_answer_fails_with_a_hint(check, wrong, phrase):
    assert_fails_with_hint(check, wrong, what=phrase)


def test_unwritten_exercise_says_so():
    assert_unwritten_says_so("underflows")


def test_numpy_answers_a_student_may_write_pass():
    def float_spacing(x, mantissa_bits, min_exponent):
        return 2.0 ** (max(np.floor(np.log2(abs(x))) if x else min_exponent, min_exponent) - mantissa_bits)

    def underflows(x):
        return bool(x != 0 and np.float16(x) == 0)

    assert_passes(checks.check_float_spacing, float_spacing)
    assert_passes(checks.check_underflows, underflows)


def test_references_agree_with_numpy_and_the_scaler():
    for x in [1.0, 3.0, 0.1, 1000.0, 1e-6, 6e-8, 32768.0]:
        assert checks.SOLUTIONS["float_spacing"](x, 10, -14) == float(np.spacing(np.float16(x)))
    for x in np.geomspace(1e-10, 1e-6, 200):
        assert checks.SOLUTIONS["underflows"](x) == (np.float16(x) == 0)
        assert checks.SOLUTIONS["underflows"](x) == (precision.underflow_fraction([x]) == 1.0)
    scaler, state = precision.DynamicLossScaler(init_scale=8.0, growth_interval=2), (8.0, 0)
    for found_inf in [False, False, True, False, True, False, False, False]:
        skip = scaler.update(found_inf)
        *state, ref_skip = checks.SOLUTIONS["loss_scale_update"](*state, found_inf, growth_interval=2)
        assert (tuple(state), ref_skip) == ((scaler.scale_, scaler.good_steps_), skip)
