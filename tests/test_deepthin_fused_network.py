"""FusedNetwork: a chain of fused DeepThin layers, layer by layer or as one compiled call per block."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinlab.deepthin import FusedDeepThin, FusedNetwork, _compiled, init_factors, reconstruct
from thinlab.deepthin import fused_network as fn_mod

needs_numba = pytest.mark.skipif(not _compiled.available(), reason="numba or scipy's BLAS does not load here")


def factors(Q, R, n, r, rng):
    """Factors of a layer W (Q, R) with W_aux (⌈Q·R/n⌉, n) at rank r."""
    Xf, Wf = init_factors(-(-Q * R // n), n, r, target_std=np.sqrt(2.0 / Q), rng=rng)
    return Xf, Wf, Q, R


def reference(layers, biases, relu, X):
    """The definition, in float64: act(h @ reconstruct(...) + b) layer after layer."""
    h = np.asarray(X, dtype=np.float64)
    for (Xf, Wf, Q, R), b, act in zip(layers, biases, relu):
        h = h @ reconstruct(Xf, Wf, Q=Q, R=R).astype(np.float64)
        if b is not None:
            h = h + b
        if act:
            h = np.maximum(h, 0)
    return h


def assert_close(got, want):
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * max(np.abs(want).max(), 1.0))


#: chains where every layer combines with per-class GEMMs (R > 4·n/gcd(n, Q)): rank 1 (classes read
#: in place), ranks 2-3 with Q < n (values gathered), and a gcd(n, Q) > 1 layer
CHAINS = {
    "rank 1": [(50, 200, 13, 1), (200, 150, 11, 1), (150, 60, 7, 1)],
    "rank > 1, Q < n": [(9, 120, 17, 2), (120, 90, 19, 2), (90, 100, 23, 3)],
    "gcd > 1": [(48, 180, 18, 1), (180, 64, 8, 2)],
}


@needs_numba
@pytest.mark.parametrize("chain", CHAINS)
def test_compiled_network_equals_the_definition(chain):
    rng = np.random.default_rng(0)
    layers = [factors(*spec, rng) for spec in CHAINS[chain]]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    assert all(p.contract_ == "matmul" for p in plans)
    biases = [rng.standard_normal(p.R).astype(np.float32) for p in plans]
    for bias in (None, biases):
        for relu in (None, [True] * len(plans), [False] * len(plans)):
            acts = relu or [True] * (len(plans) - 1) + [False]
            for threads in (1, 2):
                net = FusedNetwork(plans, biases=bias, relu=relu, threads=threads)
                assert net.compiled_
                for B in (1, 2, 3, 17, 33, 70, 3):                     # blocks of 32 rows, shares per thread
                    X = rng.standard_normal((B, plans[0].Q)).astype(np.float32)
                    assert net.path_at(B) == ("layers" if B == 1 else "compiled")
                    assert_close(net(X), reference(layers, bias or [None] * len(plans), acts, X))


@needs_numba
def test_compiled_and_layer_paths_agree_and_keep_inputs():
    rng = np.random.default_rng(1)
    layers = [factors(*spec, rng) for spec in CHAINS["rank 1"]]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    compiled, by_layer = FusedNetwork(plans, threads=2), FusedNetwork(plans, compiled=False)
    assert compiled.compiled_ and not by_layer.compiled_ and by_layer.path_at(40) == "layers"
    X = rng.standard_normal((40, 50)).astype(np.float32)
    keep = X.copy()
    Y = compiled(X)
    np.testing.assert_array_equal(X, keep)                            # the input is not touched
    np.testing.assert_allclose(Y, by_layer(X), rtol=0, atol=1e-5 * np.abs(Y).max())
    assert Y.shape == (40, 60) and Y.dtype == np.float32
    assert not np.shares_memory(Y, compiled(X))                        # a new array each call
    np.testing.assert_allclose(compiled(X[0]), Y[0], rtol=0, atol=1e-6 * np.abs(Y).max())   # one row
    Xd = rng.standard_normal((40, 50))                                 # float64, Fortran order: converted
    np.testing.assert_allclose(compiled(np.asfortranarray(Xd)), by_layer(Xd), rtol=0, atol=1e-5 * np.abs(Y).max())


@needs_numba
def test_compiled_network_zero_rows_survive_non_finite_rows_and_batch_changes():
    """A NaN row gives a NaN output row and leaves the work arrays' zero padding intact, so the next
    calls (other batch sizes, then the same one) are exact again."""
    rng = np.random.default_rng(2)
    layers = [factors(*spec, rng) for spec in CHAINS["rank > 1, Q < n"]]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    net = FusedNetwork(plans, threads=1)
    acts = [True, True, False]
    X = rng.standard_normal((6, plans[0].Q)).astype(np.float32)
    bad = X.copy()
    bad[2, 3] = np.nan
    Y = net(bad)
    assert np.isnan(Y[2]).all() and np.isfinite(np.delete(Y, 2, axis=0)).all()
    for B in (6, 4, 6, 31, 6):
        Xb = rng.standard_normal((B, plans[0].Q)).astype(np.float32)
        assert_close(net(Xb), reference(layers, [None] * 3, acts, Xb))


@needs_numba
def test_threads_choice_and_row_shares():
    rng = np.random.default_rng(3)
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in (factors(*s, rng) for s in CHAINS["rank 1"])]
    net = FusedNetwork(plans)                                          # threads=None: measured per batch size
    assert net.threads_at(1) == 1 and net.threads_at(8) == 1           # too few rows to share
    chosen = net.threads_at(64)
    assert chosen in (1, min(fn_mod.cpu_threads(), 64 // fn_mod.MIN_THREAD_ROWS))
    assert net.threads_at(64) == chosen                                # measured once, then kept
    assert FusedNetwork(plans, threads=3).threads_at(64) == 3
    assert FusedNetwork(plans, threads=3).threads_at(20) == 2          # at least MIN_THREAD_ROWS each
    assert fn_mod._split(64, 2) == [0, 32, 64] and fn_mod._split(40, 2) == [0, 16, 40]   # 16-row edges
    assert fn_mod._split(20, 2) == [0, 10, 20]                         # too few rows to snap
    a = fn_mod._aligned_empty((7, 5))
    assert a.shape == (7, 5) and a.ctypes.data % 64 == 0


def test_layer_path_for_other_layouts_and_one_row():
    """n | Q (two GEMMs) and few columns per class (einsum) run layer by layer, exactly."""
    rng = np.random.default_rng(4)
    layers = [factors(50, 200, 13, 1, rng), factors(200, 150, 10, 1, rng), factors(150, 8, 7, 2, rng)]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    assert [p.contract_ for p in plans] == ["matmul", "gemm2", "einsum"]
    net = FusedNetwork(plans, biases=[None, np.ones(150, np.float32), None])
    assert not net.compiled_ and net.path_at(32) == "layers"
    X = rng.standard_normal((5, 50)).astype(np.float32)
    assert_close(net(X), reference(layers, [None, np.ones(150), None], [True, True, False], X))
    with pytest.raises(ValueError, match=r"compiled=True needs every layer to combine with per-class GEMMs; "
                                         r"layers \[1, 2\]"):
        FusedNetwork(plans, compiled=True)


def test_bad_networks_and_inputs_are_refused():
    rng = np.random.default_rng(5)
    a, b = (FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in (factors(50, 200, 13, 1, rng),
                                                                  factors(200, 150, 11, 1, rng)))
    with pytest.raises(ValueError, match="layers must be a non-empty sequence of FusedDeepThin plans"):
        FusedNetwork([])
    with pytest.raises(ValueError, match="layers must be a non-empty sequence of FusedDeepThin plans"):
        FusedNetwork([a, np.eye(3)])
    with pytest.raises(ValueError, match="layer 1 takes 50 inputs but layer 0 gives 200 outputs"):
        FusedNetwork([a, a])
    with pytest.raises(ValueError, match=r"biases has 1 entries for 2 layers"):
        FusedNetwork([a, b], biases=[None])
    with pytest.raises(ValueError, match=r"biases\[1\] must be 150 finite numbers .* got shape \(149,\)"):
        FusedNetwork([a, b], biases=[None, np.zeros(149)])
    with pytest.raises(ValueError, match=r"biases\[0\] must be 200 finite numbers .* non-finite"):
        FusedNetwork([a, b], biases=[np.full(200, np.inf), None])
    with pytest.raises(ValueError, match="relu has 3 entries for 2 layers"):
        FusedNetwork([a, b], relu=[True, True, False])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads=.* must be None"):
            FusedNetwork([a, b], threads=bad)
    with pytest.raises(ValueError, match="compiled='yes' must be True"):
        FusedNetwork([a, b], compiled="yes")
    net = FusedNetwork([a, b])
    for X in (np.zeros((3, 49)), np.zeros((2, 3, 50)), np.zeros(())):
        with pytest.raises(ValueError, match=r"X must have shape \(batch, 50\) or \(50,\)"):
            net(X)


def test_without_numba_the_network_runs_layer_by_layer(monkeypatch):
    rng = np.random.default_rng(6)
    layers = [factors(*spec, rng) for spec in CHAINS["rank 1"]]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    monkeypatch.setattr(_compiled, "_KERNEL", [None])                  # as if numba did not import
    assert not _compiled.available()
    net = FusedNetwork(plans)
    assert not net.compiled_ and net.path_at(32) == "layers"
    X = rng.standard_normal((32, 50)).astype(np.float32)
    assert_close(net(X), reference(layers, [None] * 3, [True, True, False], X))
    with pytest.raises(ValueError, match="compiled=True needs numba"):
        FusedNetwork(plans, compiled=True)
    with pytest.raises(RuntimeError, match="the compiled DeepThin path needs numba"):
        _compiled.run_block(X, 0, 32, {}, np.zeros(1, np.float32), np.zeros((1, 32), np.float32))


@needs_numba
@settings(max_examples=40, deadline=None)
@given(Q=st.integers(2, 60), R1=st.integers(30, 90), R2=st.integers(20, 60), n1=st.integers(2, 9), n2=st.integers(2, 9),
       r=st.integers(1, 3), B=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_compiled_network_property(Q, R1, R2, n1, n2, r, B, seed):
    """Random two-layer chains (any gcd, Q below or above n, ranks 1-3) against the definition."""
    rng = np.random.default_rng(seed)
    layers = [factors(Q, R1, n1, r, rng), factors(R1, R2, n2, r, rng)]
    plans = [FusedDeepThin(Xf, Wf, Q=q, R=rr) for Xf, Wf, q, rr in layers]
    net = FusedNetwork(plans, biases=[rng.standard_normal(R1).astype(np.float32), None], threads=1 + seed % 2)
    X = rng.standard_normal((B, Q)).astype(np.float32)
    assert_close(net(X), reference(layers, [net.biases[0], None], [True, False], X))
