"""Greedy multi-bit binarisation: exact values, monotone error, refinement, reference agreement, bytes."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from thinlab.quant import (
    MultiBit, multibit_bytes, multibit_dequantize, multibit_quantize, multibit_quantize_reference, pack_bits,
)

weights = arrays(np.float64, array_shapes(min_dims=1, max_dims=3, max_side=8),
                 elements=st.floats(-10, 10, allow_nan=False, allow_infinity=False))


def _sse(W, m):
    a = m.alphas.astype(np.float64).reshape((-1,) + (1,) * W.ndim)  # (n,) → (n, 1, ..., 1)
    return float(np.sum((W - (a * np.where(m.bits, 1.0, -1.0)).sum(0)) ** 2))


def test_exact_values():
    W = np.array([1.0, -3.0])
    m1 = multibit_quantize(W, n_bits=1, refine=False)
    assert m1.bits.tolist() == [[True, False]] and m1.alphas.tolist() == [2.0]
    assert multibit_dequantize(m1).tolist() == [2.0, -2.0]
    m2 = multibit_quantize(W, n_bits=2, refine=False)  # residual [-1, -1] → b2 = [-1, -1], α2 = 1
    assert m2.alphas.tolist() == [2.0, 1.0] and multibit_dequantize(m2).tolist() == [1.0, -3.0]
    assert multibit_quantize(np.zeros(3), n_bits=1).bits.all()  # sign(0) → +1


def test_refinement_beats_greedy_on_a_known_case():
    W = np.array([3.0, 1.0, -1.0, -3.0, 0.5])
    g = multibit_quantize(W, n_bits=2, refine=False)
    r = multibit_quantize(W, n_bits=2, refine=True)
    assert np.array_equal(g.bits, r.bits)  # refinement only re-solves the α
    assert _sse(W, r) < _sse(W, g)


@settings(max_examples=80, deadline=None)
@given(weights, st.booleans())
def test_error_non_increasing_with_bits(W, refine):
    errs = [_sse(W, multibit_quantize(W, n_bits=n, refine=refine)) for n in range(1, 7)]
    # exact in real arithmetic; the slack covers float32 α and float64 sums
    tol = 1e-9 * (float(np.sum(W ** 2)) + 1e-30)
    assert all(b <= a + tol for a, b in zip(errs, errs[1:]))


@settings(max_examples=80, deadline=None)
@given(weights, st.integers(1, 6), st.integers(1, 4))
def test_refinement_and_alternation_never_worse(W, n_bits, n_alt):
    tol = 1e-9 * (float(np.sum(W ** 2)) + 1e-30)
    greedy = _sse(W, multibit_quantize(W, n_bits=n_bits, refine=False))
    refined = _sse(W, multibit_quantize(W, n_bits=n_bits, refine=True))
    alternated = _sse(W, multibit_quantize(W, n_bits=n_bits, n_alternate=n_alt))
    assert refined <= greedy + tol and alternated <= refined + tol


@settings(max_examples=40, deadline=None)
@given(weights, st.integers(1, 5), st.booleans())
def test_agrees_with_reference(W, n_bits, refine):
    m = multibit_quantize(W, n_bits=n_bits, refine=refine)
    signs, alphas = multibit_quantize_reference(W, n_bits=n_bits, refine=refine)
    assert np.array_equal(np.where(m.bits, 1.0, -1.0).reshape(n_bits, -1), signs)  # (n, *shape) → (n, N)
    # both solve the same least-squares problem; compare the errors they reach
    ref_sse = float(np.sum((W.ravel() - alphas.astype(np.float64) @ signs) ** 2))
    assert _sse(W, m) == pytest.approx(ref_sse, rel=1e-6, abs=1e-9 * (float(np.sum(W ** 2)) + 1e-30))
    if not refine:
        assert np.array_equal(m.alphas, alphas)


def test_shapes_and_bytes():
    W = np.random.default_rng(0).normal(size=(7, 5, 3))
    m = multibit_quantize(W, n_bits=3)
    assert isinstance(m, MultiBit) and m.n_bits == 3 and m.bits.shape == (3, 7, 5, 3)
    assert m.alphas.dtype == np.float32 and multibit_dequantize(m).shape == W.shape
    planes = b"".join(pack_bits(b.ravel().astype(np.uint8), n_bits=1).tobytes() for b in m.bits)
    serialised = np.asarray(W.shape, "<u4").tobytes() + m.alphas.astype("<f4").tobytes() + planes
    assert multibit_bytes(m) == len(serialised) == 3 * 14 + 3 * 4 + 3 * 4


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"n_bits=0 must be an integer in \[1, 8\]; 1 = binary weights"):
        multibit_quantize(np.ones(4), n_bits=0)
    with pytest.raises(ValueError, match=r"n_bits=9 must be an integer in \[1, 8\]"):
        multibit_quantize(np.ones(4), n_bits=9)
    with pytest.raises(TypeError, match="refine=1 must be True or False"):
        multibit_quantize(np.ones(4), n_bits=2, refine=1)
    with pytest.raises(ValueError, match=r"n_alternate=-1 must be an integer"):
        multibit_quantize(np.ones(4), n_bits=2, n_alternate=-1)
    with pytest.raises(ValueError, match="W has 1 NaN/inf"):
        multibit_quantize(np.array([np.inf, 1.0]), n_bits=2)
    with pytest.raises(TypeError, match="expected a MultiBit"):
        multibit_dequantize(np.ones(3))
