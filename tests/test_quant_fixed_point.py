"""int8 clipping cast and W/F fixed point: exact values, reference agreement, best F, bytes, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from thinlab.quant import (
    best_frac_bits, best_frac_bits_reference, cast_int8, cast_int8_dequantized, fixed_point, fixed_point_bytes,
    fixed_point_codes, fixed_point_codes_reference, fixed_point_mse, fixed_point_range,
)

weights = arrays(np.float64, array_shapes(min_dims=1, max_dims=3, max_side=6),
                 elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False))


def test_cast_int8_exact():
    W = np.array([0.3, -0.6, 1.5, 200.0, -300.0, 0.5, 2.5])
    assert cast_int8(W).tolist() == [0, -1, 2, 127, -128, 0, 2]  # ties to even
    assert cast_int8(W).dtype == np.int8
    assert cast_int8_dequantized(W).dtype == np.float32
    assert cast_int8_dequantized(W).tolist() == [0, -1, 2, 127, -128, 0, 2]


def test_cast_int8_zeroes_trained_size_weights():
    """The seed thesis's collapse: weights ≪ 1 almost all round to 0 without a scale."""
    W = np.random.default_rng(0).normal(0, 0.05, size=10_000)
    assert np.mean(cast_int8(W) == 0) == 1.0


@settings(max_examples=60, deadline=None)
@given(weights)
def test_cast_int8_is_fixed_point_8_0(W):
    assert np.array_equal(cast_int8(W), fixed_point_codes(W, word_bits=8, frac_bits=0))


def test_fixed_point_exact_with_saturation():
    W = np.array([0.3, -0.3, 1.0, -2.0, 0.126, 10.0, -10.0])
    codes = fixed_point_codes(W, word_bits=4, frac_bits=2)  # Q2.2: steps of 0.25 in [-2, 1.75]
    assert codes.tolist() == [1, -1, 4, -8, 1, 7, -8] and codes.dtype == np.int8
    assert fixed_point(W, word_bits=4, frac_bits=2).tolist() == [0.25, -0.25, 1.0, -2.0, 0.25, 1.75, -2.0]
    assert fixed_point_range(word_bits=4, frac_bits=2) == (-2.0, 1.75, 0.25)
    assert fixed_point_range(word_bits=8, frac_bits=7) == (-1.0, 127 / 128, 1 / 128)
    assert fixed_point_codes(W, word_bits=16, frac_bits=0).dtype == np.int16
    assert fixed_point_codes(W, word_bits=17, frac_bits=0).dtype == np.int32


@settings(max_examples=60, deadline=None)
@given(weights, st.integers(2, 32), st.integers(-8, 40))
def test_codes_agree_with_reference(W, word_bits, frac_bits):
    fast = fixed_point_codes(W, word_bits=word_bits, frac_bits=frac_bits)
    assert np.array_equal(fast, fixed_point_codes_reference(W, word_bits=word_bits, frac_bits=frac_bits))


@settings(max_examples=60, deadline=None)
@given(weights, st.integers(2, 16), st.integers(-8, 24))
def test_error_bound_inside_range(W, word_bits, frac_bits):
    lo, hi, step = fixed_point_range(word_bits=word_bits, frac_bits=frac_bits)
    err = np.abs(W - fixed_point(W, word_bits=word_bits, frac_bits=frac_bits))
    inside = (W >= lo) & (W <= hi)
    assert np.all(err[inside] <= step / 2)
    assert np.all(err[W > hi] == (W - hi)[W > hi]) and np.all(err[W < lo] == (lo - W)[W < lo])


def test_best_frac_bits_exact():
    W = np.array([0.3, -0.2, 0.05])
    # F* = floor(log2(127 / 0.3)) = 8: 0.3 * 256 = 76.8 fits in int8; F = 9 would clip 0.3 to 0.248
    assert best_frac_bits(W, word_bits=8) == 8 == best_frac_bits_reference(W, word_bits=8)
    assert best_frac_bits(np.zeros(4), word_bits=8) == 7
    assert best_frac_bits(np.array([127 / 256]), word_bits=8) == 8  # exactly fills int8 at F = 8
    assert best_frac_bits(np.array([2.2e-313]), word_bits=2) == 64  # subnormal: capped at F = 64
    assert best_frac_bits(W, word_bits=8, frac_range=[0, 1, 2]) == 2


@settings(max_examples=40, deadline=None)
@given(weights.filter(lambda w: np.abs(w).max() > 0), st.integers(2, 16))
def test_best_frac_bits_matches_brute_force(W, word_bits):
    fast = best_frac_bits(W, word_bits=word_bits)
    ref = best_frac_bits_reference(W, word_bits=word_bits)
    assert fixed_point_mse(W, word_bits=word_bits, frac_bits=fast) == fixed_point_mse(
        W, word_bits=word_bits, frac_bits=ref)


def test_bytes_match_serialised_size():
    from thinlab.quant import pack_bits
    W = np.random.default_rng(1).normal(0, 0.1, size=(10, 7))
    codes = fixed_point_codes(W, word_bits=6, frac_bits=5)
    serialised = (np.asarray(W.shape, "<u4").tobytes() + np.int8(5).tobytes()
                  + pack_bits(codes.astype(np.int64) + 32, n_bits=6).tobytes())
    assert fixed_point_bytes(W.shape, word_bits=6) == len(serialised) == 53 + 1 + 8


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"word_bits=1 must be an integer in \[2, 32\]"):
        fixed_point(np.ones(3), word_bits=1, frac_bits=0)
    with pytest.raises(ValueError, match=r"frac_bits=65 must be an integer in \[-64, 64\]; use best_frac_bits"):
        fixed_point(np.ones(3), word_bits=8, frac_bits=65)
    with pytest.raises(ValueError, match="W has 1 NaN/inf value"):
        cast_int8(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="W has 2 NaN/inf value"):
        best_frac_bits(np.array([np.inf, -np.inf]), word_bits=8)
    with pytest.raises(TypeError, match="real numeric array"):
        fixed_point_codes(np.array(["a"]), word_bits=8, frac_bits=0)
    with pytest.raises(TypeError, match="dtype complex128"):
        cast_int8(np.array([1j]))
    with pytest.raises(ValueError, match="W is empty"):
        cast_int8(np.array([]))
    with pytest.raises(ValueError, match="frac_range is empty"):
        best_frac_bits(np.ones(2), word_bits=8, frac_range=[])
    with pytest.raises(ValueError, match=r"word_bits=True must be an integer"):
        best_frac_bits(np.ones(2), word_bits=True)
