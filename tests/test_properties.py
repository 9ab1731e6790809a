"""Property tests (issue 12): public entry points fed random shapes, dtypes and non-finite values give either a
correct result or a clear error raised by thinlab's own checks, never a traceback from inside numpy, torch,
soundfile or librosa, and never a non-finite result from finite input."""
from __future__ import annotations

import struct
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import thinlab
from thinlab import deepthin, hashednet, lowrank, prune, quant
from thinlab.data import FeatureParams, compute_features, load_audio, mix_noise, time_shift
from thinlab.nn import compress, load_compressed, save_compressed

THINLAB_DIR = Path(thinlab.__file__).resolve().parent
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_, np.complex64, object]
SETTINGS = dict(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


def outcome(fn, *args, **kwargs):
    """``(True, result)``, or ``(False, error)`` for a TypeError / ValueError that thinlab raised itself.

    Any other exception, or one raised from inside a library, fails the test with its traceback.
    """
    try:
        return True, fn(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = Path(frames[-1].filename).resolve()
        assert where.is_relative_to(THINLAB_DIR), "not a thinlab check:\n" + "".join(traceback.format_exception(exc))
        assert len(str(exc)) > 20, f"an error without an explanation: {exc!r}"
        return False, exc


@st.composite
def arrays(draw, *, min_dims=0, max_dims=3, max_side=6, dtypes=DTYPES):
    """A random array: any of ``dtypes``, any shape (including empty), sometimes with NaN / ±inf."""
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=min_dims, max_size=max_dims)))
    if shape and max_side > 6:  # only the last axis may be long (a clip), so arrays stay small
        shape = shape[:-1] + (draw(st.integers(0, max_side)),)
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = 10.0 ** draw(st.one_of(st.integers(-6, 6), st.sampled_from([-300, 4, 5, 38, 39, 300])))
    a = rng.standard_normal(shape) * scale
    n_bad = draw(st.sampled_from([0, 0, 0, 1, 2]))
    if n_bad and a.size:
        a.ravel()[rng.integers(0, a.size, n_bad)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    a = np.asarray(a)  # a 0-d draw is a numpy scalar: keep it an array
    if dtype is object:
        return np.asarray(a.astype(object), dtype=object)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(a.astype(dtype))


def nums(lo, hi):
    """Floats in [lo, hi], and sometimes NaN or ±inf."""
    return st.one_of(st.floats(lo, hi), st.sampled_from([float("nan"), float("inf"), float("-inf")]))


def is_clean_float(a) -> bool:
    a = np.asarray(a)
    return a.dtype.kind == "f" and a.size > 0 and bool(np.isfinite(a).all())


@settings(**SETTINGS)
@given(W=arrays(), sparsity=nums(-0.5, 1.5))
def test_magnitude_prune(W, sparsity):
    ok, out = outcome(prune.magnitude_prune, W, sparsity=sparsity)
    if ok:
        assert is_clean_float(W) and 0 <= sparsity < 1 and out.shape == W.shape and out.dtype == W.dtype
        assert int((out == 0).sum()) >= round(sparsity * W.size) and np.isfinite(out).all()
    else:
        assert not (is_clean_float(W) and 0 <= sparsity < 1)


@settings(**SETTINGS)
@given(W=arrays(min_dims=1, max_dims=3), rank=st.integers(-1, 7))
def test_truncated_svd(W, rank):
    ok, out = outcome(lowrank.truncated_svd, W, rank=rank)
    if ok:
        A, B = out
        assert W.ndim == 2 and A.shape == (W.shape[0], rank) and B.shape == (rank, W.shape[1])
        assert np.isfinite(A).all() and np.isfinite(B).all()  # no overflow to inf at W's dtype
    else:  # refused: bad input, or factors that would overflow W's dtype (float16 holds only 65504)
        fits = is_clean_float(W) and np.abs(W.astype(np.float64)).max() * np.sqrt(W.size) < np.finfo(W.dtype).max
        assert not (fits and W.ndim == 2 and 1 <= rank <= min(W.shape)), out


@settings(**SETTINGS)
@given(W=arrays(), n_bits=st.integers(0, 17), symmetric=st.booleans(), per_channel=st.booleans())
def test_quantize_uniform(W, n_bits, symmetric, per_channel):
    axis = 0 if per_channel and np.ndim(W) else None
    ok, q = outcome(quant.quantize_uniform, W, n_bits=n_bits, symmetric=symmetric, axis=axis)
    if ok:
        back = quant.dequantize(q)
        assert back.shape == np.shape(W) and np.isfinite(back).all()
        assert len(quant.qtensor_to_bytes(q)) == quant.quantized_bytes(q)
    else:  # refused: bad input, or a range whose step cannot be stored as a float32 scale
        real = np.asarray(W).dtype.kind in "fiu" and np.asarray(W).dtype != bool
        a = np.asarray(W, dtype=float) if real else None
        assert not (real and np.size(W) and np.isfinite(a).all() and np.abs(a).max() < np.finfo(np.float32).max / 4
                    and (2 if symmetric else 1) <= n_bits <= 16), q


@settings(**SETTINGS)
@given(W=arrays(), k=st.integers(-1, 12))
def test_kmeans(W, k):
    ok, res = outcome(quant.kmeans_quantize, W, n_clusters=k)
    if ok:
        assert res.codes.shape == np.shape(W) and np.isfinite(res.codebook).all()
        assert quant.kmeans_dequantize(res).shape == np.shape(W)


@settings(**SETTINGS)
@given(W=arrays(), n_bits=st.integers(0, 9))
def test_multibit(W, n_bits):
    ok, m = outcome(quant.multibit_quantize, W, n_bits=n_bits)
    if ok:
        assert quant.multibit_dequantize(m).shape == np.shape(W) and np.isfinite(m.alphas).all()


@settings(**SETTINGS)
@given(W=arrays())
def test_sparse_round_trips(W):
    ok, csr = outcome(prune.csr_encode, W)
    if ok:
        np.testing.assert_array_equal(prune.csr_decode(csr), W)
    ok, masked = outcome(prune.masked_encode, W)
    if ok:
        np.testing.assert_array_equal(prune.masked_decode(masked), W)


@settings(**SETTINGS)
@given(buckets=arrays(max_dims=2), Q=st.integers(-1, 5), R=st.integers(-1, 5), seed=st.integers(-2, 2**64))
def test_hashed_weight(buckets, Q, R, seed):
    ok, out = outcome(hashednet.hashed_weight, buckets, Q=Q, R=R, seed=seed)
    if ok:
        assert out.shape == (Q, R) and np.isfinite(out).all()


@settings(**SETTINGS)
@given(W=arrays(), word_bits=st.integers(0, 34), frac_bits=st.integers(-70, 70))
def test_fixed_point(W, word_bits, frac_bits):
    ok, out = outcome(quant.fixed_point, W, word_bits=word_bits, frac_bits=frac_bits)
    if ok:
        assert out.shape == np.shape(W) and np.isfinite(out).all()


@settings(**SETTINGS)
@given(codes=arrays(dtypes=[np.int64, np.uint16, np.float32, np.bool_]), n_bits=st.integers(0, 33))
def test_pack_bits(codes, n_bits):
    with np.errstate(invalid="ignore"):
        codes = np.abs(codes) if codes.dtype.kind == "i" else codes
    ok, packed = outcome(quant.pack_bits, codes, n_bits=n_bits)
    if ok:
        np.testing.assert_array_equal(quant.unpack_bits(packed, n_bits=n_bits, count=codes.size), codes.ravel())


@settings(**SETTINGS)
@given(Xf=arrays(min_dims=2, max_dims=2), Wf=arrays(min_dims=2, max_dims=2), Q=st.integers(-1, 6),
       R=st.integers(-1, 6))
def test_deepthin_reconstruct_and_relayout(Xf, Wf, Q, R):
    ok, W = outcome(deepthin.reconstruct, Xf, Wf, Q=Q, R=R)
    if ok:
        assert W.shape == (Q, R) and np.isfinite(W).all()
        m, n = Xf.shape[0], Wf.shape[1]
        back = deepthin.relayout(deepthin.unrelayout(W, m=m, n=n), Q=Q, R=R)
        np.testing.assert_array_equal(back, W)
    ok, W2 = outcome(deepthin.relayout, Xf, Q=Q, R=R)
    if ok:
        assert W2.shape == (Q, R)


@settings(**SETTINGS)
@given(audio=arrays(max_dims=3, max_side=1200), kind=st.sampled_from(["logmel", "mfcc"]))
def test_features(audio, kind):
    ok, out = outcome(compute_features, audio, FeatureParams(kind, n_fft=256, hop_length=128, n_mels=16))
    if ok:
        assert np.isfinite(out).all() and out.shape[-1] == (16 if kind == "logmel" else 13)


@settings(**SETTINGS)
@given(fmin=nums(-100, 9000), fmax=st.one_of(st.none(), nums(-100, 9000)),
       log_offset=nums(-1, 1), n_mels=st.integers(-1, 300),
       n_fft=st.integers(-1, 1024), hop=st.integers(-1, 1024), kind=st.sampled_from(["logmel", "mfcc", "x"]))
def test_feature_parameters(fmin, fmax, log_offset, n_mels, n_fft, hop, kind):
    ok, params = outcome(FeatureParams, kind, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax,
                         log_offset=log_offset, n_mfcc=min(13, max(n_mels, 1)))
    if ok:  # valid parameters: the features of speech-like noise and of silence are finite (never cached NaN)
        clip = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32) * 0.1
        clip[1] = 0
        ok, out = outcome(compute_features, clip, params)
        if ok:
            assert np.isfinite(out).all() and out.shape == (2, params.n_frames(16000), params.n_features)
        else:
            assert "n_mels" in str(out)  # the only refusal left: mel bands too narrow for n_fft


@settings(**SETTINGS)
@given(clip=arrays(max_dims=2, max_side=50), noise=arrays(max_dims=2, max_side=80),
       snr=nums(-200, 200), shift=st.one_of(st.integers(-100, 100), st.floats(-5, 5)))
def test_mix_noise_and_shift(clip, noise, snr, shift):
    ok, out = outcome(mix_noise, clip, noise, snr_db=snr, rng=np.random.default_rng(0))
    if ok:
        assert out.shape == clip.shape and out.dtype == np.float32 and np.abs(out).max() <= 1.0
    ok, out = outcome(time_shift, clip, shift)
    if ok:
        assert out.shape == clip.shape and np.isfinite(out).all()


@settings(**SETTINGS)
@given(body=st.binary(min_size=0, max_size=300), declared=st.integers(0, 2**32 - 1), sr=st.integers(0, 2**32 - 1),
       channels=st.integers(0, 4), bits=st.sampled_from([0, 8, 16, 24, 32, 7]),
       fmt=st.sampled_from([1, 3, 2, 0xFFFE]))
def test_load_audio_on_random_wav_bytes(tmp_path_factory, body, declared, sr, channels, bits, fmt):
    """A RIFF header with random fields over random bytes: a clean clip or an AudioError, nothing else."""
    block = max(1, channels * bits // 8)
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(body), b"WAVE", b"fmt ", 16, fmt, channels, sr,
                         (sr * block) & 0xFFFFFFFF, block & 0xFFFF, bits, b"data", declared)
    path = tmp_path_factory.mktemp("wav") / "x.wav"
    path.write_bytes(header + body)
    ok, y = outcome(load_audio, path)
    if ok:
        assert y.shape == (16000,) and y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 1.0


def _tiny(seed, nan):
    torch.manual_seed(seed)
    from thinlab.models import build_model

    model = build_model("dnn", 3, n_frames=4, n_mels=3, hidden=(6, 5))
    if nan:
        with torch.no_grad():
            model.hidden[1].weight[0, 0] = float(nan)
    return model


@settings(**{**SETTINGS, "max_examples": 40})
@given(method=st.sampled_from(["prune", "lowrank", "deepthin", "deepthin_shuffled", "hashed", "kmeans", "quant", "x"]),
       size_fraction=st.one_of(st.none(), nums(-0.5, 1.5), st.just("0.2")),
       n_bits=st.one_of(st.none(), st.integers(0, 17)), seed=st.integers(-1, 5),
       nan=st.sampled_from([None, None, "nan", "inf"]))
def test_compress_then_save_and_load(tmp_path_factory, method, size_fraction, n_bits, seed, nan):
    model = _tiny(seed=max(seed, 0), nan=nan)
    ok, small = outcome(compress, model, method=method, size_fraction=size_fraction, n_bits=n_bits, seed=seed)
    if not ok:
        return
    assert nan is None, "a non-finite weight must be refused"
    x = torch.randn(4, 4, 3, generator=torch.Generator().manual_seed(0))
    small.eval()
    with torch.no_grad():
        y = small(x)
    assert torch.isfinite(y).all()
    path = tmp_path_factory.mktemp("m") / "m.npz"
    save_compressed(small, path)
    with torch.no_grad():
        torch.testing.assert_close(load_compressed(path)(x), y, rtol=0, atol=0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = compress(_tiny(0, None), method="prune", size_fraction=0.5)
    path = tmp_path_factory.mktemp("saved") / "m.npz"
    save_compressed(model, path)
    return path.read_bytes()


@settings(**{**SETTINGS, "max_examples": 80})
@given(data=st.data())
def test_load_compressed_on_damaged_files(saved, tmp_path_factory, data):
    """Flipped bytes or a cut anywhere in a saved file: it loads (finite outputs) or a clear error."""
    blob = bytearray(saved)
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob)))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("dmg") / "m.npz"
    path.write_bytes(bytes(blob))
    ok, model = outcome(load_compressed, path)
    if ok:  # rare: the zip's CRC catches nearly every flip
        with torch.no_grad():
            assert torch.isfinite(model(torch.randn(2, 4, 3))).all()
