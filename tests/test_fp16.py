"""Precision facts, bfloat16 emulation, underflow / overflow, and the dynamic loss scaler."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from thinlab.precision import (
    DynamicLossScaler, format_facts, format_name, has_inf_or_nan, one_plus_delta, overflow_fraction,
    round_to_format, to_bfloat16, to_bfloat16_reference, underflow_fraction,
)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_facts_match_numpy_finfo(dtype):
    f, fi = format_facts(dtype), np.finfo(dtype)
    assert (f.epsilon, f.max, f.smallest_normal, f.smallest_subnormal, f.decimal_digits, f.bits) == (
        float(fi.eps), float(fi.max), float(fi.smallest_normal), float(fi.smallest_subnormal), fi.precision, fi.bits)


def test_facts_exact_and_bfloat16_match_torch():
    h = format_facts("float16")
    assert (h.epsilon, h.max, h.smallest_normal, h.smallest_subnormal, h.decimal_digits) == (
        2 ** -10, 65504.0, 2 ** -14, 2 ** -24, 3)
    b, tb = format_facts("bfloat16"), torch.finfo(torch.bfloat16)
    assert (b.epsilon, b.max, b.smallest_normal, b.bits, b.decimal_digits) == (tb.eps, tb.max, tb.tiny, 16, 2)
    assert b.smallest_subnormal == 2.0 ** -133
    assert format_facts(torch.float16) == h and format_facts(np.float16) == h and format_facts("half") == h
    assert format_name(torch.bfloat16) == "bfloat16" and format_name(np.dtype("float32")) == "float32"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=50))
def test_bfloat16_matches_torch_and_reference(values):
    x = np.array(values, dtype=np.float32)
    fast = to_bfloat16(x)
    assert fast.dtype == np.float32
    assert np.array_equal(fast, torch.from_numpy(x).to(torch.bfloat16).float().numpy())
    assert np.array_equal(fast, to_bfloat16_reference(x))


def test_bfloat16_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4028235e38, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8],
                 dtype=np.float32)
    out = to_bfloat16(x)
    assert np.isnan(out[0]) and np.isnan(to_bfloat16_reference(x)[0])
    assert out[1:].tolist() == [np.inf, -np.inf, 0.0, -0.0, np.inf, 1.0, 1.0 + 2 ** -6]  # ties to even


def test_one_plus_delta():
    assert one_plus_delta(1e-4) == 1.0 and one_plus_delta(1e-4, dtype="bfloat16") == 1.0
    assert one_plus_delta(1e-4, dtype="float32") == pytest.approx(1.0001, rel=1e-7)
    assert one_plus_delta(2 ** -10) == 1.0 + 2 ** -10  # exactly one epsilon survives
    assert one_plus_delta(2 ** -11) == 1.0  # half an epsilon: a tie, rounded to the even 1.0


def test_round_to_format():
    assert round_to_format([0.1], dtype="float16").tolist() == [np.float32(np.float16(0.1))]
    assert round_to_format([70000.0], dtype="float16").tolist() == [np.inf]
    assert round_to_format(np.array([0.1]), dtype="float64").tolist() == [0.1]


def test_underflow_and_overflow_fraction_exact():
    g = np.array([0.0, 1e-3, 1e-6, 1e-8, 2e-8, -1e-9, 1e-30])  # six nonzero
    # float16: 1e-3 normal, 1e-6 subnormal survives, 1e-8 / 2e-8 / 1e-9 / 1e-30 are below 2**-25 → 0
    assert underflow_fraction(g) == pytest.approx(4 / 6)
    assert underflow_fraction(g, dtype="bfloat16") == 0.0
    assert underflow_fraction(g * 1024) == pytest.approx(1 / 6)  # loss scaling rescues most
    assert underflow_fraction(np.zeros(3)) == 0.0
    assert overflow_fraction(np.array([1.0, 65504.0, 65519.0, 65520.0, -1e5])) == pytest.approx(2 / 5)
    assert overflow_fraction(np.array([1e5]), dtype="bfloat16") == 0.0


def test_dynamic_loss_scaler_rule():
    s = DynamicLossScaler(init_scale=8.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    assert (s.init_scale, s.growth_interval) == (8.0, 3)
    seq = [s.update(f) for f in (False, False, False, True, False, True, True, False)]
    assert seq == [False, False, False, True, False, True, True, False]
    # 8 → (3 good) 16 → inf 8 → good → inf 4 → inf 2 → good
    assert s.scale_ == 2.0 and s.good_steps_ == 1 and s.n_skipped_ == 3 and s.n_updates_ == 8
    assert "scale_=2" in repr(s)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5),
       st.sampled_from([2.0, 4.0]), st.sampled_from([0.5, 0.25]))
def test_loss_scaler_matches_torch_gradscaler_rule(flags, interval, growth, backoff):
    ours = DynamicLossScaler(init_scale=2.0 ** 10, growth_factor=growth, backoff_factor=backoff,
                             growth_interval=interval)
    scale, tracker = torch.tensor(2.0 ** 10), torch.tensor(0, dtype=torch.int32)
    for f in flags:
        assert ours.update(f) is f
        torch._amp_update_scale_(scale, tracker, torch.tensor(float(f)), growth, backoff, interval)
        assert ours.scale_ == scale.item() and ours.good_steps_ == tracker.item()


def test_has_inf_or_nan():
    assert not has_inf_or_nan(np.ones(3), [1.0])
    assert has_inf_or_nan(np.ones(3), [np.nan]) and has_inf_or_nan(np.array([np.inf]))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"dtype='int8' is not a supported float format; use one of"):
        format_facts("int8")
    with pytest.raises(ValueError, match="dtype='float8' is not a supported float format"):
        round_to_format([1.0], dtype="float8")
    with pytest.raises(TypeError, match="x must be a real numeric array; got dtype <U1"):
        to_bfloat16(np.array(["a"]))
    with pytest.raises(ValueError, match="grads has 1 NaN/inf values"):
        underflow_fraction(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="delta=nan must be a finite real number"):
        one_plus_delta(math.nan)
    with pytest.raises(ValueError, match=r"init_scale=0 must be a finite number > 0"):
        DynamicLossScaler(init_scale=0)
    with pytest.raises(ValueError, match=r"growth_factor=1.0 must be a finite number > 1"):
        DynamicLossScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match=r"backoff_factor=1.5 must be a number in \(0, 1\)"):
        DynamicLossScaler(backoff_factor=1.5)
    with pytest.raises(ValueError, match=r"growth_interval=0 must be an integer ≥ 1"):
        DynamicLossScaler(growth_interval=0)
    with pytest.raises(ValueError, match=r"init_scale='big' must be"):
        DynamicLossScaler(init_scale="big")
    with pytest.raises(TypeError, match="found_inf=1 must be a bool"):
        DynamicLossScaler().update(1)
    with pytest.raises(TypeError):
        DynamicLossScaler(2.0)  # hyperparameters are keyword-only
