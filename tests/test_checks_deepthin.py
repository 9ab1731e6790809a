"""Lesson 03's exercise checks pass the reference answers and fail wrong ones with a "Hint:"."""
from __future__ import annotations

import math

import numpy as np
from _checks_helpers import exercise_tests

from thinlab import checks, deepthin


def _relayout_rows(W_aux, Q, R):  # fills W row by row
    return np.asarray(W_aux).reshape(-1)[: Q * R].reshape(Q, R)


def _relayout_column_major(W_aux, Q, R):  # reads W_aux column by column
    return np.asarray(W_aux).T.reshape(-1)[: Q * R].reshape(R, Q).T


def _relayout_in_place(W_aux, Q, R):  # right values, but overwrites the caller's W_aux
    out = deepthin.relayout(W_aux, Q=Q, R=R)
    W_aux *= 0
    return out


def _relayout_flat(W_aux, Q, R):  # stops after flattening
    return np.asarray(W_aux).reshape(-1)[: Q * R]


def _lower_bound_no_shapes(Q, R):
    n, m = deepthin.min_aux_sum(Q * R)
    return 4 * (m + n) / (4 * Q * R)


def _lower_bound_sqrt(Q, R):
    return (8 * math.sqrt(Q * R) + 16) / (4 * Q * R)


def _lower_bound_lowrank(Q, R):
    return (4 * (Q + R) + 16) / (4 * Q * R)


# (check, a wrong answer, a phrase the failure message must contain, a phrase the hint must contain)
WRONG = {
    "relayout rows": (checks.check_relayout, _relayout_rows, "expected", "column by column"),
    "relayout column-major": (checks.check_relayout, _relayout_column_major, "expected", "row-major"),
    "relayout in place": (checks.check_relayout, _relayout_in_place, "changed the W_aux", "new array"),
    "relayout flat": (checks.check_relayout, _relayout_flat, "shape", "first Q·R"),
    "n_alignments gcd": (checks.check_n_alignments, lambda Q, R, n: math.gcd(n, Q), "expected", "of them"),
    "n_alignments no R": (checks.check_n_alignments, lambda Q, R, n: n // math.gcd(n, Q), "expected",
                          "cannot exceed R"),
    "n_alignments n": (checks.check_n_alignments, lambda Q, R, n: n, "expected", "only its multiples"),
    "n_alignments float": (checks.check_n_alignments, lambda Q, R, n: 0.5, "whole number", "int"),
    "lower_bound no shapes": (checks.check_lower_bound, _lower_bound_no_shapes, "expected", "without the two shapes"),
    "lower_bound sqrt": (checks.check_lower_bound, _lower_bound_sqrt, "expected", "not a whole number"),
    "lower_bound low rank": (checks.check_lower_bound, _lower_bound_lowrank, "expected", "rank-1 factorisation"),
}


NAMES = ["relayout", "n_alignments", "lower_bound"]


test_reference_passes_its_check, test_wrong_answer_fails_with_a_hint, test_unwritten_exercise_says_so = (
    exercise_tests(NAMES, WRONG))


def test_n_alignments_reference_counts_offsets():
    for Q, R, n in [(8, 6, 4), (12, 20, 8), (7, 3, 5), (512, 512, 509), (2000, 512, 1000)]:
        assert checks.SOLUTIONS["n_alignments"](Q, R, n) == len({(j * Q) % n for j in range(R)})
