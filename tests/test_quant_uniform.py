"""Uniform quantisation (asymmetric / symmetric, per tensor / per channel), serialisation and OMSE clipping."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from thinlab.quant import (
    QTensor, affine_params, candidate_sse, code_range, dequantize, omse_clip, omse_clip_reference,
    qtensor_from_bytes, qtensor_to_bytes, quantize_uniform, quantize_uniform_reference, quantized_bytes,
    symmetric_scale,
)

weights = arrays(np.float64, array_shapes(min_dims=1, max_dims=3, max_side=6),
                 elements=st.floats(-100, 100, allow_nan=False, allow_infinity=False))


def _bshape(q):
    shape = [1] * len(q.shape)
    if q.axis is not None:
        shape[q.axis] = q.shape[q.axis]
    return shape


def test_asymmetric_exact():
    q = quantize_uniform(np.array([-1.0, 0.0, 1.0, 2.0]), n_bits=2, symmetric=False)
    assert float(q.scale) == 1.0 and int(q.zero_point) == 1
    assert q.codes.tolist() == [0, 1, 2, 3] and q.codes.dtype == np.uint8
    assert dequantize(q).tolist() == [-1.0, 0.0, 1.0, 2.0] and dequantize(q).dtype == np.float32
    q = quantize_uniform(np.array([0.1, 0.2, 2.9]), n_bits=2, symmetric=False)  # range widened to [0, 2.9]
    assert q.codes.tolist() == [0, 0, 3] and int(q.zero_point) == 0
    assert quantize_uniform(np.arange(5.0), n_bits=9, symmetric=False).codes.dtype == np.uint16


def test_symmetric_and_per_channel_exact():
    q = quantize_uniform(np.array([-3.0, -1.0, 0.0, 1.4, 3.0]), n_bits=3, symmetric=True)
    assert code_range(n_bits=3, symmetric=True) == (-3, 3)
    assert float(q.scale) == 1.0 and q.codes.tolist() == [-3, -1, 0, 1, 3] and q.codes.dtype == np.int8
    W = np.array([[1.0, -2.0], [0.5, 0.25]])
    q = quantize_uniform(W, n_bits=2, symmetric=True, axis=0)  # qmax = 1: one level each side
    assert q.scale.tolist() == [2.0, 0.5] and q.codes.tolist() == [[0, -1], [1, 0]]  # 0.5 → 0 (ties to even)
    q = quantize_uniform(W, n_bits=2, symmetric=True, axis=-1)
    assert q.axis == 1 and q.scale.tolist() == [1.0, 2.0]


def test_zero_tensor_and_zero_channel():
    q = quantize_uniform(np.zeros((2, 3)), n_bits=4, symmetric=False)
    assert float(q.scale) == 1.0 and np.all(dequantize(q) == 0)
    W = np.array([[0.0, 0.0], [1.0, -1.0]])
    for sym in (True, False):
        q = quantize_uniform(W, n_bits=4, symmetric=sym, axis=0)
        assert np.all(dequantize(q)[0] == 0) and np.allclose(dequantize(q)[1], W[1], atol=q.scale[1] / 2)


@settings(max_examples=120, deadline=None)
@given(weights, st.integers(1, 16), st.booleans(), st.data())
def test_error_at_most_half_a_step(W, n_bits, symmetric, data):
    assume(not (symmetric and n_bits == 1))
    axis = data.draw(st.none() | st.integers(-W.ndim, W.ndim - 1))
    q = quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, axis=axis)
    s = q.scale.astype(np.float64).reshape(_bshape(q))  # () or (C,) → broadcastable along axis
    qmax = code_range(n_bits=n_bits, symmetric=symmetric)[1]
    # scale/2, plus the float32 storage of the scale (≤ 2**-24 relative, times up to qmax steps)
    # and of the dequantised value itself
    bound = s / 2 + s * qmax * 2.0 ** -23 + np.abs(W) * 2.0 ** -23
    assert np.all(np.abs(W - dequantize(q)) <= bound)
    lo, hi = code_range(n_bits=n_bits, symmetric=symmetric)
    assert q.codes.min() >= lo and q.codes.max() <= hi and q.shape == W.shape


@settings(max_examples=80, deadline=None)
@given(weights, st.integers(2, 8), st.booleans(), st.floats(0.05, 1.0))
def test_error_bound_inside_clip_range(W, n_bits, symmetric, frac):
    """With a clipping range, weights inside it still land within scale/2; outside they saturate."""
    if symmetric:
        clip = float(np.abs(W).max()) * frac
        assume(clip > 0)
        inside = np.abs(W) <= clip
    else:
        clip = (min(W.min(), 0.0) * frac, max(W.max(), 0.0) * frac)
        assume(clip[0] < clip[1])
        inside = (W >= clip[0]) & (W <= clip[1])
    q = quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, clip=clip)
    s = float(q.scale)
    err = np.abs(W - dequantize(q))
    assert np.all(err[inside] <= s / 2 + s * 2 ** n_bits * 2.0 ** -23 + np.abs(W[inside]) * 2.0 ** -23)


@settings(max_examples=60, deadline=None)
@given(weights, st.integers(2, 12), st.booleans(), st.data())
def test_agrees_with_reference(W, n_bits, symmetric, data):
    axis = data.draw(st.none() | st.integers(0, W.ndim - 1))
    q = quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, axis=axis)
    codes, scale, zp = quantize_uniform_reference(W, n_bits=n_bits, symmetric=symmetric, axis=axis)
    assert np.array_equal(q.codes, codes) and np.array_equal(q.scale, scale) and np.array_equal(q.zero_point, zp)


def test_bytes_exact():
    W = np.random.default_rng(0).normal(size=(10, 3))
    # 30 codes * 4 bits = 15 bytes; scale 4; zero point 1 (uint8); shape 2 * 4
    assert quantized_bytes(quantize_uniform(W, n_bits=4, symmetric=False)) == 15 + 4 + 1 + 8
    assert quantized_bytes(quantize_uniform(W, n_bits=4, symmetric=True)) == 15 + 4 + 8
    assert quantized_bytes(quantize_uniform(W, n_bits=4, symmetric=False, axis=0)) == 15 + 40 + 10 + 8
    assert quantized_bytes(quantize_uniform(W, n_bits=12, symmetric=False, axis=1)) == 45 + 12 + 6 + 8


@settings(max_examples=80, deadline=None)
@given(weights, st.integers(2, 16), st.booleans(), st.data())
def test_bytes_equal_serialised_and_round_trip(W, n_bits, symmetric, data):
    axis = data.draw(st.none() | st.integers(0, W.ndim - 1))
    q = quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, axis=axis)
    buf = qtensor_to_bytes(q)
    assert len(buf) == quantized_bytes(q)
    back = qtensor_from_bytes(buf, n_bits=n_bits, ndim=W.ndim, axis=axis, symmetric=symmetric)
    assert back.shape == q.shape and back.codes.dtype == q.codes.dtype
    assert np.array_equal(back.codes, q.codes) and np.array_equal(dequantize(back), dequantize(q))


def test_affine_params_vectorised():
    scale, zp = affine_params(np.array([-1.0, 0.5, 0.0]), np.array([2.0, 1.0, 0.0]), n_bits=2)
    assert scale.dtype == np.float32 and scale.tolist() == [1.0, np.float32(1 / 3), 1.0]
    assert zp.tolist() == [1, 0, 0]
    assert symmetric_scale(np.array([3.0, 0.0]), n_bits=3).tolist() == [1.0, 1.0]


def test_bad_inputs():
    W = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"n_bits=0 must be an integer in \[1, 16\]; e.g. n_bits=8"):
        quantize_uniform(W, n_bits=0, symmetric=False)
    with pytest.raises(ValueError, match=r"n_bits=17 must be an integer in \[1, 16\]"):
        quantize_uniform(W, n_bits=17, symmetric=True)
    with pytest.raises(ValueError, match="n_bits=1 with symmetric=True leaves only the level 0"):
        quantize_uniform(W, n_bits=1, symmetric=True)
    with pytest.raises(TypeError, match="symmetric='yes' must be True or False"):
        quantize_uniform(W, n_bits=4, symmetric="yes")
    with pytest.raises(ValueError, match=r"axis=2 must be None \(per tensor\) or an integer in \[-2, 1\]"):
        quantize_uniform(W, n_bits=4, symmetric=True, axis=2)
    with pytest.raises(ValueError, match="W has 1 NaN/inf"):
        quantize_uniform(np.array([1.0, np.inf]), n_bits=4, symmetric=True)
    with pytest.raises(ValueError, match=r"clip=-1.0: expected one number c ≥ 0"):
        quantize_uniform(W, n_bits=4, symmetric=True, clip=-1.0)
    with pytest.raises(ValueError, match=r"expected a pair \(lo, hi\) with lo ≤ hi"):
        quantize_uniform(W, n_bits=4, symmetric=False, clip=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"expected a pair \(lo, hi\)"):
        quantize_uniform(W, n_bits=4, symmetric=False, clip=0.5)
    with pytest.raises(ValueError, match=r"C=3 channels"):
        quantize_uniform(W, n_bits=4, symmetric=True, axis=0, clip=np.ones(4))
    with pytest.raises(TypeError, match="expected a QTensor"):
        dequantize(np.ones(3))
    q = quantize_uniform(W, n_bits=4, symmetric=True)
    with pytest.raises(ValueError, match="exceeds float32: rescale W first"):
        quantize_uniform(np.array([-1e300, 1e300]), n_bits=8, symmetric=False)
    with pytest.raises(ValueError, match="buffer has .* bytes, but shape"):
        qtensor_from_bytes(qtensor_to_bytes(q), n_bits=5, ndim=2, axis=None, symmetric=True)


# ---------------------------------------------------------------- OMSE


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=st.floats(-10, 10, allow_nan=False)),
       st.integers(1, 6), st.booleans(), st.data())
def test_candidate_sse_equals_direct_error(W, n_bits, symmetric, data):
    """The prefix-sum bucket formula gives the same squared error as quantise → dequantise."""
    assume(not (symmetric and n_bits == 1))
    c = data.draw(st.floats(0.01, 12))
    clip = c if symmetric else (-c * data.draw(st.floats(0, 1)), c)
    q = quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, clip=clip)
    w_hat = (q.codes.astype(np.float64) - q.zero_point.astype(np.float64)) * float(q.scale)
    direct = np.sum((W - w_hat) ** 2)
    one = (q.scale.reshape(1), q.zero_point.reshape(1))  # () → (1,): a single candidate
    fast = candidate_sse(np.sort(W), *one, n_bits=n_bits, symmetric=symmetric)
    assert fast[0] == pytest.approx(direct, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_omse_agrees_with_reference(symmetric, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_t(df=3, size=500) * 0.1
    for n_bits in (2, 3, 4):
        fast = omse_clip(W, n_bits=n_bits, symmetric=symmetric, n_candidates=40)
        ref = omse_clip_reference(W, n_bits=n_bits, symmetric=symmetric, n_candidates=40)
        assert fast == pytest.approx(ref, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(weights, st.integers(2, 8), st.booleans())
def test_omse_never_worse_than_min_max(W, n_bits, symmetric):
    clip = omse_clip(W, n_bits=n_bits, symmetric=symmetric, n_candidates=30)
    mse_omse = np.mean((W - dequantize(quantize_uniform(W, n_bits=n_bits, symmetric=symmetric, clip=clip))) ** 2)
    mse_full = np.mean((W - dequantize(quantize_uniform(W, n_bits=n_bits, symmetric=symmetric))) ** 2)
    assert mse_omse <= mse_full * (1 + 1e-9) + 1e-12


def test_omse_clips_outlier_and_per_channel():
    W = np.concatenate([np.linspace(-1, 1, 1001), [10.0]])
    c = omse_clip(W, n_bits=4, symmetric=True)
    # min/max: step 10/7 and most weights round to 0; clipping costs the outlier (10 - c)² but gives
    # the other 1001 weights a 3x finer step
    assert 2 <= c <= 5
    mse = [np.mean((W - dequantize(quantize_uniform(W, n_bits=4, symmetric=True, clip=clip))) ** 2)
           for clip in (c, None)]
    assert mse[0] < 0.5 * mse[1]
    W2 = np.stack([W, W * 0.01])  # (2, 1002)
    cs = omse_clip(W2, n_bits=4, symmetric=True, axis=0)
    assert cs.shape == (2,) and cs[0] == pytest.approx(c) and cs[1] == pytest.approx(c * 0.01)
    lo, hi = omse_clip(W2, n_bits=4, symmetric=False, axis=0)
    assert lo.shape == hi.shape == (2,) and np.all(lo < 0) and np.all(hi < 10 * np.array([1, 0.01]))
    q = quantize_uniform(W2, n_bits=4, symmetric=False, axis=0, clip=(lo, hi))
    assert isinstance(q, QTensor)


def test_omse_bad_inputs():
    with pytest.raises(ValueError, match=r"n_bits=9 must be an integer in \[2, 8\]; above 8 bits"):
        omse_clip(np.ones(3), n_bits=9, symmetric=True)
    with pytest.raises(ValueError, match=r"n_bits=1 must be an integer in \[2, 8\]"):
        omse_clip(np.ones(3), n_bits=1, symmetric=True)
    with pytest.raises(ValueError, match=r"n_candidates=0 must be an integer"):
        omse_clip(np.ones(3), n_bits=4, symmetric=False, n_candidates=0)
    with pytest.raises(ValueError, match="NaN/inf"):
        omse_clip(np.array([np.nan]), n_bits=4, symmetric=False)
