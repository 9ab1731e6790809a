"""Lesson 02's exercise checks pass the reference answers and fail wrong ones with a "Hint:"."""
from __future__ import annotations

import math

import numpy as np
from _checks_helpers import assert_fails_with_hint, assert_passes, exercise_tests

from thinlab import checks


def _svd(W, k):
    return np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)


def _no_singular_values(W, k):
    U, s, Vt = _svd(W, k)
    return U[:, :k], Vt[:k]


def _squared(W, k):
    U, s, Vt = _svd(W, k)
    return U[:, :k] * s[:k], s[:k, None] * Vt[:k]  # s on both sides


def _smallest(W, k):
    U, s, Vt = _svd(W, k)
    return U[:, -k:] * s[-k:], Vt[-k:]


def _columns_of_vt(W, k):
    U, s, Vt = _svd(W, k)
    return U[:, :k] * s[:k], Vt[:, :k]


def _triple(W, k):
    U, s, Vt = _svd(W, k)
    return U[:, :k], s[:k], Vt[:k]


def _split_sqrt(W, k):  # a different but valid split: √s on each side
    U, s, Vt = _svd(W, k)
    return U[:, :k] * np.sqrt(s[:k]), np.sqrt(s[:k])[:, None] * Vt[:k]


def _bytes_no_shapes(shape, k):
    return 4 * (shape[0] + shape[1]) * k


def _bytes_one_shape(shape, k):
    return 4 * (shape[0] + shape[1]) * k + 8


def _bytes_as_count(shape, k):
    return (shape[0] + shape[1]) * k


def _bytes_qrk(shape, k):
    return 4 * shape[0] * shape[1] * k + 16


def _budget_no_shapes(shape, max_bytes):
    return min(max_bytes // (4 * (shape[0] + shape[1])), min(shape))


def _budget_no_cap(shape, max_bytes):
    return (max_bytes - 16) // (4 * (shape[0] + shape[1]))


def _budget_strict(shape, max_bytes):  # "<" instead of "≤": one short when a rank fits exactly
    k = 0
    while k < min(shape) and 4 * (shape[0] + shape[1]) * (k + 1) + 16 < max_bytes:
        k += 1
    return max(k, 1)


# (check, a wrong answer, a phrase the failure message must contain, a phrase the hint must contain)
WRONG = {
    "svd without s": (checks.check_truncated_svd, _no_singular_values, "expected", "without the singular values"),
    "svd squared": (checks.check_truncated_svd, _squared, "expected", "squared"),
    "svd smallest": (checks.check_truncated_svd, _smallest, "expected", "smallest singular values"),
    "svd columns of Vt": (checks.check_truncated_svd, _columns_of_vt, "expected A", "first k rows of Vt"),
    "svd triple": (checks.check_truncated_svd, _triple, "expected a pair", "do not return U, s, Vt"),
    "bytes no shapes": (checks.check_lowrank_bytes, _bytes_no_shapes, "expected", "left out the two shapes"),
    "bytes one shape": (checks.check_lowrank_bytes, _bytes_one_shape, "expected", "one shape"),
    "bytes count": (checks.check_lowrank_bytes, _bytes_as_count, "expected", "4 bytes"),
    "bytes Q·R·k": (checks.check_lowrank_bytes, _bytes_qrk, "expected", "not Q·R·k"),
    "budget no shapes": (checks.check_rank_for_budget, _budget_no_shapes, "expected", "16 bytes"),
    "budget no cap": (checks.check_rank_for_budget, _budget_no_cap, "expected", "min(Q, R)"),
    "budget strict": (checks.check_rank_for_budget, _budget_strict, "expected", "which fits"),
}

NAMES = ["truncated_svd", "lowrank_bytes", "rank_for_budget"]


test_reference_passes_its_check, test_wrong_answer_fails_with_a_hint, test_unwritten_exercise_says_so = (
    exercise_tests(NAMES, WRONG))


def test_any_split_of_the_best_product_passes():
    """Only A·B is checked: √s on each side is as good as s on the left."""
    assert_passes(checks.check_truncated_svd, _split_sqrt)


def test_in_place_svd_fails():
    def truncated_svd(W, k):
        U, s, Vt = _svd(W, k)
        W[...] = 0  # destroys the caller's weights
        return U[:, :k] * s[:k], Vt[:k]

    assert_fails_with_hint(checks.check_truncated_svd, truncated_svd, what="changed the W")


def test_loop_solutions_pass():
    def lowrank_bytes(shape, rank):
        Q, R = shape
        return 4 * Q * rank + 4 * rank * R + 2 * 4 + 2 * 4

    def rank_for_budget(shape, max_bytes):
        fits = [k for k in range(1, min(shape) + 1) if lowrank_bytes(shape, k) <= max_bytes]
        return max(fits)

    assert_passes(checks.check_lowrank_bytes, lowrank_bytes)
    assert_passes(checks.check_rank_for_budget, rank_for_budget)
    closed = lambda shape, b: min(math.floor((b - 16) / (4 * sum(shape))), min(shape))  # noqa: E731
    assert_passes(checks.check_rank_for_budget, closed)
