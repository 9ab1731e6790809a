"""The explorers: a slider move recomputes what the kernels compute and redraws the chart.

Each explorer is moved to two values through its slider (as a student would); the chart data
and the readout must change, and the numbers must equal the kernels' own. ``evaluate`` must be
called with the compressed weight (once per value). Bad inputs raise clear errors.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from thinlab.nn import methods

from thinlab.deepthin import deepthin_size, glorot_std, init_factors, reconstruct, unrelayout
from thinlab.lowrank import lowrank_bytes, ranks_sweep, truncated_svd
from thinlab.prune import csr_break_even_density, csr_bytes, magnitude_mask, magnitude_prune, masked_bytes
from thinlab.quant import (best_frac_bits, dequantize, fixed_point, fixed_point_bytes, kmeans_bytes,
                           kmeans_dequantize, kmeans_quantize, multibit_bytes, multibit_dequantize,
                           multibit_quantize, omse_clip, quantize_uniform, quantized_bytes)
from thinlab.widgets import bits_explorer, deepthin_explorer, prune_explorer, rank_explorer
from thinlab.widgets.plots import crop

VL5 = "application/vnd.vegalite.v5+json"


@pytest.fixture(scope="module")
def W() -> np.ndarray:
    return (np.random.default_rng(0).normal(size=(48, 40)) * 0.1).astype(np.float32)


class Spy:
    """An ``evaluate`` that records the weights it is given and returns a made-up accuracy."""

    def __init__(self):
        self.calls: list[np.ndarray] = []

    def __call__(self, weight):
        self.calls.append(np.array(weight, copy=True))
        return 0.5 + 0.4 * float(np.tanh(np.abs(weight).sum()))


def _move(ex, value):
    """Move the slider like a student would; return what the chart and readout then showed."""
    ex.slider.value = value
    return ex.spec["datasets"], ex.readout.value, dict(ex.state)


def _two_moves(ex, a, b):
    data_a, text_a, state_a = _move(ex, a)
    data_b, text_b, state_b = _move(ex, b)
    assert data_a != data_b, "the chart's data did not change with the slider"
    assert text_a != text_b, "the readout did not change with the slider"
    assert ex.chart.to_dict()["datasets"] == data_b  # the altair chart is the last one drawn, and validates
    return state_a, state_b


def _check_common(ex):
    assert ex.slider.continuous_update is False
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    # the chart sits in the Output as a display_data set directly (no output capture: see Explorer._draw)
    (shown,) = ex.output.outputs
    assert shown["output_type"] == "display_data" and shown["data"][VL5]["datasets"] == ex.spec["datasets"]
    assert shown["metadata"][VL5]["embed_options"]["renderer"] == "svg"
    assert ex.output.msg_id == ""


# ------------------------------------------------------------------ prune

def test_prune_explorer_moves_and_matches_kernels(W):
    spy = Spy()
    ex = prune_explorer(W, evaluate=spy, sparsity=0.5)
    _check_common(ex)
    s_a, s_b = _two_moves(ex, 0.3, 0.8)
    for s, state in ((0.3, s_a), (0.8, s_b)):
        pruned = magnitude_prune(W, sparsity=s)
        nnz = int(np.count_nonzero(pruned))
        assert state["nnz"] == nnz
        assert state["csr_bytes"] == csr_bytes(W.shape, nnz)
        assert state["masked_bytes"] == masked_bytes(W.shape, nnz)
        assert state["break_even_density"] == csr_break_even_density(W.shape)
        assert state["threshold"] == pytest.approx(float(np.abs(W[pruned == 0]).max()))
    assert f"{s_b['csr_bytes']:,} B" in ex.readout.value
    # the rules sit at ± the threshold, the mask image is the kept density
    assert ex.spec["datasets"]["threshold"] == [{"at": -s_b["threshold"]}, {"at": s_b["threshold"]}]
    kept = np.mean([r["value"] for r in ex.spec["datasets"]["mask"]])
    assert kept == pytest.approx(0.2, abs=0.02)
    # evaluate got the pruned weight, once per value (memoised)
    assert np.array_equal(spy.calls[-1], magnitude_prune(W, sparsity=0.8))
    n = len(spy.calls)
    ex.slider.value = 0.3
    assert len(spy.calls) == n and ex.state["accuracy"] == s_a["accuracy"]
    assert "accuracy" in ex.readout.value


def test_prune_mask_equals_kernel_with_ties_and_zeros():
    W = np.array([[0.0, 1.0, -1.0, 0.5], [0.5, -0.5, 0.0, 2.0], [1.0, 1.0, -2.0, 0.25]], dtype=np.float32)
    ex = prune_explorer(W, sparsity=0.0)
    for s in np.linspace(0, 0.99, 23):
        assert np.array_equal(ex.mask(s), magnitude_mask(W, sparsity=s)), s
        state = ex.update(float(s))
        assert state["nnz"] == np.count_nonzero(magnitude_prune(W, sparsity=s))


def test_update_moves_the_slider(W):
    ex = prune_explorer(W)
    ex.update(0.7)
    assert ex.slider.value == 0.7 and ex.state["sparsity"] == 0.7


# ------------------------------------------------------------------ rank

def test_rank_explorer_moves_and_matches_kernels(W):
    spy = Spy()
    ex = rank_explorer(W, evaluate=spy, rank=4)
    _check_common(ex)
    s_a, s_b = _two_moves(ex, 2, 12)
    sweep = {row["rank"]: row for row in ranks_sweep(W, ranks=[2, 12])}
    for k, state in ((2, s_a), (12, s_b)):
        assert state["relative_error"] == pytest.approx(sweep[k]["relative_error"], rel=1e-9, abs=1e-12)
        assert state["error"] == pytest.approx(sweep[k]["error"], rel=1e-9, abs=1e-12)
        assert state["bytes"] == lowrank_bytes(W.shape, k) == sweep[k]["bytes"]
        assert state["energy"] == pytest.approx(sweep[k]["energy"])
    A, B = truncated_svd(W, rank=12)
    np.testing.assert_allclose(spy.calls[-1], A @ B, atol=1e-5)
    corner = np.array([r["value"] for r in ex.spec["datasets"]["approx"]]).reshape(crop(W).shape)
    np.testing.assert_allclose(corner, crop(A @ B), atol=1e-5)
    assert ex.spec["datasets"]["rank"] == [{"at": 12.5}]
    assert s_b["relative_error"] < s_a["relative_error"]


# ------------------------------------------------------------------ deepthin

def test_deepthin_explorer_moves_and_matches_kernels(W):
    spy = Spy()
    ex = deepthin_explorer(W, evaluate=spy, factor=5)
    _check_common(ex)
    assert ex.factors == [f for f in (2, 3, 5, 7, 10, 15, 20) if f <= 1 / ex.lower_bound]
    s_a, s_b = _two_moves(ex, 2.0, 7.0)
    for f, state in ((2.0, s_a), (7.0, s_b)):
        size = deepthin_size(*W.shape, size_fraction=1 / f)
        assert (state["m"], state["n"], state["r"], state["gcd"]) == (size.m, size.n, size.r, size.gcd)
        assert state["bytes"] == size.bytes and state["size_fraction"] == size.size_fraction
        assert state["gcd"] == math.gcd(size.n, W.shape[0])
    # the weight handed to evaluate is the DeepThin reconstruction of the best rank-r fit of W_aux
    size = deepthin_size(*W.shape, size_fraction=1 / 7)
    sol = ex.solve(7.0)
    W_hat = reconstruct(sol["Xf"], sol["Wf"], Q=W.shape[0], R=W.shape[1])
    np.testing.assert_array_equal(spy.calls[-1], W_hat)
    assert s_b["relative_error"] == pytest.approx(np.linalg.norm(W - W_hat) / np.linalg.norm(W))
    s = np.linalg.svd(unrelayout(W, m=size.m, n=size.n).astype(np.float64), compute_uv=False)
    fit = np.linalg.norm(unrelayout(W, m=size.m, n=size.n) - sol["Xf"].astype(np.float64) @ sol["Wf"])
    assert fit == pytest.approx(np.sqrt((s[size.r:] ** 2).sum()), rel=1e-5)
    assert s_a["relative_error"] < s_b["relative_error"]
    # the n-rule toggle re-solves: "aligned" prefers n dividing Q
    ex.layout.value = "aligned"
    aligned = deepthin_size(*W.shape, size_fraction=1 / 7, layout="aligned")
    assert (ex.state["n"], ex.state["gcd"], ex.state["layout"]) == (aligned.n, aligned.gcd, "aligned")


def test_deepthin_explorer_from_a_shape_uses_the_paper_init():
    ex = deepthin_explorer((64, 48), factor=10, seed=3)
    size = deepthin_size(64, 48, size_fraction=0.1)
    Xf, Wf = init_factors(size.m, size.n, size.r, target_std=glorot_std(64, 48), rng=3)
    np.testing.assert_array_equal(ex.reconstruct(10), reconstruct(Xf, Wf, Q=64, R=48))
    assert "relative_error" not in ex.state and ex.state["r"] == size.r
    _two_moves(ex, 3.0, 20.0)


# ------------------------------------------------------------------ bits

def _kernel_bits(W, method, b):
    """(dequantised weight, bytes) straight from thinlab.quant."""
    if method in ("uniform", "omse"):
        clip = omse_clip(W, n_bits=b, symmetric=True) if method == "omse" else None
        q = quantize_uniform(W, n_bits=b, symmetric=True, clip=clip)
        return dequantize(q), quantized_bytes(q)
    if method == "kmeans":
        res = kmeans_quantize(W, n_clusters=2 ** b)
        return kmeans_dequantize(res), kmeans_bytes(res)
    if method == "fixed":
        F = best_frac_bits(W, word_bits=b)
        return fixed_point(W, word_bits=b, frac_bits=F), fixed_point_bytes(W.shape, word_bits=b)
    mb = multibit_quantize(W, n_bits=b)
    return multibit_dequantize(mb), multibit_bytes(mb)


@pytest.mark.parametrize("method", ["uniform", "omse", "kmeans", "fixed", "multibit"])
def test_bits_explorer_moves_and_matches_kernels(W, method):
    spy = Spy()
    ex = bits_explorer(W, method=method, evaluate=spy, n_bits=4)
    _check_common(ex)
    states = _two_moves(ex, 2, 6)
    for b, state in zip((2, 6), states):
        deq, nbytes = _kernel_bits(W, method, b)
        assert state["bytes"] == nbytes and state["n_bits"] == b
        assert state["method"] == methods.get(method).name     # "uniform" is the registry's alias of "uniform_sym"
        mse = float(np.mean((W.astype(np.float64) - deq) ** 2))
        assert state["mse"] == pytest.approx(mse, rel=1e-6)
        assert state["snr_db"] == pytest.approx(10 * np.log10(np.sum(W.astype(np.float64) ** 2) / (mse * W.size)))
    np.testing.assert_allclose(spy.calls[-1], deq.astype(np.float32), rtol=0, atol=1e-7)
    # every dequantised value is one of the levels drawn
    levels = np.array([r["at"] for r in ex.spec["datasets"]["levels"]])
    assert np.abs(deq.ravel()[:, None] - levels[None, :]).min(axis=1).max() < 1e-6
    assert states[1]["snr_db"] > states[0]["snr_db"]


def test_bits_method_menu_moves_the_slider_minimum(W):
    ex = bits_explorer(W, method="kmeans", n_bits=1)
    assert ex.state["n_bits"] == 1 and ex.slider.min == 1
    ex.method.value = "fixed"
    assert ex.slider.min == 2 and ex.slider.value == 2
    assert ex.state["method"] == "fixed" and ex.state["n_bits"] == 2
    assert ex.state["frac_bits"] == best_frac_bits(W, word_bits=2)


# ------------------------------------------------------------------ bad inputs

FACTORIES = [prune_explorer, rank_explorer, deepthin_explorer, bits_explorer]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("bad, err, words", [
    (np.ones(5, dtype=np.float32), ValueError, "2-D"),
    (np.ones((2, 3, 4), dtype=np.float32), ValueError, "2-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "inf"),
    (np.ones((3, 3), dtype=np.int64), TypeError, "float"),
    (np.ones((0, 3), dtype=np.float32), ValueError, "no elements"),
])
def test_bad_weights_raise_clear_errors(factory, bad, err, words):
    with pytest.raises(err, match=words):
        factory(bad)


@pytest.mark.parametrize("factory", FACTORIES)
def test_evaluate_must_be_callable_and_return_a_number(factory, W):
    with pytest.raises(TypeError, match="callable"):
        factory(W, evaluate=0.9)
    with pytest.raises(TypeError, match="one finite number"):
        factory(W, evaluate=lambda w: "90%")


def test_bad_slider_values_raise(W):
    with pytest.raises(ValueError, match="sparsity"):
        prune_explorer(W, sparsity=1.5)
    with pytest.raises(ValueError, match="rank"):
        rank_explorer(W, rank=41)
    with pytest.raises(ValueError, match="method"):
        bits_explorer(W, method="ternary")
    with pytest.raises(ValueError, match="n_bits"):
        bits_explorer(W, method="uniform", n_bits=1)
    with pytest.raises(ValueError, match="not one of"):
        deepthin_explorer(W, factor=4)
    with pytest.raises(ValueError, match="at most"):
        deepthin_explorer(W, factors=[1000, 5000])
    with pytest.raises(ValueError, match="> 1"):
        deepthin_explorer(W, factors=[0.5])
    with pytest.raises(ValueError, match="positive"):
        deepthin_explorer((0, 5))
    with pytest.raises(ValueError, match="layout"):
        deepthin_explorer(W, layout="square")
