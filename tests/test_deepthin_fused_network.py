"""FusedNetwork: a chain of fused DeepThin layers, layer by layer or as one compiled call per block."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinlab.deepthin import FusedDeepThin, FusedNetwork, _compiled, init_factors, reconstruct
from thinlab.deepthin import fused_network as fn_mod

needs_numba = pytest.mark.skipif(not _compiled.available(), reason="numba or scipy's BLAS does not load here")
needs_avx512 = pytest.mark.skipif(not _compiled.simd_available(), reason="this CPU has no AVX-512F (the sgemm path is tested)")
#: the kernels inside the compiled call that this machine can run (sgemm always, AVX-512 where the CPU has it)
KERNELS = [False] + ([True] if _compiled.simd_available() else [])


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
            for threads, simd in [(1, k) for k in KERNELS] + [(2, KERNELS[-1])]:
                net = FusedNetwork(plans, biases=bias, relu=relu, threads=threads, simd=simd)
                assert net.compiled_ and net.simd_ == simd
                for B in (1, 2, 3, 17, 32, 33, 48, 70, 3):             # blocks of 32 rows (16 and 32 vectorised),
                    X = rng.standard_normal((B, plans[0].Q)).astype(np.float32)   # shares per thread
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
    acts = [True, True, False]
    for simd in KERNELS:
        net = FusedNetwork(plans, threads=1, simd=simd)
        for B in (6, 32):                                              # 32: the AVX-512 kernels where they run
            X = rng.standard_normal((B, plans[0].Q)).astype(np.float32)
            bad = X.copy()
            bad[2, 3] = np.nan
            Y = net(bad)
            assert np.isnan(Y[2]).all() and np.isfinite(np.delete(Y, 2, axis=0)).all()
        for B in (6, 4, 6, 31, 32, 6, 32):
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
    for bad in ("yes", 1):
        with pytest.raises(ValueError, match=f"compiled={bad!r} must be True"):
            FusedNetwork([a, b], compiled=bad)
    with pytest.raises(ValueError, match="simd=1 must be True"):
        FusedNetwork([a, b], simd=1)
    with pytest.raises(ValueError, match="simd=True needs the compiled path .* this network runs layer by layer"):
        FusedNetwork([a, b], compiled=False, simd=True)
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
@settings(max_examples=60, deadline=None)
@given(Q=st.integers(2, 60), R1=st.integers(30, 120), R2=st.integers(20, 90), n1=st.integers(2, 30), n2=st.integers(2, 30),
       r=st.integers(1, 3), B=st.sampled_from([2, 5, 16, 17, 32, 40, 48, 64]), simd=st.sampled_from(KERNELS),
       seed=st.integers(0, 2**16))
def test_compiled_network_property(Q, R1, R2, n1, n2, r, B, simd, seed):
    """Random two-layer chains (any gcd, Q below or above n, ranks 1-3, n on both sides of the AVX-512
    kernels' n ≥ 11, blocks of 16 and 32 rows and others) against the definition."""
    rng = np.random.default_rng(seed)
    layers = [factors(Q, R1, n1, r, rng), factors(R1, R2, n2, r, rng)]
    plans = [FusedDeepThin(Xf, Wf, Q=q, R=rr) for Xf, Wf, q, rr in layers]
    if not all(p.contract_ == "matmul" for p in plans):
        compiled = None                                                # few columns per class: layer by layer
    else:
        compiled = True
    net = FusedNetwork(plans, biases=[rng.standard_normal(R1).astype(np.float32), None], threads=1 + seed % 2,
                       compiled=compiled, simd=simd if compiled else None)
    X = rng.standard_normal((B, Q)).astype(np.float32)
    assert_close(net(X), reference(layers, [net.biases[0], None], [True, False], X))


@needs_avx512
@pytest.mark.parametrize("rows", [16, 32])
def test_avx512_kernels_against_numpy(rows):
    """The two intrinsics on their own: every shift of a correlation (n from the smallest allowed,
    SHIFTS − 1, up), and the combination for 1-7 rows with bias, ReLU and a NaN, leaving other rows alone."""
    import numba

    from thinlab.deepthin import _kernel
    corr = _kernel.correlation32 if rows == 32 else _kernel.correlation16
    comb = _kernel.combination32 if rows == 32 else _kernel.combination16
    L = _kernel.SHIFTS

    @numba.njit
    def correlate(x, w, d, chunks, n):
        for t in range(chunks):
            corr(x.ctypes.data + 4 * rows * L * t, w.ctypes.data, d.ctypes.data + 4 * rows * L * t, n)

    @numba.njit
    def combine(g, gs, c, cs, P, m, y, ys, bias, bs, relu):
        comb(g.ctypes.data, gs, c.ctypes.data, cs, P, m, y.ctypes.data, ys, bias.ctypes.data, bs, relu)

    rng = np.random.default_rng(7)
    for n in (L - 1, L, L + 1, 40, 101):
        Q = 150
        w = rng.standard_normal(n).astype(np.float32)
        chunks = -(-(Q + n - 1) // L)
        x = np.zeros((chunks * L + n - 1, rows), np.float32)
        x[n - 1:n - 1 + Q] = rng.standard_normal((Q, rows))
        d = np.full((chunks * L + 1, rows), 5.0, np.float32)
        correlate(x, w, d, chunks, n)
        want = np.stack([w.astype(np.float64) @ x[s:s + n].astype(np.float64) for s in range(chunks * L)])
        np.testing.assert_allclose(d[:-1], want, rtol=0, atol=1e-5 * np.abs(want).max())
        assert (d[-1] == 5.0).all()                                    # nothing written past the chunks
    P, cs, gs = 9, 3, 11
    for m in range(1, _kernel.ROWS + 1):
        g = rng.standard_normal((m, gs)).astype(np.float32)
        c = rng.standard_normal((P * cs, rows)).astype(np.float32)
        c[2 * cs, 5] = np.nan                                          # one NaN input: its column's outputs are NaN
        bias = rng.standard_normal(2 * m).astype(np.float32)
        for relu in (0, 1):
            y = np.full((4 * m, rows), 7.0, np.float32)
            combine(g, gs, c, cs * rows, P, m, y, 4 * rows, bias, 2, relu)
            want = g[:, :P].astype(np.float64) @ c[::cs].astype(np.float64) + bias[::2, None]
            if relu:
                want = np.maximum(want, 0)                             # NaN stays NaN, as np.maximum
            np.testing.assert_allclose(y[::4], want, rtol=0, atol=1e-5 * np.nanmax(np.abs(want)))
            assert np.isnan(y[::4, 5]).all() and (relu == 0 or (y[::4] >= 0)[:, np.arange(rows) != 5].all())
            assert (np.delete(y, np.s_[::4], axis=0) == 7.0).all()    # rows between the strided outputs untouched


@needs_avx512
def test_avx512_and_sgemm_kernels_agree_on_the_tfkaldi_layout():
    """A TFKaldi-shaped pair of layers at its default layout (n ≈ 100, 2048 wide) at batch 32: the
    two kernels agree to float32 rounding and with the definition; a block of 16 and 40 rows too."""
    from thinlab.deepthin import plan_network
    plan = plan_network({"a": (440, 2048), "b": (2048, 512)}, size_fraction=0.01)
    rng = np.random.default_rng(8)
    layers = [(*init_factors(s.m, s.n, s.r, target_std=np.sqrt(2.0 / s.Q), rng=rng), s.Q, s.R)
              for s in plan.layers.values()]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    assert all(p.Wf.shape[1] >= 11 for p in plans)
    bias = [rng.standard_normal(p.R).astype(np.float32) for p in plans]
    vec, blas = (FusedNetwork(plans, biases=bias, threads=1, simd=s) for s in (True, False))
    for B in (32, 16, 40):
        X = rng.standard_normal((B, 440)).astype(np.float32)
        got = vec(X)
        np.testing.assert_allclose(got, blas(X), rtol=0, atol=1e-5 * np.abs(got).max())
        assert_close(got, reference(layers, bias, [True, False], X))


@needs_numba
def test_simd_true_is_refused_without_avx512(monkeypatch):
    rng = np.random.default_rng(9)
    layers = [factors(*s, rng) for s in CHAINS["rank 1"]]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    monkeypatch.setattr(_compiled, "host_has_avx512", lambda: False)   # as on a CPU without AVX-512F
    assert not _compiled.simd_available()
    net = FusedNetwork(plans)
    assert net.compiled_ and not net.simd_                             # the sgemm kernels run instead
    X = rng.standard_normal((32, 50)).astype(np.float32)
    assert_close(net(X), reference(layers, [None] * 3, [True, True, False], X))
    with pytest.raises(ValueError, match="simd=True needs the compiled path on a CPU with AVX-512F, which this CPU "
                                         "lacks: pass simd=None"):
        FusedNetwork(plans, simd=True)
    with pytest.raises(RuntimeError, match="the AVX-512 kernels need a CPU with AVX-512F"):
        _compiled.run_block(X, 0, 32, net._packed, np.zeros(1, np.float32), np.zeros((1, 32), np.float32), simd=True)


@needs_numba
def test_block_width_padding_and_work_size_checks():
    """Blocks of 5-32 rows are padded to 16 or 32 for the AVX-512 kernels (fewer rows, more rows or
    sgemm: as they are); run_block refuses a work array too small for that, writing nothing."""
    bw = _compiled.block_width
    assert [bw(r, True) for r in (1, 4, 5, 8, 16, 17, 31, 32, 33, 64)] == [1, 4, 16, 16, 16, 32, 32, 32, 33, 64]
    assert [bw(r, False) for r in (1, 5, 17, 32)] == [1, 5, 17, 32]
    rng = np.random.default_rng(10)
    layers = [factors(*s, rng) for s in CHAINS["rank 1"]]
    plans = [FusedDeepThin(Xf, Wf, Q=Q, R=R) for Xf, Wf, Q, R in layers]
    pk = FusedNetwork(plans)._packed
    base = (pk["work_rows"] + pk["scratch_rows"]) * 8
    assert _compiled.work_floats(pk, 8, False) == base
    assert _compiled.work_floats(pk, 8, True) == (pk["work_rows"] + pk["scratch_rows"] + pk["out_rows"]) * 16
    X = rng.standard_normal((8, 50)).astype(np.float32)
    for simd in KERNELS:
        YT = np.full((pk["out_rows"], 8), 3.0, np.float32)
        short = np.zeros(_compiled.work_floats(pk, 8, simd) - 1, np.float32)
        with pytest.raises(ValueError, match=r"work must be a contiguous float32 vector of at least \d+ floats for 8 rows"):
            _compiled.run_block(X, 0, 8, pk, short, YT, simd=simd)
        with pytest.raises(ValueError, match=r"rows 0 … 8 must lie inside X \(8 rows\)"):
            _compiled.run_block(X, 0, 9, pk, np.zeros(10**6, np.float32), YT, simd=simd)
        assert (YT == 3.0).all()                                       # nothing written
        work = np.zeros(_compiled.work_floats(pk, 8, simd), np.float32)
        _compiled.run_block(X, 0, 8, pk, work, YT, simd=simd)
        assert_close(YT[:60].T, reference(layers, [None] * 3, [True, True, False], X))
        assert (YT[60:] == 0).all()                                    # the rows from R on come out 0
