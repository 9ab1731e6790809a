"""Lesson 01's exercise checks pass the reference answers and fail wrong ones with a "Hint:"."""
from __future__ import annotations

import numpy as np
from _checks_helpers import assert_passes, exercise_tests

from thinlab import checks, prune
from thinlab.size import index_bytes


def _prune_by_value(W, sparsity):  # ranks signed values, not magnitudes
    W = np.array(W, dtype=float)
    k = int(round(sparsity * W.size))
    W.ravel()[np.argsort(W, axis=None)[:k]] = 0
    return W


def _prune_in_place(W, sparsity):  # right answer, but destroys the caller's dense W
    k = int(round(sparsity * W.size))
    W.ravel()[np.argsort(np.abs(W), axis=None)[:k]] = 0
    return W


def _prune_by_threshold(W, sparsity):  # treats the sparsity as a magnitude threshold
    return np.where(np.abs(W) < sparsity, 0.0, W)


def _csr_no_shape(shape, nnz):
    return prune.csr_bytes(shape, nnz) - 8


def _csr_int32(shape, nnz):
    return 4 * nnz + 4 * nnz + 4 * (shape[0] + 1) + 8


def _csr_values_and_indices_only(shape, nnz):
    return nnz * (4 + index_bytes(shape[1] - 1))


def _break_even_asymptote(shape):  # ignores row pointers and shape
    return 4 / (4 + index_bytes(shape[1] - 1))


# (check, a wrong answer, a phrase the failure message must contain, a phrase the hint must contain)
WRONG = {
    "magnitude_prune by value": (checks.check_magnitude_prune, _prune_by_value, "expected", "magnitude"),
    "magnitude_prune in place": (checks.check_magnitude_prune, _prune_in_place, "changed the W", "copy"),
    "magnitude_prune threshold": (checks.check_magnitude_prune, _prune_by_threshold, "expected exactly", "round"),
    "csr_bytes no shape": (checks.check_csr_bytes, _csr_no_shape, "expected", "left out the shape"),
    "csr_bytes int32": (checks.check_csr_bytes, _csr_int32, "expected", "real width"),
    "csr_bytes no pointers": (checks.check_csr_bytes, _csr_values_and_indices_only, "expected", "index_bytes"),
    "break_even asymptote": (checks.check_break_even_density, _break_even_asymptote, "expected", "row pointers"),
    "break_even dense": (checks.check_break_even_density, lambda shape: 1.0, "expected", "csr_bytes"),
}


NAMES = ["magnitude_prune", "csr_bytes", "break_even_density"]


test_reference_passes_its_check, test_wrong_answer_fails_with_a_hint, test_unwritten_exercise_says_so = (
    exercise_tests(NAMES, WRONG))


def test_a_loop_solution_of_the_break_even_passes():
    """The brute-force answer a student is likely to write is accepted, not just the closed form."""
    def break_even_density(shape):
        size = shape[0] * shape[1]
        return max(n for n in range(size + 1) if prune.csr_bytes(shape, n) <= 4 * size) / size

    assert_passes(checks.check_break_even_density, break_even_density)


def test_a_numpy_solution_of_magnitude_prune_passes():
    def magnitude_prune(W, sparsity):
        k = int(round(sparsity * W.size))
        out = W.copy()
        out.ravel()[np.argsort(np.abs(W), axis=None, kind="stable")[:k]] = 0
        return out

    assert_passes(checks.check_magnitude_prune, magnitude_prune)
