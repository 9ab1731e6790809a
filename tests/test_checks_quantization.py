"""Lesson 04's exercise checks pass the reference answers and fail wrong ones with a "Hint:"."""
from __future__ import annotations

import math

import numpy as np
from _checks_helpers import assert_passes, exercise_tests

from thinlab import checks, quant

NAMES = ["symmetric_quantize", "packed_bytes", "best_frac_bits"]


def _codes_only(W, scale, n_bits):  # forgets to dequantise
    q = 2 ** (n_bits - 1) - 1
    return np.clip(np.round(W / scale), -q, q)


def _no_clip(W, scale, n_bits):
    return np.round(W / scale) * scale


def _full_range(W, scale, n_bits):  # -2**(b-1) allowed: not the symmetric narrow range
    q = 2 ** (n_bits - 1) - 1
    return np.clip(np.round(W / scale), -q - 1, q) * scale


def _truncating(W, scale, n_bits):
    q = 2 ** (n_bits - 1) - 1
    return np.clip(np.trunc(W / scale), -q, q) * scale


def _in_place(W, scale, n_bits):  # right values, but overwrites the caller's W
    q = 2 ** (n_bits - 1) - 1
    W[...] = np.clip(np.round(W / scale), -q, q) * scale
    return W


def _largest_unclipped_f(W, word_bits):  # range-only rule: never clips, ignores resolution
    m = np.abs(W).max()
    return max(f for f in range(-8, 25) if (2 ** (word_bits - 1) - 1) * 2.0 ** -f >= m)


# (check, a wrong answer, a phrase the failure message must contain, a phrase the hint must contain)
WRONG = {
    "symmetric codes only": (checks.check_symmetric_quantize, _codes_only, "expected", "multiply by scale"),
    "symmetric no clip": (checks.check_symmetric_quantize, _no_clip, "expected", "saturate"),
    "symmetric full range": (checks.check_symmetric_quantize, _full_range, "expected", "narrow range"),
    "symmetric truncates": (checks.check_symmetric_quantize, _truncating, "expected", "nearest"),
    "symmetric in place": (checks.check_symmetric_quantize, _in_place, "changed the W", "copy"),
    "packed bits not bytes": (checks.check_packed_bytes, lambda n, b: n * b, "expected", "number of bits"),
    "packed floor": (checks.check_packed_bytes, lambda n, b: n * b // 8, "expected", "rounding down"),
    "packed byte per code": (checks.check_packed_bytes, lambda n, b: n * math.ceil(b / 8), "expected", "back to back"),
    "packed float": (checks.check_packed_bytes, lambda n, b: n * b / 8, "whole number", "math.ceil"),
    "frac no clip": (checks.check_best_frac_bits, _largest_unclipped_f, "expected F=", "clips nothing"),
    "frac largest": (checks.check_best_frac_bits, lambda W, wb: 24, "expected F=", "clips almost every"),
    "frac returns mse": (checks.check_best_frac_bits, lambda W, wb: 0.001, "integer F", "not its MSE"),
}


test_reference_passes_its_check, test_wrong_answer_fails_with_a_hint, test_unwritten_exercise_says_so = (
    exercise_tests(NAMES, WRONG))


def test_likely_student_solutions_pass():
    """The answers a student is likely to write are accepted, not only the library calls."""
    def symmetric_quantize(W, scale, n_bits):
        qmax = 2 ** (n_bits - 1) - 1
        return np.clip(np.round(W / scale), -qmax, qmax) * scale

    def packed_bytes(n, n_bits):
        return (n * n_bits + 7) // 8

    def best_frac_bits(W, word_bits):
        mses = [np.mean((W - quant.fixed_point(W, word_bits=word_bits, frac_bits=F)) ** 2) for F in range(-8, 25)]
        return range(-8, 25)[int(np.argmin(mses))]

    assert_passes(checks.check_symmetric_quantize, symmetric_quantize)
    assert_passes(checks.check_packed_bytes, packed_bytes)
    assert_passes(checks.check_best_frac_bits, best_frac_bits)


def test_references_agree_with_the_library():
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.05, (20, 30))
    for b in (2, 4, 8):
        q = quant.quantize_uniform(W, n_bits=b, symmetric=True)
        np.testing.assert_allclose(checks.SOLUTIONS["symmetric_quantize"](W, float(q.scale), b), quant.dequantize(q),
                                   rtol=1e-6, atol=1e-9)
        assert checks.SOLUTIONS["packed_bytes"](W.size, b) == len(quant.pack_bits(
            quant.quantize_uniform(W, n_bits=b, symmetric=False).codes, n_bits=b))
        assert checks.SOLUTIONS["best_frac_bits"](W, b) == quant.best_frac_bits(W, word_bits=b)
