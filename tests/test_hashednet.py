"""HashedNets: the vectorised hash against its loop reference, uniformity, expansion, gradients, bytes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from thinlab import hashednet as H
from thinlab.size import dense_bytes

seeds = st.integers(0, 2**64 - 1)


@st.composite
def grids(draw, max_side=9):
    Q, R = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return Q, R, draw(st.integers(1, Q * R)), draw(seeds)


@given(grid=grids())
def test_hash_index_matches_loop_reference(grid):
    Q, R, n, seed = grid
    idx, sign = H.hash_index(Q, R, n_buckets=n, seed=seed)
    ref_idx, ref_sign = H.hash_index_reference(Q, R, n_buckets=n, seed=seed)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(sign, ref_sign)
    assert idx.dtype == np.int64 and sign.dtype == np.float32 and idx.shape == sign.shape == (Q, R)
    assert idx.min() >= 0 and idx.max() < n and set(np.unique(sign)) <= {-1.0, 1.0}


def test_hash_index_is_deterministic_seeded_and_independent_of_the_grid_size():
    a, sa = H.hash_index(40, 50, n_buckets=97, seed=7)
    b, sb = H.hash_index(40, 50, n_buckets=97, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    c, _ = H.hash_index(40, 50, n_buckets=97, seed=8)
    assert abs((a == c).mean() - 1 / 97) < 0.01  # another seed: agreement only by chance
    big, big_sign = H.hash_index(60, 70, n_buckets=97, seed=7)
    np.testing.assert_array_equal(big[:40, :50], a)
    np.testing.assert_array_equal(big_sign[:40, :50], sa)


def chi_square(idx: np.ndarray, n_buckets: int) -> float:
    counts = np.bincount(idx.ravel(), minlength=n_buckets)
    expected = idx.size / n_buckets
    return float(((counts - expected) ** 2 / expected).sum())


def uniform_enough(idx: np.ndarray, n_buckets: int) -> bool:
    """Chi-square within 6 standard deviations of its mean (dof = n - 1): p ≈ 1e-9 for a good hash."""
    dof = n_buckets - 1
    return chi_square(idx, n_buckets) < dof + 6 * math.sqrt(2 * dof)


@pytest.mark.parametrize("n_buckets", [2, 61, 64, 1000, 4096])
@pytest.mark.parametrize("seed", [0, 1, 2**63 + 5])
def test_bucket_histogram_is_near_uniform(n_buckets, seed):
    idx, sign = H.hash_index(256, 192, n_buckets=n_buckets, seed=seed)
    assert uniform_enough(idx, n_buckets)
    assert abs(sign.mean()) < 6 / math.sqrt(sign.size)  # signs balanced


def test_the_uniformity_check_fails_broken_hashes():
    """The bound has power: hashes people actually write by mistake are caught."""
    rows, cols = np.meshgrid(np.arange(256), np.arange(192), indexing="ij")
    assert not uniform_enough((rows * cols) % 61, 61)  # product: bucket 0 far too full
    assert not uniform_enough(rows % 1000, 1000)  # row only: 744 buckets empty
    assert not uniform_enough((rows * 192 + cols) % 4096 // 2 * 2, 4096)  # lost low bit: odd buckets empty


def test_signs_are_independent_of_buckets():
    idx, sign = H.hash_index(256, 256, n_buckets=16, seed=3)
    for k in range(16):
        s = sign[idx == k]
        assert abs(s.mean()) < 6 / math.sqrt(s.size)


@given(grid=grids(), data=st.data())
def test_hashed_weight_is_sign_times_bucket(grid, data):
    Q, R, n, seed = grid
    buckets = data.draw(arrays(np.float32, n, elements=st.floats(-5, 5, width=32)))
    W = H.hashed_weight(buckets, Q=Q, R=R, seed=seed)
    idx, sign = H.hash_index_reference(Q, R, n_buckets=n, seed=seed)
    assert W.shape == (Q, R) and W.dtype == np.float32
    for i, j in np.ndindex(Q, R):
        assert W[i, j] == sign[i, j] * buckets[idx[i, j]]


def test_hashed_weight_with_one_bucket_is_a_signed_constant():
    W = H.hashed_weight(np.array([0.25]), Q=30, R=20, seed=1)
    np.testing.assert_array_equal(np.abs(W), np.full((30, 20), 0.25))
    assert W.dtype == np.float64 and (W > 0).any() and (W < 0).any()


@given(grid=grids(), data=st.data())
def test_bucket_grad_matches_loop_reference_and_is_the_adjoint(grid, data):
    Q, R, n, seed = grid
    dW = data.draw(arrays(np.float64, (Q, R), elements=st.floats(-5, 5)))
    b = data.draw(arrays(np.float64, n, elements=st.floats(-5, 5)))
    g = H.bucket_grad(dW, n_buckets=n, seed=seed)
    np.testing.assert_allclose(g, H.bucket_grad_reference(dW, n_buckets=n, seed=seed), rtol=1e-12, atol=1e-12)
    # <dL/db, b> = <dL/dW, W(b)> because W is linear in b
    assert g @ b == pytest.approx(float((dW * H.hashed_weight(b, Q=Q, R=R, seed=seed)).sum()), abs=1e-9)


@settings(max_examples=10)
@given(seed=seeds, n=st.integers(1, 12))
def test_bucket_grad_matches_finite_differences_of_a_real_loss(seed, n):
    rng = np.random.default_rng(seed % 2**32)
    X, Y, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 4)), rng.normal(size=n)

    def loss(buckets):
        return 0.5 * float(((X @ H.hashed_weight(buckets, Q=5, R=4, seed=seed) - Y) ** 2).sum())

    dW = X.T @ (X @ H.hashed_weight(b, Q=5, R=4, seed=seed) - Y)  # (Q, R) = dL/dW
    eps = 1e-6
    numeric = [(loss(b + eps * e) - loss(b - eps * e)) / (2 * eps) for e in np.eye(n)]
    np.testing.assert_allclose(H.bucket_grad(dW, n_buckets=n, seed=seed), numeric, rtol=1e-6, atol=1e-6)


def test_hashed_bytes_exact():
    assert H.hashed_bytes(1000) == 1000 * 4 + 8 + 8
    assert H.hashed_bytes(1000, dtype="float16") == 1000 * 2 + 8 + 8


def test_buckets_for_size_fraction_exact():
    assert H.buckets_for_size_fraction(256, 256, size_fraction=1 / 64) == (4096 - 16) // 4
    assert H.buckets_for_size_fraction(4, 4, size_fraction=1.0) == 12  # (64 - 16) // 4


@given(Q=st.integers(1, 300), R=st.integers(1, 300), alpha=st.floats(1e-4, 1.0),
       dtype=st.sampled_from(["float32", "float16"]))
def test_buckets_for_size_fraction_is_the_most_that_fit(Q, R, alpha, dtype):
    budget = alpha * dense_bytes((Q, R), dtype=dtype)
    if budget < H.hashed_bytes(1, dtype=dtype):
        with pytest.raises(ValueError, match="one bucket plus seed and shape take"):
            H.buckets_for_size_fraction(Q, R, size_fraction=alpha, dtype=dtype)
        return
    n = H.buckets_for_size_fraction(Q, R, size_fraction=alpha, dtype=dtype)
    assert 1 <= n <= Q * R and H.hashed_bytes(n, dtype=dtype) <= budget
    assert n == Q * R or H.hashed_bytes(n + 1, dtype=dtype) > budget


@pytest.mark.parametrize("call, match", [
    (lambda: H.hash_index(4, 4, n_buckets=0, seed=0), r"n_buckets=0 must be in \[1, 16\]"),
    (lambda: H.hash_index(4, 4, n_buckets=17, seed=0), r"n_buckets=17 must be in \[1, 16\]; a \(4, 4\) layer"),
    (lambda: H.hash_index(4, 4, n_buckets=3, seed=-1), "seed=-1 must be in .*; pass a fixed non-negative"),
    (lambda: H.hash_index(4, 4, n_buckets=3, seed=2**64), "seed=18446744073709551616 must be in"),
    (lambda: H.hash_index(4, 4, n_buckets=3, seed=1.0), "seed=1.0 must be an integer"),
    (lambda: H.hash_index(0, 4, n_buckets=3, seed=0), r"Q=0 must be in \[1, 4294967295\]"),
    (lambda: H.hashed_weight(np.ones((2, 2)), Q=2, R=2, seed=0), r"buckets has shape \(2, 2\) \(2-D\)"),
    (lambda: H.hashed_weight(np.arange(3), Q=2, R=2, seed=0), "buckets has dtype int64"),
    (lambda: H.hashed_weight(np.array([1.0, np.nan]), Q=2, R=2, seed=0), "contains 1 NaN"),
    (lambda: H.bucket_grad(np.ones(4), n_buckets=2, seed=0), r"dW has shape \(4,\) \(1-D\)"),
    (lambda: H.hashed_bytes(0), "n_buckets=0 must be ≥ 1"),
    (lambda: H.buckets_for_size_fraction(8, 8, size_fraction=0.0), r"size_fraction=0.0 must be in \(0, 1\]"),
    (lambda: H.buckets_for_size_fraction(8, 8, size_fraction=1.5), r"size_fraction=1.5 must be in \(0, 1\]"),
    (lambda: H.buckets_for_size_fraction(8, 8, size_fraction=0.01),
     r"gives 2 bytes for a \(8, 8\) layer but one bucket plus seed and shape take 20; use size_fraction ≥ 0.0782")])
def test_hashednet_rejects_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
