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

METHODS = ("windows", "band", "fft")


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
    for method in ("auto", *METHODS):
        got = FusedDeepThin(Xf, Wf, Q=Q, R=R, method=method)(X)
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
    for method in METHODS:
        plan = FusedDeepThin(Xf, Wf, Q=Q, R=R, method=method)
        close(plan(X), want, np.abs(want).max())
        close(plan(X[1]), want[1], np.abs(want).max())
    assert (plan.fft_["index"] is None) == every_offset == (plan.n_classes_ == n // math.gcd(n, Q))


def test_fused_exact_small():
    # W_aux = [[1, 10], [2, 20], [3, 30]] → W = [[1, 20], [10, 3], [2, 30]]
    Xf, Wf = np.array([[1.0], [2.0], [3.0]]), np.array([[1.0, 10.0]])
    for method in METHODS:
        plan = FusedDeepThin(Xf, Wf, Q=3, R=2, method=method)
        np.testing.assert_array_equal(plan(np.array([1.0, 1.0, 1.0])), [13.0, 53.0])
        np.testing.assert_array_equal(plan(np.array([[1.0, 0, 0], [0, 0, 1.0]])), [[1.0, 20.0], [2.0, 30.0]])


def test_fused_plan_shapes_and_choice():
    s = deepthin_size(2048, 2048, size_fraction=0.01)                    # coprime: every column its own class
    Xf, Wf = init_factors(s.m, s.n, s.r, target_std=0.05, rng=0)
    plan = FusedDeepThin(Xf, Wf, Q=2048, R=2048)
    assert plan.n_classes_ == s.n == 1649 and plan.rows_per_column_ == 3 and plan.method_ == "fft"
    a = deepthin_size(2048, 2048, size_fraction=0.01, layout="aligned")  # n = Q: one class
    Xa, Wa = init_factors(a.m, a.n, a.r, target_std=0.05, rng=0)
    aligned = FusedDeepThin(Xa, Wa, Q=2048, R=2048)
    assert aligned.n_classes_ == 1 and aligned.method_ == "windows"


def test_fused_returns_new_arrays_and_keeps_inputs():
    rng = np.random.default_rng(1)
    Xf, Wf = init_factors(12, 5, 2, target_std=1.0, rng=rng)
    X = rng.standard_normal((3, 6)).astype(np.float32)
    X0, Xf0, Wf0 = X.copy(), Xf.copy(), Wf.copy()
    for method in METHODS:
        plan = FusedDeepThin(Xf, Wf, Q=6, R=10, method=method)
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
    with pytest.raises(ValueError, match=r"method='gpu' is not a fused method; use one of"):
        FusedDeepThin(Xf, Wf, Q=3, R=4, method="gpu")
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

    from thinlab.deepthin import _plan, fused, network, paper, relayout, solver
    missing = []
    for module in (solver, network, relayout, fused, paper, _plan):
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
