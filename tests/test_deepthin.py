"""DeepThin: size solver, bytes, network planning, re-layout, reconstruction, shuffle, init.

The fused product has its own file, tests/test_deepthin_fused.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from thinlab.deepthin import (deepthin_bytes, deepthin_lower_bound, deepthin_size, flat_positions, glorot_std,
                              he_std, init_factors, min_aux_sum, min_aux_sum_reference, plan_network,
                              reconstruct, reconstruct_reference, relayout, relayout_reference,
                              shuffle_permutation, unrelayout)
from thinlab.deepthin.solver import deepthin_size_reference
from thinlab.size import SEED_BYTES

TFKALDI = {"in": (440, 2048), **{f"h{i}": (2048, 2048) for i in range(1, 6)}, "out": (2048, 6928)}
dims = st.integers(1, 60)


# ---------------------------------------------------------------- bytes and lower bound

def test_deepthin_bytes_exact():
    # X^f (3, 2) + W^f (2, 4) = 14 float32 values = 56 bytes, + two shapes of 2 uint32 = 16 bytes
    assert deepthin_bytes(3, 4, 2) == 72
    assert deepthin_bytes(3, 4, 2, shuffled=True) == 72 + SEED_BYTES
    assert deepthin_bytes(3, 4, 2, dtype="float16") == 28 + 16


def test_lower_bound_exact_2048():
    # rank 1, m = n = 2048: (4096 values · 4 + 16) / (2048² · 4)
    assert deepthin_lower_bound(2048, 2048) == pytest.approx((4096 * 4 + 16) / (2048 * 2048 * 4), rel=1e-12)
    assert deepthin_lower_bound(2048, 2048, shuffled=True) > deepthin_lower_bound(2048, 2048)


@given(st.integers(1, 4000))
def test_min_aux_sum_matches_reference(N):
    n, m = min_aux_sum(N)
    n_ref, m_ref = min_aux_sum_reference(N)
    assert m + n == m_ref + n_ref
    assert m * n >= N and n <= m
    assert m + n == math.ceil(2 * math.sqrt(N) - 1e-9)      # the closed form ⌈2√N⌉


def test_min_aux_sum_large():
    n, m = min_aux_sum(2048 * 6928)
    assert m * n >= 2048 * 6928 and m + n == math.ceil(2 * math.sqrt(2048 * 6928))


# ---------------------------------------------------------------- size solver

def test_solver_exact_tfkaldi_hidden_layer():
    s = deepthin_size(2048, 2048, size_fraction=0.01)
    assert (s.m, s.n, s.r, s.gcd) == (2544, 1649, 10, 1)
    assert s.n_params == (2544 + 1649) * 10 == 41930
    assert s.bytes == 41930 * 4 + 16
    assert s.size_fraction == s.bytes / (2048 * 2048 * 4) <= 0.01
    assert s.period == 1649 and s.waste == 2544 * 1649 - 2048 * 2048


def test_solver_aligned_is_rank_factorisation_when_n_equals_q():
    s = deepthin_size(2048, 2048, size_fraction=0.01, layout="aligned")
    assert (s.m, s.n, s.r, s.period) == (2048, 2048, 10, 1)


def test_solver_forced_rank_and_coprime():
    s = deepthin_size(2048, 2048, size_fraction=0.01, rank=1)
    assert s.r == 1 and s.gcd == 1 and s.n == 101 and s.m == math.ceil(2048 * 2048 / 101)


@settings(max_examples=60, deadline=None)
@given(Q=dims, R=dims, t=st.floats(0, 1), layout=st.sampled_from(["coprime", "aligned", "any"]),
       shuffled=st.booleans())
def test_solver_matches_brute_force(Q, R, t, layout, shuffled):
    lower = deepthin_lower_bound(Q, R, shuffled=shuffled)
    assume(lower <= 1)                         # tiny layers cannot be DeepThin'd at all
    alpha = lower + t * (1 - lower)
    s = deepthin_size(Q, R, size_fraction=alpha, layout=layout, shuffled=shuffled)
    assert s == deepthin_size_reference(Q, R, size_fraction=alpha, layout=layout, shuffled=shuffled)
    assert s.m * s.n >= Q * R and s.n <= s.m and s.r <= s.n
    assert s.bytes == deepthin_bytes(s.m, s.n, s.r, shuffled=shuffled) <= alpha * Q * R * 4 + 1e-6
    assert s.gcd == math.gcd(s.n, Q)
    # the rank is the largest that fits: one more would need more bytes than allowed
    n1, m1 = min_aux_sum(Q * R)
    assert deepthin_bytes(m1, n1, s.r + 1, shuffled=shuffled) > alpha * Q * R * 4


def test_lower_bound_is_reachable_and_tight():
    lb = deepthin_lower_bound(300, 200)
    s = deepthin_size(300, 200, size_fraction=lb)
    assert s.r == 1 and s.size_fraction == pytest.approx(lb)
    with pytest.raises(ValueError, match=r"below this layer's DeepThin lower bound .* shape \(300, 200\)"):
        deepthin_size(300, 200, size_fraction=lb * 0.999)


@pytest.mark.parametrize("bad, err, match", [
    (0.0, ValueError, r"must be > 0"),
    (-0.1, ValueError, r"must be > 0"),
    (float("nan"), ValueError, r"must be > 0"),
    (1.5, ValueError, r"above 1.*use a value ≤ 1"),
    (True, TypeError, r"real number"),
    ("0.01", TypeError, r"real number"),
])
def test_solver_bad_size_fraction(bad, err, match):
    with pytest.raises(err, match=match):
        deepthin_size(64, 64, size_fraction=bad)


def test_solver_error_names_the_bound_and_fix():
    with pytest.raises(ValueError, match=r"size_fraction=0.0004 is below .* lower bound 0.00098 .* "
                                         r"\(2048, 2048\); use ≥ 0.00098 or compress a larger layer"):
        deepthin_size(2048, 2048, size_fraction=0.0004)


def test_error_advice_values_work():
    # the advised values are rounded up, so following the advice succeeds
    for Q, R in [(2048, 2048), (300, 200), (7, 11), (2048, 6928)]:
        with pytest.raises(ValueError, match=r"use ≥ ") as info:
            deepthin_size(Q, R, size_fraction=deepthin_lower_bound(Q, R) * 0.99)
        advised = float(str(info.value).split("use ≥ ")[1].split(" ")[0])
        assert deepthin_size(Q, R, size_fraction=advised).r == 1
    with pytest.raises(ValueError, match=r"size_fraction ≥ ") as info:
        deepthin_size(2048, 2048, size_fraction=0.01, rank=13)
    advised = float(str(info.value).split("size_fraction ≥ ")[1])
    assert deepthin_size(2048, 2048, size_fraction=advised, rank=13).r == 13
    with pytest.raises(ValueError, match=r"use size_fraction ≥ ") as info:
        plan_network(TFKALDI, size_fraction=0.0005, other_params=5000)
    advised = float(str(info.value).split("use size_fraction ≥ ")[1].split(",")[0])
    assert plan_network(TFKALDI, size_fraction=advised, other_params=5000).size_fraction <= advised


def test_solver_bad_rank_layout_and_shape():
    with pytest.raises(ValueError, match=r"rank=11 does not fit .* largest rank that fits is 10; use rank ≤ 10"):
        deepthin_size(2048, 2048, size_fraction=0.01, rank=11)
    with pytest.raises(ValueError, match=r"rank=0 is below 1"):
        deepthin_size(2048, 2048, size_fraction=0.01, rank=0)
    with pytest.raises(ValueError, match=r"layout='lcm' is not a DeepThin layout rule; use one of"):
        deepthin_size(64, 64, size_fraction=0.5, layout="lcm")
    with pytest.raises(ValueError, match=r"Q=0 is below 1"):
        deepthin_size(0, 64, size_fraction=0.5)
    with pytest.raises(TypeError, match=r"R must be an integer ≥ 1, got 2.5"):
        deepthin_size(64, 2.5, size_fraction=0.5)


# ---------------------------------------------------------------- network planning

@pytest.mark.parametrize("alpha", [0.002, 0.004, 0.01, 0.02, 0.1])
@pytest.mark.parametrize("rank", [None, 1])
def test_plan_network_lands_on_target(alpha, rank):
    plan = plan_network(TFKALDI, size_fraction=alpha, other_params=6 * 2048 + 6928, rank=rank)
    assert plan.size_fraction <= alpha
    assert plan.size_fraction == pytest.approx(alpha, rel=2e-3)
    assert plan.other_bytes == 4 * (6 * 2048 + 6928)
    assert plan.total_bytes == sum(s.bytes for s in plan.layers.values()) + plan.other_bytes
    if rank == 1:
        assert all(s.r == 1 for s in plan.layers.values())


def test_plan_network_pins_small_layers_at_their_bound():
    shapes = {"big": (1024, 1024), "tiny": (8, 8)}
    plan = plan_network(shapes, size_fraction=0.01, rank="max")     # fine steps in bytes: lands within 0.5%
    tiny = plan.layers["tiny"]
    assert tiny.size_fraction == pytest.approx(deepthin_lower_bound(8, 8, layout="coprime"))   # far above 0.01
    assert tiny.gcd == 1                                     # not 8 x 8 at rank 1, which is plain rank 1
    assert plan.size_fraction == pytest.approx(0.01, rel=5e-3) and plan.size_fraction <= 0.01
    assert plan.layers["big"].size_fraction < 0.01                             # it paid for the tiny one


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(16, 300), st.integers(16, 300)), min_size=1, max_size=4),
       t=st.floats(0.05, 1), other=st.integers(0, 500))
def test_plan_network_never_exceeds_target(shapes, t, other):
    shapes = {f"l{i}": s for i, s in enumerate(shapes)}
    dense = sum(q * r for q, r in shapes.values()) * 4 + other * 4
    least = (sum(deepthin_lower_bound(q, r) * q * r * 4 for q, r in shapes.values()) + other * 4) / dense
    alpha = least + t * (1 - least)
    plan = plan_network(shapes, size_fraction=alpha, other_params=other)
    assert plan.size_fraction <= alpha + 1e-12
    assert plan.dense_bytes == dense


def test_plan_network_keeps_square_layers_coprime_at_their_floor():
    # The lesson-03 DNN at 1/350: both 512 x 512 layers are pinned at their floor. The plain floor
    # is m = n = 512 (W_aux = W, rank 1); the coprime floor costs one parameter more.
    shapes = {"hidden.0": (2000, 512), "hidden.1": (512, 512), "hidden.2": (512, 512)}
    plan = plan_network(shapes, size_fraction=1 / 350)
    assert all(s.gcd == 1 for s in plan.layers.values())
    assert plan.size_fraction <= 1 / 350
    # Between the two floors there is no room for the coprime layout: the plain floor is used.
    dense = sum(q * r for q, r in shapes.values()) * 4
    plain = sum(deepthin_lower_bound(*s) * s[0] * s[1] * 4 for s in shapes.values()) / dense
    tight = plan_network(shapes, size_fraction=plain)
    assert tight.layers["hidden.1"].gcd == 512 and tight.size_fraction <= plain


@pytest.mark.parametrize("Q, R", [(512, 512), (8, 8), (7, 7), (64, 96), (2048, 2048), (300, 200), (6, 30)])
def test_coprime_lower_bound_matches_brute_force(Q, R):
    N, best = Q * R, None
    for n in range(1, N + 1):
        m = -(-N // n)
        if n <= m and math.gcd(n, Q) == 1 and (best is None or m + n < best):
            best = m + n
    expected = deepthin_bytes(best - 1, 1, 1) / (Q * R * 4)       # bytes depend on m + n only
    assert deepthin_lower_bound(Q, R, layout="coprime") == pytest.approx(expected, rel=1e-12)
    assert deepthin_lower_bound(Q, R, layout="coprime") >= deepthin_lower_bound(Q, R)


def test_plan_network_errors():
    with pytest.raises(ValueError, match=r"below what this network can reach.*use size_fraction ≥"):
        plan_network(TFKALDI, size_fraction=0.0005)
    with pytest.raises(ValueError, match=r"below what this network can reach"):
        plan_network({"a": (64, 64)}, size_fraction=0.5, other_params=10_000)
    with pytest.raises(ValueError, match=r"shapes is empty"):
        plan_network({}, size_fraction=0.5)
    with pytest.raises(ValueError, match=r"\['bias_like'\] are too small for DeepThin.*add their parameters to other"):
        plan_network({"big": (256, 256), "bias_like": (2, 2)}, size_fraction=0.5)


def test_plan_network_report_rows():
    plan = plan_network(TFKALDI, size_fraction=0.01, other_params=100)
    report = plan.report()
    assert [row["layer"] for row in report.rows()] == [*TFKALDI, "other"]
    assert report.total_bytes == plan.total_bytes
    assert "100x" in str(report)


# ---------------------------------------------------------------- re-layout

def test_relayout_exact_small():
    # W_aux = [[0, 1, 2], [3, 4, 5]] read row-major fills W (2, 3) column by column
    W = relayout(np.arange(6).reshape(2, 3), Q=2, R=3)
    np.testing.assert_array_equal(W, [[0, 2, 4], [1, 3, 5]])
    # m·n > Q·R: the tail of W_aux is unused
    np.testing.assert_array_equal(relayout(np.arange(8).reshape(2, 4), Q=3, R=2), [[0, 3], [1, 4], [2, 5]])


@given(Q=dims, R=dims, extra=st.integers(0, 7), data=st.data())
def test_relayout_matches_reference_and_positions(Q, R, extra, data):
    n = data.draw(st.integers(1, Q * R + extra))
    m = -(-(Q * R + extra) // n)
    W_aux = np.arange(m * n, dtype=np.int64).reshape(m, n)
    W = relayout(W_aux, Q=Q, R=R)
    np.testing.assert_array_equal(W, relayout_reference(W_aux, Q=Q, R=R))
    np.testing.assert_array_equal(W, flat_positions(Q, R))                # W → its flat positions
    assert W.flags["C_CONTIGUOUS"] and not np.shares_memory(W, W_aux)
    # inverse: every W entry goes back to its place, unused places stay 0
    back = unrelayout(W.astype(float) + 1, m=m, n=n)
    np.testing.assert_array_equal(relayout(back, Q=Q, R=R), W + 1)
    assert np.count_nonzero(back) == Q * R


def test_relayout_errors():
    with pytest.raises(ValueError, match=r"holds 6 elements but W of shape \(3, 3\) needs 9"):
        relayout(np.zeros((2, 3)), Q=3, R=3)
    with pytest.raises(ValueError, match=r"W_aux must be 2-D"):
        relayout(np.zeros(6), Q=2, R=3)
    with pytest.raises(ValueError, match=r"holds 4 elements"):
        unrelayout(np.zeros((3, 3)), m=2, n=2)


# ---------------------------------------------------------------- reconstruction and shuffle

def test_reconstruct_exact_small():
    Xf = np.array([[1.0], [2.0], [3.0]])
    Wf = np.array([[1.0, 10.0]])
    # W_aux = [[1, 10], [2, 20], [3, 30]] → flat 1 10 2 20 3 30 → columns [1 10 2], [20 3 30]
    np.testing.assert_array_equal(reconstruct(Xf, Wf, Q=3, R=2), [[1, 20], [10, 3], [2, 30]])


@settings(max_examples=40, deadline=None)
@given(Q=st.integers(1, 12), R=st.integers(1, 12), r=st.integers(1, 4), shuffled=st.booleans(), data=st.data())
def test_reconstruct_matches_reference(Q, R, r, shuffled, data):
    n = data.draw(st.integers(1, Q * R))
    m = -(-Q * R // n) + data.draw(st.integers(0, 2))
    Xf, Wf = init_factors(m, n, r, target_std=1.0, rng=data.draw(st.integers(0, 2**16)))
    perm = shuffle_permutation(m, n, seed=7) if shuffled else None
    W = reconstruct(Xf, Wf, Q=Q, R=R, perm=perm)
    assert W.shape == (Q, R) and W.dtype == np.float32
    np.testing.assert_allclose(W, reconstruct_reference(Xf, Wf, Q=Q, R=R, perm=perm), rtol=1e-5, atol=1e-5)
    # inverse: put W back into W_aux (through the permutation if shuffled) and read it out again
    W_aux = unrelayout(W, m=m, n=n, perm=perm)
    np.testing.assert_array_equal(W_aux.reshape(-1)[flat_positions(Q, R, perm=perm)], W)


def test_shuffle_permutation_is_seeded():
    p = shuffle_permutation(5, 7, seed=3)
    np.testing.assert_array_equal(np.sort(p), np.arange(35))
    np.testing.assert_array_equal(p, shuffle_permutation(5, 7, seed=3))
    assert not np.array_equal(p, shuffle_permutation(5, 7, seed=4))
    with pytest.raises(ValueError, match=r"seed=-1 is below 0"):
        shuffle_permutation(5, 7, seed=-1)


def test_reconstruct_bad_inputs():
    Xf, Wf = np.ones((4, 2)), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"Wf has shape \(3, 3\) but 2 rows were expected"):
        reconstruct(Xf, np.ones((3, 3)), Q=3, R=4)
    with pytest.raises(ValueError, match=r"holds 12 elements but W of shape \(5, 3\) needs 15"):
        reconstruct(Xf, Wf, Q=5, R=3)
    with pytest.raises(ValueError, match=r"perm must be an integer array of shape \(12,\)"):
        reconstruct(Xf, Wf, Q=3, R=4, perm=np.arange(11))
    with pytest.raises(TypeError, match=r"Xf must hold real numbers"):
        reconstruct(np.array([["a", "b"]]), Wf, Q=1, R=1)


# ---------------------------------------------------------------- initialisation

def test_init_factors_variances():
    Xf, Wf = init_factors(4000, 3000, 8, target_std=0.05, rng=0)
    assert Xf.shape == (4000, 8) and Wf.shape == (8, 3000) and Xf.dtype == Wf.dtype == np.float32
    assert Xf.std() == pytest.approx(0.05, rel=0.03)
    assert Wf.var() == pytest.approx(1 / 8, rel=0.03)
    W = reconstruct(Xf, Wf, Q=2048, R=2048)
    assert W.std() == pytest.approx(0.05, rel=0.03)             # r · σ² · (1/r) = σ²


def test_init_stds_and_errors():
    assert glorot_std(2048, 2048) == pytest.approx(math.sqrt(2 / 4096))
    assert he_std(2048) == pytest.approx(math.sqrt(2 / 2048))
    with pytest.raises(ValueError, match=r"target_std=0 must be a positive finite number"):
        init_factors(3, 3, 1, target_std=0, rng=0)
    a, _ = init_factors(3, 3, 1, target_std=1.0, rng=5)
    b, _ = init_factors(3, 3, 1, target_std=1.0, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- the rank policy (the paper's r = 1 by default)

def test_plan_network_default_rank_is_the_papers():
    from thinlab.deepthin.network import DEFAULT_RANK
    assert DEFAULT_RANK == 1
    default, largest = plan_network(TFKALDI, size_fraction=0.01), plan_network(TFKALDI, size_fraction=0.01, rank="max")
    assert all(s.r == 1 and s.gcd == 1 for s in default.layers.values())
    assert [s.r for s in largest.layers.values()] == [4, 10, 10, 10, 10, 10, 18]
    assert plan_network(TFKALDI, size_fraction=0.01, rank=None) == default
    # rank 1 at 100x: n ≈ 1/α (W_aux rows of ~100), m ≈ α·Q·R; both plans within the same budget
    assert [s.n for s in default.layers.values()] == [103, 101, 101, 101, 101, 101, 99]
    assert default.size_fraction <= 0.01 and largest.size_fraction <= 0.01
    assert default.size_fraction == pytest.approx(0.01, rel=2e-3)


def test_rank_default_context_and_errors():
    from thinlab.deepthin.network import rank_default
    with rank_default("max"):
        assert plan_network(TFKALDI, size_fraction=0.01).layers["h1"].r == 10
        with rank_default(None):                                     # None changes nothing
            assert plan_network(TFKALDI, size_fraction=0.01).layers["h1"].r == 10
    assert plan_network(TFKALDI, size_fraction=0.01).layers["h1"].r == 1
    with pytest.raises(ValueError, match=r"rank='largest' is not a rank; pass an int ≥ 1 .*'max'"):
        plan_network(TFKALDI, size_fraction=0.01, rank="largest")
    with pytest.raises(ValueError, match=r"rank='big' is not a rank"):
        with rank_default("big"):
            pass
    with pytest.raises(RuntimeError):                               # restored after an error inside
        with rank_default("max"):
            raise RuntimeError
    assert plan_network(TFKALDI, size_fraction=0.01).layers["h1"].r == 1


def _runs(accs_1, accs_max, factor=20, same=False):
    rows = [{"factor": factor, "rank": "1", "seed": s, "acc": a, "layers": {"h": [1, 1, 1]}}
            for s, a in enumerate(accs_1)]
    rows += [{"factor": factor, "rank": "max", "seed": s, "acc": a, "layers": {"h": [1, 1, 4]}, "same_as_rank_1": same}
             for s, a in enumerate(accs_max)]
    return rows


def test_rank_verdict_against_noise():
    from thinlab.experiments.deepthin_rank import default_rank, rank_verdict
    clear = rank_verdict(_runs([0.60, 0.61, 0.62], [0.70, 0.71, 0.72]))
    row = clear["rows"][0]
    assert row["diff"] == pytest.approx(0.10) and row["verdict"] == "largest rank better"
    se = 0.01 / math.sqrt(3)                                          # std 0.01 over 3 seeds, both sides
    assert row["noise"] == pytest.approx(2 * math.sqrt(2) * se) and row["ranks"] == {"h": 4}
    assert clear["verdict"] == "largest rank better" and clear["mean_diff"] == pytest.approx(0.10)
    noisy = rank_verdict(_runs([0.60, 0.70, 0.65], [0.66, 0.62, 0.70]))
    assert noisy["rows"][0]["verdict"] == "within noise" and noisy["verdict"] == "within noise"
    worse = rank_verdict(_runs([0.70, 0.71, 0.72], [0.60, 0.61, 0.62]))
    assert worse["verdict"] == "r = 1 better"
    same = rank_verdict(_runs([0.6, 0.7], [0.6, 0.7], same=True))
    assert same["rows"][0]["verdict"] == "same plan" and same["verdict"] == "same plan"
    # pooled over sizes: a clear win at one size, noise at another
    both = rank_verdict(_runs([0.60, 0.61, 0.62], [0.70, 0.71, 0.72]) + _runs([0.6, 0.7, 0.65], [0.66, 0.62, 0.7], 100))
    assert [r["factor"] for r in both["rows"]] == [20, 100] and both["mean_diff"] > 0
    # the library default moves to the largest rank only when it wins on every data set
    assert default_rank({"synthetic": clear, "real": clear}) == "max"
    assert default_rank({"synthetic": clear, "real": noisy}) == 1
    assert default_rank({}) == 1


def test_rank_verdict_is_paired_over_speakers_when_runs_hold_hits():
    from thinlab.experiments.deepthin_rank import rank_verdict

    rng = np.random.default_rng(0)
    spk = np.repeat(np.arange(25), 6).astype(str)
    layers1, layersm = {"hidden.0": [10, 20, 1]}, {"hidden.0": [10, 20, 4]}
    runs = []
    for seed in range(3):
        base = rng.random(150) < 0.6
        better = base | (rng.random(150) < 0.5)                 # the largest rank gets many more clips right
        runs.append({"factor": 20, "rank": "1", "seed": seed, "acc": base.mean(), "hits": base, "speakers": spk,
                     "layers": layers1})
        runs.append({"factor": 20, "rank": "max", "seed": seed, "acc": better.mean(), "hits": better, "speakers": spk,
                     "layers": layersm, "same_as_rank_1": False})
    v = rank_verdict(runs)
    assert v["verdict"] == "largest rank better" and v["rows"][0]["verdict"] == "largest rank better"
    assert v["mean_diff"] > 0 and 0 < v["noise"] < v["mean_diff"]
    for r in runs:                                              # the same hits for both policies: no difference
        if r["rank"] == "max":
            r["hits"] = next(q["hits"] for q in runs if q["rank"] == "1" and q["seed"] == r["seed"])
    assert rank_verdict(runs)["verdict"] == "within noise"
