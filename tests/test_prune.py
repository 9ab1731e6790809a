"""Pruning kernels: exact counts, references, structured surgery, schedules, sparse storage bytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from thinlab import prune as P
from thinlab._validate import round_up
from thinlab.size import dense_bytes

sparsities = st.floats(0.0, 0.999, allow_nan=False)
# small integers as floats: exact norms and many ties, so tie-breaking is exercised
tied = st.integers(-3, 3).map(float)


def weights(dtype=np.float64, elements=None, **shape_kw):
    shape_kw = {"min_dims": 1, "max_dims": 4, "min_side": 1, "max_side": 6, **shape_kw}
    elements = st.floats(-10, 10, width=32) if elements is None else elements
    return arrays(dtype, array_shapes(**shape_kw), elements=elements)


# ---------------------------------------------------------------- magnitude


@given(W=weights(), sparsity=sparsities)
def test_magnitude_mask_prunes_exactly_round_sparsity_n_of_the_smallest(W, sparsity):
    mask = P.magnitude_mask(W, sparsity=sparsity)
    assert mask.shape == W.shape and mask.dtype == bool
    assert (~mask).sum() == round(sparsity * W.size)
    if mask.any() and (~mask).any():
        assert np.abs(W[~mask]).max() <= np.abs(W[mask]).min()


@given(W=weights(elements=tied), sparsity=sparsities)
def test_magnitude_mask_matches_loop_reference_including_ties(W, sparsity):
    np.testing.assert_array_equal(P.magnitude_mask(W, sparsity=sparsity),
                                  P.magnitude_mask_reference(W, sparsity=sparsity))


@given(W=weights(np.float32, elements=tied), sparsity=sparsities)
def test_magnitude_prune_zeros_only_pruned_entries_and_leaves_input_alone(W, sparsity):
    before = W.copy()
    out = P.magnitude_prune(W, sparsity=sparsity)
    mask = P.magnitude_mask(W, sparsity=sparsity)
    np.testing.assert_array_equal(W, before)
    assert out.dtype == W.dtype and out.shape == W.shape and out is not W
    np.testing.assert_array_equal(out[mask], W[mask])
    assert (out == 0).sum() == max(round(sparsity * W.size), int((W == 0).sum()))


def test_magnitude_prune_exact_values_and_tie_order():
    W = np.array([[0.1, -0.5], [0.3, -0.2]], dtype=np.float32)
    np.testing.assert_array_equal(P.magnitude_prune(W, sparsity=0.5), np.array([[0, -0.5], [0.3, 0]], np.float32))
    # equal magnitudes: the lower flat index is pruned first
    np.testing.assert_array_equal(P.magnitude_mask(np.array([1.0, -1.0, 1.0, 2.0]), sparsity=0.5),
                                  [False, False, True, True])
    assert P.n_pruned(10, sparsity=0.25) == 2  # round half to even: 2.5 → 2


def test_round_up_advice_really_suffices():
    assert round_up(0.0009771) == pytest.approx(0.000978)  # nearest would give 0.000977, too little
    assert round_up(0.078125) == pytest.approx(0.0782) and round_up(0.5) == 0.5


def test_keep_largest_drops_exactly_n_drop():
    scores = np.array([5.0, 1.0, 1.0, 3.0, 1.0])
    np.testing.assert_array_equal(P.keep_largest(scores, n_drop=2), [True, False, False, True, True])
    np.testing.assert_array_equal(P.keep_largest(scores, n_drop=0), np.ones(5, bool))


layer_dicts = st.dictionaries(st.sampled_from(["conv", "fc1", "fc2", "out"]),
                              weights(elements=tied, max_dims=3, max_side=5), min_size=1)


@given(layers=layer_dicts, sparsity=sparsities)
def test_global_magnitude_mask_one_threshold_exact_total_and_reference(layers, sparsity):
    masks = P.global_magnitude_mask(layers, sparsity=sparsity)
    assert list(masks) == list(layers)
    total = sum(W.size for W in layers.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * total)
    pruned = np.concatenate([np.abs(layers[k][~m]) for k, m in masks.items()])
    kept = np.concatenate([np.abs(layers[k][m]) for k, m in masks.items()])
    if pruned.size and kept.size:
        assert pruned.max() <= kept.min()
    reference = P.global_magnitude_mask_reference(layers, sparsity=sparsity)
    for name in layers:
        np.testing.assert_array_equal(masks[name], reference[name])


def test_global_magnitude_prune_exact_values_differs_from_per_layer():
    layers = {"a": np.array([1.0, -2.0, 3.0, 4.0]), "b": np.array([[10.0, 0.5], [-30.0, 40.0]])}
    out = P.global_magnitude_prune(layers, sparsity=0.5)
    np.testing.assert_array_equal(out["a"], [0.0, 0.0, 0.0, 4.0])
    np.testing.assert_array_equal(out["b"], [[10.0, 0.0], [-30.0, 40.0]])
    # per layer, each loses half: a keeps 3.0 and b gives up 10.0, which the global threshold keeps
    np.testing.assert_array_equal(P.magnitude_prune(layers["a"], sparsity=0.5), [0.0, 0.0, 3.0, 4.0])
    np.testing.assert_array_equal(P.magnitude_prune(layers["b"], sparsity=0.5), [[0.0, 0.0], [-30.0, 40.0]])


@pytest.mark.parametrize("sparsity, match", [
    (1.0, r"sparsity=1.0 must be in \[0, 1\); pass the fraction of weights to zero"),
    (-0.1, r"must be in \[0, 1\)"), (float("nan"), r"sparsity=nan must be in"),
    (True, "must be a real number"), ("0.5", "must be a real number")])
def test_magnitude_prune_rejects_bad_sparsity(sparsity, match):
    with pytest.raises((ValueError, TypeError), match=match):
        P.magnitude_prune(np.ones(4), sparsity=sparsity)


@pytest.mark.parametrize("W, match", [
    (np.arange(4), r"W has dtype int64; expected a float array .* W\.astype\(np.float32\)"),
    (np.array([1.0, np.nan, np.inf]), "contains 1 NaN and 1 inf values; expected finite weights"),
    (np.zeros((0, 3)), "no elements"), ([[True]], "dtype bool")])
def test_magnitude_prune_rejects_bad_weights(W, match):
    with pytest.raises((ValueError, TypeError), match=match):
        P.magnitude_prune(W, sparsity=0.5)


def test_global_prune_rejects_empty_or_non_dict():
    with pytest.raises(TypeError, match="non-empty dict name → array, got an empty dict"):
        P.global_magnitude_prune({}, sparsity=0.5)
    with pytest.raises(TypeError, match="non-empty dict name → array, got a list"):
        P.global_magnitude_prune([np.ones(3)], sparsity=0.5)
    with pytest.raises(TypeError, match=r"weights\['b'\] has dtype int64"):
        P.global_magnitude_prune({"a": np.ones(3), "b": np.ones(3, int)}, sparsity=0.5)


def test_sensitivity_scan_prunes_one_layer_at_a_time():
    layers = {"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([10.0, 20.0])}
    seen = []

    def evaluate(w):
        seen.append({k: int((v == 0).sum()) for k, v in w.items()})
        return float(sum(v.sum() for v in w.values()))

    rows = P.sensitivity_scan(layers, evaluate, sparsities=[0.0, 0.5])
    assert rows == [{"layer": "a", "sparsity": 0.0, "score": 40.0}, {"layer": "a", "sparsity": 0.5, "score": 37.0},
                    {"layer": "b", "sparsity": 0.0, "score": 40.0}, {"layer": "b", "sparsity": 0.5, "score": 30.0}]
    assert seen[1] == {"a": 2, "b": 0} and seen[3] == {"a": 0, "b": 1}
    np.testing.assert_array_equal(layers["a"], [1, 2, 3, 4])  # inputs untouched
    assert [r["layer"] for r in P.sensitivity_scan(layers, evaluate, sparsities=0.5, layers=["b"])] == ["b"]


def test_sensitivity_scan_bad_inputs():
    layers = {"a": np.ones(3)}
    with pytest.raises(TypeError, match="evaluate must be a callable"):
        P.sensitivity_scan(layers, 0.9, sparsities=[0.5])
    with pytest.raises(KeyError, match=r"layers \['c'\] are not in weights"):
        P.sensitivity_scan(layers, len, sparsities=[0.5], layers=["c"])
    with pytest.raises(ValueError, match=r"each of sparsities=1.5 must be in \[0, 1\)"):
        P.sensitivity_scan(layers, len, sparsities=[0.5, 1.5])
    with pytest.raises(TypeError, match=r"evaluate returned 'good'; expected one number per weight dict"):
        P.sensitivity_scan(layers, lambda w: "good", sparsities=[0.5])


# ---------------------------------------------------------------- structured

norms = st.sampled_from(["l1", "l2"])


@st.composite
def mlp(draw):
    """(W1 (Q, H), b1 (H,) or None, W2 (H, R), keep) with integer-valued weights so norms are exact."""
    Q, H, R = (draw(st.integers(1, 5)) for _ in range(3))
    W1 = draw(arrays(np.float64, (Q, H), elements=tied))
    b1 = draw(st.none() | arrays(np.float32, (H,), elements=tied))
    return W1, b1, draw(arrays(np.float64, (H, R), elements=tied)), draw(st.integers(1, H))


@given(net=mlp(), norm=norms)
def test_prune_neurons_matches_loop_reference(net, norm):
    W1, b1, W2, keep = net
    got = P.prune_neurons(W1, b1, W2, keep=keep, norm=norm)
    want = P.prune_neurons_reference(W1, b1, W2, keep=keep, norm=norm)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, w)
            assert g.dtype == w.dtype
    assert got[0].shape == (W1.shape[0], keep) and got[2].shape == (keep, W2.shape[1])


@given(seed=st.integers(0, 2**16), n_dead=st.integers(1, 4))
def test_prune_neurons_removing_dead_units_keeps_the_network_output(seed, n_dead):
    rng = np.random.default_rng(seed)
    W1, b1, W2, X = rng.normal(size=(6, 8)), rng.normal(size=8), rng.normal(size=(8, 3)), rng.normal(size=(5, 6))
    dead = rng.choice(8, n_dead, replace=False)
    W1[:, dead], b1[dead] = 0.0, 0.0
    W1p, b1p, W2p, kept = P.prune_neurons(W1, b1, W2, sparsity=n_dead / 8)
    np.testing.assert_array_equal(kept, np.setdiff1d(np.arange(8), dead))
    np.testing.assert_allclose(np.maximum(X @ W1p + b1p, 0) @ W2p, np.maximum(X @ W1 + b1, 0) @ W2, atol=1e-12)


def test_prune_neurons_exact_choice_by_norm():
    W1 = np.array([[3.0, 1.0, -2.0], [0.0, 1.0, 2.0]])  # column L1 norms 3, 2, 4; L2 norms 3, 1.41, 2.83
    b1, W2 = np.array([0.1, 0.2, 0.3]), np.arange(6.0).reshape(3, 2)
    W1p, b1p, W2p, kept = P.prune_neurons(W1, b1, W2, keep=2, norm="l1")
    np.testing.assert_array_equal(kept, [0, 2])
    np.testing.assert_array_equal(W1p, [[3.0, -2.0], [0.0, 2.0]])
    np.testing.assert_array_equal(b1p, [0.1, 0.3])
    np.testing.assert_array_equal(W2p, [[0.0, 1.0], [4.0, 5.0]])
    np.testing.assert_array_equal(P.prune_neurons(W1, None, W2, keep=1, norm="l2")[3], [0])


@pytest.mark.parametrize("kwargs, match", [
    ({}, "pass exactly one: keep="), ({"keep": 2, "sparsity": 0.5}, "pass exactly one"),
    ({"keep": 0}, r"keep=0 must be in \[1, 3\]"), ({"keep": 4}, r"keep=4 must be in \[1, 3\]"),
    ({"keep": 1.5}, "keep=1.5 must be an integer"), ({"sparsity": 0.9}, "would remove all 3 hidden units"),
    ({"keep": 1, "norm": "l3"}, r"norm='l3' is not one of \('l1', 'l2'\)")])
def test_prune_neurons_rejects_bad_parameters(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        P.prune_neurons(np.ones((2, 3)), np.ones(3), np.ones((3, 4)), **kwargs)


def test_prune_neurons_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"W2 has shape \(4, 3\) but W1 \(2, 3\) has H=3 .*\(transpose a torch"):
        P.prune_neurons(np.ones((2, 3)), None, np.ones((4, 3)), keep=1)
    with pytest.raises(ValueError, match="b1 has 2 entries but the layer has 3 units"):
        P.prune_neurons(np.ones((2, 3)), np.ones(2), np.ones((3, 4)), keep=1)
    with pytest.raises(ValueError, match=r"W1 has shape \(6,\) \(1-D\); expected a 2-D array \(Q, H\)"):
        P.prune_neurons(np.ones(6), None, np.ones((3, 4)), keep=1)


@st.composite
def convnet(draw):
    """(conv_w (C, C_in, 2, 2), conv_b, next_w conv or dense, spatial, keep) with integer-valued weights."""
    C, C_in, spatial = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    conv_w = draw(arrays(np.float32, (C, C_in, 2, 2), elements=tied))
    conv_b = draw(st.none() | arrays(np.float32, (C,), elements=tied))
    next_shape = draw(st.sampled_from([(3, C, 1, 2), (C * spatial, 2)]))
    next_w = draw(arrays(np.float32, next_shape, elements=tied))
    return conv_w, conv_b, next_w, spatial, draw(st.integers(1, C))


@given(net=convnet(), norm=norms)
def test_prune_channels_matches_loop_reference(net, norm):
    conv_w, conv_b, next_w, spatial, keep = net
    got = P.prune_channels(conv_w, conv_b, next_w, keep=keep, norm=norm, spatial=spatial)
    want = P.prune_channels_reference(conv_w, conv_b, next_w, keep=keep, norm=norm, spatial=spatial)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("next_kind", ["conv", "dense"])
def test_prune_channels_removing_dead_filters_keeps_the_torch_output(next_kind):
    """Surgery on a real torch conv stack: flatten order and input-channel slicing must match torch's."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 6, 3)
    dead = [1, 4]
    with torch.no_grad():
        conv.weight[dead], conv.bias[dead] = 0.0, 0.0
    x = torch.randn(4, 2, 10, 10)
    h = torch.nn.functional.max_pool2d(torch.relu(conv(x)), 2)  # (4, 6, 4, 4)
    if next_kind == "conv":
        nxt = torch.nn.Conv2d(6, 3, 3)
        next_w, spatial = nxt.weight.detach().numpy(), 1
        run = nxt
    else:
        nxt = torch.nn.Linear(6 * 16, 5)
        next_w, spatial = nxt.weight.detach().numpy().T, 16  # torch (out, in) → (Q, R) = (in, out)
        run = lambda t: nxt(torch.flatten(t, 1))  # noqa: E731
    cw, cb, nw, kept = P.prune_channels(conv.weight.detach().numpy(), conv.bias.detach().numpy(), next_w,
                                        keep=4, spatial=spatial)
    np.testing.assert_array_equal(kept, [0, 2, 3, 5])
    small = torch.nn.Conv2d(2, 4, 3)
    with torch.no_grad():
        small.weight.copy_(torch.from_numpy(cw))
        small.bias.copy_(torch.from_numpy(cb))
    hs = torch.nn.functional.max_pool2d(torch.relu(small(x)), 2)
    if next_kind == "conv":
        out = torch.nn.functional.conv2d(hs, torch.from_numpy(nw), nxt.bias)
    else:
        out = torch.flatten(hs, 1) @ torch.from_numpy(nw) + nxt.bias
    torch.testing.assert_close(out, run(h), rtol=0, atol=1e-5)


def test_prune_channels_rejects_mismatched_next_layer():
    conv_w = np.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"next_w has Q=36 rows but C \* spatial = 4 \* 1 = 4; pass spatial=9"):
        P.prune_channels(conv_w, None, np.ones((36, 5)), keep=2)
    with pytest.raises(ValueError, match="pass the dense layer that reads this conv's flattened output"):
        P.prune_channels(conv_w, None, np.ones((37, 5)), keep=2)
    with pytest.raises(ValueError, match=r"the next conv must read them as its input channels, shape \(C2, 4"):
        P.prune_channels(conv_w, None, np.ones((8, 3, 3, 3)), keep=2)
    with pytest.raises(ValueError, match=r"next_w has shape \(4, 2, 2\) \(3-D\); expected the next conv"):
        P.prune_channels(conv_w, None, np.ones((4, 2, 2)), keep=2)
    with pytest.raises(ValueError, match=r"conv_w has shape \(4, 18\) \(2-D\); expected a 4-D array \(out, in"):
        P.prune_channels(np.ones((4, 18)), None, np.ones((4, 5)), keep=2)
    with pytest.raises(ValueError, match="spatial=0 must be ≥ 1"):
        P.prune_channels(conv_w, None, np.ones((4, 5)), keep=2, spatial=0)


# ---------------------------------------------------------------- schedules


@st.composite
def agp(draw):
    final = draw(st.floats(0.0, 0.99))
    begin = draw(st.integers(0, 20))
    return {"final_sparsity": final, "initial_sparsity": draw(st.floats(0.0, final)), "begin_step": begin,
            "end_step": begin + draw(st.integers(1, 30)), "frequency": draw(st.integers(1, 7)),
            "power": draw(st.sampled_from([1, 2, 3, 0.5]))}


@given(params=agp())
def test_polynomial_sparsity_matches_reference_and_rises(params):
    steps = np.arange(params["end_step"] + 10)
    got = P.polynomial_sparsity(steps, **params)
    want = [P.polynomial_sparsity_reference(int(t), **params) for t in steps]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert got.shape == steps.shape and (np.diff(got[params["begin_step"]:]) >= 0).all()
    assert got[params["end_step"]] == params["final_sparsity"]


def test_polynomial_sparsity_exact_values():
    kw = {"final_sparsity": 0.8, "begin_step": 10, "end_step": 20}
    assert P.polynomial_sparsity(9, **kw) == 0.0  # still dense before begin_step
    assert P.polynomial_sparsity(10, **kw) == 0.0  # initial_sparsity
    assert P.polynomial_sparsity(15, **kw) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    assert P.polynomial_sparsity(25, **kw) == 0.8
    # frequency=4: updates at 10, 14, 18; step 17 holds the value set at 14
    assert P.polynomial_sparsity(17, frequency=4, **kw) == pytest.approx(0.8 * (1 - 0.6 ** 3))
    assert isinstance(P.polynomial_sparsity(np.int64(12), **kw), float)


def test_interval_sparsity_exact_values_and_reference():
    steps = np.arange(12).reshape(3, 4)  # any shape of steps
    got = P.interval_sparsity(steps, final_sparsity=0.9, n_steps=3, interval=2)
    np.testing.assert_allclose(got, [[0, 0, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9]])
    want = [[P.interval_sparsity_reference(int(t), final_sparsity=0.9, n_steps=3, interval=2) for t in row]
            for row in steps]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert P.interval_sparsity(5, final_sparsity=0.5, n_steps=1, interval=5) == 0.5


@given(final=st.floats(0, 0.99), n_steps=st.integers(1, 10), interval=st.integers(1, 50))
def test_interval_sparsity_matches_reference(final, n_steps, interval):
    steps = np.arange(n_steps * interval + 5)
    want = [P.interval_sparsity_reference(int(t), final_sparsity=final, n_steps=n_steps, interval=interval)
            for t in steps]
    got = P.interval_sparsity(steps, final_sparsity=final, n_steps=n_steps, interval=interval)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


@pytest.mark.parametrize("step, kwargs, match", [
    (1.5, {}, "step has dtype float64; expected integer training steps"),
    (np.array([3, -1]), {}, "step contains -1; expected steps ≥ 0"),
    (0, {"end_step": 10}, "end_step=10 must be ≥ 11; end_step must come after begin_step=10"),
    (0, {"initial_sparsity": 0.9}, r"initial_sparsity=0.9 must be in \[0, 0.5\]"),
    (0, {"frequency": 0}, "frequency=0 must be ≥ 1"), (0, {"power": 0}, r"power=0.0 must be in \(0, inf\]"),
    (0, {"final_sparsity": 1.0}, r"final_sparsity=1.0 must be in \[0, 1\)")])
def test_polynomial_sparsity_rejects_bad_inputs(step, kwargs, match):
    kw = {"final_sparsity": 0.5, "begin_step": 10, "end_step": 20, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        P.polynomial_sparsity(step, **kw)


def test_interval_sparsity_rejects_bad_inputs():
    with pytest.raises(ValueError, match="n_steps=0 must be ≥ 1; pass how many equal increments"):
        P.interval_sparsity(3, final_sparsity=0.5, n_steps=0, interval=2)
    with pytest.raises(TypeError, match="interval=2.0 must be an integer"):
        P.interval_sparsity(3, final_sparsity=0.5, n_steps=2, interval=2.0)


# ---------------------------------------------------------------- sparse storage

sparse_2d = arrays(np.float32, array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                   elements=st.sampled_from([0.0, 0.0, 0.0, 1.5, -2.0]))


@given(W=sparse_2d)
def test_csr_round_trip_bytes_and_reference(W):
    csr = P.csr_encode(W)
    np.testing.assert_array_equal(P.csr_decode(csr), W)
    assert csr.nnz == np.count_nonzero(W)
    assert P.csr_bytes(W.shape, csr.nnz, value_dtype=W.dtype) == csr.nbytes
    assert csr.nbytes == csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes + 8
    ref = P.csr_encode_reference(W)
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(csr, name), getattr(ref, name))
        assert getattr(csr, name).dtype == getattr(ref, name).dtype


def test_csr_exact_arrays_and_bytes():
    csr = P.csr_encode(np.array([[0, 2, 0], [0, 0, 0], [3, 0, 4]], dtype=np.float32))
    np.testing.assert_array_equal(csr.data, [2, 3, 4])
    np.testing.assert_array_equal(csr.indices, [1, 0, 2])
    np.testing.assert_array_equal(csr.indptr, [0, 1, 1, 3])
    assert (csr.indices.dtype, csr.indptr.dtype, csr.shape) == (np.uint8, np.uint8, (3, 3))
    assert P.csr_bytes((3, 3), 3) == 3 * 4 + 3 * 1 + 4 * 1 + 8 == csr.nbytes


def test_csr_index_widths_grow_at_the_real_boundaries():
    assert P.csr_bytes((1, 256), 1) == 4 + 1 + 2 + 8  # columns 0..255 fit uint8
    assert P.csr_bytes((1, 257), 1) == 4 + 2 + 2 + 8  # column 256 needs uint16
    assert P.csr_bytes((1, 300), 255) - P.csr_bytes((1, 300), 254) == 6  # row pointer still uint8
    assert P.csr_bytes((1, 300), 256) - P.csr_bytes((1, 300), 255) == 6 + 2  # pointers become uint16
    assert P.csr_encode(np.ones((1, 256), np.float32)).indices.dtype == np.uint8
    assert P.csr_encode(np.ones((1, 257), np.float32)).indices.dtype == np.uint16
    W = np.zeros((2, 300), np.float32)
    W.ravel()[:255] = 1
    assert P.csr_encode(W).indptr.dtype == np.uint8
    W.ravel()[255] = 1
    assert P.csr_encode(W).indptr.dtype == np.uint16


@settings(max_examples=40)
@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 40)), dtype=st.sampled_from(["float32", "float16"]))
def test_csr_break_even_density_is_the_largest_fitting_density(shape, dtype):
    dense = dense_bytes(shape, dtype=dtype)
    assume(P.csr_bytes(shape, 0, value_dtype=dtype) <= dense)
    d = P.csr_break_even_density(shape, value_dtype=dtype)
    nnz = round(d * shape[0] * shape[1])
    assert P.csr_bytes(shape, nnz, value_dtype=dtype) <= dense
    if nnz < shape[0] * shape[1]:
        assert P.csr_bytes(shape, nnz + 1, value_dtype=dtype) > dense
    assert d == P.csr_break_even_density_reference(shape, value_dtype=dtype)


def test_csr_break_even_density_exact_and_too_small_layers():
    # 256 columns → uint8 column indices: 5 bytes per nonzero; (256*256*4 - 8 - 257*2) // 5 = 52324
    assert P.csr_break_even_density((256, 256)) == 52324 / 65536
    with pytest.raises(ValueError, match=r"CSR never fits in the 4 dense bytes .* store such a small layer dense"):
        P.csr_break_even_density((1, 1))


@given(W=arrays(np.float64, array_shapes(min_dims=1, max_dims=4, max_side=7),
                elements=st.sampled_from([0.0, 0.0, 1.0, -3.25])))
def test_masked_round_trip_bytes_and_reference(W):
    m = P.masked_encode(W)
    np.testing.assert_array_equal(P.masked_decode(m), W)
    assert P.masked_bytes(W.shape, np.count_nonzero(W), value_dtype=W.dtype) == m.nbytes
    ref = P.masked_encode_reference(W)
    np.testing.assert_array_equal(m.bits, ref.bits)
    np.testing.assert_array_equal(m.values, ref.values)


def test_masked_exact_bits_and_bytes():
    m = P.masked_encode(np.array([0, 1, 0, 0, 0, 0, 0, 0, 2], dtype=np.float32))
    np.testing.assert_array_equal(m.bits, [0b01000000, 0b10000000])
    assert P.masked_bytes((9,), 2) == 2 * 4 + 2 + 4 == m.nbytes


@pytest.mark.parametrize("call, match", [
    (lambda: P.csr_encode(np.ones((2, 3, 3, 3))), r"reshape a conv weight \(out, in, kh, kw\) to \(out, in \* kh"),
    (lambda: P.csr_bytes((3, 3), 10), r"nnz=10 must be in \[0, 9\]"),
    (lambda: P.csr_bytes((3, 3, 3), 1), r"shape=\(3, 3, 3\) must be 2-D"),
    (lambda: P.csr_bytes((0, 3), 0), "each dimension of shape=0 must be ≥ 1"),
    (lambda: P.csr_decode(np.ones((2, 2))), "csr must be a CSR .* encode with csr_encode"),
    (lambda: P.masked_decode(np.ones(3)), "masked must be a Masked"),
    (lambda: P.masked_bytes((2, 2), -1), r"nnz=-1 must be in \[0, 4\]"),
    (lambda: P.masked_encode(np.array([1.0, np.nan])), "contains 1 NaN")])
def test_sparse_storage_rejects_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
