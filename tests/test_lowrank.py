"""Truncated SVD: Eckart–Young error, energy, byte budgets, the rank sweep, bad inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from thinlab import lowrank as L
from thinlab.size import dense_bytes

matrices = arrays(np.float64, array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
                  elements=st.floats(-10, 10, allow_nan=False))


@st.composite
def matrix_and_rank(draw):
    W = draw(matrices)
    return W, draw(st.integers(1, min(W.shape)))


@given(case=matrix_and_rank())
def test_squared_error_equals_the_dropped_singular_values(case):
    W, k = case
    s = L.singular_values(W)
    dropped = float((s[k:] ** 2).sum())
    err = L.reconstruction_error(W, rank=k)
    assert err ** 2 == pytest.approx(dropped, rel=1e-7, abs=1e-9 * (1 + (s ** 2).sum()))


@given(case=matrix_and_rank())
def test_factors_shapes_orthonormal_b_and_full_rank_is_exact(case):
    W, k = case
    A, B = L.truncated_svd(W, rank=k)
    assert A.shape == (W.shape[0], k) and B.shape == (k, W.shape[1])
    np.testing.assert_allclose(B @ B.T, np.eye(k), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), L.singular_values(W)[:k], rtol=1e-9, atol=1e-9)
    A_full, B_full = L.truncated_svd(W, rank=min(W.shape))
    np.testing.assert_allclose(L.svd_reconstruct(A_full, B_full), W, atol=1e-9 * (1 + np.abs(W).max()))


@settings(max_examples=30)
@given(case=matrix_and_rank(), seed=st.integers(0, 1000))
def test_truncation_beats_a_random_rank_k_projection(case, seed):
    """Eckart–Young: no rank-k matrix is closer; a random k-dim column space is one such matrix."""
    W, k = case
    Qb, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(W.shape[0], k)))
    assert L.reconstruction_error(W, rank=k) <= np.linalg.norm(W - Qb @ (Qb.T @ W)) + 1e-9


def test_exact_diagonal_example():
    W = np.diag([1.0, 3.0, 2.0]).astype(np.float32)
    np.testing.assert_allclose(L.singular_values(W), [3, 2, 1])
    A, B = L.truncated_svd(W, rank=2)
    assert A.dtype == B.dtype == np.float32
    np.testing.assert_allclose(L.svd_reconstruct(A, B), np.diag([0.0, 3.0, 2.0]), atol=1e-6)
    assert L.reconstruction_error(W, rank=2) == pytest.approx(1.0)
    np.testing.assert_allclose(L.energy([3.0, 2.0, 1.0]), [9 / 14, 13 / 14, 1.0])


@pytest.mark.parametrize("target, rank", [(0.5, 1), (9 / 14, 1), (0.65, 2), (13 / 14, 2), (0.95, 3), (1.0, 3)])
def test_rank_for_energy_exact(target, rank):
    assert L.rank_for_energy(np.array([3.0, 2.0, 1.0]), energy=target) == rank


@given(s=arrays(np.float64, st.integers(1, 20), elements=st.floats(0, 100)), target=st.floats(1e-6, 1.0))
def test_energy_and_rank_for_energy_properties(s, target):
    s = np.sort(s)[::-1]
    e = L.energy(s)
    assert e[-1] == 1.0 and (np.diff(e) >= 0).all() and (e > 0).all()
    k = L.rank_for_energy(s, energy=target)
    assert e[k - 1] >= target and (k == 1 or e[k - 2] < target)


def test_energy_of_all_zero_singular_values_is_all_ones():
    np.testing.assert_array_equal(L.energy(np.zeros(3)), [1.0, 1.0, 1.0])


def test_lowrank_bytes_exact():
    assert L.lowrank_bytes((100, 50), 10) == (100 + 50) * 10 * 4 + 16
    assert L.lowrank_bytes((100, 50), 10, dtype="float16") == (100 + 50) * 10 * 2 + 16


def test_rank_for_budget_exact_and_caps_at_full_rank():
    assert L.rank_for_budget((100, 50), size_fraction=0.1) == 3  # (2000 - 16) // 600
    assert L.rank_for_budget((100, 50), max_bytes=6016) == 10
    assert L.rank_for_budget((100, 50), max_bytes=6015) == 9
    assert L.rank_for_budget((100, 50), size_fraction=5.0) == 50


@given(shape=st.tuples(st.integers(1, 60), st.integers(1, 60)), max_bytes=st.integers(0, 40_000),
       dtype=st.sampled_from(["float32", "float16"]))
def test_rank_for_budget_matches_loop_reference(shape, max_bytes, dtype):
    if max_bytes < L.lowrank_bytes(shape, 1, dtype=dtype):
        with pytest.raises(ValueError, match="below rank 1's"):
            L.rank_for_budget(shape, max_bytes=max_bytes, dtype=dtype)
    else:
        assert L.rank_for_budget(shape, max_bytes=max_bytes, dtype=dtype) == \
            L.rank_for_budget_reference(shape, max_bytes=max_bytes, dtype=dtype)


@given(case=matrix_and_rank())
def test_ranks_sweep_matches_per_rank_reference(case):
    W, _ = case
    ranks = list(range(1, min(W.shape) + 1))
    got, want = L.ranks_sweep(W), L.ranks_sweep_reference(W, ranks=ranks)
    assert [r["rank"] for r in got] == ranks
    scale = 1e-6 * (1 + float(np.linalg.norm(W)))
    for g, w in zip(got, want):
        assert set(g) == {"rank", "error", "relative_error", "energy", "bytes", "size_fraction"}
        assert g["error"] == pytest.approx(w["error"], abs=scale)
        assert g["relative_error"] == pytest.approx(w["relative_error"], abs=1e-6)
        assert g["energy"] == pytest.approx(w["energy"], abs=1e-9)
        assert (g["bytes"], g["size_fraction"]) == (w["bytes"], w["size_fraction"])


def test_ranks_sweep_subset_exact():
    rows = L.ranks_sweep(np.diag([3.0, 2.0, 1.0]), ranks=[2])
    assert rows == [{"rank": 2, "error": 1.0, "relative_error": pytest.approx(1 / math.sqrt(14)),
                     "energy": pytest.approx(13 / 14), "bytes": 6 * 2 * 4 + 16,
                     "size_fraction": (6 * 2 * 4 + 16) / dense_bytes((3, 3))}]


@pytest.mark.parametrize("call, match", [
    (lambda: L.truncated_svd(np.ones((4, 3)), rank=0), r"rank=0 must be in \[1, 3\]; a rank-k factorisation"),
    (lambda: L.truncated_svd(np.ones((4, 3)), rank=4), r"rank=4 must be in \[1, 3\]"),
    (lambda: L.truncated_svd(np.ones((4, 3)), rank=2.0), "rank=2.0 must be an integer"),
    (lambda: L.truncated_svd(np.ones(4), rank=1), r"W has shape \(4,\) \(1-D\); expected a 2-D array \(Q, R\)"),
    (lambda: L.truncated_svd(np.ones((2, 2), int), rank=1), "W has dtype int64; expected a float array"),
    (lambda: L.singular_values(np.array([[1.0, np.inf]])), "contains 0 NaN and 1 inf"),
    (lambda: L.reconstruction_error(np.ones((2, 2)), rank=3), r"rank=3 must be in \[1, 2\]"),
    (lambda: L.svd_reconstruct(np.ones((4, 2)), np.ones((3, 5))), r"ranks 2 ≠ 3; pass the pair returned by one"),
    (lambda: L.energy(np.array([1.0, -1.0])), "s has negative entries"),
    (lambda: L.rank_for_energy(np.ones(3), energy=0.0), r"energy=0.0 must be in \(0, 1\]"),
    (lambda: L.rank_for_energy(np.ones(3), energy=1.5), r"energy=1.5 must be in \(0, 1\]"),
    (lambda: L.lowrank_bytes((3, 4, 5), 1), r"shape=\(3, 4, 5\) must be 2-D"),
    (lambda: L.rank_for_budget((10, 10)), "pass exactly one"),
    (lambda: L.rank_for_budget((10, 10), size_fraction=0.5, max_bytes=10), "pass exactly one"),
    (lambda: L.rank_for_budget((10, 10), size_fraction=0.0), r"size_fraction=0.0 must be in \(0, inf\]"),
    (lambda: L.rank_for_budget((2048, 2048), size_fraction=0.0001),
     r"budget of 1,677 bytes is below rank 1's 16,400 bytes .* use size_fraction ≥ 0.000978 \(max_bytes ≥ 16400\)"),
    (lambda: L.ranks_sweep(np.ones((3, 3)), ranks=[1, 4]), r"rank=4 must be in \[1, 3\]")])
def test_lowrank_rejects_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
