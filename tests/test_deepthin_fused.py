"""The fused DeepThin product Y = X·W (never building W) and the paper's dot-product reuse."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinlab.deepthin import (FusedDeepThin, deepthin_size, fused_matmul, fused_matmul_reference, init_factors,
                              reconstruct)
from thinlab.deepthin._plan import next_fast_len
from thinlab.deepthin.paper import fused_matmul_paper, reuse_stats, segment_pairs

ALGORITHMS = ("windows", "band", "fft", "toeplitz")


def dense(X, Xf, Wf, Q, R):
    """The definition: X @ reconstruct(...), in float64."""
    return np.asarray(X, dtype=np.float64) @ reconstruct(Xf, Wf, Q=Q, R=R).astype(np.float64)


def close(got, want, scale):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(scale, 1.0))


@st.composite
def layers(draw):
    """Random layouts, weighted towards the interesting cases: Q < n, n ∤ Q, gcd(n, Q) > 1,
    n | Q, m·n > Q·R, rank 1."""
    Q, R = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["any", "divides", "multiple", "shared_gcd", "wide"]))
    if kind == "divides":
        n = draw(st.sampled_from([d for d in range(1, Q + 1) if Q % d == 0]))
    elif kind == "multiple":
        n = Q * draw(st.integers(1, 3))
    elif kind == "shared_gcd" and Q > 1:
        g = draw(st.sampled_from([d for d in range(2, Q + 1) if Q % d == 0]))
        n = g * draw(st.integers(1, 6))
    elif kind == "wide":
        n = draw(st.integers(Q + 1, Q * R + 3))
    else:
        n = draw(st.integers(1, Q * R + 3))
    m = -(-Q * R // n) + draw(st.integers(0, 2))                 # m·n ≥ Q·R, sometimes > by a row or two
    r = draw(st.integers(1, 4))
    return Q, R, m, n, r


@settings(max_examples=150, deadline=None)
@given(layer=layers(), B=st.integers(1, 5), seed=st.integers(0, 2**16), single=st.booleans())
def test_fused_equals_dense(layer, B, seed, single):
    Q, R, m, n, r = layer
    rng = np.random.default_rng(seed)
    Xf, Wf = init_factors(m, n, r, target_std=1.0, rng=rng)
    X = rng.standard_normal(Q if single else (B, Q)).astype(np.float32)
    want = dense(X, Xf, Wf, Q, R)
    scale = np.abs(X).sum(axis=-1).max() * r * np.abs(Xf).max() * np.abs(Wf).max()   # bound on any |y|
    for algorithm in ("auto", *ALGORITHMS):
        got = FusedDeepThin(Xf, Wf, Q=Q, R=R, algorithm=algorithm)(X)
        assert got.shape == want.shape and got.dtype == np.float32
        close(got, want, scale)
    close(fused_matmul_paper(X, Xf, Wf, Q=Q, R=R), want, scale)
    close(fused_matmul_reference(X, Xf, Wf, Q=Q, R=R), np.atleast_2d(want), scale)


@pytest.mark.parametrize("Q, R, n, every_offset", [
    (2048, 64, 1649, False),      # LCM rule, fewer columns than alignments: FFT read-out gathers
    (100, 150, 101, True),        # LCM rule, every alignment occurs: FFT read-out is a strided view
    (96, 40, 36, True),           # gcd 12: 3 alignment classes
    (2048, 64, 3072, True),       # n = 1.5·Q: 3 classes
    (2048, 64, 2048, True),       # n = Q: plain rank factorisation
    (2048, 64, 101, False),
    (440, 64, 880, True),
])
def test_fused_larger_layouts(Q, R, n, every_offset):
    rng = np.random.default_rng(0)
    m, r = -(-Q * R // n), 3
    Xf, Wf = init_factors(m, n, r, target_std=0.05, rng=rng)
    X = rng.standard_normal((4, Q)).astype(np.float32)
    want = dense(X, Xf, Wf, Q, R)
    for algorithm in ALGORITHMS:
        plan = FusedDeepThin(Xf, Wf, Q=Q, R=R, algorithm=algorithm)
        close(plan(X), want, np.abs(want).max())
        close(plan(X[1]), want[1], np.abs(want).max())
    assert (plan.n_classes_ == n // math.gcd(n, Q)) == every_offset
    if plan.contract_ == "einsum":                  # offset order: the FFT read-out is a view iff every offset occurs
        assert plan.fft_["view"] == every_offset


def test_fused_exact_small():
    # W_aux = [[1, 10], [2, 20], [3, 30]] → W = [[1, 20], [10, 3], [2, 30]]
    Xf, Wf = np.array([[1.0], [2.0], [3.0]]), np.array([[1.0, 10.0]])
    for algorithm in ALGORITHMS:
        plan = FusedDeepThin(Xf, Wf, Q=3, R=2, algorithm=algorithm)
        np.testing.assert_array_equal(plan(np.array([1.0, 1.0, 1.0])), [13.0, 53.0])
        np.testing.assert_array_equal(plan(np.array([[1.0, 0, 0], [0, 0, 1.0]])), [[1.0, 20.0], [2.0, 30.0]])


def test_fused_plan_shapes_and_choice():
    s = deepthin_size(2048, 2048, size_fraction=0.01)                    # coprime: every column its own class
    Xf, Wf = init_factors(s.m, s.n, s.r, target_std=0.05, rng=0)
    plan = FusedDeepThin(Xf, Wf, Q=2048, R=2048)
    assert plan.n_classes_ == s.n == 1649 and plan.rows_per_column_ == 3 and plan.algorithm_ == "fft"
    a = deepthin_size(2048, 2048, size_fraction=0.01, layout="aligned")  # n = Q: one class
    Xa, Wa = init_factors(a.m, a.n, a.r, target_std=0.05, rng=0)
    aligned = FusedDeepThin(Xa, Wa, Q=2048, R=2048)
    assert aligned.n_classes_ == 1 and aligned.algorithm_ == "windows"


def test_fused_returns_new_arrays_and_keeps_inputs():
    rng = np.random.default_rng(1)
    Xf, Wf = init_factors(12, 5, 2, target_std=1.0, rng=rng)
    X = rng.standard_normal((3, 6)).astype(np.float32)
    X0, Xf0, Wf0 = X.copy(), Xf.copy(), Wf.copy()
    for algorithm in ALGORITHMS:
        plan = FusedDeepThin(Xf, Wf, Q=6, R=10, algorithm=algorithm)
        Y = plan(X)
        assert not np.shares_memory(Y, X) and not np.shares_memory(Y, plan.Xf)
    np.testing.assert_array_equal(X, X0), np.testing.assert_array_equal(Xf, Xf0), np.testing.assert_array_equal(Wf, Wf0)
    np.testing.assert_allclose(fused_matmul(X, Xf, Wf, Q=6, R=10), dense(X, Xf, Wf, 6, 10), atol=1e-5)


def test_fused_bad_inputs():
    Xf, Wf = np.ones((4, 2)), np.ones((2, 3))
    plan = FusedDeepThin(Xf, Wf, Q=3, R=4)
    with pytest.raises(ValueError, match=r"X must have shape \(batch, 3\) or \(3,\) .* got \(2, 5\)"):
        plan(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"got \(1, 2, 3\)"):
        plan(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match=r"algorithm='gpu' is not a fused-product algorithm; use one of"):
        FusedDeepThin(Xf, Wf, Q=3, R=4, algorithm="gpu")
    with pytest.raises(ValueError, match=r"holds 12 elements but W of shape \(5, 3\) needs 15"):
        FusedDeepThin(Xf, Wf, Q=5, R=3)
    with pytest.raises(ValueError, match=r"Wf has shape \(3, 3\) but 2 rows were expected"):
        FusedDeepThin(Xf, np.ones((3, 3)), Q=3, R=4)
    with pytest.raises(ValueError, match=r"X must have shape"):
        fused_matmul_paper(np.ones(4), Xf, Wf, Q=3, R=4)


# ---------------------------------------------------------------- the paper's reuse, helpers

def test_reuse_stats_exact():
    # n | Q: each column is Q/n whole rows, 2 distinct shifts reused by every column
    assert reuse_stats(2048, 2048, 1024) == dict(pairs=4096, distinct_shifts=2, reuse=2048.0, period=1)
    # the LCM rule at max rank: almost every segment has its own shift
    stats = reuse_stats(2048, 2048, 1649)
    assert stats["period"] == 1649 and stats["distinct_shifts"] == 2048 + 1649 - 1 and stats["reuse"] < 1.3


def test_segment_pairs_exact():
    # Q=3, R=2, n=2: column 0 = flat 0..2 (rows 0, 1), column 1 = flat 3..5 (rows 1, 2)
    p = segment_pairs(3, 2, 2)
    np.testing.assert_array_equal(p["col"], [0, 0, 1, 1])
    np.testing.assert_array_equal(p["row"], [0, 1, 1, 2])
    np.testing.assert_array_equal(p["shift"], [0, 2, -1, 1])
    np.testing.assert_array_equal(p["first"], [0, 2])


@given(st.integers(1, 5000))
def test_next_fast_len(target):
    got = next_fast_len(target)
    assert got >= target
    k = got
    for p in (2, 3, 5):
        while k % p == 0:
            k //= p
    assert k == 1
    assert all(not _smooth(v) for v in range(target, got))


def _smooth(v: int) -> bool:
    for p in (2, 3, 5):
        while v % p == 0:
            v //= p
    return v == 1


def test_public_docstrings_name_the_lesson():
    import inspect

    from thinlab.deepthin import _compiled, _plan, fused, fused_network, network, paper, relayout, solver
    missing = []
    modules = [solver, network, relayout, fused, fused_network, paper, _plan, _compiled]
    if _compiled.available():
        from thinlab.deepthin import _kernel
        modules.append(_kernel)
    for module in modules:
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            members = [(name, obj)]
            if inspect.isclass(obj):
                members += [(f"{name}.{k}", v) for k, v in vars(obj).items()
                            if (not k.startswith("_") or k == "__call__") and (callable(v) or isinstance(v, property))]
            for label, member in members:
                doc = inspect.getdoc(member.fget if isinstance(member, property) else member) or ""
                if not doc.rstrip().endswith("Taught in: 03_deepthin"):
                    missing.append(f"{module.__name__}.{label}")
    assert not missing, f"docstrings without 'Taught in: 03_deepthin': {missing}"


# ---------------------------------------------------------------- cost linear in what is stored, threads, NaN / inf

@pytest.mark.parametrize("Q, R, alpha, rank", [(2048, 2048, 0.01, 1), (2048, 2048, 0.01, None), (440, 2048, 0.01, 1),
                                                (2048, 6928, 0.004, 1), (512, 512, 0.05, 3), (2000, 512, 0.01, 1)])
def test_fused_plan_stores_about_the_parameters(Q, R, alpha, rank):
    """The plan holds X^f re-indexed (≈ (m + R)·r values), the spectra (≈ (Q + n)·r) and, when
    used, the band (2·A·r·n): nothing of the size of W (Q·R)."""
    s = deepthin_size(Q, R, size_fraction=alpha, rank=rank)
    Xf, Wf = init_factors(s.m, s.n, s.r, target_std=0.05, rng=0)
    plan = FusedDeepThin(Xf, Wf, Q=Q, R=R)
    stored = plan.G_.size + (2 * plan.fft_["spectra"].size if hasattr(plan, "fft_") else 0)
    assert stored <= 2 * (s.m + 2 * R + Q + s.n) * s.r < Q * R / 4
    for B in (1, 32):                                                # the algorithm the cost model picks exists
        assert plan.algorithm_at(B) in ("windows", "band", "fft", "toeplitz")
        cost = plan.cost_ns(B)
        assert plan.algorithm_at(B) == min(cost, key=cost.get) or plan.contract_ == "gemm2"


def test_fused_chained_layers_and_threads():
    """A layer's Fortran-ordered output feeds the next layer; threads change nothing in the result."""
    rng = np.random.default_rng(3)
    shapes = [(300, 200), (200, 150)]
    layers, dense_W = [], []
    for Q, R in shapes:
        s = deepthin_size(Q, R, size_fraction=0.05, rank=1)
        Xf, Wf = init_factors(s.m, s.n, s.r, target_std=0.1, rng=rng)
        layers.append([FusedDeepThin(Xf, Wf, Q=Q, R=R, threads=t) for t in (1, 2)])
        dense_W.append(reconstruct(Xf, Wf, Q=Q, R=R).astype(np.float64))
    X = rng.standard_normal((33, 300)).astype(np.float32)
    want = np.maximum(X @ dense_W[0], 0) @ dense_W[1]
    for t in (0, 1):
        h = layers[0][t](X)
        assert h.shape == (33, 200) and not np.shares_memory(h, X)
        got = layers[1][t](np.maximum(h, 0, out=h))
        close(got, want, np.abs(want).max())
    with pytest.raises(ValueError, match=r"threads=0 must be None \(every CPU\) or a whole number ≥ 1"):
        FusedDeepThin(np.ones((4, 1)), np.ones((1, 3)), Q=3, R=4, threads=0)


@pytest.mark.parametrize("which, bad", [("Xf", np.nan), ("Wf", np.inf), ("Xf", -np.inf)])
def test_fused_refuses_non_finite_factors(which, bad):
    Xf, Wf = init_factors(20, 7, 2, target_std=1.0, rng=0)
    (Xf if which == "Xf" else Wf)[1, 1] = bad
    with pytest.raises(ValueError, match=rf"^{which} contains .* expected finite"):
        FusedDeepThin(Xf, Wf, Q=10, R=14)
    with pytest.raises(ValueError, match=rf"^{which} contains"):
        fused_matmul(np.ones(10), Xf, Wf, Q=10, R=14)


def test_fused_non_finite_input_gives_non_finite_rows_only():
    Xf, Wf = init_factors(20, 7, 2, target_std=1.0, rng=0)
    X = np.ones((3, 10), dtype=np.float32)
    X[1, 4] = np.nan
    for algorithm in ALGORITHMS:
        Y = FusedDeepThin(Xf, Wf, Q=10, R=14, algorithm=algorithm)(X)
        assert np.isfinite(Y[[0, 2]]).all() and not np.isfinite(Y[1]).all()


# ---------------------------------------------------------------- the torch inference path

torch = pytest.importorskip("torch")


def _deepthin_linear(Q, R, m, n, r, seed, bias=True):
    from torch.nn.utils import parametrize

    from thinlab.nn.parametrizations import DeepThin
    torch.manual_seed(seed)
    lin = torch.nn.Linear(Q, R, bias=bias)
    parametrize.register_parametrization(lin, "weight", DeepThin(lin.weight.shape, m=m, n=n, r=r), unsafe=True)
    Xf, Wf = init_factors(m, n, r, target_std=0.3, rng=seed)
    with torch.no_grad():
        lin.parametrizations.weight.original0.copy_(torch.from_numpy(Xf))
        lin.parametrizations.weight.original1.copy_(torch.from_numpy(Wf))
    return lin, Xf, Wf


@settings(max_examples=60, deadline=None)
@given(layer=layers(), B=st.integers(1, 5), seed=st.integers(0, 2**16), bias=st.booleans())
def test_torch_fused_equals_dense(layer, B, seed, bias):
    """Eval mode without autograd runs the fused product; it equals X @ reconstruct(...) + bias,
    on the CPU both through the numpy kernel (the default there) and through torch operations
    (what other devices run)."""
    from thinlab.nn.deepthin_fused import FusedWeight, torch_operations
    Q, R, m, n, r = layer
    lin, Xf, Wf = _deepthin_linear(Q, R, m, n, r, seed, bias)
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((B, Q)).astype(np.float32))
    want = dense(x.numpy(), Xf, Wf, Q, R) + (lin.bias.detach().numpy() if bias else 0)
    lin.eval()
    with torch.no_grad():
        assert type(lin.weight) is FusedWeight
        got = lin(x)
        with torch_operations():
            got_torch = lin(x)
    scale = np.abs(x.numpy()).sum(axis=-1).max() * r * np.abs(Xf).max() * np.abs(Wf).max() + 1
    for y in (got, got_torch):
        assert type(y) is torch.Tensor and y.shape == (B, R) and y.dtype == torch.float32 and y.is_contiguous()
        np.testing.assert_allclose(y.numpy(), want, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("r", [1, 3])
def test_torch_operations_accumulate_large_products_the_same(monkeypatch, r):
    """Past BROADCAST_MAX numbers the CPU combination accumulates factor by factor instead of
    building the broadcast product; both equal the dense reconstruction."""
    from thinlab.nn import deepthin_fused as dfm
    lin, Xf, Wf = _deepthin_linear(96, 40, 110 * r, 37, r, seed=5)
    x = torch.randn(6, 96)
    want = x.numpy() @ reconstruct(Xf, Wf, Q=96, R=40) + lin.bias.detach().numpy()
    lin.eval()
    with torch.no_grad(), dfm.torch_operations():
        broadcast = lin(x)
        monkeypatch.setattr(dfm, "BROADCAST_MAX", 0)
        accumulated = lin(x)
    for y in (broadcast, accumulated):
        np.testing.assert_allclose(y.numpy(), want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_torch_cpu_kernel_follows_the_stored_factors():
    """The CPU kernel is built once per layer and rebuilt whenever the stored factors change (in
    place, by load_state_dict, by replacing .data) or torch's thread count does; quantised layers
    run it on their quantised factors."""
    from thinlab.nn import deepthin_fused as dfm
    from thinlab.nn.parametrizations import DeepThin
    lin, Xf, Wf = _deepthin_linear(96, 40, 110, 37, 1, seed=3)
    P = lin.parametrizations.weight[0]
    x = torch.randn(4, 96)

    def check():
        with torch.no_grad():
            Wd = lin.weight.dense()                                  # the plain weight of the current factors
            got = lin(x)
        want = x @ Wd.T + lin.bias
        assert (got - want).abs().max() <= 1e-4 * want.abs().max()
        return dfm._CPU_LAYERS[P][2]

    lin.eval()
    first = check()
    assert check() is first                                          # unchanged factors: the same kernel
    with torch.no_grad():
        lin.parametrizations.weight.original0.mul_(-2.0)             # in place
    second = check()
    assert second is not first
    state = {k: v.clone() for k, v in lin.state_dict().items()}
    state["parametrizations.weight.original1"] += 0.5
    lin.load_state_dict(state)
    third = check()
    assert third is not second
    lin.parametrizations.weight.original0.data = torch.randn(110, 1)  # a new tensor
    assert check() is not third
    threads = torch.get_num_threads()
    try:
        fourth = dfm._CPU_LAYERS[P][2]
        torch.set_num_threads(1 if threads > 1 else 2)
        assert check() is not fourth and dfm._CPU_LAYERS[P][2].threads == torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    # a layer that quantises its factors: the kernel multiplies the quantised values
    torch.manual_seed(0)
    q = torch.nn.Linear(96, 40)
    from torch.nn.utils import parametrize
    parametrize.register_parametrization(q, "weight", DeepThin(q.weight.shape, m=110, n=37, r=1, quant_bits=4),
                                         unsafe=True)
    q.eval()
    with torch.no_grad():
        got = q(x)
        with dfm.dense_inference():
            plain = q(x)
    assert (got - plain).abs().max() <= 1e-4 * plain.abs().max()
    # what the kernel does not take runs in torch operations: no rows, float64 rows
    with torch.no_grad():
        assert lin(torch.zeros(0, 96)).shape == (0, 40)
        y64, y32 = lin(x.double()), lin(x)
    assert y64.dtype == torch.float64 and torch.allclose(y64.float(), y32, atol=1e-5)


def test_torch_fused_module_modes_and_fallbacks():
    from thinlab.nn.deepthin_fused import FusedWeight, dense_inference
    lin, Xf, Wf = _deepthin_linear(96, 40, 110, 37, 2, seed=1)
    x = torch.randn(7, 3, 96)                                        # leading dimensions are kept
    lin.eval()
    with torch.no_grad():
        fused = lin(x)
        with dense_inference():
            assert type(lin.weight) is torch.Tensor
            plain = lin(x)
        w = lin.weight
        assert type(w) is FusedWeight and w.shape == (40, 96) and "FusedWeight(shape=(40, 96)" in repr(w)
        np.testing.assert_allclose(w.detach().numpy(), reconstruct(Xf, Wf, Q=96, R=40).T, atol=1e-6)
        assert type(w * 2) is torch.Tensor and torch.allclose(w * 2, 2 * w.dense())
    assert fused.shape == (7, 3, 40)
    assert (fused - plain).abs().max() <= 1e-4 * plain.abs().max()
    # with gradients enabled (training, or eval with autograd) the plain parametrization is used and trains
    assert type(lin.weight) is torch.Tensor
    lin.train()
    lin(x).square().sum().backward()
    assert lin.parametrizations.weight.original0.grad.abs().sum() > 0
    with torch.no_grad():
        assert type(lin.weight) is torch.Tensor                     # training mode: never fused


def test_torch_fused_in_a_compressed_model():
    """compress(...) then eval: the whole DNN predicts the same through the fused layers."""
    from thinlab import train
    from thinlab.nn import compress
    from thinlab.nn.deepthin_fused import dense_inference
    from thinlab.models import build_model
    torch.manual_seed(0)
    net = compress(build_model("dnn", 5, n_frames=20, n_mels=16, hidden=(128, 64)), method="deepthin",
                   size_fraction=0.1, layers=["hidden.0", "hidden.1"], init="random")
    X = np.random.default_rng(0).standard_normal((50, 20, 16)).astype(np.float32)
    net.eval()
    with torch.no_grad():
        fused = net(torch.from_numpy(X))
        with dense_inference():
            plain = net(torch.from_numpy(X))
    assert (fused - plain).abs().max() <= 1e-4 * plain.abs().max()
    assert np.array_equal(train.predict(net, X), plain.argmax(1).numpy())


def test_layer_and_torch_timing_rows():
    from thinlab.nn import compress
    from thinlab.experiments import timing
    from thinlab.models import build_model
    rows = timing.layer_timing({"a": (96, 64), "b": (64, 80)}, size_fraction=0.2, batches=(1, 3),
                                     min_seconds=0.001, repeat=2)
    assert [(r["layer"], r["batch"]) for r in rows] == [(l, b) for b in (1, 3) for l in ("a", "b", "all")]
    for r in rows:
        assert r["max_rel_diff"] < 1e-4 and r["speedup"] == pytest.approx(r["dense_us"] / r["fused_us"])
        assert r["stored_bytes"] < r["dense_bytes"]
        if r["layer"] == "a":
            assert r["dense_bytes"] == 4 * 96 * 64 and r["r"] == 1
            assert r["stored_bytes"] == 4 * (r["m"] + r["n"]) * r["r"]
    torch.manual_seed(0)
    net = compress(build_model("dnn", 3, n_frames=8, n_mels=6, hidden=(64, 48)), method="deepthin", size_fraction=0.3,
                   layers=["hidden.0", "hidden.1"], init="random")
    X = np.random.default_rng(0).standard_normal((5, 8, 6)).astype(np.float32)
    rows = timing.torch_inference_timing(net, X, batches=(1, 5), min_seconds=0.001, repeat=2)
    assert [r["batch"] for r in rows] == [1, 5] and net.training                  # the mode is restored
    for r in rows:
        assert r["max_rel_diff"] < 1e-4 and r["device"] == "cpu" and r["kernel"] == "numpy"
        assert r["speedup"] == pytest.approx(r["dense_us"] / r["fused_us"])
        assert r["speedup_vs_plain"] == pytest.approx(r["plain_us"] / r["fused_us"])
    from thinlab.nn.deepthin_fused import torch_operations
    with torch_operations():                                                      # the GPU's kernel, on the CPU
        rows = timing.torch_inference_timing(net, X, batches=(3,), min_seconds=0.001, repeat=2)
    assert rows[0]["kernel"] == "torch" and rows[0]["max_rel_diff"] < 1e-4
    with pytest.raises(ValueError, match="no .*DeepThin layer"):
        timing.torch_inference_timing(build_model("dnn", 3, n_frames=8, n_mels=6, hidden=(8,)), X)
    assert set(timing.cache_sizes()) == {"L1d", "L2", "L3"}


def test_fused_toeplitz_is_auto_choice_at_batch_32_and_exact():
    """The TFKaldi hidden layer at α = 1/100 (default layout, r = 1, gcd(n, Q) = 1): the cost model
    keeps a one-row algorithm at batch 1 and picks the chunked Toeplitz GEMM at batch 32; both equal
    X @ W, including r > 1 and the chunk boundaries (Q + n − 1 shifts, not a multiple of L)."""
    from thinlab.deepthin.fused import TOEPLITZ_CHUNK
    rng = np.random.default_rng(5)
    s = deepthin_size(2048, 2048, size_fraction=0.01, rank=1)
    Xf, Wf = init_factors(s.m, s.n, s.r, target_std=0.05, rng=rng)
    plan = FusedDeepThin(Xf, Wf, Q=2048, R=2048)
    assert plan.algorithm_at(1) != "toeplitz" and plan.algorithm_at(32) == "toeplitz"
    X = rng.standard_normal((32, 2048)).astype(np.float32)
    want = dense(X, Xf, Wf, 2048, 2048)
    close(plan(X), want, np.abs(want).max())
    close(plan(np.asfortranarray(X)), want, np.abs(want).max())
    for Q, R, n, r in [(2048, 64, 101, 3), (30, 50, 37, 2), (97, 40, 7, 1)]:
        assert (Q + n - 1) % TOEPLITZ_CHUNK != 0 or Q == 2048
        Xf, Wf = init_factors(-(-Q * R // n), n, r, target_std=0.1, rng=rng)
        X = rng.standard_normal((9, Q)).astype(np.float32)
        want = dense(X, Xf, Wf, Q, R)
        close(FusedDeepThin(Xf, Wf, Q=Q, R=R, algorithm="toeplitz")(X), want, np.abs(want).max())
