"""k-means weight sharing: exact clusterings, agreement with plain Lloyd, monotone error, bytes, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from thinlab.quant import (
    KMeansResult, kmeans_bytes, kmeans_code_bits, kmeans_dequantize, kmeans_init, kmeans_lloyd_reference,
    kmeans_quantize, pack_bits,
)

weights = arrays(np.float32, array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=20),
                 elements=st.floats(-10, 10, allow_nan=False, width=32))


def test_two_clusters_exact():
    r = kmeans_quantize(np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0]), n_clusters=2)
    assert r.codebook.tolist() == [2.0, 11.0] and r.codes.tolist() == [0, 0, 0, 1, 1, 1]
    assert r.mse == pytest.approx(4 / 6) and r.codes.dtype == np.uint8 and r.codebook.dtype == np.float32


def test_empty_cluster_with_linear_init_but_not_density():
    W = np.array([0.0, 0.0, 1.0, 1.0, 10.0, 10.0])
    lin = kmeans_quantize(W, n_clusters=3, init="linear")  # starts at [0, 5, 10]: the middle one stays empty
    assert lin.codebook.tolist() == [0.5, 5.0, 10.0] and lin.mse == pytest.approx(1 / 6)
    assert np.bincount(lin.codes.ravel(), minlength=3).tolist() == [4, 0, 2]
    dens = kmeans_quantize(W, n_clusters=3, init="density")  # quantiles [0, 1, 10]: exact
    assert kmeans_init(W, n_clusters=3, init="density").tolist() == [0.0, 1.0, 10.0]
    assert dens.mse == 0.0 and np.array_equal(kmeans_dequantize(dens), W)


def test_inits():
    W = np.arange(11.0)
    assert kmeans_init(W, n_clusters=3, init="linear").tolist() == [0.0, 5.0, 10.0]
    r1 = kmeans_init(W, n_clusters=4, init="random", seed=3)
    assert np.array_equal(r1, kmeans_init(W, n_clusters=4, init="random", seed=3))
    assert len(set(r1.tolist())) == 4 and set(r1.tolist()) <= set(W.tolist()) and np.all(np.diff(r1) > 0)


@pytest.mark.parametrize("init", ["linear", "density", "random"])
@pytest.mark.parametrize("seed,k", [(0, 2), (1, 4), (2, 7), (3, 16)])
def test_agrees_with_plain_lloyd(init, seed, k):
    rng = np.random.default_rng(seed)
    W = np.concatenate([rng.normal(0, 0.05, 300), rng.normal(0.2, 0.01, 60)]).reshape(36, 10)  # (360,) → (36, 10)
    init_c = kmeans_init(W, n_clusters=k, init=init, seed=seed)
    fast = kmeans_quantize(W, n_clusters=k, init=init, seed=seed, n_iter=25, tol=0)
    codes, centroids = kmeans_lloyd_reference(W, init_centroids=init_c, n_iter=fast.n_iter)
    np.testing.assert_allclose(fast.codebook, centroids, rtol=1e-6)
    assert np.array_equal(fast.codes.ravel(), codes) and fast.codes.shape == W.shape


@settings(max_examples=80, deadline=None)
@given(weights, st.integers(1, 8), st.sampled_from(["linear", "density", "random"]), st.integers(0, 40))
def test_never_worse_than_init_and_monotone(W, k, init, n_iter):
    k = min(k, W.size)
    r = kmeans_quantize(W, n_clusters=k, init=init, n_iter=n_iter)
    assert r.mse <= r.init_mse
    # Lloyd's squared error never rises (up to float64 rounding of the prefix sums)
    h = np.array(r.history)
    assert np.all(h[1:] <= h[:-1] * (1 + 1e-12) + 1e-12)
    assert r.mse == pytest.approx(float(np.mean((W.astype(np.float64) - kmeans_dequantize(r)) ** 2)))
    assert np.all(np.diff(r.codebook) >= 0) and r.codes.max() < k and r.n_iter <= n_iter


@settings(max_examples=40, deadline=None)
@given(weights, st.integers(1, 8))
def test_codes_are_nearest_centroid(W, k):
    k = min(k, W.size)
    r = kmeans_quantize(W, n_clusters=k)
    dist = np.abs(W.astype(np.float64)[..., None] - r.codebook.astype(np.float64))  # (..., k)
    assert np.allclose(dist.min(axis=-1), np.take_along_axis(dist, r.codes[..., None].astype(int), -1)[..., 0])


def test_large_offset_small_spread():
    """Centred prefix sums: weights around 1000 with a 1e-3 spread still cluster exactly."""
    W = 1000.0 + np.random.default_rng(0).normal(0, 1e-3, 5000)
    r = kmeans_quantize(W, n_clusters=4, n_iter=30)
    direct = float(np.mean((W - r.codebook[r.codes].astype(np.float64)) ** 2))
    assert r.mse == pytest.approx(direct, rel=1e-9) and r.mse <= r.init_mse
    h = np.array(r.history)
    assert np.all(h[1:] <= h[:-1] * (1 + 1e-9))


def test_more_clusters_lower_error():
    W = np.random.default_rng(0).normal(0, 0.05, 20_000)
    mses = [kmeans_quantize(W, n_clusters=k).mse for k in (2, 4, 8, 16, 32)]
    assert all(b < a for a, b in zip(mses, mses[1:]))


@pytest.mark.parametrize("k", [1, 2, 3, 16, 17, 300])
def test_bytes_match_serialised_size(k):
    W = np.random.default_rng(k).normal(size=(25, 13))
    r = kmeans_quantize(W, n_clusters=k, n_iter=5)
    bits = kmeans_code_bits(k)
    serialised = (np.asarray(W.shape, "<u4").tobytes() + r.codebook.astype("<f4").tobytes()
                  + pack_bits(r.codes, n_bits=bits).tobytes())
    assert kmeans_bytes(r) == len(serialised)
    assert r.codes.dtype == (np.uint8 if k <= 256 else np.uint16)
    assert [kmeans_code_bits(n) for n in (1, 2, 3, 4, 5, 16, 17, 256, 257)] == [1, 1, 2, 2, 3, 4, 5, 8, 9]


def test_bad_inputs():
    W = np.arange(10.0)
    with pytest.raises(ValueError, match=r"n_clusters=0 must be an integer in \[1, 10\]; .*number of weights \(10\)"):
        kmeans_quantize(W, n_clusters=0)
    with pytest.raises(ValueError, match=r"n_clusters=11 must be an integer in \[1, 10\]"):
        kmeans_quantize(W, n_clusters=11)
    with pytest.raises(ValueError, match=r"init='kmeans\+\+'; choose one of \('linear', 'density', 'random'\)"):
        kmeans_quantize(W, n_clusters=2, init="kmeans++")
    with pytest.raises(ValueError, match=r"n_iter=-1 must be an integer in \[0, 100000\]"):
        kmeans_quantize(W, n_clusters=2, n_iter=-1)
    with pytest.raises(ValueError, match=r"tol=nan must be a finite number ≥ 0"):
        kmeans_quantize(W, n_clusters=2, tol=float("nan"))
    with pytest.raises(ValueError, match=r"tol=-0.1 must be a finite number ≥ 0"):
        kmeans_quantize(W, n_clusters=2, tol=-0.1)
    with pytest.raises(ValueError, match="seed=-1 must be an integer"):
        kmeans_quantize(W, n_clusters=2, init="random", seed=-1)
    with pytest.raises(ValueError, match="W has 1 NaN/inf"):
        kmeans_quantize(np.array([1.0, np.nan, 2.0]), n_clusters=2)
    with pytest.raises(TypeError, match="expected a KMeansResult"):
        kmeans_dequantize(W)
    assert isinstance(kmeans_quantize(W, n_clusters=2, n_iter=0), KMeansResult)
