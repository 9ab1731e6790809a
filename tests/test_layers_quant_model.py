"""Whole-model post-training quantisation and fake-quant fine-tuning (thinlab.experiments.quant_sweep):
the bytes are the kernels' byte formulas (and the serialised size), the dequantised weights are what
the model computes with, errors fall with bits, and the fake-quantised model starts where the
matching post-training quantiser is."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from thinlab import quant
from thinlab.nn import FakeQuant, compress, size_report
from thinlab.experiments import quant_sweep as qm
from thinlab.nn.weights import layer_weights
from thinlab.models import build_model
from thinlab.size import shape_bytes


@pytest.fixture()
def dnn():
    torch.manual_seed(0)
    return build_model("dnn", 3, n_frames=8, n_mels=4, hidden=(16, 12, 8)).eval()


def _x(n=6):
    return torch.randn(n, 8, 4, generator=torch.Generator().manual_seed(1))


def _W(shape=(40, 24), seed=0):
    return np.random.default_rng(seed).normal(0, 0.05, shape).astype(np.float32)


def _allowed(method):
    _, lo, hi = qm.METHODS[method]
    return [b for b in (1, 2, 3, 4, 8) if lo <= b <= hi]


@pytest.mark.parametrize("method", list(qm.METHODS))
def test_layer_bytes_codes_and_weights(method):
    W = _W()
    for b in _allowed(method):
        q = qm.quantize_layer(W, method=method, n_bits=b)
        assert q.W_hat.shape == W.shape and q.W_hat.dtype == np.float32
        assert q.codes.shape == W.shape and q.codes.min() >= 0 and q.codes.max() < q.n_symbols == 2 ** b
        assert 0 < q.code_bytes < q.bytes and q.side_bytes >= shape_bytes(W.shape)
        per_channel = q.W_hat.T if method.endswith("_channel") else [q.W_hat.ravel()]
        assert all(len(np.unique(col)) <= 2 ** b for col in per_channel)
        # the dequantised weight is a function of the stored code (one value per code, per channel)
        cols = [q.W_hat[:, j] for j in range(W.shape[1])] if method.endswith("_channel") else [q.W_hat.ravel()]
        codes = [q.codes[:, j] for j in range(W.shape[1])] if method.endswith("_channel") else [q.codes.ravel()]
        for w_hat, c in zip(cols, codes):
            for code in np.unique(c):
                assert np.ptp(w_hat[c == code]) == 0


def test_bytes_match_the_kernels_and_the_serialised_form():
    W = _W()
    for sym in (True, False):
        for axis, method in ((None, "uniform"), (1, "uniform")):
            key = f"uniform_{'sym' if sym else 'asym'}{'_channel' if axis is not None else ''}"
            q = qm.quantize_layer(W, method=key, n_bits=3)
            ref = quant.quantize_uniform(W, n_bits=3, symmetric=sym, axis=axis)
            assert q.bytes == quant.quantized_bytes(ref) == len(quant.qtensor_to_bytes(ref))
            np.testing.assert_array_equal(q.W_hat, quant.dequantize(ref))
    assert qm.quantize_layer(W, method="fixed", n_bits=4).bytes == quant.fixed_point_bytes(W.shape, word_bits=4)
    assert qm.quantize_layer(W, method="fixed", n_bits=4).detail["frac_bits"] == quant.best_frac_bits(W, word_bits=4)
    km = quant.kmeans_quantize(W, n_clusters=8)
    assert qm.quantize_layer(W, method="kmeans", n_bits=3).bytes == quant.kmeans_bytes(km)
    mb = quant.multibit_quantize(W, n_bits=2)
    q = qm.quantize_layer(W, method="multibit", n_bits=2)
    assert q.bytes == quant.multibit_bytes(mb)
    np.testing.assert_array_equal(q.W_hat, quant.multibit_dequantize(mb))


def test_huffman_bytes_are_the_encoded_stream_plus_table_plus_side_information():
    W = _W((64, 32))
    for method in ("uniform_asym", "kmeans", "fixed"):
        q = qm.quantize_layer(W, method=method, n_bits=4)
        payload, lengths = quant.huffman_encode(q.codes, n_symbols=q.n_symbols)
        assert q.huffman_bytes() == q.side_bytes - shape_bytes(W.shape) + len(payload) + len(lengths) + \
            shape_bytes(W.shape)
        assert quant.entropy_bits(q.codes) <= 8 * len(payload) <= quant.entropy_bits(q.codes) + q.codes.size + 8


@pytest.mark.parametrize("method", ["fixed", "uniform_sym", "uniform_asym_channel", "omse", "kmeans", "multibit"])
def test_error_falls_with_bits(method):
    W = {"a": _W()}
    errs = [qm.relative_error(W, qm.quantize_weights(W, method=method, n_bits=b)) for b in (2, 4, 8)]
    assert errs[0] > errs[1] > errs[2] >= 0


def test_omse_never_loses_to_the_min_max_range():
    W = {"a": _W()}
    for b in (2, 3, 4):
        plain = qm.relative_error(W, qm.quantize_weights(W, method="uniform_sym", n_bits=b))
        omse = qm.relative_error(W, qm.quantize_weights(W, method="omse", n_bits=b))
        assert omse <= plain + 1e-12


def test_bad_inputs_say_the_fix():
    W = _W()
    with pytest.raises(ValueError, match="choose one of"):
        qm.quantize_layer(W, method="int4", n_bits=4)
    with pytest.raises(ValueError, match=r"\[2, 16\]"):
        qm.quantize_layer(W, method="uniform_sym", n_bits=1)
    with pytest.raises(ValueError, match=r"\[1, 8\]"):
        qm.quantize_layer(W, method="multibit", n_bits=9)
    with pytest.raises(ValueError, match="2-D"):
        qm.quantize_layer(W.ravel(), method="kmeans", n_bits=2)
    with pytest.raises(ValueError, match="choose from"):
        qm.sweep(build_model("dnn", 3, n_frames=8, n_mels=4, hidden=(4,)), lambda m: 0.0, methods=["nope"])


def test_model_bytes_and_with_weights(dnn):
    W = layer_weights(dnn)
    dense = size_report(dnn).total_bytes
    assert qm.other_bytes(dnn) == dense - sum(4 * w.size for w in W.values())
    qz = qm.quantize_weights(W, method="kmeans", n_bits=2)
    assert qm.model_bytes(dnn, qz) == qm.other_bytes(dnn) + sum(q.bytes for q in qz.values())
    assert qm.model_bytes(dnn, qz, huffman=True) == qm.other_bytes(dnn) + sum(q.huffman_bytes() for q in qz.values())
    before = {n: w.copy() for n, w in W.items()}
    m = qm.with_weights(dnn, qz)
    for n, w in layer_weights(dnn).items():
        np.testing.assert_array_equal(w, before[n])  # the original is untouched
    for n, w in layer_weights(m).items():
        np.testing.assert_array_equal(w, qz[n].W_hat)
    with torch.no_grad():
        assert not torch.allclose(m(_x()), dnn(_x()))


def test_sweep_rows(dnn):
    calls = []
    rows = qm.sweep(dnn, lambda m: calls.append(m) or 0.5, methods=["uniform_sym", "kmeans"], bits=(1, 2, 4))
    assert [(r["method"], r["bits"]) for r in rows] == [("uniform_sym", 2), ("uniform_sym", 4), ("kmeans", 1),
                                                        ("kmeans", 2), ("kmeans", 4)]
    assert len(calls) == len(rows) and all(r["accuracy"] == 0.5 for r in rows)
    by = {(r["method"], r["bits"]): r for r in rows}
    assert by[("kmeans", 1)]["bytes"] < by[("kmeans", 2)]["bytes"] < by[("kmeans", 4)]["bytes"] < \
        size_report(dnn).total_bytes
    assert by[("kmeans", 4)]["relative_error"] < by[("kmeans", 1)]["relative_error"]


def test_fake_quant_finetune_starts_at_ptq_and_trains(dnn):
    W = layer_weights(dnn)
    ptq = qm.quantize_weights(W, method="uniform_sym_channel", n_bits=3)
    start = compress(dnn, method="quant", n_bits=3)
    assert all(isinstance(m.parametrizations.weight[0], FakeQuant) for m in (start.hidden[0], start.out))
    for n, w in layer_weights(start).items():
        np.testing.assert_allclose(w, ptq[n].W_hat, rtol=1e-6, atol=1e-8)
    assert size_report(start).total_bytes == qm.model_bytes(dnn, ptq)
    g = np.random.default_rng(0)
    X, y = g.normal(size=(48, 8, 4)).astype(np.float32), g.integers(0, 3, 48)
    tuned, hist = qm.fake_quant_finetune(dnn, X, y, n_bits=3, epochs=3, lr=1e-2, progress=False)
    assert len(hist.train_loss) == 3 and hist.train_loss[-1] < hist.train_loss[0]
    for n, w in layer_weights(dnn).items():
        np.testing.assert_array_equal(w, W[n])  # the float model is untouched
    for n, w in layer_weights(tuned).items():  # still on each row's 3-bit grid: ≤ 7 levels per output unit
        assert all(len(np.unique(w[:, j])) <= 7 for j in range(w.shape[1]))
    with pytest.raises(ValueError, match=r"\[2, 16\]"):
        qm.fake_quant_finetune(dnn, X, y, n_bits=1, epochs=1)
